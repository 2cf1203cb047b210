"""The signaling service on one real daphne: rooms, relays, refusals, limits, lifecycle, REST views.

SPEC sections 2-4 as python-socketio clients and an HTTP client see them. maxDuration is not
tested here: its granularity is minutes and the REST shape does not expose the closing time
(it is covered below the e2e tier).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from rooms.tests.fixtures import ANY_ISO_UTC, ANY_TEXT
from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, SioClient
from signaling.tests.schemas import assert_matches_schema

pytestmark = pytest.mark.e2e

SDP_OBJECT = {"type": "offer", "sdp": "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"}
CANDIDATE = {
    "candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 46154 typ srflx",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}


@pytest.fixture(scope="module")
def server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env=PATIENT_HEARTBEAT)
    return live


@pytest.fixture(scope="module")
def limited_server(live_servers_module: Any) -> LiveServer:
    """MAX_MESSAGE_BYTES=1000, RATE_LIMIT=5/s with bursts of 5."""
    (live,) = live_servers_module(
        env={**PATIENT_HEARTBEAT, "MAX_MESSAGE_BYTES": "1000", "RATE_LIMIT": "5", "RATE_LIMIT_BURST": "5"}
    )
    return live


@pytest.fixture(scope="module")
def expiring_server(live_servers_module: Any) -> LiveServer:
    """ROOM_TIMEOUT=500 ms."""
    (live,) = live_servers_module(env={**PATIENT_HEARTBEAT, "ROOM_TIMEOUT": "500"})
    return live


@pytest.fixture
def agent_in_room(sio_client: Callable[[], SioClient]) -> Callable[..., Any]:
    """``await agent_in_room(server, agent_id, room_id)``: a connected client that has joined."""

    async def make(
        server: LiveServer, agent_id: str, room_id: str | None, transports: list[str] | None = None
    ) -> SioClient:
        client = sio_client()
        await client.connect_as(server, agent_id, transports=transports)
        if room_id is not None:
            reply = await client.join(room_id)
            assert reply["ok"] is True, reply
        return client

    return make


def listed(client: SioClient, *, muted: bool = False) -> dict[str, Any]:
    """The REST listing of a present member (SPEC section 7: ``connected``)."""
    return {**entry(client, muted=muted), "connected": True}


def entry(client: SioClient, *, muted: bool = False) -> dict[str, Any]:
    """The participant entry of ``client`` in `joined.participants` / REST."""
    return {"clientId": client.client_id, "agentId": client.agent_id, "joinedAt": ANY_ISO_UTC, "muted": muted}


def announced(client: SioClient, room_id: str, *, muted: bool = False) -> dict[str, Any]:
    """`user_joined` of ``client``."""
    return {"roomId": room_id, "clientId": client.client_id, "agentId": client.agent_id, "muted": muted}


def left(client: SioClient, room_id: str, reason: str) -> dict[str, Any]:
    """`user_left` of ``client``."""
    return {"roomId": room_id, "clientId": client.client_id, "agentId": client.agent_id, "reason": reason}


def origin(client: SioClient, room_id: str) -> dict[str, Any]:
    """What a relay adds: sender's clientId, agentId and the room."""
    return {"from": client.client_id, "agentId": client.agent_id, "roomId": room_id}


