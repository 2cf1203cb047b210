"""Signaling events in-process: join, leave, relays and every error code (SPEC section 3).

Sessions are websocket clients of ``build_application`` speaking raw Socket.IO frames; each
refusal is checked in its ack form (``{ok: false, error}``) and, where it matters, in its
`error` event form; negative cases prove that nobody received anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from rooms import services as room_services
from rooms.models import Room
from rooms.tests.fixtures import ANY_TEXT, room_json
from rooms.tokens import mint_join_token
from signaling.consumers import connection
from signaling.service import sockets
from signaling.tests.integration.fixtures import ANY_JOINED_AT, Harness, WsClient

pytestmark = pytest.mark.django_db(transaction=True)


def participant(client: WsClient, *, muted: bool = False) -> dict[str, Any]:
    """A `participants` entry for ``client``."""
    return {"clientId": client.client_id, "agentId": client.agent_id, "joinedAt": ANY_JOINED_AT, "muted": muted}


def refused(code: str) -> dict[str, Any]:
    """The ack of a refused event."""
    return {"ok": False, "error": {"code": code, "message": ANY_TEXT}}


def error_event(code: str, event: str) -> tuple[str, dict[str, Any]]:
    """The `error` event of a refused event sent without an ack id."""
    return ("error", {"code": code, "message": ANY_TEXT, "event": event})


def user_joined(room: Room, client: WsClient, *, muted: bool = False) -> tuple[str, dict[str, Any]]:
    return (
        "user_joined",
        {"roomId": room.id, "clientId": client.client_id, "agentId": client.agent_id, "muted": muted},
    )


def user_left(room: Room, client: WsClient, reason: str) -> tuple[str, dict[str, Any]]:
    return (
        "user_left",
        {"roomId": room.id, "clientId": client.client_id, "agentId": client.agent_id, "reason": reason},
    )


async def quiet(*clients: WsClient) -> bool:
    """True when none of ``clients`` has received anything."""
    return all([await client.receive_nothing() for client in clients])


# --- join_room --------------------------------------------------------------------------


async def test_first_join_acks_and_emits_joined_with_room_and_no_participants(
    signaling: Harness, open_room: Any
) -> None:
    # given
    room = await open_room()
    alice = await signaling.connect("agent-alice")
    # when
    reply = await alice.call("join_room", {"roomId": room.id})
    # then
    joined = {
        "roomId": room.id,
        "clientId": alice.client_id,
        "agentId": "agent-alice",
        "muted": False,
        "room": room_json(room, participantCount=1),
        "participants": [],
    }
    assert reply == {"ok": True, **joined}
    assert await alice.event() == ("joined", joined)
    assert await alice.receive_nothing()


async def test_second_joiner_gets_participants_and_others_get_user_joined(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    # when bob joins without an ack callback
    bob = await signaling.connect("agent-bob")
    await bob.emit("join_room", {"roomId": room.id})
    # then
    assert await bob.event() == (
        "joined",
        {
            "roomId": room.id,
            "clientId": bob.client_id,
            "agentId": "agent-bob",
            "muted": False,
            "room": room_json(room, participantCount=2),
            "participants": [participant(alice)],
        },
    )
    assert await alice.event() == user_joined(room, bob)
    assert await quiet(alice, bob)


async def test_rejoining_the_same_room_answers_current_state_and_notifies_nobody(
    signaling: Harness, open_room: Any
) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert await alice.event() == user_joined(room, bob)
    # when
    reply = await bob.call("join_room", {"roomId": room.id})
    # then
    joined = {
        "roomId": room.id,
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": False,
        "room": room_json(room, participantCount=2),
        "participants": [participant(alice)],
    }
    assert reply == {"ok": True, **joined}
    assert await bob.event() == ("joined", joined)
    assert await quiet(alice, bob)


async def test_joining_another_room_leaves_the_first(signaling: Harness, open_room: Any) -> None:
    # given alice and bob in room A, carol in room B
    room_a, room_b = await open_room(name="A"), await open_room(name="B")
    alice = await signaling.in_room("agent-alice", room_a.id)
    bob = await signaling.in_room("agent-bob", room_a.id)
    assert await alice.event() == user_joined(room_a, bob)
    carol = await signaling.in_room("agent-carol", room_b.id)
    # when
    reply = await bob.join(room_b.id)
    # then
    assert reply == {
        "ok": True,
        "roomId": room_b.id,
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": False,
        "room": room_json(room_b, participantCount=2),
        "participants": [participant(carol)],
    }
    assert await alice.event() == user_left(room_a, bob, "left")
    assert await carol.event() == user_joined(room_b, bob)
    assert await quiet(alice, bob, carol)


async def test_mute_on_entry_room_admits_everyone_muted(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room(mute_on_entry=True)
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.connect("agent-bob")
    # when
    reply = await bob.join(room.id)
    # then
    assert reply == {
        "ok": True,
        "roomId": room.id,
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": True,
        "room": room_json(room, participantCount=2),
        "participants": [participant(alice, muted=True)],
    }
    assert reply["room"]["settings"]["muteOnEntry"] is True
    assert await alice.event() == user_joined(room, bob, muted=True)


@pytest.mark.parametrize(("_case", "room_cap", "global_cap"), [("room_setting", 2, 10), ("global_setting", 10, 2)])
async def test_join_beyond_the_cap_is_room_full_and_reaches_nobody(
    signaling: Harness,
    signaling_config: Callable[..., None],
    open_room: Any,
    _case: str,
    room_cap: int,
    global_cap: int,
) -> None:
    # given a room capped at 2 (its settings.maxParticipants, or MAX_PARTICIPANTS)
    room = await open_room(max_participants=room_cap)
    signaling_config(max_participants=global_cap)
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert await alice.event() == user_joined(room, bob)
    carol = await signaling.connect("agent-carol")
    # when
    reply = await carol.call("join_room", {"roomId": room.id})
    # then
    assert reply == refused("room_full")
    assert await quiet(alice, bob, carol)


async def test_join_of_unknown_room_is_room_not_found(signaling: Harness) -> None:
    # given
    alice = await signaling.connect("agent-alice")
    # when
    reply = await alice.call("join_room", {"roomId": "r_doesnotexist"})
    # then
    assert reply == refused("room_not_found")
    assert await alice.receive_nothing()


async def test_join_of_closed_room_is_room_closed(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    await sync_to_async(room_services.close_room_row)(room.id, "deleted")
    alice = await signaling.connect("agent-alice")
    # when
    await alice.emit("join_room", {"roomId": room.id})
    # then
    assert await alice.event() == error_event("room_closed", "join_room")
    assert await alice.receive_nothing()


async def test_socket_authenticated_with_join_token_may_join_only_that_room(signaling: Harness, open_room: Any) -> None:
    # given
    room, other = await open_room(name="granted"), await open_room(name="other")
    token, _ = await sync_to_async(mint_join_token)("agent-alice", room.id)
    alice = await signaling.connect("agent-alice", token=token)
    # when
    other_reply = await alice.call("join_room", {"roomId": other.id})
    room_reply = await alice.join(room.id)
    # then
    assert other_reply == refused("forbidden")
    assert room_reply["ok"] is True and room_reply["roomId"] == room.id
    assert await alice.receive_nothing()


@pytest.mark.parametrize(
    ("_case", "token_room", "token_agent"),
    [("other_room", "other", "agent-alice"), ("other_agent", "room", "agent-bob")],
)
async def test_join_with_a_join_token_for_another_room_or_agent_is_forbidden(
    signaling: Harness, open_room: Any, _case: str, token_room: str, token_agent: str
) -> None:
    # given
    rooms = {"room": await open_room(name="room"), "other": await open_room(name="other")}
    token, _ = await sync_to_async(mint_join_token)(token_agent, rooms[token_room].id)
    alice = await signaling.connect("agent-alice")
    # when
    reply = await alice.call("join_room", {"roomId": rooms["room"].id, "token": token})
    # then
    assert reply == refused("forbidden")
    assert await alice.receive_nothing()


async def test_join_with_its_own_join_token_succeeds(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    token, _ = await sync_to_async(mint_join_token)("agent-alice", room.id)
    alice = await signaling.connect("agent-alice")
    # when
    reply = await alice.join(room.id, token=token)
    # then
    assert reply["ok"] is True and reply["participants"] == []


# --- leave_room -------------------------------------------------------------------------


async def test_leave_room_acks_and_others_get_user_left_reason_left(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert await alice.event() == user_joined(room, bob)
    # when
    reply = await bob.call("leave_room", {"roomId": room.id})
    # then
    assert reply == {"ok": True, "roomId": room.id}
    assert await alice.event() == user_left(room, bob, "left")
    assert await quiet(alice, bob)
    assert await bob.call("offer", {"sdp": "v=0"}) == refused("not_in_room")


async def test_leave_room_outside_a_room_is_not_in_room_as_ack(signaling: Harness) -> None:
    # given
    alice = await signaling.connect("agent-alice")
    # when
    reply = await alice.call("leave_room", {})
    # then
    assert reply == refused("not_in_room")
    assert await alice.receive_nothing()


async def test_leave_room_outside_a_room_is_not_in_room_as_error_event(signaling: Harness) -> None:
    # given
    alice = await signaling.connect("agent-alice")
    # when
    await alice.emit("leave_room", {})
    # then
    assert await alice.event() == error_event("not_in_room", "leave_room")
    assert await alice.receive_nothing()


async def test_leave_room_naming_another_room_is_not_in_room_and_keeps_membership(
    signaling: Harness, open_room: Any
) -> None:
    # given
    room, other = await open_room(name="A"), await open_room(name="B")
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert await alice.event() == user_joined(room, bob)
    # when
    reply = await bob.call("leave_room", {"roomId": other.id})
    # then
    assert reply == refused("not_in_room")
    assert await alice.receive_nothing()
    assert await bob.call("offer", {"sdp": "v=0"}) == {"ok": True}
    assert (await alice.event())[0] == "offer"


# --- relays -----------------------------------------------------------------------------


async def three_in_a_room(signaling: Harness, room: Room) -> tuple[WsClient, WsClient, WsClient]:
    """alice, bob and carol in ``room``, every user_joined read."""
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert await alice.event() == user_joined(room, bob)
    carol = await signaling.in_room("agent-carol", room.id)
    assert await alice.event() == user_joined(room, carol)
    assert await bob.event() == user_joined(room, carol)
    return alice, bob, carol


SDP_INIT = {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}
ICE = {"candidate": "candidate:1 1 UDP 2122260223 127.0.0.1 54400 typ host", "sdpMid": "0", "sdpMLineIndex": 0}


@pytest.mark.parametrize(
    ("_case", "event", "payload", "relayed_event", "relayed"),
    [
        ("offer_sdp_object", "offer", {"sdp": SDP_INIT, "extra": [1]}, "offer", {"sdp": SDP_INIT, "extra": [1]}),
        ("answer_sdp_string", "answer", {"sdp": "v=0"}, "answer", {"sdp": "v=0"}),
        ("candidate", "candidate", {"candidate": ICE}, "candidate", {"candidate": ICE}),
        ("candidate_end", "candidate-end", {}, "candidate", {"candidate": None}),
    ],
)
async def test_targeted_relay_reaches_only_the_target_with_exact_payload(
    signaling: Harness,
    open_room: Any,
    _case: str,
    event: str,
    payload: dict[str, Any],
    relayed_event: str,
    relayed: dict[str, Any],
) -> None:
    # given
    room = await open_room()
    alice, bob, carol = await three_in_a_room(signaling, room)
    # when
    reply = await alice.call(event, {"to": bob.client_id, **payload})
    # then
    assert reply == {"ok": True}
    assert await bob.event() == (
        relayed_event,
        {**relayed, "from": alice.client_id, "agentId": "agent-alice", "roomId": room.id},
    )
    assert await quiet(alice, bob, carol)


@pytest.mark.parametrize(
    ("_case", "event", "payload", "relayed_event", "relayed"),
    [
        ("offer", "offer", {"sdp": "v=0"}, "offer", {"sdp": "v=0"}),
        ("candidate_end", "candidate-end", {"note": "done"}, "candidate", {"note": "done", "candidate": None}),
    ],
)
async def test_relay_without_to_reaches_every_other_member(
    signaling: Harness,
    open_room: Any,
    _case: str,
    event: str,
    payload: dict[str, Any],
    relayed_event: str,
    relayed: dict[str, Any],
) -> None:
    # given
    room = await open_room()
    alice, bob, carol = await three_in_a_room(signaling, room)
    # when, without an ack callback
    await alice.emit(event, payload)
    # then
    expected = (relayed_event, {**relayed, "from": alice.client_id, "agentId": "agent-alice", "roomId": room.id})
    assert await bob.event() == expected
    assert await carol.event() == expected
    assert await quiet(alice, bob, carol)


async def test_relay_to_own_client_id_is_target_not_found(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    alice, bob, carol = await three_in_a_room(signaling, room)
    # when
    reply = await alice.call("offer", {"to": alice.client_id, "sdp": "v=0"})
    # then
    assert reply == refused("target_not_found")
    assert await quiet(alice, bob, carol)


async def test_relay_to_a_member_of_another_room_is_target_not_found_and_reaches_nobody(
    signaling: Harness, open_room: Any
) -> None:
    # given
    room_a, room_b = await open_room(name="A"), await open_room(name="B")
    alice = await signaling.in_room("agent-alice", room_a.id)
    bob = await signaling.in_room("agent-bob", room_b.id)
    # when, once with an ack and once without
    reply = await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"})
    await alice.emit("candidate", {"to": bob.client_id, "candidate": ICE})
    # then
    assert reply == refused("target_not_found")
    assert await alice.event() == error_event("target_not_found", "candidate")
    assert await quiet(alice, bob)


async def test_relay_outside_a_room_is_not_in_room_before_target_check(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    alice = await signaling.connect("agent-alice")
    bob = await signaling.in_room("agent-bob", room.id)
    # when
    reply = await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"})
    # then
    assert reply == refused("not_in_room")
    assert await quiet(alice, bob)


async def test_unknown_event_is_refused_in_both_forms(signaling: Harness) -> None:
    # given
    alice = await signaling.connect("agent-alice")
    # when
    reply = await alice.call("dance", {"roomId": "r_x"})
    await alice.emit("dance", {})
    # then
    assert reply == refused("unknown_event")
    assert await alice.event() == error_event("unknown_event", "dance")
    assert await alice.receive_nothing()


@pytest.mark.parametrize(
    ("_case", "event", "args"),
    [
        ("join_payload_not_an_object", "join_room", ["r_x"]),
        ("join_without_payload", "join_room", []),
        ("join_room_id_wrong_type", "join_room", [{"roomId": 5}]),
        ("join_room_id_missing", "join_room", [{}]),
        ("join_token_wrong_type", "join_room", [{"roomId": "r_x", "token": 5}]),
        ("leave_payload_not_an_object", "leave_room", [["r_x"]]),
        ("leave_room_id_wrong_type", "leave_room", [{"roomId": 5}]),
        ("offer_payload_not_an_object", "offer", ["v=0"]),
        ("offer_missing_sdp", "offer", [{}]),
        ("offer_sdp_wrong_type", "offer", [{"sdp": 5}]),
        ("answer_missing_sdp", "answer", [{"to": "x"}]),
        ("offer_to_not_a_string", "offer", [{"to": 5, "sdp": "v=0"}]),
        ("candidate_missing_candidate", "candidate", [{}]),
        ("candidate_end_payload_not_an_object", "candidate-end", [None]),
    ],
)
async def test_malformed_payload_is_invalid_payload_before_membership(
    signaling: Harness, _case: str, event: str, args: list[Any]
) -> None:
    # given a socket in no room (a membership check would say not_in_room)
    alice = await signaling.connect("agent-alice")
    # when
    reply = await alice.call(event, *args)
    # then
    assert reply == refused("invalid_payload")
    assert await alice.receive_nothing()


async def test_malformed_payload_without_ack_is_an_invalid_payload_error_event(signaling: Harness) -> None:
    # given
    alice = await signaling.connect("agent-alice")
    # when
    await alice.emit("offer", {"to": 5, "sdp": "v=0"})
    # then
    assert await alice.event() == error_event("invalid_payload", "offer")
    assert await alice.receive_nothing()


# --- limits -----------------------------------------------------------------------------


async def test_message_over_max_message_bytes_is_payload_too_large_and_socket_stays(
    signaling: Harness, signaling_config: Callable[..., None], open_room: Any
) -> None:
    # given
    signaling_config(max_message_bytes=300)
    room = await open_room()
    alice, bob, carol = await three_in_a_room(signaling, room)
    # when
    reply = await alice.call("offer", {"to": bob.client_id, "sdp": "x" * 400})
    await alice.emit("candidate", {"candidate": {"candidate": "y" * 400}})
    # then
    assert reply == refused("payload_too_large")
    assert await alice.event() == error_event("payload_too_large", "candidate")
    assert await quiet(alice, bob, carol)
    assert await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}) == {"ok": True}
    assert await bob.event() == (
        "offer",
        {"sdp": "v=0", "from": alice.client_id, "agentId": "agent-alice", "roomId": room.id},
    )


class FakeClock:
    """``time.monotonic`` of the signaling service, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


