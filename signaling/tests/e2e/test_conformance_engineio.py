"""Engine.IO v4 conformance of our protocol layer, case by case against socket.io's suite.

Checks, over raw HTTP long-polling requests and raw websockets, the behaviours that socket.io's
``docs/engine.io-protocol/v4-test-suite`` expects of a server (handshake, message, heartbeat,
close, upgrade), plus the limits of ``docs/engine.io-protocol/v4-current.md`` and SPEC section 3
(unknown sid, maxPayload, CORS). The Engine.IO cases that the Socket.IO v5 suite repeats on
``/socket.io/`` run here on both paths. Target: ``python -m signaling.conformance`` under daphne
and uvicorn (``conformance_fixtures``). Never imports Django or the service layer.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

# The helpers' asserts get pytest's messages only if rewritten, so before the import below.
pytest.register_assert_rewrite("signaling.tests.e2e.conformance_fixtures")

from signaling.tests.e2e.conformance_fixtures import (  # noqa: E402
    MAX_PAYLOAD_BYTES,
    PING_INTERVAL_MS,
    PING_TIMEOUT_MS,
    RECORD_SEPARATOR,
    RawWebSocket,
    WireClient,
    WsClosed,
    WsRefused,
    open_packet,
)

pytestmark = pytest.mark.e2e
# Fixtures conformance_server and wire: a plugin named here, not in the shared root conftest.
pytest_plugins = ["signaling.tests.e2e.conformance_fixtures"]

ENGINE = "/engine.io/"
# The Engine.IO v4 suite runs on /engine.io/; the Socket.IO v5 suite repeats its handshake,
# heartbeat, close and upgrade cases on /socket.io/.
PATHS = [
    pytest.param("engine.io suite", ENGINE, id="engine.io"),
    pytest.param("socket.io suite", "/socket.io/", id="socket.io"),
]
HEARTBEAT_S = (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000
# Our timers fire a few ms late and the sleep starts after the handshake reply: a small margin
# keeps "closed after pingInterval + pingTimeout" from racing the server's timer.
TIMER_MARGIN_S = 0.1
HANDSHAKE_KEYS = {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
# engine.io's error bodies (engine.io server, lib/server.ts: Server.errorMessages).
UNKNOWN_TRANSPORT = {"code": 0, "message": "Transport unknown"}
UNKNOWN_SID = {"code": 1, "message": "Session ID unknown"}
BAD_HANDSHAKE_METHOD = {"code": 3, "message": "Bad handshake method"}
UNSUPPORTED_VERSION = {"code": 5, "message": "Unsupported protocol version"}
# RFC 6455 close codes our adapter uses (signaling/protocol/errors.py).
WS_NORMAL, WS_PROTOCOL_ERROR, WS_POLICY_VIOLATION, WS_MESSAGE_TOO_BIG = 1000, 1002, 1008, 1009


async def _assert_session_alive_on(ws: RawWebSocket, path: str) -> None:
    """The websocket still carries the session: an echo on /engine.io/, a CONNECT on /socket.io/."""
    if path == ENGINE:
        await ws.send("4hello")
        assert await ws.receive() == "4hello"
    else:
        await ws.send("40")
        reply = await ws.receive()
        assert isinstance(reply, str) and reply.startswith('40{"sid":"'), reply


# -- handshake ---------------------------------------------------------------------------


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_handshake_opens_a_session_with_the_reference_parameters(
    wire: WireClient, _case: str, path: str
) -> None:
    # given / when
    reply = await wire.get(f"{path}?EIO=4&transport=polling")
    # then
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/plain; charset=UTF-8"
    data = open_packet(reply.text)
    assert set(data) == HANDSHAKE_KEYS
    assert isinstance(data["sid"], str) and data["sid"]
    assert {k: v for k, v in data.items() if k != "sid"} == {
        "upgrades": ["websocket"],
        "pingInterval": PING_INTERVAL_MS,
        "pingTimeout": PING_TIMEOUT_MS,
        "maxPayload": MAX_PAYLOAD_BYTES,
    }


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_handshake_without_a_valid_eio_version_is_refused_400(
    wire: WireClient, _case: str, path: str
) -> None:
    # given
    queries = ["transport=polling", "EIO=abc&transport=polling", "EIO=3&transport=polling"]
    # when
    replies = [await wire.get(f"{path}?{query}") for query in queries]
    # then
    assert [(r.status, r.headers["Content-Type"]) for r in replies] == [(400, "application/json")] * 3
    assert [_json(r.text) for r in replies] == [UNSUPPORTED_VERSION] * 3


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_handshake_without_a_valid_transport_is_refused_400(
    wire: WireClient, _case: str, path: str
) -> None:
    # given
    queries = ["EIO=4", "EIO=4&transport=abc"]
    # when
    replies = [await wire.get(f"{path}?{query}") for query in queries]
    # then
    assert [(r.status, _json(r.text)) for r in replies] == [(400, UNKNOWN_TRANSPORT)] * 2


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_handshake_with_another_method_than_get_is_refused_400(
    wire: WireClient, _case: str, path: str
) -> None:
    # given / when
    post = await wire.request("POST", f"{path}?EIO=4&transport=polling")
    put = await wire.request("PUT", f"{path}?EIO=4&transport=polling")
    # then
    assert [(post.status, _json(post.text)), (put.status, _json(put.text))] == [(400, BAD_HANDSHAKE_METHOD)] * 2


@pytest.mark.parametrize("_case, path", PATHS)
async def test_websocket_handshake_opens_a_session_without_upgrades(wire: WireClient, _case: str, path: str) -> None:
    # given
    ws = await wire.open_websocket(path)
    # when
    frame = await ws.receive(answer_pings=False)
    # then
    assert isinstance(frame, str)
    data = open_packet(frame)
    assert set(data) == HANDSHAKE_KEYS
    assert isinstance(data["sid"], str) and data["sid"]
    assert {k: v for k, v in data.items() if k != "sid"} == {
        "upgrades": [],
        "pingInterval": PING_INTERVAL_MS,
        "pingTimeout": PING_TIMEOUT_MS,
        "maxPayload": MAX_PAYLOAD_BYTES,
    }


@pytest.mark.parametrize("_case, path", PATHS)
async def test_websocket_without_valid_eio_or_transport_is_refused(wire: WireClient, _case: str, path: str) -> None:
    # given
    queries = ["transport=websocket", "EIO=abc&transport=websocket", "EIO=4", "EIO=4&transport=abc"]
    # when
    outcomes = [await wire.websocket(f"{path}?{query}") for query in queries]
    # then: closed before the accept, which ASGI servers answer with HTTP 403 (the suite only
    # waits for the "close" event that a refused handshake raises in a browser)
    assert outcomes == [WsRefused(403)] * 4


async def test_requests_for_an_unknown_sid_are_refused_400(wire: WireClient) -> None:
    # given
    sid = "no-such-session"
    # when
    get = await wire.poll(ENGINE, sid)
    post = await wire.push(ENGINE, sid, "4hello")
    probe = await wire.websocket(f"{ENGINE}?EIO=4&transport=websocket&sid={sid}")
    # then: the websocket is accepted, then closed without a frame
    assert [(get.status, _json(get.text)), (post.status, _json(post.text))] == [(400, UNKNOWN_SID)] * 2
    assert isinstance(probe, RawWebSocket)
    assert await probe.receive(answer_pings=False) == WsClosed(WS_POLICY_VIOLATION)


async def test_polling_echoes_a_listed_origin_for_cors(wire: WireClient) -> None:
    # given: the conformance app allows every origin (CORS_ORIGIN "*"); SPEC section 2 echoes it
    origin = "http://client.example"
    # when
    handshake = await wire.get(f"{ENGINE}?EIO=4&transport=polling", headers={"Origin": origin})
    preflight = await wire.request(
        "OPTIONS",
        f"{ENGINE}?EIO=4&transport=polling",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    # then
    for reply in (handshake, preflight):
        assert reply.headers["Access-Control-Allow-Origin"] == origin
        assert reply.headers["Access-Control-Allow-Credentials"] == "true"
    assert (handshake.status, preflight.status, preflight.text) == (200, 204, "")
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"


# -- message: HTTP long-polling ---------------------------------------------------------


@pytest.mark.parametrize(
    "_case, payload",
    [
        ("one plain text packet", "4hello"),
        ("several plain text packets", RECORD_SEPARATOR.join(["4test1", "4test2", "4test3"])),
        # Engine.IO v4: binary in a polling payload is "b" + base64 (here <01 02 03 04>)
        ("plain text and binary packets", "4hello" + RECORD_SEPARATOR + "bAQIDBA=="),
        ("utf-8 text", "4h\u00e9llo \u20ac\U0001f600"),
    ],
)
async def test_polling_post_payload_is_echoed_on_the_next_get(wire: WireClient, _case: str, payload: str) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    # when
    push = await wire.push(ENGINE, sid, payload.encode())
    poll = await wire.poll(ENGINE, sid)
    # then
    assert (push.status, push.text) == (200, "ok")
    assert (poll.status, poll.text) == (200, payload)


async def test_polling_invalid_packet_format_closes_the_session(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    # when
    push = await wire.push(ENGINE, sid, "abc")
    poll = await wire.poll(ENGINE, sid)
    # then
    assert push.status == 400
    assert (poll.status, _json(poll.text)) == (400, UNKNOWN_SID)


async def test_polling_duplicate_get_closes_the_session(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    first = asyncio.create_task(wire.poll(ENGINE, sid))
    await asyncio.sleep(0.05)
    # when
    second = await wire.get(f"{ENGINE}?EIO=4&transport=polling&sid={sid}&t=burst")
    # then: the pending GET gets a CLOSE packet, the duplicate a 400 (Node answers 500; the
    # suite accepts both and the protocol doc says 400)
    assert second.status == 400
    pending = await first
    assert (pending.status, pending.text) == (200, "1")
    later = await wire.poll(ENGINE, sid)
    assert later.status == 400


async def test_polling_cancelled_get_closes_the_session(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    pending = asyncio.create_task(wire.poll(ENGINE, sid))
    await asyncio.sleep(0.05)
    # when: the client goes away during the pending GET (aiohttp drops the connection)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await asyncio.sleep(0.05)  # let the server see the disconnect (still < pingInterval)
    # then
    poll = await wire.poll(ENGINE, sid)
    assert (poll.status, _json(poll.text)) == (400, UNKNOWN_SID)


# -- message: WebSocket ------------------------------------------------------------------


@pytest.mark.parametrize(
    "_case, frame",
    [
        ("plain text packet", "4hello"),
        ("binary packet", bytes([1, 2, 3, 4])),
        ("utf-8 text packet", "4h\u00e9llo \U0001f600"),
    ],
)
async def test_websocket_message_is_echoed_as_it_came(wire: WireClient, _case: str, frame: str | bytes) -> None:
    # given
    ws = await wire.open_websocket(ENGINE)
    open_packet(str(await ws.receive()))
    # when
    await ws.send(frame)
    # then
    assert await ws.receive() == frame


async def test_websocket_invalid_packet_format_closes_the_session(wire: WireClient) -> None:
    # given
    ws = await wire.open_websocket(ENGINE)
    open_packet(str(await ws.receive()))
    # when
    await ws.send("abc")
    # then
    assert await ws.receive() == WsClosed(WS_PROTOCOL_ERROR)


# -- heartbeat ---------------------------------------------------------------------------


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_session_sends_pings_and_accepts_pongs(wire: WireClient, _case: str, path: str) -> None:
    # given
    sid = await wire.open_polling(path)
    for _ in range(3):
        # when
        poll = await wire.poll(path, sid)
        push = await wire.push(path, sid, "3")
        # then
        assert (poll.status, poll.text) == (200, "2")
        assert (push.status, push.text) == (200, "ok")


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_session_closes_upon_ping_timeout(wire: WireClient, _case: str, path: str) -> None:
    # given
    sid = await wire.open_polling(path)
    # when: nobody polls, so the PING queued at pingInterval is never answered
    await asyncio.sleep(HEARTBEAT_S + TIMER_MARGIN_S)
    # then
    poll = await wire.poll(path, sid)
    assert (poll.status, _json(poll.text)) == (400, UNKNOWN_SID)


@pytest.mark.parametrize("_case, path", PATHS)
async def test_websocket_session_sends_pings_and_accepts_pongs(wire: WireClient, _case: str, path: str) -> None:
    # given
    ws = await wire.open_websocket(path)
    open_packet(str(await ws.receive(answer_pings=False)))
    for _ in range(3):
        # when
        frame = await ws.receive(answer_pings=False)
        await ws.send("3")
        # then
        assert frame == "2"


@pytest.mark.parametrize("_case, path", PATHS)
async def test_websocket_session_closes_upon_ping_timeout(wire: WireClient, _case: str, path: str) -> None:
    # given
    ws = await wire.open_websocket(path)
    open_packet(str(await ws.receive(answer_pings=False)))
    opened_at = time.monotonic()
    # when: the client never answers the PING
    ping = await ws.receive(answer_pings=False)
    closed = await ws.receive(answer_pings=False)
    elapsed_s = time.monotonic() - opened_at
    # then: one PING, then a normal close once pingTimeout has passed
    assert (ping, closed) == ("2", WsClosed(WS_NORMAL))
    assert HEARTBEAT_S - 0.05 <= elapsed_s < HEARTBEAT_S + 1.0


# -- close -------------------------------------------------------------------------------


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_close_packet_releases_the_pending_get_and_ends_the_session(
    wire: WireClient, _case: str, path: str
) -> None:
    # given
    sid = await wire.open_polling(path)
    pending = asyncio.create_task(wire.poll(path, sid))
    await asyncio.sleep(0.05)
    # when
    push = await wire.push(path, sid, "1")
    # then: the pending GET ends with a NOOP, as the suite expects of the reference server
    assert (push.status, push.text) == (200, "ok")
    poll = await pending
    assert (poll.status, poll.text) == (200, "6")
    after = await wire.poll(path, sid)
    assert (after.status, _json(after.text)) == (400, UNKNOWN_SID)


@pytest.mark.parametrize("_case, path", PATHS)
async def test_websocket_close_packet_ends_the_session(wire: WireClient, _case: str, path: str) -> None:
    # given
    ws = await wire.open_websocket(path)
    sid = open_packet(str(await ws.receive()))["sid"]
    # when
    await ws.send("1")
    # then
    assert await ws.receive() == WsClosed(WS_NORMAL)
    poll = await wire.poll(path, sid)
    assert (poll.status, _json(poll.text)) == (400, UNKNOWN_SID)


# -- upgrade -----------------------------------------------------------------------------


async def test_upgrade_from_polling_to_websocket(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    ws = await wire.open_websocket(ENGINE, sid)
    # when
    await ws.send("2probe")
    probe_reply = await ws.receive(answer_pings=False)
    poll = await wire.poll(ENGINE, sid)
    await ws.send("5")
    await ws.send("4hello")
    # then: "3probe", a NOOP to end polling cleanly, then the websocket carries the session
    assert probe_reply == "3probe"
    assert (poll.status, poll.text) == (200, "6")
    assert await ws.receive() == "4hello"


async def test_upgrade_probe_releases_a_pending_get_with_a_noop(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    pending = asyncio.create_task(wire.poll(ENGINE, sid))
    await asyncio.sleep(0.05)
    ws = await wire.open_websocket(ENGINE, sid)
    # when
    await ws.send("2probe")
    # then
    assert await ws.receive(answer_pings=False) == "3probe"
    poll = await pending
    assert (poll.status, poll.text) == (200, "6")
    await ws.send("5")
    await _assert_session_alive_on(ws, ENGINE)


@pytest.mark.parametrize("_case, path", PATHS)
async def test_get_sent_after_the_probe_noop_is_answered_noop_not_held_until_a_ping(
    wire: WireClient, _case: str, path: str
) -> None:
    # given: an upgrade in progress whose probe NOOP already released one GET
    sid = await wire.open_polling(path)
    ws = await wire.open_websocket(path, sid)
    await ws.send("2probe")
    assert await ws.receive(answer_pings=False) == "3probe"
    first = await wire.poll(path, sid)
    # when: the client polls again before pausing (engine.io-client's race); a PING that
    # comes first is answered and the poll repeated, as the client would
    answers = []
    for _ in range(3):
        reply = await wire.poll(path, sid)
        answers.append(reply.text)
        if reply.text != "2":
            break
        await wire.push(path, sid, "3")
    # then: a NOOP comes (engine.io repeats it every 100 ms during the upgrade), not only PINGs
    assert (first.status, first.text) == (200, "6")
    assert answers[-1] == "6", answers
    await ws.send("5")
    await _assert_session_alive_on(ws, path)


async def test_get_pending_when_the_upgrade_completes_is_released_with_a_noop(wire: WireClient) -> None:
    # given: a GET pending during the upgrade
    sid = await wire.open_polling(ENGINE)
    ws = await wire.open_websocket(ENGINE, sid)
    await ws.send("2probe")
    assert await ws.receive(answer_pings=False) == "3probe"
    assert (await wire.poll(ENGINE, sid)).text == "6"
    pending = asyncio.create_task(wire.poll(ENGINE, sid))
    await asyncio.sleep(0.05)
    # when
    await ws.send("5")
    # then: that GET ends with a NOOP (or a PING it took first); the websocket goes on
    released = await pending
    assert (released.status, released.text) in ((200, "6"), (200, "2"))
    await _assert_session_alive_on(ws, ENGINE)


async def test_bad_frame_on_the_probe_websocket_closes_only_the_probe(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    ws = await wire.open_websocket(ENGINE, sid)
    # when: a message instead of "2probe"
    await ws.send("4hello")
    # then: the probe socket is closed, the polling session goes on
    assert await ws.receive(answer_pings=False) == WsClosed(WS_PROTOCOL_ERROR)
    push = await wire.push(ENGINE, sid, "4still polling")
    poll = await wire.poll(ENGINE, sid)
    assert (push.status, poll.status) == (200, 200)
    assert [p for p in poll.text.split(RECORD_SEPARATOR) if p != "2"] == ["4still polling"]


@pytest.mark.parametrize("_case, path", PATHS)
async def test_polling_get_after_the_upgrade_is_refused_400(wire: WireClient, _case: str, path: str) -> None:
    # given
    sid = await wire.open_polling(path)
    ws = await wire.open_websocket(path, sid)
    await ws.send("2probe")
    if path == ENGINE:
        assert await ws.receive(answer_pings=False) == "3probe"
    # when: the Socket.IO suite sends "5" right behind "2probe", without reading "3probe"
    await ws.send("5")
    if path != ENGINE:
        assert await ws.receive(answer_pings=False) == "3probe"
    poll = await wire.poll(path, sid)
    # then
    assert poll.status == 400
    await _assert_session_alive_on(ws, path)


@pytest.mark.parametrize("_case, path", PATHS)
async def test_websocket_with_same_sid_after_upgrade_is_accepted_then_closed(
    wire: WireClient, _case: str, path: str
) -> None:
    # given ("ignores WebSocket connection with same sid after upgrade")
    sid = await wire.open_polling(path)
    ws = await wire.open_websocket(path, sid)
    await ws.send("2probe")
    await ws.send("5")
    assert await ws.receive(answer_pings=False) == "3probe"
    # when
    second = await wire.websocket(f"{path}?EIO=4&transport=websocket&sid={sid}")
    # then: engine.io accepts it and closes it at once; the upgraded session goes on
    assert isinstance(second, RawWebSocket)
    assert await second.receive(answer_pings=False) == WsClosed(WS_POLICY_VIOLATION)
    await _assert_session_alive_on(ws, path)


async def test_websocket_with_same_sid_during_upgrade_is_accepted_then_closed(wire: WireClient) -> None:
    # given: a probe websocket in progress
    sid = await wire.open_polling(ENGINE)
    ws = await wire.open_websocket(ENGINE, sid)
    await ws.send("2probe")
    assert await ws.receive(answer_pings=False) == "3probe"
    # when
    second = await wire.websocket(f"{ENGINE}?EIO=4&transport=websocket&sid={sid}")
    # then: closed; the first probe still completes the upgrade
    assert isinstance(second, RawWebSocket)
    assert await second.receive(answer_pings=False) == WsClosed(WS_POLICY_VIOLATION)
    await ws.send("5")
    await _assert_session_alive_on(ws, ENGINE)


# -- maxPayload (SPEC section 3: 413 on polling, close 1009 on websocket) -------------------


async def test_polling_post_larger_than_max_payload_is_refused_413_and_ends_the_session(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    body = "4" + "x" * MAX_PAYLOAD_BYTES
    # when
    push = await wire.push(ENGINE, sid, body)
    poll = await wire.poll(ENGINE, sid)
    # then
    assert push.status == 413
    assert (poll.status, _json(poll.text)) == (400, UNKNOWN_SID)


async def test_polling_post_of_exactly_max_payload_is_accepted(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(ENGINE)
    body = "4" + "x" * (MAX_PAYLOAD_BYTES - 1)
    # when
    push = await wire.push(ENGINE, sid, body)
    poll = await wire.poll(ENGINE, sid)
    # then
    assert (push.status, push.text) == (200, "ok")
    assert (poll.status, poll.text) == (200, body)


@pytest.mark.parametrize(
    "_case, frame",
    [("text frame", "4" + "x" * MAX_PAYLOAD_BYTES), ("binary frame", b"\x00" * (MAX_PAYLOAD_BYTES + 1))],
)
async def test_websocket_frame_larger_than_max_payload_closes_1009(
    wire: WireClient, _case: str, frame: str | bytes
) -> None:
    # given
    ws = await wire.open_websocket(ENGINE)
    open_packet(str(await ws.receive()))
    # when
    await ws.send(frame)
    # then
    assert await ws.receive() == WsClosed(WS_MESSAGE_TOO_BIG)


def _json(text: str) -> object:
    return json.loads(text)
