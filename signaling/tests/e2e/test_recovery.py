"""Connection state recovery with real clients (SPEC section 7): socket.io-client (node),
python-socketio, a hand-driven Engine.IO socket, against real daphne processes.

The node script ``node/recovery.mjs`` cuts the client's transport (its socket terminated:
no close frame, as a network cut) and prints one JSON line per step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from signaling.tests.e2e.recovery_client import RecoveringClient
from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, SioClient, run_node

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
def test_a_window_that_ends_without_the_client_tells_the_room_disconnected(short_server: LiveServer, mode: str) -> None:
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


# -- the protocol by hand, python-socketio -------------------------------------------------


async def wait_listed(server: LiveServer, room_id: str, client_id: str, connected: bool | None) -> list[Any]:
    """Poll the room detail until ``client_id`` is listed with ``connected`` (None: absent)."""
    for _ in range(200):
        status, detail = await server.aget(f"/api/rooms/{room_id}")
        assert status == 200, detail
        listed = {p["clientId"]: p["connected"] for p in detail["participants"]}
        if listed.get(client_id) is connected:
            return list(detail["participants"])
        await asyncio.sleep(0.05)
    pytest.fail(f"{client_id} never listed with connected={connected}: {detail}")


async def held_pair(server: LiveServer, *, token: str | None = None) -> tuple[str, RecoveringClient, RecoveringClient]:
    """alice and bob in a fresh room; alice's transport is cut and the server holds her."""
    room = await server.acreate_room(token=token)
    alice, bob = RecoveringClient(server, "agent-alice"), RecoveringClient(server, "agent-bob")
    for client in (alice, bob):
        await client.connect()
        await client.until("connected")
        assert (await client.call("join_room", {"roomId": room["id"]}, 1))["ok"] is True
    await alice.until("user_joined")
    alice.cut()
    await wait_listed(server, room["id"], alice.sid, False)
    return room["id"], alice, bob


async def test_with_the_window_off_the_connect_reply_and_events_carry_nothing_more(live_servers: Any) -> None:
    # given
    (plain,) = live_servers(env=PATIENT_HEARTBEAT)
    client = RecoveringClient(plain, "agent-alice")
    # when
    reply = await client.connect()
    name, payload, offset = await client.event()
    # then
    assert sorted(reply) == ["sid"]
    assert (name, offset) == ("connected", None)
    assert "recovered" not in payload
    await client.close()


async def test_the_connect_reply_carries_a_pid_and_every_event_an_offset(server: LiveServer) -> None:
    # given
    client = RecoveringClient(server, "agent-alice")
    # when
    reply = await client.connect()
    name, payload, offset = await client.event()
    # then
    assert sorted(reply) == ["pid", "sid"] and reply["pid"] != reply["sid"]
    assert name == "connected" and payload["recovered"] is False
    assert isinstance(offset, str) and offset
    await client.close()


async def test_python_socketio_connects_and_joins_with_the_window_on(
    server: LiveServer, sio_client: Callable[[], SioClient]
) -> None:
    # given
    client = sio_client()
    room = await server.acreate_room()
    # when
    await client.connect(server, token=server.mint("agent-py"))
    connected = await asyncio.wait_for(client.queues["connected"].get(), 5)
    reply = await client.call("join_room", {"roomId": room["id"]})
    # then: the offset is one more argument, which python-socketio passes along
    payload, offset = connected
    assert payload["clientId"] == client.client_id and isinstance(offset, str)
    assert reply["ok"] is True


async def test_a_pid_resumes_only_for_its_own_agent_and_a_known_offset(server: LiveServer) -> None:
    # given
    room_id, alice, bob = await held_pair(server)
    eve = RecoveringClient(server, "agent-eve")
    eve.offset = alice.offset
    # when: another agent with alice's pid, then alice with an offset never sent
    foreign = await eve.connect(pid=alice.pid)
    held_sid, held_pid, last_offset = alice.sid, alice.pid, alice.offset
    alice.offset = "no-such-offset"
    unknown = await alice.connect()
    # then: fresh sessions, no error; the held alice is still listed away
    assert foreign["sid"] != held_sid and foreign["pid"] != held_pid
    assert (await eve.until("connected"))["recovered"] is False
    assert unknown["sid"] != held_sid
    assert (await alice.until("connected"))["recovered"] is False
    await wait_listed(server, room_id, held_sid, False)
    # and the genuine pid and offset still resume
    alice.pid, alice.offset = held_pid, last_offset
    resumed = await alice.connect()
    assert resumed == {"sid": held_sid, "pid": held_pid}
    assert (await alice.until("connected"))["recovered"] is True
    for client in (alice, bob, eve):
        await client.close()


async def test_a_kicked_held_member_does_not_resume(server: LiveServer) -> None:
    # given
    creator = server.mint("agent-creator")
    room_id, alice, bob = await held_pair(server, token=creator)
    held_sid = alice.sid
    # when
    status, _ = await server.arequest("POST", f"/api/rooms/{room_id}/participants/{held_sid}/kick", {}, token=creator)
    left = await bob.until("user_left")
    reply = await alice.connect()
    # then
    assert status == 204
    assert left["clientId"] == held_sid and left["reason"] == "kicked"
    assert reply["sid"] != held_sid
    assert (await alice.until("connected"))["recovered"] is False
    for client in (alice, bob):
        await client.close()


async def test_a_ping_timeout_held_past_its_window_leaves_with_timeout(short_server: LiveServer) -> None:
    # given: alice stops answering pings (her connection stays open)
    room = await short_server.acreate_room()
    alice, bob = RecoveringClient(short_server, "agent-alice"), RecoveringClient(short_server, "agent-bob")
    for client in (alice, bob):
        await client.connect()
        await client.until("connected")
        assert (await client.call("join_room", {"roomId": room["id"]}, 1))["ok"] is True
    await alice.until("user_joined")
    assert alice.raw is not None
    alice.raw.answers_pings = False
    # when
    left = await bob.until("user_left", timeout=15)
    # then
    assert left["clientId"] == alice.sid and left["reason"] == "timeout"
    for client in (alice, bob):
        await client.close()
