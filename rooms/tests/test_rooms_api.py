"""REST rooms API: create, list, detail, delete, join (SPEC section 2), whole payloads asserted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from types import ModuleType
from typing import Any

import jwt
import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from rooms import services
from rooms.enums import CloseReason
from rooms.models import Room
from rooms.serializers import iso_utc
from rooms.tests.fixtures import ANY_ISO_UTC, ANY_ROOM_ID, ANY_TEXT, room_json
from rooms.views import RoomViewSet

pytestmark = pytest.mark.django_db

DEFAULT_SETTINGS = {
    "muteOnEntry": False,
    "allowRecording": False,
    "maxDuration": None,
    "maxParticipants": 10,
    "duplicateIdentity": "allow",
}


# --- POST /api/rooms -------------------------------------------------------------------


def test_create_room_with_seed_body_answers_201_with_the_room(
    client_as: Callable[..., APIClient],
) -> None:
    # given the seed README's body
    body = {
        "name": "My Voice Room",
        "type": "voice",
        "settings": {"muteOnEntry": False, "allowRecording": False, "maxDuration": 60},
    }
    # when
    response = client_as("agent-fawzi").post("/api/rooms", body, format="json")
    # then
    assert response.status_code == 201
    assert response.json() == {
        "id": ANY_ROOM_ID,
        "name": "My Voice Room",
        "type": "voice",
        "settings": {
            "muteOnEntry": False,
            "allowRecording": False,
            "maxDuration": 60,
            "maxParticipants": 10,
            "duplicateIdentity": "allow",
        },
        "createdBy": "agent-fawzi",
        "createdAt": ANY_ISO_UTC,
        "participantCount": 0,
        "closed": False,
    }
    room = Room.objects.get()
    assert (room.id, room.max_duration_min, room.created_by) == (
        response.json()["id"],
        60,
        "agent-fawzi",
    )
    assert room.expires_at == room.created_at + timedelta(milliseconds=django_settings.SIGNALING.room_timeout_ms)
    assert (
        room.first_joined_at,
        room.closes_at,
        room.closed_at,
        room.close_reason,
    ) == (None, None, None, "")


def test_create_room_without_settings_uses_defaults(
    client_as: Callable[..., APIClient],
) -> None:
    response = client_as().post("/api/rooms", {"name": "  Standup  ", "type": "video"}, format="json")
    assert response.status_code == 201
    assert response.json() == {
        "id": ANY_ROOM_ID,
        "name": "Standup",
        "type": "video",
        "settings": DEFAULT_SETTINGS,
        "createdBy": "agent-fawzi",
        "createdAt": ANY_ISO_UTC,
        "participantCount": 0,
        "closed": False,
    }


def test_create_room_accepts_every_setting_and_ignores_unknown_top_level_keys(
    client_as: Callable[..., APIClient],
) -> None:
    body = {
        "name": "x" * 100,
        "type": "voice",
        "settings": {
            "muteOnEntry": True,
            "allowRecording": True,
            "maxDuration": 1440,
            "maxParticipants": 1,
            "duplicateIdentity": "replace",
        },
        "color": "blue",
        "id": "r_chosen_by_client",
    }
    response = client_as().post("/api/rooms", body, format="json")
    assert response.status_code == 201
    assert response.json()["settings"] == {
        "muteOnEntry": True,
        "allowRecording": True,
        "maxDuration": 1440,
        "maxParticipants": 1,
        "duplicateIdentity": "replace",
    }
    assert response.json()["id"] != "r_chosen_by_client"
    assert response.json()["name"] == "x" * 100


def test_create_room_max_participants_defaults_to_configured_cap(
    client_as: Callable[..., APIClient], settings: Any
) -> None:
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, max_participants=4)
    response = client_as().post("/api/rooms", {"name": "a", "type": "voice", "settings": {}}, format="json")
    assert response.json()["settings"] == {**DEFAULT_SETTINGS, "maxParticipants": 4}


def test_room_ids_are_unique_url_safe_and_unguessable(
    client_as: Callable[..., APIClient],
) -> None:
    client = client_as()
    ids = {client.post("/api/rooms", {"name": "a", "type": "voice"}, format="json").json()["id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(room_id == ANY_ROOM_ID for room_id in ids)


INVALID_BODIES: list[tuple[str, Any, dict[str, list[Any]]]] = [
    ("name_missing", {"type": "voice"}, {"name": [ANY_TEXT]}),
    ("name_blank_after_trim", {"name": "   ", "type": "voice"}, {"name": [ANY_TEXT]}),
    ("name_101_chars", {"name": "x" * 101, "type": "voice"}, {"name": [ANY_TEXT]}),
    ("name_number", {"name": 42, "type": "voice"}, {"name": [ANY_TEXT]}),
    ("name_null", {"name": None, "type": "voice"}, {"name": [ANY_TEXT]}),
    ("type_missing", {"name": "a"}, {"type": [ANY_TEXT]}),
    ("type_unknown", {"name": "a", "type": "audio"}, {"type": [ANY_TEXT]}),
    ("type_not_string", {"name": "a", "type": ["voice"]}, {"type": [ANY_TEXT]}),
    (
        "settings_not_object",
        {"name": "a", "type": "voice", "settings": [1]},
        {"settings.non_field_errors": [ANY_TEXT]},
    ),
    (
        "settings_null",
        {"name": "a", "type": "voice", "settings": None},
        {"settings": [ANY_TEXT]},
    ),
    (
        "settings_unknown_key",
        {"name": "a", "type": "voice", "settings": {"color": 1}},
        {"settings.color": [ANY_TEXT]},
    ),
    (
        "max_duration_string",
        {"name": "a", "type": "voice", "settings": {"maxDuration": "60"}},
        {"settings.maxDuration": [ANY_TEXT]},
    ),
    (
        "max_duration_float",
        {"name": "a", "type": "voice", "settings": {"maxDuration": 60.5}},
        {"settings.maxDuration": [ANY_TEXT]},
    ),
    (
        "max_duration_true",
        {"name": "a", "type": "voice", "settings": {"maxDuration": True}},
        {"settings.maxDuration": [ANY_TEXT]},
    ),
    (
        "max_duration_zero",
        {"name": "a", "type": "voice", "settings": {"maxDuration": 0}},
        {"settings.maxDuration": [ANY_TEXT]},
    ),
    (
        "max_duration_1441",
        {"name": "a", "type": "voice", "settings": {"maxDuration": 1441}},
        {"settings.maxDuration": [ANY_TEXT]},
    ),
    (
        "mute_on_entry_one",
        {"name": "a", "type": "voice", "settings": {"muteOnEntry": 1}},
        {"settings.muteOnEntry": [ANY_TEXT]},
    ),
    (
        "mute_on_entry_string",
        {"name": "a", "type": "voice", "settings": {"muteOnEntry": "true"}},
        {"settings.muteOnEntry": [ANY_TEXT]},
    ),
    (
        "allow_recording_zero",
        {"name": "a", "type": "voice", "settings": {"allowRecording": 0}},
        {"settings.allowRecording": [ANY_TEXT]},
    ),
    (
        "allow_recording_null",
        {"name": "a", "type": "voice", "settings": {"allowRecording": None}},
        {"settings.allowRecording": [ANY_TEXT]},
    ),
    (
        "max_participants_zero",
        {"name": "a", "type": "voice", "settings": {"maxParticipants": 0}},
        {"settings.maxParticipants": [ANY_TEXT]},
    ),
    (
        "max_participants_above_cap",
        {"name": "a", "type": "voice", "settings": {"maxParticipants": 11}},
        {"settings.maxParticipants": [ANY_TEXT]},
    ),
    (
        "max_participants_string",
        {"name": "a", "type": "voice", "settings": {"maxParticipants": "5"}},
        {"settings.maxParticipants": [ANY_TEXT]},
    ),
    (
        "body_is_array",
        [{"name": "a", "type": "voice"}],
        {"non_field_errors": [ANY_TEXT]},
    ),
]


@pytest.mark.parametrize(
    ("_case", "body", "errors"),
    INVALID_BODIES,
    ids=[case[0] for case in INVALID_BODIES],
)
def test_create_room_with_invalid_body_answers_400_and_creates_nothing(
    client_as: Callable[..., APIClient],
    _case: str,
    body: Any,
    errors: dict[str, list[Any]],
) -> None:
    # when
    response = client_as().post("/api/rooms", body, format="json")
    # then
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The request is invalid.",
        "code": "invalid",
        "errors": errors,
    }
    assert Room.objects.count() == 0


def test_create_room_with_malformed_json_answers_400_parse_error(
    client_as: Callable[..., APIClient],
) -> None:
    response = client_as().post("/api/rooms", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": ANY_TEXT, "code": "parse_error"}
    assert Room.objects.count() == 0


DEEP_BODIES = [("array", "[" * 50_000 + "]" * 50_000), ("object", '{"a":' * 50_000 + "1" + "}" * 50_000)]


@pytest.mark.parametrize(("_case", "body"), DEEP_BODIES)
def test_create_room_with_a_50000_deep_json_body_answers_400_parse_error(
    client_as: Callable[..., APIClient], _case: str, body: str
) -> None:
    # given a valid JSON body nested deeper than Python's recursion limit
    # when
    response = client_as().post("/api/rooms", body, content_type="application/json")
    # then a JSON 400 like any malformed body, not a 500
    assert response.status_code == 400
    assert response.json() == {"detail": ANY_TEXT, "code": "parse_error"}
    assert Room.objects.count() == 0


def test_create_room_with_form_body_answers_415(
    client_as: Callable[..., APIClient],
) -> None:
    response = client_as().post(
        "/api/rooms",
        "name=a&type=voice",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 415
    assert response.json() == {"detail": ANY_TEXT, "code": "unsupported_media_type"}


def test_create_room_without_token_answers_401_missing_token(
    api_client: APIClient,
) -> None:
    response = api_client.post("/api/rooms", {"name": "a", "type": "voice"}, format="json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert response.json() == {"detail": ANY_TEXT, "code": "missing_token"}
    assert Room.objects.count() == 0


def test_create_room_as_signed_in_django_user_answers_403(api_client: APIClient, django_user_model: Any) -> None:
    # given a session user (not an agent): rooms are created by agents
    user = django_user_model.objects.create_user("ops", password="pw-123456789", is_staff=True)
    api_client.force_login(user)
    # when
    response = api_client.post("/api/rooms", {"name": "a", "type": "voice"}, format="json")
    # then
    assert response.status_code == 403
    assert response.json() == {"detail": ANY_TEXT, "code": "forbidden"}
    assert Room.objects.count() == 0


# --- GET /api/rooms --------------------------------------------------------------------


def test_list_rooms_is_a_drf_page_of_open_rooms_newest_first(
    api_client: APIClient, make_room: Callable[..., Room]
) -> None:
    # given two open rooms and a closed one
    older = make_room(name="older")
    newer = make_room(name="newer", room_type="video")
    Room.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    older.refresh_from_db()
    closed = make_room(name="closed")
    services.close_room_row(closed.id, CloseReason.DELETED)
    # when
    response = api_client.get("/api/rooms")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [room_json(newer), room_json(older)],
    }


def test_list_rooms_empty(api_client: APIClient) -> None:
    response = api_client.get("/api/rooms")
    assert (response.status_code, response.json()) == (
        200,
        {"count": 0, "next": None, "previous": None, "results": []},
    )


@pytest.mark.parametrize("_case", ["voice", "video"])
def test_list_rooms_filters_by_type(api_client: APIClient, make_room: Callable[..., Room], _case: str) -> None:
    voice, video = make_room(room_type="voice"), make_room(room_type="video")
    response = api_client.get("/api/rooms", {"type": _case})
    expected = voice if _case == "voice" else video
    assert response.json() == {
        "count": 1,
        "next": None,
        "previous": None,
        "results": [room_json(expected)],
    }


def test_list_rooms_with_unknown_type_answers_400(api_client: APIClient) -> None:
    response = api_client.get("/api/rooms", {"type": "hologram"})
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The request is invalid.",
        "code": "invalid",
        "errors": {"type": [ANY_TEXT]},
    }


def test_list_rooms_paginates(
    api_client: APIClient,
    make_room: Callable[..., Room],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RoomViewSet.pagination_class, "page_size", 2)
    for index in range(3):
        make_room(name=f"room {index}")
    first = api_client.get("/api/rooms").json()
    second = api_client.get("/api/rooms", {"page": 2}).json()
    assert (
        first["count"],
        len(first["results"]),
        first["next"],
        first["previous"],
    ) == (
        3,
        2,
        "http://testserver/api/rooms?page=2",
        None,
    )
    assert (len(second["results"]), second["next"], second["previous"]) == (
        1,
        None,
        "http://testserver/api/rooms",
    )


def test_list_rooms_reports_live_counts_in_one_call(
    api_client: APIClient,
    make_room: Callable[..., Room],
    live: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given
    first, second = make_room(), make_room()
    calls: list[list[str]] = []

    def counts(room_ids: list[str]) -> dict[str, int]:
        calls.append(sorted(room_ids))
        return {first.id: 3}

    monkeypatch.setattr(live, "participant_counts", counts)
    # when
    results = api_client.get("/api/rooms").json()["results"]
    # then
    assert {room["id"]: room["participantCount"] for room in results} == {
        first.id: 3,
        second.id: 0,
    }
    assert calls == [sorted([first.id, second.id])]


def test_list_rooms_query_count_does_not_grow_with_rooms(api_client: APIClient, make_room: Callable[..., Room]) -> None:
    for _ in range(5):
        make_room()
    with CaptureQueriesContext(connection) as queries:
        api_client.get("/api/rooms")
    assert len(queries) <= 2  # COUNT + page


# --- GET /api/rooms/{id} ---------------------------------------------------------------


def test_room_detail_includes_live_participants(
    api_client: APIClient,
    make_room: Callable[..., Room],
    live: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a room with two participants somewhere in the cluster
    room = make_room(mute_on_entry=True, max_duration_min=30, max_participants=5)
    people = [
        {
            "clientId": "c1",
            "agentId": "agent-a",
            "joinedAt": "2026-11-26T15:00:00.000Z",
            "muted": True,
        },
        {
            "clientId": "c2",
            "agentId": "agent-b",
            "joinedAt": "2026-11-26T15:00:01.000Z",
            "muted": False,
        },
    ]
    monkeypatch.setattr(live, "room_participants", lambda room_id: people if room_id == room.id else [])
    # when
    response = api_client.get(f"/api/rooms/{room.id}")
    # then
    assert response.status_code == 200
    assert response.json() == room_json(room, participantCount=2, participants=people)


def test_room_detail_of_empty_room_has_no_participants(api_client: APIClient, make_room: Callable[..., Room]) -> None:
    room = make_room()
    response = api_client.get(f"/api/rooms/{room.id}")
    assert (response.status_code, response.json()) == (
        200,
        room_json(room, participants=[]),
    )


def test_closed_room_detail_answers_200_with_closed_fields(
    api_client: APIClient, make_room: Callable[..., Room]
) -> None:
    # given
    room = make_room()
    closed = services.close_room_row(room.id, CloseReason.MAX_DURATION)
    assert closed is not None and closed.closed_at is not None
    # when
    response = api_client.get(f"/api/rooms/{room.id}")
    # then
    assert response.status_code == 200
    assert response.json() == room_json(
        room,
        participants=[],
        closed=True,
        closedAt=iso_utc(closed.closed_at),
        closeReason="max_duration",
    )


@pytest.mark.parametrize("_case", ["r_doesnotexist", "room-123", "%20", "r_" + "x" * 60])
def test_unknown_room_detail_answers_404_room_not_found(api_client: APIClient, _case: str) -> None:
    response = api_client.get(f"/api/rooms/{_case}")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "Room not found.", "code": "room_not_found"},
    )


def test_room_path_with_trailing_slash_redirects_to_the_room(
    api_client: APIClient, make_room: Callable[..., Room]
) -> None:
    room = make_room()
    response = api_client.get(f"/api/rooms/{room.id}/")
    assert (response.status_code, response["Location"]) == (301, f"/api/rooms/{room.id}")


# --- DELETE /api/rooms/{id} ------------------------------------------------------------


def test_creator_deletes_room_204_and_room_is_closed_and_announced(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    announced: list[tuple[str, str]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given
    room = make_room(created_by="agent-fawzi")
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_as("agent-fawzi").delete(f"/api/rooms/{room.id}")
    # then
    assert (response.status_code, response.content) == (204, b"")
    room.refresh_from_db()
    assert (room.is_closed, room.close_reason) == (True, "deleted")
    assert len(callbacks) == 1
    assert announced == [(room.id, "deleted")]


def test_staff_token_deletes_someone_elses_room(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    announced: list[tuple[str, str]],
) -> None:
    room = make_room(created_by="agent-fawzi")
    response = client_as("agent-ops", is_staff=True).delete(f"/api/rooms/{room.id}")
    assert response.status_code == 204
    assert Room.objects.get(pk=room.id).close_reason == "deleted"


def test_signed_in_staff_user_deletes_room(
    make_room: Callable[..., Room],
    django_user_model: Any,
    announced: list[tuple[str, str]],
) -> None:
    room = make_room()
    client = APIClient()
    client.force_login(django_user_model.objects.create_user("ops", password="pw-123456789", is_staff=True))
    response = client.delete(f"/api/rooms/{room.id}")
    assert response.status_code == 204
    assert Room.objects.get(pk=room.id).is_closed


def test_non_creator_delete_answers_403_and_room_stays_open(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    announced: list[tuple[str, str]],
) -> None:
    room = make_room(created_by="agent-fawzi")
    response = client_as("agent-mallory").delete(f"/api/rooms/{room.id}")
    assert (response.status_code, response.json()) == (
        403,
        {"detail": ANY_TEXT, "code": "forbidden"},
    )
    assert Room.objects.get(pk=room.id).is_closed is False
    assert announced == []


def test_staff_claim_must_be_true_not_truthy(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    announced: list[tuple[str, str]],
) -> None:
    room = make_room(created_by="agent-fawzi")
    response = client_as("agent-mallory", is_staff="yes").delete(f"/api/rooms/{room.id}")
    assert response.status_code == 403
    assert not Room.objects.get(pk=room.id).is_closed


def test_non_staff_session_user_delete_answers_403(
    make_room: Callable[..., Room],
    django_user_model: Any,
    announced: list[tuple[str, str]],
) -> None:
    room = make_room()
    client = APIClient()
    client.force_login(django_user_model.objects.create_user("someone", password="pw-123456789"))
    response = client.delete(f"/api/rooms/{room.id}")
    assert (response.status_code, response.json()) == (
        403,
        {"detail": ANY_TEXT, "code": "forbidden"},
    )


def test_delete_of_closed_room_answers_410_and_announces_nothing(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    announced: list[tuple[str, str]],
) -> None:
    room = make_room()
    services.close_room_row(room.id, CloseReason.EXPIRED)
    response = client_as("agent-fawzi").delete(f"/api/rooms/{room.id}")
    assert (response.status_code, response.json()) == (
        410,
        {"detail": "Room is closed.", "code": "room_closed"},
    )
    assert Room.objects.get(pk=room.id).close_reason == "expired"
    assert announced == []


def test_delete_of_unknown_room_answers_404(
    client_as: Callable[..., APIClient],
) -> None:
    response = client_as().delete("/api/rooms/r_nope")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "Room not found.", "code": "room_not_found"},
    )


def test_delete_without_token_answers_401(api_client: APIClient, make_room: Callable[..., Room]) -> None:
    room = make_room()
    response = api_client.delete(f"/api/rooms/{room.id}")
    assert (response.status_code, response.json()) == (
        401,
        {"detail": ANY_TEXT, "code": "missing_token"},
    )
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert not Room.objects.get(pk=room.id).is_closed


# --- POST /api/rooms/{id}/join ---------------------------------------------------------


def test_join_answers_a_join_token_for_the_room(
    client_as: Callable[..., APIClient], make_room: Callable[..., Room], jwt_secret: str
) -> None:
    # given
    room = make_room(created_by="agent-owner")
    # when
    response = client_as("agent-fawzi").post(f"/api/rooms/{room.id}/join")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body == {"token": ANY_TEXT, "roomId": room.id, "expiresIn": 300, "iceServers": []}
    claims = jwt.decode(body["token"], jwt_secret, algorithms=["HS256"])
    assert claims == {
        "agentId": "agent-fawzi",
        "roomId": room.id,
        "scope": "room:join",
        "jti": claims["jti"],
        "iat": claims["iat"],
        "exp": claims["iat"] + 300,
    }


def test_join_of_full_room_answers_409_room_full(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    live: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = make_room(max_participants=2)
    monkeypatch.setattr(live, "participant_count", lambda room_id: 2)
    response = client_as().post(f"/api/rooms/{room.id}/join")
    assert (response.status_code, response.json()) == (
        409,
        {"detail": "Room is full.", "code": "room_full"},
    )


def test_join_below_cap_succeeds(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    live: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = make_room(max_participants=2)
    monkeypatch.setattr(live, "participant_count", lambda room_id: 1)
    assert client_as().post(f"/api/rooms/{room.id}/join").status_code == 200


def test_join_respects_a_lowered_global_cap(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    live: ModuleType,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    # given a room created with 10 seats, then MAX_PARTICIPANTS lowered to 3
    room = make_room(max_participants=10)
    settings.SIGNALING = dataclasses.replace(settings.SIGNALING, max_participants=3)
    monkeypatch.setattr(live, "participant_count", lambda room_id: 3)
    # when / then
    assert client_as().post(f"/api/rooms/{room.id}/join").json()["code"] == "room_full"


def test_join_of_closed_room_answers_410(client_as: Callable[..., APIClient], make_room: Callable[..., Room]) -> None:
    room = make_room()
    services.close_room_row(room.id, CloseReason.DELETED)
    response = client_as().post(f"/api/rooms/{room.id}/join")
    assert (response.status_code, response.json()) == (
        410,
        {"detail": "Room is closed.", "code": "room_closed"},
    )


def test_join_of_unknown_room_answers_404(client_as: Callable[..., APIClient]) -> None:
    response = client_as().post("/api/rooms/r_nope/join")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "Room not found.", "code": "room_not_found"},
    )


def test_join_without_token_answers_401(api_client: APIClient, make_room: Callable[..., Room]) -> None:
    room = make_room()
    response = api_client.post(f"/api/rooms/{room.id}/join")
    assert (response.status_code, response.json()) == (
        401,
        {"detail": ANY_TEXT, "code": "missing_token"},
    )


@pytest.mark.parametrize(
    ("_case", "method", "path"),
    [
        ("put_detail", "put", "/api/rooms/{id}"),
        ("delete_list", "delete", "/api/rooms"),
        ("get_join", "get", "/api/rooms/{id}/join"),
        ("post_stats", "post", "/api/stats"),
    ],
)
def test_wrong_method_answers_405_json(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    _case: str,
    method: str,
    path: str,
) -> None:
    room = make_room()
    response = getattr(client_as(), method)(path.format(id=room.id))
    assert response.status_code == 405
    assert response.json() == {"detail": ANY_TEXT, "code": "method_not_allowed"}


def test_delete_with_the_real_live_layer_announces_without_error(
    client_as: Callable[..., APIClient],
    make_room: Callable[..., Room],
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a room nobody is in, and the real signaling layer
    room = make_room()
    # when the on-commit announcement really runs
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_as().delete(f"/api/rooms/{room.id}")
    # then
    assert (response.status_code, len(callbacks)) == (204, 1)
    assert client_as().post(f"/api/rooms/{room.id}/join").json()["code"] == "room_closed"
