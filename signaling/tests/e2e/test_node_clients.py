"""socket.io-client (node) against a real daphne: the seed's snippet, each transport, two peers.

SPEC section 3 from the official JavaScript client's side. The node scripts under ``node/``
print one JSON object per line (``{"step", "data"}``); the tests assert on whole payloads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rooms.tests.fixtures import ANY_ISO_UTC
from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, run_node
from signaling.tests.schemas import assert_matches_schema

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env=PATIENT_HEARTBEAT)
    return live


def steps_of(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {line["step"]: line["data"] for line in lines}


def test_seed_snippet_connects_upgrades_to_websocket_and_joins(server: LiveServer) -> None:
    # given
    room = server.create_room(name="seed room")
    # when
    code, lines = run_node(NODE_DIR / "seed_snippet.mjs", server.url, room["id"], env={"JWT_SECRET": server.secret})
    # then
    steps = steps_of(lines)
    assert code == 0, lines
    socket_id = steps["connected"]["socketId"]
    assert steps["connected"] == {
        "payload": {"clientId": socket_id, "agentId": "agent-fawzi", "iceServers": []},
        "socketId": socket_id,
    }
    assert_matches_schema("joined", steps["joined"])
    assert steps["joined"] == {
        "roomId": room["id"],
        "clientId": socket_id,
        "agentId": "agent-fawzi",
        "muted": False,
        "room": {**room, "participantCount": 1},
        "participants": [],
    }
    assert steps["engine_open"] == "polling"
    assert steps["upgrade"] == "websocket"
    assert steps["transport"] == "websocket"
    assert sorted(steps) == ["connected", "engine_open", "joined", "transport", "upgrade"]


@pytest.mark.parametrize("_case", ["default", "websocket", "polling"])
def test_two_node_peers_exchange_offer_answer_candidates(server: LiveServer, _case: str) -> None:
    # given
    room = server.create_room(name=f"two peers {_case}")
    # when
    code, lines = run_node(NODE_DIR / "two_peers.mjs", server.url, room["id"], _case, env={"JWT_SECRET": server.secret})
    # then
    steps = steps_of(lines)
    assert code == 0, lines
    alice, bob = steps["alice_connected"]["socketId"], steps["bob_connected"]["socketId"]
    room_id = room["id"]
    assert steps["alice_connected"]["payload"] == {"clientId": alice, "agentId": "agent-alice", "iceServers": []}
    assert steps["bob_connected"]["payload"] == {"clientId": bob, "agentId": "agent-bob", "iceServers": []}
    alice_entry = {"clientId": alice, "agentId": "agent-alice", "joinedAt": ANY_ISO_UTC, "muted": False}
    assert steps["alice_join_ack"] == {
        "ok": True,
        "roomId": room_id,
        "clientId": alice,
        "agentId": "agent-alice",
        "muted": False,
        "room": {**room, "participantCount": 1},
        "participants": [],
    }
    bob_joined = {
        "roomId": room_id,
        "clientId": bob,
        "agentId": "agent-bob",
        "muted": False,
        "room": {**room, "participantCount": 2},
        "participants": [alice_entry],
    }
    assert steps["bob_join_ack"] == {"ok": True, **bob_joined}
    assert steps["bob_joined"] == bob_joined
    assert steps["alice_user_joined"] == {"roomId": room_id, "clientId": bob, "agentId": "agent-bob", "muted": False}
    from_alice = {"from": alice, "agentId": "agent-alice", "roomId": room_id}
    from_bob = {"from": bob, "agentId": "agent-bob", "roomId": room_id}
    assert steps["offer_ack"] == {"ok": True}
    assert steps["bob_offer"] == {"sdp": {"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}, **from_alice}
    assert steps["answer_ack"] == {"ok": True}
    assert steps["alice_answer"] == {"sdp": {"type": "answer", "sdp": "v=0\r\n"}, **from_bob}
    assert steps["candidate_ack"] == {"ok": True}
    assert steps["bob_candidate"] == {
        "candidate": {
            "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        },
        **from_alice,
    }
    assert steps["candidate_end_ack"] == {"ok": True}
    assert steps["bob_candidate_end"] == {"candidate": None, **from_alice}
    assert steps["roomwide_ack"] == {"ok": True}
    assert steps["alice_roomwide_candidate"] == {"candidate": "candidate:2 1 udp 1 127.0.0.1 1 typ host", **from_bob}
    received = [
        ("offer", "bob_offer"),
        ("answer", "alice_answer"),
        ("candidate", "bob_candidate"),
        ("candidate", "bob_candidate_end"),
        ("candidate", "alice_roomwide_candidate"),
        ("user_joined", "alice_user_joined"),
        ("joined", "bob_joined"),
        ("user_left", "alice_user_left"),
    ]
    for event, step in received:
        assert_matches_schema(event, steps[step])
    expected_transport = "polling" if _case == "polling" else "websocket"
    assert steps["transports"] == {"alice": expected_transport, "bob": expected_transport}
    assert steps["alice_user_left"] == {
        "roomId": room_id,
        "clientId": bob,
        "agentId": "agent-bob",
        "reason": "disconnected",
    }
    assert "error" not in steps
