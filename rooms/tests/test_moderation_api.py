"""REST moderation: validation as strict as room creation, creator-or-staff, 404/410 (SPEC section 9).

In-process DRF ``APIClient`` against the real views and the real (in-memory) presence: no
socket is in these rooms, so kicks and mutes of a clientId answer 404. The live effects of
the same calls, with real sockets, are in ``signaling/tests/e2e/test_moderation.py`` and
``signaling/tests/integration/test_moderation_admin.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from rooms import services
from rooms.enums import CloseReason
from rooms.models import Room, RoomBan
from rooms.tests.fixtures import ANY_ISO_UTC, ANY_TEXT, room_json

pytestmark = pytest.mark.django_db


class AnyErrors:
    """Equal to a ``{field: [messages]}`` dict naming exactly ``fields``."""

    def __init__(self, *fields: str) -> None:
        self.fields = set(fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and set(other) == self.fields

    def __repr__(self) -> str:
        return f"<errors for {sorted(self.fields)}>"


def invalid(*fields: str) -> dict[str, Any]:
    return {"detail": ANY_TEXT, "code": "invalid", "errors": AnyErrors(*fields)}


def paths(room_id: str) -> dict[str, tuple[str, str, Any]]:
    return {
        "kick": ("post", f"/api/rooms/{room_id}/participants/c_1/kick", {}),
        "mute": ("patch", f"/api/rooms/{room_id}/participants/c_1", {"muted": True}),
        "bans": ("get", f"/api/rooms/{room_id}/bans", None),
        "lift": ("delete", f"/api/rooms/{room_id}/bans/agent-x", None),
        "patch": ("patch", f"/api/rooms/{room_id}", {"name": "new"}),
    }


def send(client: APIClient, method: str, path: str, body: Any) -> Any:
    if body is None:
        return getattr(client, method)(path)
    return getattr(client, method)(path, body, format="json")


CALLS = ["kick", "mute", "bans", "lift", "patch"]


@pytest.mark.parametrize("_case", CALLS)
def test_moderation_without_a_token_answers_401(
    api_client: APIClient, make_room: Callable[..., Room], _case: str
) -> None:
    room = make_room()
    response = send(api_client, *paths(room.id)[_case])
    assert (response.status_code, response.json()["code"]) == (401, "missing_token")


@pytest.mark.parametrize("_case", CALLS)
def test_moderation_by_another_agent_answers_403_and_changes_nothing(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room], _case: str
) -> None:
    room = make_room()
    response = send(client_as("agent-other"), *paths(room.id)[_case])
    assert (response.status_code, response.json()) == (403, {"detail": ANY_TEXT, "code": "forbidden"})
    assert Room.objects.get().name == room.name


@pytest.mark.parametrize("_case", CALLS)
def test_moderation_of_an_unknown_room_answers_404(client_as: Callable[..., APIClient], _case: str) -> None:
    response = send(client_as(), *paths("r_nope")[_case])
    assert (response.status_code, response.json()["code"]) == (404, "room_not_found")


@pytest.mark.parametrize("_case", CALLS)
def test_moderation_of_a_closed_room_answers_410(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room], _case: str
) -> None:
    room = make_room()
    services.close_room_row(room.id, CloseReason.DELETED)
    response = send(client_as(), *paths(room.id)[_case])
    assert (response.status_code, response.json()["code"]) == (410, "room_closed")


def test_staff_may_moderate_any_room(client_as: Callable[..., APIClient], make_room: Callable[..., Room]) -> None:
    room = make_room()
    response = client_as("agent-admin", is_staff=True).get(f"/api/rooms/{room.id}/bans")
    assert (response.status_code, response.json()) == (200, [])


def test_kick_or_mute_of_a_client_not_in_the_room_answers_404(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room]
) -> None:
    room = make_room()
    client = client_as()
    kicked = client.post(f"/api/rooms/{room.id}/participants/c_1/kick", {"banSeconds": 60}, format="json")
    muted = client.patch(f"/api/rooms/{room.id}/participants/c_1", {"muted": True}, format="json")
    assert (kicked.status_code, kicked.json()["code"]) == (404, "participant_not_found")
    assert (muted.status_code, muted.json()["code"]) == (404, "participant_not_found")
    assert not RoomBan.objects.exists()  # nobody was there to ban


@pytest.mark.parametrize(
    ("_case", "body", "fields"),
    [
        ("reason_number", {"reason": 5}, ["reason"]),
        ("reason_too_long", {"reason": "x" * 201}, ["reason"]),
        ("ban_string", {"banSeconds": "60"}, ["banSeconds"]),
        ("ban_bool", {"banSeconds": True}, ["banSeconds"]),
        ("ban_float", {"banSeconds": 60.0}, ["banSeconds"]),
        ("ban_zero", {"banSeconds": 0}, ["banSeconds"]),
        ("ban_over_30_days", {"banSeconds": 2_592_001}, ["banSeconds"]),
        ("ban_null", {"banSeconds": None}, ["banSeconds"]),
    ],
)
def test_kick_with_an_invalid_body_answers_400(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room], _case: str, body: Any, fields: list[str]
) -> None:
    room = make_room()
    response = client_as().post(f"/api/rooms/{room.id}/participants/c_1/kick", body, format="json")
    assert (response.status_code, response.json()) == (400, invalid(*fields))
    assert not RoomBan.objects.exists()


@pytest.mark.parametrize(
    ("_case", "body", "fields"),
    [
        ("missing", {}, ["muted"]),
        ("number", {"muted": 1}, ["muted"]),
        ("string", {"muted": "true"}, ["muted"]),
        ("null", {"muted": None}, ["muted"]),
    ],
)
def test_mute_with_an_invalid_body_answers_400(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room], _case: str, body: Any, fields: list[str]
) -> None:
    room = make_room()
    response = client_as().patch(f"/api/rooms/{room.id}/participants/c_1", body, format="json")
    assert (response.status_code, response.json()) == (400, invalid(*fields))


@pytest.mark.parametrize(
    ("_case", "body", "fields"),
    [
        ("empty", {}, ["non_field_errors"]),
        ("empty_settings", {"settings": {}}, ["non_field_errors"]),
        ("blank_name", {"name": "  "}, ["name"]),
        ("long_name", {"name": "x" * 101}, ["name"]),
        ("number_name", {"name": 5}, ["name"]),
        ("unknown_setting", {"settings": {"color": "red"}}, ["settings.color"]),
        ("string_cap", {"settings": {"maxParticipants": "5"}}, ["settings.maxParticipants"]),
        ("cap_over_limit", {"settings": {"maxParticipants": 11}}, ["settings.maxParticipants"]),
        ("cap_zero", {"settings": {"maxParticipants": 0}}, ["settings.maxParticipants"]),
        ("int_bool", {"settings": {"muteOnEntry": 1}}, ["settings.muteOnEntry"]),
        ("duration_string", {"settings": {"maxDuration": "60"}}, ["settings.maxDuration"]),
        ("bad_duplicate", {"settings": {"duplicateIdentity": "twice"}}, ["settings.duplicateIdentity"]),
        ("settings_not_object", {"settings": []}, ["settings.non_field_errors"]),
    ],
)
def test_room_patch_with_an_invalid_body_answers_400_and_changes_nothing(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room], _case: str, body: Any, fields: list[str]
) -> None:
    room = make_room()
    response = client_as().patch(f"/api/rooms/{room.id}", body, format="json")
    assert (response.status_code, response.json()) == (400, invalid(*fields))
    assert room_json(Room.objects.get()) == room_json(room)


def test_room_patch_changes_only_what_it_names(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    room = make_room(max_duration_min=30)
    # when
    # (room_updated, run after the commit, is exercised with real sockets in the e2e tests)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_as().patch(
            f"/api/rooms/{room.id}",
            {"name": " Renamed ", "settings": {"duplicateIdentity": "replace", "maxDuration": None}},
            format="json",
        )
    # then
    row = Room.objects.get()
    expected = room_json(row)
    assert (response.status_code, response.json()) == (200, expected)
    assert expected["name"] == "Renamed"
    assert len(callbacks) == 1
    assert expected["settings"] == {
        "muteOnEntry": False,
        "allowRecording": False,
        "maxDuration": None,
        "maxParticipants": 10,
        "duplicateIdentity": "replace",
    }


def test_create_room_rejects_an_unknown_duplicate_identity(client_as: Callable[..., APIClient]) -> None:
    body = {"name": "a", "type": "voice", "settings": {"duplicateIdentity": "sometimes"}}
    response = client_as().post("/api/rooms", body, format="json")
    assert (response.status_code, response.json()) == (400, invalid("settings.duplicateIdentity"))
    assert not Room.objects.exists()


def test_bans_list_active_bans_soonest_first_and_lift_removes_one(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room]
) -> None:
    # given
    room = make_room()
    services.ban_agent(room.id, "agent-late", 600, "flood")
    services.ban_agent(room.id, "agent-soon", 60, "")
    RoomBan.objects.create(room=room, agent_id="agent-over", until=timezone.now() - timedelta(seconds=1))
    client = client_as()
    # when
    listed = client.get(f"/api/rooms/{room.id}/bans")
    lifted = client.delete(f"/api/rooms/{room.id}/bans/agent-soon")
    expired = client.delete(f"/api/rooms/{room.id}/bans/agent-over")
    # then
    assert (listed.status_code, listed.json()) == (
        200,
        [
            {"agentId": "agent-soon", "until": ANY_ISO_UTC, "reason": ""},
            {"agentId": "agent-late", "until": ANY_ISO_UTC, "reason": "flood"},
        ],
    )
    assert (lifted.status_code, lifted.content) == (204, b"")
    assert (expired.status_code, expired.json()["code"]) == (404, "ban_not_found")
    assert list(RoomBan.objects.values_list("agent_id", flat=True)) == ["agent-late"]


def test_join_token_of_a_banned_agent_answers_403(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room]
) -> None:
    room = make_room()
    services.ban_agent(room.id, "agent-bob", 60, "")
    refused = client_as("agent-bob").post(f"/api/rooms/{room.id}/join")
    admitted = client_as("agent-alice").post(f"/api/rooms/{room.id}/join")
    assert (refused.status_code, refused.json()) == (403, {"detail": ANY_TEXT, "code": "forbidden"})
    assert admitted.status_code == 200
