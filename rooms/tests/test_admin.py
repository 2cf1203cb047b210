"""Django admin for rooms (changelist, change page, the close action) and the webhook outbox."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Q
from django.test import Client
from django.utils import timezone

from rooms import services, webhooks
from rooms.enums import CloseReason
from rooms.models import Room, WebhookEvent

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


# --- the webhook outbox ------------------------------------------------------------------

EVENTS = "/admin/rooms/webhookevent/"


@pytest.fixture
def two_rooms_events(settings: Any, make_room: Callable[..., Room]) -> tuple[Room, Room]:
    """Two rooms with webhooks on: room.created each, the first closed (room.closed numbered)."""
    settings.SIGNALING = dataclasses.replace(
        settings.SIGNALING,
        webhook_url="http://127.0.0.1:9/hooks",
        webhook_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    )
    first, second = make_room(name="Standup"), make_room(name="Retro")
    services.close_room_row(first.id, CloseReason.DELETED)
    webhooks.number_room_closed(first.id)
    return first, second


def test_webhook_events_list_filters_by_state_type_and_room_and_is_read_only(
    admin_client: Client, two_rooms_events: tuple[Room, Room]
) -> None:
    first, second = two_rooms_events
    WebhookEvent.objects.filter(room=second).update(state="failed")
    # when
    listing = admin_client.get(EVENTS)
    failed = admin_client.get(EVENTS, {"state__exact": "failed"})
    closed = admin_client.get(EVENTS, {"type__exact": "room.closed"})
    of_first = admin_client.get(EVENTS, {"room__id__exact": first.id})
    event = WebhookEvent.objects.get(room=second)
    detail = admin_client.get(f"{EVENTS}{event.pk}/change/")
    # then
    assert listing.status_code == 200 and listing.context["cl"].result_count == 3
    assert [e.room_id for e in failed.context["cl"].result_list] == [second.id]
    assert [e.room_id for e in closed.context["cl"].result_list] == [first.id]
    assert sorted(e.type for e in of_first.context["cl"].result_list) == ["room.closed", "room.created"]
    assert detail.status_code == 200 and event.webhook_id in detail.content.decode()
    assert admin_client.get(f"{EVENTS}add/").status_code == 403
    # a POST to the change page changes nothing (every field is read-only)
    admin_client.post(f"{EVENTS}{event.pk}/change/", {"state": "delivered", "attempts": 9})
    assert WebhookEvent.objects.filter(pk=event.pk).values_list("state", "attempts").get() == ("failed", 0)


def test_retry_now_makes_pending_and_failed_events_due_and_leaves_delivered_ones(
    admin_client: Client, two_rooms_events: tuple[Room, Room]
) -> None:
    # given a failed event due in a day, a pending one due in an hour, and a delivered one
    first, second = two_rooms_events
    later = timezone.now() + timedelta(days=1)
    WebhookEvent.objects.filter(room=second).update(state="failed", attempts=8, next_attempt_at=later)
    WebhookEvent.objects.filter(room=first, seq=1).update(state="delivered", attempts=1, next_attempt_at=later)
    WebhookEvent.objects.filter(room=first, seq=2).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    # when
    response = admin_client.post(
        EVENTS,
        {"action": "retry_selected_now", "_selected_action": list(WebhookEvent.objects.values_list("pk", flat=True))},
        follow=True,
    )
    # then
    assert response.status_code == 200
    assert "2 event(s) will be retried now." in response.content.decode()
    due = {e.webhook_id for e in webhooks.claim_due(10, now=timezone.now() + timedelta(seconds=1))}
    assert due == set(
        WebhookEvent.objects.filter(Q(room=second) | Q(room=first, seq=2)).values_list("webhook_id", flat=True)
    )
    assert WebhookEvent.objects.get(room=second).state == "pending"
    assert WebhookEvent.objects.get(room=first, seq=1).state == "delivered"
