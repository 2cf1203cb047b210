"""Connection state recovery with real clients (SPEC section 7): socket.io-client (node),
python-socketio, a hand-driven Engine.IO socket, against real daphne processes.

The node script ``node/recovery.mjs`` cuts the client's transport (its socket terminated:
no close frame, as a network cut) and prints one JSON line per step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, run_node

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
LONG_WINDOW = {**PATIENT_HEARTBEAT, "RECOVERY_WINDOW": "20000"}
SHORT_WINDOW = {**PATIENT_HEARTBEAT, "RECOVERY_WINDOW": "1500"}


@pytest.fixture(scope="module")
def server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env=LONG_WINDOW)
    return live


@pytest.fixture(scope="module")
def short_server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env=SHORT_WINDOW)
    return live


def scenario(server: LiveServer, mode: str, name: str) -> dict[str, Any]:
    room = server.create_room(name=f"recovery {name} {mode}")
    code, lines = run_node(
        NODE_DIR / "recovery.mjs", server.url, room["id"], mode, name, env={"JWT_SECRET": server.secret}, timeout=60
    )
    steps = {line["step"]: line["data"] for line in lines}
    assert code == 0, lines
    return {"room": room, **steps}


@pytest.mark.parametrize("mode", ["default", "websocket"])
def test_a_cut_transport_resumes_with_the_same_id_and_every_missed_relay_in_order(
    server: LiveServer, mode: str
) -> None:
    # when
    steps = scenario(server, mode, "resume")
    # then
    alice = steps["before_cut"]["id"]
    bob_listed = steps["bob_join"]["participants"]
    assert bob_listed == [alice]
    assert steps["before_cut"]["transport"] == "websocket"
    assert steps["alice_connected"]["payload"]["recovered"] is False
    assert steps["alice_disconnect"] == "transport close"
    # away: listed, not connected; a participant, not a connection
    away = {p["clientId"]: p["connected"] for p in steps["rest_away"]}
    assert away[alice] is False and list(away.values()).count(True) == 1
    assert steps["stats_away"]["participants"] >= 2
    assert steps["acks_while_away"] == [{"ok": True}] * 4
    # back: the same id, recovered, `connected {recovered: true}` first, then the missed relays in order
    assert steps["alice_reconnect"] == {"id": alice, "recovered": True, "sameId": True}
    after = [(e["event"], e["args"][0]) for e in steps["alice_after"]]
    assert after[0][0] == "connected"
    assert after[0][1]["clientId"] == alice and after[0][1]["recovered"] is True
    relays = [(name, payload.get("sdp", payload.get("candidate"))) for name, payload in after[1:]]
    assert relays == [
        ("offer", "sdp-1"),
        ("candidate", "cand-2"),
        ("candidate", "cand-3"),
        ("candidate", "cand-4"),
        ("answer", "sdp-5"),
    ]
    assert all(e["hasOffset"] for e in steps["alice_after"])
    # the peer heard nothing of it
    assert "user_left" not in steps["bob_seen"] and "user_joined" not in steps["bob_seen"]
    assert {p["clientId"]: p["connected"] for p in steps["rest_back"]}[alice] is True


@pytest.mark.parametrize("mode", ["default", "websocket"])
def test_a_window_that_ends_without_the_client_tells_the_room_disconnected(
    short_server: LiveServer, mode: str
) -> None:
    # when
    steps = scenario(short_server, mode, "expire")
    # then
    alice = steps["before_cut"]["id"]
    assert {p["clientId"]: p["connected"] for p in steps["rest_away"]}[alice] is False
    assert steps["bob_user_left"]["clientId"] == alice
    assert steps["bob_user_left"]["reason"] == "disconnected"
    assert alice not in steps["rest_after"]
    assert steps["bob_seen"].count("user_left") == 1


def test_a_socket_that_left_its_room_gets_a_fresh_session(server: LiveServer) -> None:
    # when
    steps = scenario(server, "websocket", "left")
    # then
    assert steps["alice_again"]["recovered"] is False
    assert steps["alice_again"]["sameId"] is False
    assert steps["alice_again"]["payload"]["recovered"] is False


def test_the_clients_own_disconnect_is_not_recoverable(server: LiveServer) -> None:
    # when
    steps = scenario(server, "websocket", "closed")
    # then
    assert steps["bob_user_left"]["reason"] == "disconnected"
    assert steps["alice_again"]["recovered"] is False
    assert steps["alice_again"]["sameId"] is False
