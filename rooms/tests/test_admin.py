"""Django admin for rooms: changelist, change page, and the close action."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from rooms import services
from rooms.enums import CloseReason
from rooms.models import Room

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/rooms/room/"


def test_changelist_renders_for_staff_with_filters_and_search(
    admin_client: Client, make_room: Callable[..., Room]
) -> None:
    # given
    room = make_room(name="Standup")
    make_room(name="Retro", room_type="video")
    # when
    listing = admin_client.get(CHANGELIST)
    searched = admin_client.get(CHANGELIST, {"q": "stand"})
    open_voice = admin_client.get(CHANGELIST, {"type": "voice", "closed": "no"})
    # then
    assert listing.status_code == 200
    assert room.id in listing.content.decode()
    assert (searched.status_code, searched.context["cl"].result_count) == (200, 1)
    assert [r.id for r in open_voice.context["cl"].result_list] == [room.id]


def test_change_page_renders(admin_client: Client, make_room: Callable[..., Room]) -> None:
    room = make_room()
    response = admin_client.get(f"{CHANGELIST}{room.id}/change/")
    assert response.status_code == 200
    assert room.name in response.content.decode()


def test_admin_requires_a_staff_login(client: Client) -> None:
    response = client.get(CHANGELIST)
    assert (response.status_code, response["Location"]) == (
        302,
        f"/admin/login/?next={CHANGELIST}",
    )


def test_close_action_closes_open_rooms_and_announces_after_commit(
    admin_client: Client,
    make_room: Callable[..., Room],
    announced: list[tuple[str, str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given two open rooms and one already expired
    first, second, expired = make_room(), make_room(), make_room()
    services.close_room_row(expired.id, CloseReason.EXPIRED)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {
                "action": "close_selected_rooms",
                "_selected_action": [first.id, second.id, expired.id],
            },
        )
    # then
    assert response.status_code == 302
    rooms = {room.id: room for room in Room.objects.all()}
    assert {room_id: rooms[room_id].close_reason for room_id in rooms} == {
        first.id: "deleted",
        second.id: "deleted",
        expired.id: "expired",
    }
    assert sorted(announced) == sorted([(first.id, "deleted"), (second.id, "deleted")])
    messages = [str(m) for m in admin_client.get(CHANGELIST).context["messages"]]
    assert messages == ["Closed 2 room(s)."]
