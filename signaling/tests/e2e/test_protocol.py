"""The Socket.IO-compatible protocol layer against a real daphne (and uvicorn), with python-socketio.

SPEC section 3: both transports and the upgrade, auth and its refusals, the three ways to
pass a token, events and acks, heartbeats and the ping timeout. Server-to-client acks are
not used by this application (the conformance app's tests cover them).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest

from rooms.tests.fixtures import ANY_TEXT
from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, SioClient
from signaling.tests.schemas import assert_matches_schema

pytestmark = pytest.mark.e2e

TRANSPORTS = {"default": None, "websocket": ["websocket"], "polling": ["polling"]}
FINAL_TRANSPORT = {"default": "websocket", "websocket": "websocket", "polling": "polling"}


@pytest.fixture(scope="module")
def server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env=PATIENT_HEARTBEAT)
    return live


@pytest.fixture(scope="module")
def heartbeat_server(live_servers_module: Any) -> LiveServer:
    """HEARTBEAT_INTERVAL=300 ms and HEARTBEAT_TIMEOUT=300 ms: a missed pong costs the connection."""
    (live,) = live_servers_module()
    return live


async def wait_for_transport(client: SioClient, name: str, timeout: float = 3.0) -> str | None:
    """The client's transport once it is ``name`` (the default client upgrades in the background)."""
    deadline = time.monotonic() + timeout
    while client.transport != name and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return client.transport


@pytest.mark.parametrize("_case", list(TRANSPORTS))
async def test_connect_with_auth_token_emits_connected_with_socket_id(
    server: LiveServer, sio_client: Any, _case: str
) -> None:
    # given
    client = sio_client()
    # when
    await client.connect(server, token=server.mint("agent-alice"), transports=TRANSPORTS[_case])
    connected = await client.next("connected")
    # then
    assert connected == {"clientId": client.client_id, "agentId": "agent-alice", "iceServers": []}
    assert_matches_schema("connected", connected)
    assert await wait_for_transport(client, FINAL_TRANSPORT[_case]) == FINAL_TRANSPORT[_case]
    assert await client.receive_nothing("connected")


def expired_token(server: LiveServer) -> str:
    now = int(time.time())
    return jwt.encode({"agentId": "agent-late", "iat": now - 7200, "exp": now - 3600}, server.secret, algorithm="HS256")


def foreign_token(server: LiveServer) -> str:
    now = int(time.time())
    return jwt.encode(
        {"agentId": "agent-mallory", "iat": now, "exp": now + 3600}, "not-the-secret-" * 5, algorithm="HS256"
    )


REFUSALS = {
    "missing_token": lambda server: None,
    "invalid_token": foreign_token,
    "token_expired": expired_token,
}


@pytest.mark.parametrize("_case", list(TRANSPORTS))
@pytest.mark.parametrize("code", list(REFUSALS))
async def test_refused_token_gets_connect_error_and_nothing_else(
    server: LiveServer, sio_client: Any, code: str, _case: str
) -> None:
    # given
    client = sio_client()
    token = REFUSALS[code](server)
    # when
    refusal = await client.refused(server, token=token, transports=TRANSPORTS[_case])
    # then
    assert refusal == {"message": code}
    assert await client.receive_nothing()
    assert client.pending() == {}


@pytest.mark.parametrize("_case", list(TRANSPORTS))
async def test_token_in_query_string_authenticates(server: LiveServer, sio_client: Any, _case: str) -> None:
    # given
    client = sio_client()
    # when
    await client.connect(server, query=f"token={server.mint('agent-query')}", transports=TRANSPORTS[_case])
    # then
    assert await client.next("connected") == {"clientId": client.client_id, "agentId": "agent-query", "iceServers": []}


@pytest.mark.parametrize("_case", list(TRANSPORTS))
async def test_token_in_authorization_header_authenticates(server: LiveServer, sio_client: Any, _case: str) -> None:
    # given
    client = sio_client()
    headers = {"Authorization": f"Bearer {server.mint('agent-header')}"}
    # when
    await client.connect(server, headers=headers, transports=TRANSPORTS[_case])
    # then
    assert await client.next("connected") == {"clientId": client.client_id, "agentId": "agent-header", "iceServers": []}


