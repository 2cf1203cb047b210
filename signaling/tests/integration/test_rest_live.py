"""REST and live sockets in one process: the API sees the sockets, DELETE reaches them (SPEC section 2).

Sockets join through the in-process application; DRF's ``APIClient`` runs in a worker thread
(``sync_to_async``), as Django serves a sync view, so the view's calls into
``signaling.service.api`` run on the test's event loop, where the hub and presence live.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from rooms.serializers import iso_utc
from rooms.tests.fixtures import ANY_ISO_UTC, ANY_TEXT
from signaling.tests.integration.fixtures import ANY_JOINED_AT, Harness, WsClient

pytestmark = pytest.mark.django_db(transaction=True)


class AnyNumber:
    """Equal to any non-negative int or float (uptime)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and not isinstance(other, bool) and other >= 0

    def __repr__(self) -> str:
        return "<any number >= 0>"


async def call_api(client: APIClient, method: str, path: str, **kwargs: Any) -> Any:
    """One APIClient request from a worker thread."""
    return await sync_to_async(getattr(client, method))(path, **kwargs)


def participant(client: WsClient) -> dict[str, Any]:
    return {
        "clientId": client.client_id,
        "agentId": client.agent_id,
        "joinedAt": ANY_JOINED_AT,
        "muted": False,
        "connected": True,
    }


async def test_room_detail_lists_sockets_joined_live(signaling: Harness, open_room: Any, api_client: APIClient) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    # when
    response = await call_api(api_client, "get", f"/api/rooms/{room.id}")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": room.id,
        "name": "My Voice Room",
        "type": "voice",
        "settings": {
            "muteOnEntry": False,
            "allowRecording": False,
            "maxDuration": None,
            "maxParticipants": 10,
            "duplicateIdentity": "allow",
        },
        "createdBy": "agent-fawzi",
        "createdAt": iso_utc(room.created_at),
        "participantCount": 2,
        "participants": [participant(alice), participant(bob)],
        "closed": False,
    }


async def test_room_detail_drops_a_socket_that_left(signaling: Harness, open_room: Any, api_client: APIClient) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    # when
    await bob.disconnect()
    assert (await alice.event())[0] == "user_joined"
    assert await alice.event() == (
        "user_left",
        {"roomId": room.id, "clientId": bob.client_id, "agentId": "agent-bob", "reason": "disconnected"},
    )
    response = await call_api(api_client, "get", f"/api/rooms/{room.id}")
    # then
    body = response.json()
    assert (body["participantCount"], body["participants"]) == (1, [participant(alice)])


async def test_stats_reflect_live_connections_and_participants(
    signaling: Harness, open_room: Any, api_client: APIClient
) -> None:
    # given two rooms, one occupied by two sockets; a third socket in no room
    room = await open_room(name="busy")
    await open_room(name="empty")
    await signaling.in_room("agent-alice", room.id)
    await signaling.in_room("agent-bob", room.id)
    await signaling.connect("agent-carol")
    # when
    response = await call_api(api_client, "get", "/api/stats")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "rooms": {"total": 2, "active": 1},
        "connections": 3,
        "participants": 2,
        "uptimeSeconds": AnyNumber(),
        "instances": 1,
    }


async def test_rest_join_of_room_filled_by_sockets_is_409(
    signaling: Harness, open_room: Any, client_as: Callable[..., APIClient]
) -> None:
    # given
    room = await open_room(max_participants=1)
    await signaling.in_room("agent-alice", room.id)
    # when
    response = await call_api(client_as("agent-bob"), "post", f"/api/rooms/{room.id}/join")
    # then
    assert response.status_code == 409
    assert response.json() == {"detail": ANY_TEXT, "code": "room_full"}


async def test_rest_delete_tells_members_room_closed_and_puts_them_out(
    signaling: Harness, open_room: Any, client_as: Callable[..., APIClient], api_client: APIClient
) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert (await alice.event())[0] == "user_joined"
    # when
    response = await call_api(client_as("agent-fawzi"), "delete", f"/api/rooms/{room.id}")
    # then
    assert response.status_code == 204
    assert await alice.event() == ("room_closed", {"roomId": room.id, "reason": "deleted"})
    assert await bob.event() == ("room_closed", {"roomId": room.id, "reason": "deleted"})
    assert await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}) == {
        "ok": False,
        "error": {"code": "not_in_room", "message": ANY_TEXT},
    }
    assert await bob.receive_nothing()
    detail = (await call_api(api_client, "get", f"/api/rooms/{room.id}")).json()
    assert (detail["closed"], detail["closedAt"], detail["closeReason"], detail["participants"]) == (
        True,
        ANY_ISO_UTC,
        "deleted",
        [],
    )
    stats = (await call_api(api_client, "get", "/api/stats")).json()
    assert (stats["participants"], stats["rooms"]["active"], stats["connections"]) == (0, 0, 2)


@pytest.fixture
def ban_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Room ids of every read of a room's bans and webhook seq for presence (the real read runs)."""
    from rooms import occupancy

    seen: list[str] = []
    real = occupancy.room_presence_state

    def counted(room_id: str) -> Any:
        seen.append(room_id)
        return real(room_id)

    monkeypatch.setattr(occupancy, "room_presence_state", counted)
    return seen


async def create_room_over_rest(client: APIClient) -> str:
    body = {"name": "Standup", "type": "video"}
    response = await call_api(client, "post", "/api/rooms", data=body, format="json")
    assert response.status_code == 201, response.content
    return str(response.json()["id"])


async def test_a_room_created_over_rest_here_is_joined_without_reading_its_bans(
    signaling: Harness, client_as: Callable[..., APIClient], ban_reads: list[str]
) -> None:
    # given: this instance runs (a socket is connected), and a room is created through REST
    alice = await signaling.connect("agent-alice")
    room_id = await create_room_over_rest(client_as("agent-fawzi"))
    # when
    assert (await alice.join(room_id))["ok"] is True
    bob = await signaling.in_room("agent-bob", room_id)
    # then: presence knew the new room has no bans
    assert ban_reads == []
    assert (await alice.event())[0] == "user_joined"
    assert bob.client_id


async def test_a_ban_in_a_room_created_over_rest_here_keeps_its_agent_out(
    signaling: Harness, client_as: Callable[..., APIClient]
) -> None:
    # given
    owner = client_as("agent-fawzi")
    alice = await signaling.connect("agent-alice")
    room_id = await create_room_over_rest(owner)
    bob = await signaling.in_room("agent-bob", room_id)
    # when: the owner kicks bob with a ban
    kick = f"/api/rooms/{room_id}/participants/{bob.client_id}/kick"
    response = await call_api(owner, "post", kick, data={"banSeconds": 600}, format="json")
    assert response.status_code == 204, response.content
    # then: bob's agent is refused, alice is admitted
    again = await signaling.connect("agent-bob")
    refused = await again.join(room_id)
    assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
    assert (await alice.join(room_id))["ok"] is True
