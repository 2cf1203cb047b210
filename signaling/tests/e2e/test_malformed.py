"""Malformed and oversize input ends only its own session (SPEC section 3), on a real daphne.

Raw websockets (``websockets``) and raw long-polling requests (``aiohttp``) break the
Engine.IO/Socket.IO protocol on purpose; python-socketio clients in the same room and
elsewhere must see a prompt ``user_left`` (``disconnected``) and keep working.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
import websockets

from rooms.tests.fixtures import ANY_TEXT
from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, RawSocketIO, SioClient

pytestmark = pytest.mark.e2e

MAX_PAYLOAD = 10000
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=5)
RS = "\x1e"  # Engine.IO v4 packet separator in a polling payload


@pytest.fixture(scope="module")
def server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env={**PATIENT_HEARTBEAT, "MAX_PAYLOAD": str(MAX_PAYLOAD)})
    return live


async def room_with_raw_peer(
    server: LiveServer, sio_client: Any, raw_socket: Any
) -> tuple[str, SioClient, RawSocketIO]:
    """A room holding a python-socketio watcher and a raw websocket peer (joined in that order)."""
    room = await server.acreate_room(name="abuse")
    watcher = sio_client()
    await watcher.connect_as(server, "agent-watcher")
    assert (await watcher.join(room["id"]))["ok"] is True
    raw = await raw_socket(server)
    await raw.handshake(server.mint("agent-raw"))
    assert (await raw.join(room["id"]))["ok"] is True
    assert await watcher.next("user_joined") == {
        "roomId": room["id"],
        "clientId": raw.client_id,
        "agentId": "agent-raw",
        "muted": False,
    }
    return room["id"], watcher, raw


async def assert_still_serving(server: LiveServer, sio_client: Any, watcher: SioClient, room_id: str) -> None:
    """A newcomer can join and relay to ``watcher``: the server and the room are fine."""
    other = sio_client()
    await other.connect_as(server, "agent-other")
    assert (await other.join(room_id))["ok"] is True
    assert await other.call("offer", {"to": watcher.client_id, "sdp": "v=0"}) == {"ok": True}
    assert (await watcher.next("user_joined"))["clientId"] == other.client_id
    assert await watcher.next("offer") == {
        "sdp": "v=0",
        "from": other.client_id,
        "agentId": "agent-other",
        "roomId": room_id,
    }


GARBAGE = {
    "not_a_packet": "xyz",
    "truncated_event": '42["offer"',
    "binary_with_nothing_pending": b"\x00\x01\x02garbage",
}


@pytest.mark.parametrize("_case", list(GARBAGE))
async def test_garbage_frame_closes_only_its_own_session(
    server: LiveServer, sio_client: Any, raw_socket: Any, _case: str
) -> None:
    # given
    room_id, watcher, raw = await room_with_raw_peer(server, sio_client, raw_socket)
    bystander = sio_client()
    await bystander.connect_as(server, "agent-bystander")
    # when
    await raw.send(GARBAGE[_case])
    # then
    await raw.wait_closed()
    assert await watcher.next("user_left") == {
        "roomId": room_id,
        "clientId": raw.client_id,
        "agentId": "agent-raw",
        "reason": "disconnected",
    }
    assert await bystander.call("leave_room", {}) == {
        "ok": False,
        "error": {"code": "not_in_room", "message": "this socket is not in that room"},
    }
    await assert_still_serving(server, sio_client, watcher, room_id)


@pytest.fixture(scope="module")
def uvicorn_server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(server="uvicorn", env={**PATIENT_HEARTBEAT, "MAX_PAYLOAD": str(MAX_PAYLOAD)})
    return live


@pytest.mark.parametrize("_case", ["daphne", "uvicorn"])
async def test_websocket_frame_over_max_payload_is_closed_with_1009(
    request: pytest.FixtureRequest, sio_client: Any, raw_socket: Any, _case: str
) -> None:
    # given: MAX_PAYLOAD=10000
    server = request.getfixturevalue("server" if _case == "daphne" else "uvicorn_server")
    room_id, watcher, raw = await room_with_raw_peer(server, sio_client, raw_socket)
    # when
    await raw.send("42" + json.dumps(["offer", {"sdp": "x" * (MAX_PAYLOAD + 100)}]))
    # then
    close_code = await raw.wait_closed()
    assert await watcher.next("user_left") == {
        "roomId": room_id,
        "clientId": raw.client_id,
        "agentId": "agent-raw",
        "reason": "disconnected",
    }
    assert await watcher.receive_nothing("offer")
    await assert_still_serving(server, sio_client, watcher, room_id)
    assert close_code == 1009


# -- long-polling ---------------------------------------------------------------------------


def polling_url(server: LiveServer, sid: str | None = None) -> str:
    return f"{server.url}/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")


async def polling_session(http: aiohttp.ClientSession, server: LiveServer, token: str) -> str:
    """Handshake and Socket.IO CONNECT over long-polling; returns the Engine.IO sid."""
    async with http.get(polling_url(server)) as response:
        opening = await response.text()
    assert response.status == 200 and opening.startswith("0{"), opening
    sid = json.loads(opening[1:])["sid"]
    async with http.post(polling_url(server, sid), data="40" + json.dumps({"token": token})) as response:
        assert (response.status, await response.text()) == (200, "ok")
    async with http.get(polling_url(server, sid)) as response:
        packets = (await response.text()).split(RS)
    assert packets[0].startswith("40{") and packets[1].startswith('42["connected"'), packets
    return str(sid)


async def test_polling_post_over_max_payload_is_413_and_ends_session(server: LiveServer) -> None:
    # given
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        sid = await polling_session(http, server, server.mint("agent-poller"))
        # when
        body = "42" + json.dumps(["offer", {"sdp": "x" * (MAX_PAYLOAD + 100)}])
        async with http.post(polling_url(server, sid), data=body) as response:
            status, content_type = response.status, response.content_type
        async with http.post(polling_url(server, sid), data="3") as response:
            after = (response.status, await response.json())
    # then
    assert (status, content_type) == (413, "application/json")
    assert after == (400, {"code": 1, "message": "Session ID unknown"})


async def test_polling_post_to_unknown_sid_is_400_json(server: LiveServer) -> None:
    # given
    unknown = polling_url(server, "no-such-session-id00")
    # when
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http, http.post(unknown, data="40") as response:
        status, content_type, body = response.status, response.content_type, await response.json()
    # then
    assert (status, content_type, body) == (400, "application/json", {"code": 1, "message": "Session ID unknown"})


async def test_second_concurrent_get_is_400_and_ends_the_session(server: LiveServer, sio_client: Any) -> None:
    # given: a long-polling socket in a room with a watcher
    room = await server.acreate_room(name="double get")
    watcher = sio_client()
    await watcher.connect_as(server, "agent-watcher")
    await watcher.join(room["id"])
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as http:
        sid = await polling_session(http, server, server.mint("agent-poller"))
        async with http.post(
            polling_url(server, sid), data="421" + json.dumps(["join_room", {"roomId": room["id"]}])
        ) as r:
            assert r.status == 200
        joined = await watcher.next("user_joined")
        async with http.get(polling_url(server, sid)) as response:
            assert response.status == 200  # the joined event and the ack
        # when: one GET is held, a second arrives
        first = asyncio.ensure_future(http.get(polling_url(server, sid)))
        await asyncio.sleep(0.1)
        async with http.get(polling_url(server, sid)) as response:
            second = (response.status, await response.json())
        first_response = await asyncio.wait_for(first, 3)
        first_status = first_response.status
        first_response.release()
        async with http.post(polling_url(server, sid), data="3") as response:
            after = (response.status, await response.json())
    # then
    assert second == (400, {"code": 3, "message": ANY_TEXT})
    assert first_status == 200
    assert after == (400, {"code": 1, "message": "Session ID unknown"})
    assert await watcher.next("user_left") == {
        "roomId": room["id"],
        "clientId": joined["clientId"],
        "agentId": "agent-poller",
        "reason": "disconnected",
    }


async def test_event_named_by_a_number_is_an_unknown_event_and_the_socket_stays(
    server: LiveServer, sio_client: Any, raw_socket: Any
) -> None:
    # given: socket.io-parser accepts a number as an event name
    room_id, watcher, raw = await room_with_raw_peer(server, sio_client, raw_socket)
    # when
    await raw.send('42[123,{"sdp":"x"}]')
    error = await raw.next_event()
    await raw.send('427[456,{"sdp":"x"}]')
    ack = await raw.next_frame()
    # then: answered like any unknown event; the socket is still in its room
    assert error == ["error", {"code": "unknown_event", "message": ANY_TEXT, "event": "123"}]
    assert isinstance(ack, str) and ack.startswith("437"), ack
    assert json.loads(ack[3:]) == [{"ok": False, "error": {"code": "unknown_event", "message": ANY_TEXT}}]
    await raw.send("429" + json.dumps(["offer", {"to": watcher.client_id, "sdp": "v=0"}]))
    assert await raw.next_frame() == '439[{"ok":true}]'
    assert await watcher.next("offer") == {
        "sdp": "v=0",
        "from": raw.client_id,
        "agentId": "agent-raw",
        "roomId": room_id,
    }
    assert await watcher.receive_nothing("user_left")


@pytest.mark.parametrize("_case", ["daphne", "uvicorn"])
async def test_websocket_with_unknown_sid_is_accepted_then_closed(request: pytest.FixtureRequest, _case: str) -> None:
    # given: engine.io accepts the websocket of a session it no longer has, then closes it
    server = request.getfixturevalue("server" if _case == "daphne" else "uvicorn_server")
    url = f"{server.ws_url}/socket.io/?EIO=4&transport=websocket&sid=no-such-session-id00"
    # when
    ws = await asyncio.wait_for(websockets.connect(url, open_timeout=3), 4)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 3)
    # then: closed without a single frame
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


@pytest.mark.parametrize("_case", ["daphne", "uvicorn"])
@pytest.mark.parametrize("path", ["/", "/other/", "/socket.io/x", "/api/rooms"])
async def test_websocket_to_another_path_is_refused_without_a_traceback(
    request: pytest.FixtureRequest, _case: str, path: str
) -> None:
    # given
    server = request.getfixturevalue("server" if _case == "daphne" else "uvicorn_server")
    log_before = len(server.stderr_text())
    # when
    with pytest.raises(websockets.InvalidStatus) as refused:
        await asyncio.wait_for(
            websockets.connect(f"{server.ws_url}{path}?EIO=4&transport=websocket", open_timeout=3), 4
        )
    # then: refused before the accept (HTTP 403), and nothing logged as an error
    assert refused.value.response.status_code == 403
    logged = server.stderr_text()[log_before:]
    assert "Traceback" not in logged and "ERROR" not in logged, logged
    assert (await server.aget("/healthz"))[0] == 200