async def test_events_above_the_rate_limit_are_rate_limited_once_and_socket_stays_usable(
    signaling: Harness,
    signaling_config: Callable[..., None],
    open_room: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given 1 event/s, bursts of 3, a hand-moved clock (the service's and the connection's)
    clock = FakeClock()
    monkeypatch.setattr(sockets, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(connection, "time", SimpleNamespace(monotonic=clock.monotonic))
    signaling_config(rate_limit_per_s=1, rate_limit_burst=3)
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)  # 1 event
    bob = await signaling.in_room("agent-bob", room.id)
    assert await alice.event() == user_joined(room, bob)
    offer = {"to": bob.client_id, "sdp": "v=0"}
    relayed = ("offer", {"sdp": "v=0", "from": alice.client_id, "agentId": "agent-alice", "roomId": room.id})
    # when the burst is spent, then more events are sent within the same second
    replies = [await alice.call("offer", offer) for _ in range(3)]
    for _ in range(5):
        await alice.emit("offer", offer)
    # then the first refused event is answered, the ones after it are dropped unanswered
    assert replies == [{"ok": True}, {"ok": True}, refused("rate_limited")]
    assert await bob.event() == relayed
    assert await bob.event() == relayed
    assert await quiet(alice, bob)
    # when a second passes, then the socket is served again
    clock.now += 1.0
    assert await alice.call("offer", offer) == {"ok": True}
    assert await bob.event() == relayed


async def test_refused_join_of_another_room_keeps_the_socket_in_its_room(signaling: Harness, open_room: Any) -> None:
    # given alice and bob in room A; room B full with carol
    room_a, room_b = await open_room(name="A"), await open_room(name="B", max_participants=1)
    alice = await signaling.in_room("agent-alice", room_a.id)
    bob = await signaling.in_room("agent-bob", room_a.id)
    assert await alice.event() == user_joined(room_a, bob)
    carol = await signaling.in_room("agent-carol", room_b.id)
    # when
    reply = await alice.call("join_room", {"roomId": room_b.id})
    # then nothing happened: alice is still in room A
    assert reply == refused("room_full")
    assert await quiet(alice, bob, carol)
    assert await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}) == {"ok": True}
    assert await bob.event() == (
        "offer",
        {"sdp": "v=0", "from": alice.client_id, "agentId": "agent-alice", "roomId": room_a.id},
    )