@pytest.mark.parametrize("_case", list(TRANSPORTS))
async def test_server_acks_client_events_and_emits_events(server: LiveServer, sio_client: Any, _case: str) -> None:
    # given
    room = await server.acreate_room(name=f"acks {_case}")
    alice, bob = sio_client(), sio_client()
    await alice.connect_as(server, "agent-alice", transports=TRANSPORTS[_case])
    await bob.connect_as(server, "agent-bob", transports=TRANSPORTS[_case])
    await alice.join(room["id"])
    # when
    bob_ack = await bob.call("join_room", {"roomId": room["id"]})
    offer_ack = await bob.call("offer", {"to": alice.client_id, "sdp": "v=0"})
    # then
    assert bob_ack["ok"] is True and bob_ack["clientId"] == bob.client_id
    assert await bob.next("joined") == {k: v for k, v in bob_ack.items() if k != "ok"}
    assert offer_ack == {"ok": True}
    assert await alice.next("user_joined") == {
        "roomId": room["id"],
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": False,
    }
    assert await alice.next("offer") == {
        "sdp": "v=0",
        "from": bob.client_id,
        "agentId": "agent-bob",
        "roomId": room["id"],
    }


@pytest.mark.parametrize("_case", list(TRANSPORTS))
async def test_heartbeat_keeps_idle_connection_alive(heartbeat_server: LiveServer, sio_client: Any, _case: str) -> None:
    # given: HEARTBEAT_INTERVAL=300 ms, HEARTBEAT_TIMEOUT=300 ms
    server = heartbeat_server
    client = sio_client()
    await client.connect_as(server, "agent-idle", transports=TRANSPORTS[_case])
    # when: idle across several ping intervals
    await asyncio.sleep(1.5)
    reply = await client.call("leave_room", {})
    # then
    assert reply == {"ok": False, "error": {"code": "not_in_room", "message": ANY_TEXT}}
    assert client.sio.connected
    assert client.pending() == {}


async def test_peer_that_stops_answering_pings_is_dropped_and_room_told_timeout(
    heartbeat_server: LiveServer, sio_client: Any, raw_socket: Any
) -> None:
    # given: HEARTBEAT_INTERVAL=300 ms, HEARTBEAT_TIMEOUT=300 ms
    server = heartbeat_server
    room = await server.acreate_room(name="silent peer")
    watcher = sio_client()
    await watcher.connect_as(server, "agent-watcher")
    await watcher.join(room["id"])
    silent = await raw_socket(server)
    await silent.handshake(server.mint("agent-silent"))
    assert (await silent.join(room["id"]))["ok"] is True
    assert (await watcher.next("user_joined"))["clientId"] == silent.client_id
    # when
    silent.answers_pings = False
    # then: dropped after pingInterval + pingTimeout (bounded wait, not a speed check)
    left = await watcher.next("user_left", timeout=5)
    assert left == {"roomId": room["id"], "clientId": silent.client_id, "agentId": "agent-silent", "reason": "timeout"}
    assert_matches_schema("user_left", left)
    await silent.wait_closed(timeout=5)
    assert watcher.sio.connected


@pytest.fixture(scope="module")
def uvicorn_server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(server="uvicorn", env=PATIENT_HEARTBEAT)
    return live


@pytest.mark.parametrize("_case", list(TRANSPORTS))
async def test_uvicorn_serves_connect_and_relay(uvicorn_server: LiveServer, sio_client: Any, _case: str) -> None:
    # given
    uvicorn = uvicorn_server
    room = await uvicorn.acreate_room(name="uvicorn room")
    alice, bob = sio_client(), sio_client()
    alice_connected = await alice.connect_as(uvicorn, "agent-alice", transports=TRANSPORTS[_case])
    await bob.connect_as(uvicorn, "agent-bob", transports=TRANSPORTS[_case])
    await alice.join(room["id"])
    await bob.join(room["id"])
    # when
    ack = await alice.call("offer", {"sdp": {"type": "offer", "sdp": "v=0"}})
    # then
    assert alice_connected == {"clientId": alice.client_id, "agentId": "agent-alice", "iceServers": []}
    assert ack == {"ok": True}
    assert await bob.next("offer") == {
        "sdp": {"type": "offer", "sdp": "v=0"},
        "from": alice.client_id,
        "agentId": "agent-alice",
        "roomId": room["id"],
    }
    assert await wait_for_transport(alice, FINAL_TRANSPORT[_case]) == FINAL_TRANSPORT[_case]