def refusal(code: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": ANY_TEXT}}


def error_event(code: str, event: str) -> dict[str, Any]:
    return {"code": code, "message": ANY_TEXT, "event": event}


async def expect_joins(*members: SioClient) -> None:
    """Consume the `user_joined` each member got for every later member (joined in this order)."""
    room_id = None
    for index, member in enumerate(members):
        for later in members[index + 1 :]:
            event = await member.next("user_joined")
            room_id = room_id or event["roomId"]
            assert event == announced(later, room_id)


async def poll_until(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Call async ``check`` until it returns a truthy value or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = await check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = await check()
    return value


# -- join / leave ---------------------------------------------------------------------------


async def test_join_reports_room_participants_and_announces_joiner(server: LiveServer, sio_client: Any) -> None:
    # given
    room = await server.acreate_room(name="join payloads")
    room_id = room["id"]
    alice, bob, carol = sio_client(), sio_client(), sio_client()
    for client, agent in ((alice, "agent-alice"), (bob, "agent-bob"), (carol, "agent-carol")):
        await client.connect_as(server, agent)
    # when
    alice_ack = await alice.call("join_room", {"roomId": room_id})
    alice_joined = await alice.next("joined")
    bob_ack = await bob.call("join_room", {"roomId": room_id})
    bob_joined = await bob.next("joined")
    alice_sees_bob = await alice.next("user_joined")
    carol_ack = await carol.call("join_room", {"roomId": room_id})
    carol_joined = await carol.next("joined")
    # then
    assert alice_joined == {
        "roomId": room_id,
        "clientId": alice.client_id,
        "agentId": "agent-alice",
        "muted": False,
        "room": {**room, "participantCount": 1},
        "participants": [],
    }
    assert alice_ack == {"ok": True, **alice_joined}
    assert bob_joined == {
        "roomId": room_id,
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": False,
        "room": {**room, "participantCount": 2},
        "participants": [entry(alice)],
    }
    assert bob_ack == {"ok": True, **bob_joined}
    assert alice_sees_bob == announced(bob, room_id)
    assert carol_joined == {
        "roomId": room_id,
        "clientId": carol.client_id,
        "agentId": "agent-carol",
        "muted": False,
        "room": {**room, "participantCount": 3},
        "participants": [entry(alice), entry(bob)],
    }
    assert carol_ack == {"ok": True, **carol_joined}
    assert await alice.next("user_joined") == announced(carol, room_id)
    assert await bob.next("user_joined") == announced(carol, room_id)
    for payload in (alice_joined, bob_joined, carol_joined):
        assert_matches_schema("joined", payload)
    assert_matches_schema("user_joined", alice_sees_bob)
    assert await carol.receive_nothing()


async def test_rejoining_the_same_room_returns_current_state_and_notifies_nobody(
    server: LiveServer, agent_in_room: Any
) -> None:
    # given
    room = await server.acreate_room(name="rejoin")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    assert await alice.next("user_joined") == announced(bob, room["id"])
    # when
    ack = await bob.call("join_room", {"roomId": room["id"]})
    # then
    expected = {
        "roomId": room["id"],
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": False,
        "room": {**room, "participantCount": 2},
        "participants": [entry(alice)],
    }
    assert ack == {"ok": True, **expected}
    assert await bob.next("joined") == expected
    assert await alice.receive_nothing()


async def test_joining_another_room_leaves_the_first(server: LiveServer, agent_in_room: Any) -> None:
    # given
    first, second = await server.acreate_room(name="first"), await server.acreate_room(name="second")
    alice = await agent_in_room(server, "agent-alice", first["id"])
    carol = await agent_in_room(server, "agent-carol", second["id"])
    bob = await agent_in_room(server, "agent-bob", first["id"])
    assert await alice.next("user_joined") == announced(bob, first["id"])
    # when
    ack = await bob.call("join_room", {"roomId": second["id"]})
    # then
    assert ack == {
        "ok": True,
        "roomId": second["id"],
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": False,
        "room": {**second, "participantCount": 2},
        "participants": [entry(carol)],
    }
    assert await alice.next("user_left") == left(bob, first["id"], "left")
    assert await carol.next("user_joined") == announced(bob, second["id"])
    detail = await server.aget(f"/api/rooms/{first['id']}")
    assert detail == (200, {**first, "participantCount": 1, "participants": [listed(alice)]})


async def test_leave_room_tells_the_others_left(server: LiveServer, agent_in_room: Any) -> None:
    # given
    room = await server.acreate_room(name="leave")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    await alice.next("user_joined")
    # when
    ack = await bob.call("leave_room", {"roomId": room["id"]})
    # then
    assert ack == {"ok": True, "roomId": room["id"]}
    user_left = await alice.next("user_left")
    assert user_left == left(bob, room["id"], "left")
    assert_matches_schema("user_left", user_left)
    assert await bob.receive_nothing()


async def test_leave_room_outside_a_room_is_not_in_room(server: LiveServer, agent_in_room: Any) -> None:
    # given
    alice = await agent_in_room(server, "agent-alice", None)
    # when
    ack = await alice.call("leave_room", {})
    await alice.emit("leave_room", {})
    # then
    assert ack == refusal("not_in_room")
    error = await alice.next("error")
    assert error == error_event("not_in_room", "leave_room")
    assert_matches_schema("error", error)


# -- relays ---------------------------------------------------------------------------------

RELAYS = {
    "offer_sdp_object": ("offer", {"sdp": SDP_OBJECT, "extra": {"nested": [1, 2]}}),
    "answer_sdp_string": ("answer", {"sdp": "v=0\r\n", "renegotiation": True}),
    "candidate_object": ("candidate", {"candidate": CANDIDATE}),
}


@pytest.mark.parametrize("_case", list(RELAYS))
async def test_targeted_relay_reaches_only_its_target(server: LiveServer, agent_in_room: Any, _case: str) -> None:
    # given
    event, body = RELAYS[_case]
    room = await server.acreate_room(name=f"targeted {_case}")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    carol = await agent_in_room(server, "agent-carol", room["id"])
    await expect_joins(alice, bob, carol)
    # when
    ack = await alice.call(event, {"to": bob.client_id, **body})
    # then
    assert ack == {"ok": True}
    relayed = await bob.next(event)
    assert relayed == {**body, **origin(alice, room["id"])}
    assert_matches_schema(event, relayed)
    assert await carol.receive_nothing(event)
    assert await alice.receive_nothing()


@pytest.mark.parametrize("_case", list(RELAYS))
async def test_room_wide_relay_reaches_every_other_member(server: LiveServer, agent_in_room: Any, _case: str) -> None:
    # given
    event, body = RELAYS[_case]
    room = await server.acreate_room(name=f"room-wide {_case}")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    carol = await agent_in_room(server, "agent-carol", room["id"])
    await expect_joins(alice, bob, carol)
    # when
    ack = await alice.call(event, body)
    # then
    assert ack == {"ok": True}
    assert await bob.next(event) == {**body, **origin(alice, room["id"])}
    assert await carol.next(event) == {**body, **origin(alice, room["id"])}
    assert await alice.receive_nothing()


@pytest.mark.parametrize("_case", ["targeted", "room_wide"])
async def test_candidate_end_arrives_as_candidate_null(server: LiveServer, agent_in_room: Any, _case: str) -> None:
    # given
    room = await server.acreate_room(name=f"candidate-end {_case}")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    body = {"to": bob.client_id} if _case == "targeted" else {}
    # when
    ack = await alice.call("candidate-end", body)
    # then
    assert ack == {"ok": True}
    relayed = await bob.next("candidate")
    assert relayed == {"candidate": None, **origin(alice, room["id"])}
    assert_matches_schema("candidate", relayed)
    assert await bob.receive_nothing("candidate-end")


@pytest.mark.parametrize("_case", ["own_id", "member_of_another_room", "unknown_id"])
async def test_relay_to_target_outside_the_room_is_target_not_found_and_reaches_nobody(
    server: LiveServer, agent_in_room: Any, _case: str
) -> None:
    # given
    room, other = await server.acreate_room(name="here"), await server.acreate_room(name="elsewhere")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    dave = await agent_in_room(server, "agent-dave", other["id"])
    target = {"own_id": alice.client_id, "member_of_another_room": dave.client_id, "unknown_id": "no-such-client-id00"}
    await expect_joins(alice, bob)
    # when
    ack = await alice.call("offer", {"to": target[_case], "sdp": "v=0"})
    await alice.emit("answer", {"to": target[_case], "sdp": "v=0"})
    # then
    assert ack == refusal("target_not_found")
    assert await alice.next("error") == error_event("target_not_found", "answer")
    assert await bob.receive_nothing()
    assert await dave.receive_nothing()
    assert await alice.receive_nothing()


async def test_relay_outside_a_room_is_not_in_room(server: LiveServer, agent_in_room: Any) -> None:
    # given
    alice = await agent_in_room(server, "agent-alice", None)
    # when
    ack = await alice.call("offer", {"sdp": "v=0"})
    await alice.emit("candidate", {"candidate": "x"})
    # then
    assert ack == refusal("not_in_room")
    assert await alice.next("error") == error_event("not_in_room", "candidate")


async def test_unknown_event_is_unknown_event(server: LiveServer, agent_in_room: Any) -> None:
    # given
    alice = await agent_in_room(server, "agent-alice", None)
    # when
    ack = await alice.call("make_coffee", {"sugar": 2})
    await alice.emit("make_tea", {})
    # then
    assert ack == refusal("unknown_event")
    assert await alice.next("error") == error_event("unknown_event", "make_tea")


@pytest.mark.parametrize(
    ("_case", "event", "payload"),
    [
        ("join_string", "join_room", "r_abc"),
        ("join_array", "join_room", ["r_abc"]),
        ("join_no_room_id", "join_room", {}),
        ("offer_number", "offer", 42),
        ("offer_no_payload", "offer", None),
        ("offer_sdp_number", "offer", {"sdp": 5}),
        ("candidate_to_number", "candidate", {"to": 7, "candidate": "x"}),
        ("leave_string", "leave_room", "now"),
    ],
)
async def test_payload_of_wrong_shape_is_invalid_payload(
    server: LiveServer, agent_in_room: Any, _case: str, event: str, payload: Any
) -> None:
    # given: in a room, so only the shape can be wrong (SPEC: shape is checked first)
    room = await server.acreate_room(name=f"invalid {_case}")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    # when
    ack = await alice.call(event, payload)
    # then
    assert ack == refusal("invalid_payload")


# -- limits ---------------------------------------------------------------------------------


async def test_oversize_signaling_message_is_payload_too_large_and_socket_stays_usable(
    limited_server: LiveServer, agent_in_room: Any
) -> None:
    # given: MAX_MESSAGE_BYTES=1000
    server = limited_server
    room = await server.acreate_room(name="oversize")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    # when
    too_large = await alice.call("offer", {"sdp": "v" * 2000})
    await alice.emit("candidate", {"candidate": "c" * 2000})
    then_small = await alice.call("offer", {"sdp": "v=0"})
    # then
    assert too_large == refusal("payload_too_large")
    assert await alice.next("error") == error_event("payload_too_large", "candidate")
    assert then_small == {"ok": True}
    assert await bob.next("offer") == {"sdp": "v=0", **origin(alice, room["id"])}
    assert await bob.receive_nothing()
    assert alice.sio.connected


async def test_events_beyond_the_rate_limit_are_rate_limited_and_socket_stays_connected(
    limited_server: LiveServer, agent_in_room: Any
) -> None:
    # given: RATE_LIMIT=5/s, RATE_LIMIT_BURST=5; a fresh socket has a full bucket
    server = limited_server
    alice = await agent_in_room(server, "agent-alice", None, transports=["websocket"])
    # when: six events at once
    replies = await asyncio.gather(*(alice.call("leave_room", {}) for _ in range(6)))
    await asyncio.sleep(0.5)  # the bucket refills (5/s): behaviour after a pause
    later = await alice.call("leave_room", {})
    # then
    assert replies == [refusal("not_in_room")] * 5 + [refusal("rate_limited")]
    assert later == refusal("not_in_room")
    assert alice.sio.connected


# -- rooms: cap, mute, join tokens, close, expiry -------------------------------------------


async def test_join_beyond_max_participants_is_room_full(
    server: LiveServer, agent_in_room: Any, sio_client: Any
) -> None:
    # given
    room = await server.acreate_room(name="pair", settings={"maxParticipants": 2})
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    await expect_joins(alice, bob)
    carol = sio_client()
    await carol.connect_as(server, "agent-carol")
    # when
    ack = await carol.call("join_room", {"roomId": room["id"]})
    # then
    assert ack == refusal("room_full")
    assert await alice.receive_nothing()
    assert await bob.receive_nothing()
    assert await carol.receive_nothing("joined")
    assert await server.aget(f"/api/rooms/{room['id']}") == (
        200,
        {**room, "participantCount": 2, "participants": [listed(alice), listed(bob)]},
    )


async def test_mute_on_entry_room_admits_joiners_muted(server: LiveServer, agent_in_room: Any, sio_client: Any) -> None:
    # given
    room = await server.acreate_room(name="quiet", settings={"muteOnEntry": True})
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = sio_client()
    await bob.connect_as(server, "agent-bob")
    # when
    ack = await bob.call("join_room", {"roomId": room["id"]})
    # then
    assert ack == {
        "ok": True,
        "roomId": room["id"],
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": True,
        "room": {**room, "participantCount": 2},
        "participants": [entry(alice, muted=True)],
    }
    assert await alice.next("user_joined") == announced(bob, room["id"], muted=True)


async def test_join_token_admits_to_its_room_only(server: LiveServer, sio_client: Any) -> None:
    # given
    room, other = await server.acreate_room(name="ticketed"), await server.acreate_room(name="other")
    status, grant = await server.arequest("POST", f"/api/rooms/{room['id']}/join", token=server.mint("agent-guest"))
    assert (status, grant) == (200, {"token": ANY_TEXT, "roomId": room["id"], "expiresIn": 300, "iceServers": []})
    guest = sio_client()
    # when
    await guest.connect(server, token=grant["token"])
    connected = await guest.next("connected")
    elsewhere = await guest.call("join_room", {"roomId": other["id"]})
    admitted = await guest.call("join_room", {"roomId": room["id"]})
    # then
    assert connected == {"clientId": guest.client_id, "agentId": "agent-guest", "iceServers": []}
    assert elsewhere == refusal("forbidden")
    assert admitted == {
        "ok": True,
        "roomId": room["id"],
        "clientId": guest.client_id,
        "agentId": "agent-guest",
        "muted": False,
        "room": {**room, "participantCount": 1},
        "participants": [],
    }


async def test_deleting_a_room_closes_it_for_every_member(server: LiveServer, agent_in_room: Any) -> None:
    # given
    creator_token = server.mint("agent-alice")
    room = await server.acreate_room(creator_token, name="doomed")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    await expect_joins(alice, bob)
    # when
    status, body = await server.arequest("DELETE", f"/api/rooms/{room['id']}", token=creator_token)
    # then
    assert (status, body) == (204, None)
    for member in (alice, bob):
        closed = await member.next("room_closed")
        assert closed == {"roomId": room["id"], "reason": "deleted"}
        assert_matches_schema("room_closed", closed)
    assert await alice.call("offer", {"sdp": "v=0"}) == refusal("not_in_room")
    assert await bob.receive_nothing()
    assert await alice.receive_nothing("user_left")
    assert await server.aget(f"/api/rooms/{room['id']}") == (
        200,
        {
            **room,
            "participantCount": 0,
            "participants": [],
            "closed": True,
            "closedAt": ANY_ISO_UTC,
            "closeReason": "deleted",
        },
    )


async def test_joining_a_closed_room_is_room_closed(server: LiveServer, agent_in_room: Any) -> None:
    # given
    creator_token = server.mint("agent-alice")
    room = await server.acreate_room(creator_token, name="gone")
    assert await server.arequest("DELETE", f"/api/rooms/{room['id']}", token=creator_token) == (204, None)
    alice = await agent_in_room(server, "agent-alice", None)
    # when
    ack = await alice.call("join_room", {"roomId": room["id"]})
    # then
    assert ack == refusal("room_closed")


async def test_joining_an_unknown_room_is_room_not_found(server: LiveServer, agent_in_room: Any) -> None:
    # given
    alice = await agent_in_room(server, "agent-alice", None)
    # when
    ack = await alice.call("join_room", {"roomId": "r_doesnotexist0000000000"})
    # then
    assert ack == refusal("room_not_found")


async def test_room_nobody_joins_expires_after_room_timeout(expiring_server: LiveServer) -> None:
    # given: ROOM_TIMEOUT=500 ms
    server = expiring_server
    room = await server.acreate_room(name="unloved")

    # when
    async def closed() -> Any:
        status, body = await server.aget(f"/api/rooms/{room['id']}")
        return body if status == 200 and body.get("closed") else None

    detail = await poll_until(closed, timeout=8)
    # then
    assert detail == {
        **room,
        "participantCount": 0,
        "participants": [],
        "closed": True,
        "closedAt": ANY_ISO_UTC,
        "closeReason": "expired",
    }


async def test_occupied_room_outlives_room_timeout_and_expires_after_last_leave(
    expiring_server: LiveServer, agent_in_room: Any
) -> None:
    # given: ROOM_TIMEOUT=500 ms; alice joins right after creation
    server = expiring_server
    room = await server.acreate_room(name="busy")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    # when: well past the timeout, the room is open; then alice leaves
    await asyncio.sleep(1.5)
    still_open = await server.aget(f"/api/rooms/{room['id']}")
    assert await alice.call("leave_room", {}) == {"ok": True, "roomId": room["id"]}

    async def closed() -> Any:
        status, body = await server.aget(f"/api/rooms/{room['id']}")
        return body if status == 200 and body.get("closed") else None

    detail = await poll_until(closed, timeout=8)
    # then
    assert still_open == (200, {**room, "participantCount": 1, "participants": [listed(alice)]})
    assert detail == {
        **room,
        "participantCount": 0,
        "participants": [],
        "closed": True,
        "closedAt": ANY_ISO_UTC,
        "closeReason": "expired",
    }
    assert await alice.receive_nothing("room_closed")


# -- REST views of live state ---------------------------------------------------------------


async def test_room_detail_lists_live_participants(server: LiveServer, agent_in_room: Any) -> None:
    # given
    room = await server.acreate_room(name="detail")
    alice = await agent_in_room(server, "agent-alice", room["id"])
    bob = await agent_in_room(server, "agent-bob", room["id"])
    # when
    with_both = await server.aget(f"/api/rooms/{room['id']}")
    await bob.call("leave_room", {})
    with_alice = await server.aget(f"/api/rooms/{room['id']}")
    # then
    assert with_both == (200, {**room, "participantCount": 2, "participants": [listed(alice), listed(bob)]})
    assert with_alice == (200, {**room, "participantCount": 1, "participants": [listed(alice)]})


async def test_stats_count_connections_participants_and_active_rooms(live_servers: Any, agent_in_room: Any) -> None:
    # given: a server of this test alone
    (server,) = live_servers(env=PATIENT_HEARTBEAT)
    busy, _idle = await server.acreate_room(name="busy"), await server.acreate_room(name="idle")
    await agent_in_room(server, "agent-alice", busy["id"])
    bob = await agent_in_room(server, "agent-bob", busy["id"])
    await agent_in_room(server, "agent-lurker", None)
    # when
    before = await server.aget("/api/stats")
    await bob.disconnect()

    async def bob_gone() -> Any:
        _status, body = await server.aget("/api/stats")
        return body if body["connections"] == 2 else None

    after = await poll_until(bob_gone)
    # then
    uptime = before[1]["uptimeSeconds"]
    assert isinstance(uptime, float | int) and uptime >= 0
    assert before == (
        200,
        {
            "rooms": {"total": 2, "active": 1},
            "connections": 3,
            "participants": 2,
            "uptimeSeconds": uptime,
            "instances": 1,
        },
    )
    assert after == {
        "rooms": {"total": 2, "active": 1},
        "connections": 2,
        "participants": 1,
        "uptimeSeconds": after["uptimeSeconds"],
        "instances": 1,
    }


async def test_members_leaving_together_are_all_announced_and_stop_counting(
    live_servers: Any, agent_in_room: Any
) -> None:
    # given: a watcher stays; five times, six websocket members join and then disconnect at once
    # (each leaver's user_left is written to the others' closing sockets: that must not abort
    # the leaver's own teardown)
    (server,) = live_servers(env=PATIENT_HEARTBEAT)
    room = await server.acreate_room(name="exodus")
    watcher = await agent_in_room(server, "agent-watcher", room["id"])
    for round_number in range(5):
        crowd = [
            await agent_in_room(server, f"agent-{round_number}-{i}", room["id"], transports=["websocket"])
            for i in range(6)
        ]
        ids = sorted(member.client_id for member in crowd)
        joins = [await watcher.next("user_joined") for _ in crowd]
        # when
        await asyncio.gather(*(member.disconnect() for member in crowd))
        # then
        lefts = [await watcher.next("user_left") for _ in crowd]
        assert sorted(e["clientId"] for e in joins) == ids
        assert sorted((e["clientId"], e["reason"]) for e in lefts) == [(i, "disconnected") for i in ids]

        async def settled() -> Any:
            stats = (await server.aget("/api/stats"))[1]
            return stats if (stats["connections"], stats["participants"]) == (1, 1) else None

        assert await poll_until(settled) is not None, (await server.aget("/api/stats"))[1]
    assert await server.aget(f"/api/rooms/{room['id']}") == (
        200,
        {**room, "participantCount": 1, "participants": [listed(watcher)]},
    )