async def test_relay_with_binary_attachment_is_invalid_payload_and_socket_stays(
    signaling: Harness, open_room: Any
) -> None:
    # given
    room = await open_room()
    alice, bob, carol = await three_in_a_room(signaling, room)
    # when a well-formed BINARY_EVENT (one attachment) carries a relay
    await alice.send('451-7["offer",{"sdp":"v=0","blob":{"_placeholder":true,"num":0}}]')
    await alice.send(b"\x01\x02\x03")
    # then
    reply = await alice.frame()
    assert isinstance(reply, str) and reply.startswith("437[")
    assert json.loads(reply[3:]) == [refused("invalid_payload")]
    assert await quiet(alice, bob, carol)
    assert await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}) == {"ok": True}
    assert (await bob.event())[0] == "offer"


async def test_cap_holds_when_many_join_together(signaling: Harness, open_room: Any) -> None:
    # given six connected sockets and a room capped at 2
    room = await open_room(max_participants=2)
    clients = [await signaling.connect(f"agent-{index}") for index in range(6)]
    # when all send join_room before any answer is read
    for client in clients:
        await client.send("421" + json.dumps(["join_room", {"roomId": room.id}]))
    # then exactly two are admitted
    replies = []
    for client in clients:
        frame = await client.frame()
        while not (isinstance(frame, str) and frame.startswith("431")):
            frame = await client.frame()
        replies.append(json.loads(frame[3:])[0])
    assert sorted(reply["ok"] for reply in replies) == [False, False, False, False, True, True]
    assert [r for r in replies if not r["ok"]] == [refused("room_full")] * 4
