"""Socket.IO v5 conformance of our protocol layer, case by case against socket.io's suite.

Checks, over raw websockets (and HTTP long-polling where the transport changes the encoding),
the "Socket.IO protocol" behaviours that socket.io's ``docs/socket.io-protocol/v5-test-suite``
expects of the reference server on ``/socket.io/``: connect (main, custom, unknown namespace,
invalid or missing handshake), disconnect, message (plain, binary attachments, acks, binary
acks) and the invalid formats that close the connection. The suite's "Engine.IO protocol"
block runs in ``test_conformance_engineio.py`` on both paths. Target: ``python -m
signaling.conformance`` under daphne and uvicorn (``conformance_fixtures``). Never imports
Django or the service layer.
"""

from __future__ import annotations

import json
import time

import pytest

# The helpers' asserts get pytest's messages only if rewritten, so before the import below.
pytest.register_assert_rewrite("signaling.tests.e2e.conformance_fixtures")

from signaling.tests.e2e.conformance_fixtures import (  # noqa: E402
    PING_INTERVAL_MS,
    PING_TIMEOUT_MS,
    RECORD_SEPARATOR,
    RawWebSocket,
    WireClient,
    WsClosed,
    open_packet,
)

pytestmark = pytest.mark.e2e
# Fixtures conformance_server and wire: a plugin named here, not in the shared root conftest.
pytest_plugins = ["signaling.tests.e2e.conformance_fixtures"]

SOCKETIO = "/socket.io/"
HEARTBEAT_S = (PING_INTERVAL_MS + PING_TIMEOUT_MS) / 1000
WS_NORMAL, WS_PROTOCOL_ERROR = 1000, 1002  # RFC 6455; see signaling/protocol/errors.py
# The suite's events: two placeholders, then two binary attachments <01 02 03> and <04 05 06>.
PLACEHOLDERS = '{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}'
ATTACHMENTS = [bytes([1, 2, 3]), bytes([4, 5, 6])]


async def _engine_websocket(wire: WireClient) -> tuple[RawWebSocket, str]:
    """A websocket-only Engine.IO session on /socket.io/; returns it and its Engine.IO sid."""
    ws = await wire.open_websocket(SOCKETIO)
    frame = await ws.receive(answer_pings=False)
    assert isinstance(frame, str)
    return ws, str(open_packet(frame)["sid"])


async def _connected_websocket(wire: WireClient, namespace_prefix: str = "") -> RawWebSocket:
    """A websocket connected to "/" (and ``namespace_prefix`` if given), auth packets read."""
    ws, _ = await _engine_websocket(wire)
    await ws.send("40")
    reply, auth = await ws.receive_many(2)
    assert isinstance(reply, str) and reply.startswith('40{"sid":"'), reply
    assert auth == '42["auth",{}]'
    if namespace_prefix:
        await ws.send(f"40{namespace_prefix}")
        reply, auth = await ws.receive_many(2)
        assert isinstance(reply, str) and reply.startswith(f'40{namespace_prefix}{{"sid":"'), reply
        assert auth == f'42{namespace_prefix}["auth",{{}}]'
    return ws


def _connect_sid(frame: str | bytes | WsClosed, prefix: str) -> str:
    """The Socket.IO sid of a CONNECT reply ``4 0 [<namespace>,] {"sid": ...}``: only that key."""
    assert isinstance(frame, str) and frame.startswith(prefix), frame
    data = json.loads(frame[len(prefix) :])
    assert list(data) == ["sid"] and isinstance(data["sid"], str) and data["sid"], frame
    return str(data["sid"])


def _packets(payload: str) -> list[str]:
    """The packets of a polling payload, PINGs left out (the test answers none)."""
    return [packet for packet in payload.split(RECORD_SEPARATOR) if packet != "2"]


# -- connect -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "_case, connect, reply_prefix, auth_event",
    [
        ("main namespace", "40", "40", '42["auth",{}]'),
        ("main namespace with a payload", '40{"token":"123"}', "40", '42["auth",{"token":"123"}]'),
        ("custom namespace", "40/custom,", "40/custom,", '42/custom,["auth",{}]'),
        (
            "custom namespace with a payload",
            '40/custom,{"token":"abc"}',
            "40/custom,",
            '42/custom,["auth",{"token":"abc"}]',
        ),
    ],
)
async def test_connect_replies_with_a_sid_then_the_app_echoes_the_auth_payload(
    wire: WireClient, _case: str, connect: str, reply_prefix: str, auth_event: str
) -> None:
    # given
    ws, eio_sid = await _engine_websocket(wire)
    # when
    await ws.send(connect)
    reply, auth = await ws.receive_many(2)
    # then: the Socket.IO sid is its own id, not the Engine.IO one (socket.io v3+)
    assert _connect_sid(reply, reply_prefix) != eio_sid
    assert auth == auth_event


async def test_connect_to_an_unknown_namespace_gets_connect_error_and_the_connection_stays(
    wire: WireClient,
) -> None:
    # given
    ws, _ = await _engine_websocket(wire)
    # when
    await ws.send("40/random")
    refusal = await ws.receive()
    # then
    assert refusal == '44/random,{"message":"Invalid namespace"}'
    await ws.send("40")
    _connect_sid(await ws.receive(), "40")


@pytest.mark.parametrize(
    "_case, first_packet",
    [
        ("invalid handshake (unknown packet type)", "4abc"),
        # Socket.IO v5: "If the server does not receive a CONNECT packet first, then it MUST
        # close the connection immediately."
        ("event before any connect", '42["message","too early"]'),
        ("event on a namespace never connected", '42/custom,["message","too early"]'),
    ],
)
async def test_first_packet_that_is_not_a_connect_closes_the_connection(
    wire: WireClient, _case: str, first_packet: str
) -> None:
    # given
    ws, _ = await _engine_websocket(wire)
    # when
    await ws.send(first_packet)
    # then
    assert await ws.receive() == WsClosed(WS_PROTOCOL_ERROR)


async def test_connection_without_handshake_is_closed(wire: WireClient) -> None:
    # given: a raw websocket that neither connects to a namespace nor answers pings
    ws, _ = await _engine_websocket(wire)
    opened_at = time.monotonic()
    # when
    ping = await ws.receive(answer_pings=False)
    closed = await ws.receive(answer_pings=False)
    elapsed_s = time.monotonic() - opened_at
    # then: closed by the heartbeat after pingInterval + pingTimeout. Difference: we have no
    # Socket.IO connectTimeout, so a client that answers pings but never sends CONNECT stays
    # (socket.io drops it after connectTimeout, 45 s by default); the suite's case, a raw
    # socket that answers nothing, closes all the same.
    assert (ping, closed) == ("2", WsClosed(WS_NORMAL))
    assert HEARTBEAT_S - 0.05 <= elapsed_s < HEARTBEAT_S + 1.0


# -- disconnect --------------------------------------------------------------------------


async def test_disconnect_from_the_main_namespace_gets_no_reply(wire: WireClient) -> None:
    # given
    ws = await _connected_websocket(wire)
    # when
    await ws.send("41")
    # then: "no response is expected": the next frame is the heartbeat's PING
    assert await ws.receive(answer_pings=False) == "2"


async def test_connect_then_disconnect_a_custom_namespace_keeps_the_main_one(wire: WireClient) -> None:
    # given
    ws = await _connected_websocket(wire)
    await ws.send("40/custom")
    reply, auth = await ws.receive_many(2)
    _connect_sid(reply, "40/custom,")
    assert auth == '42/custom,["auth",{}]'
    # when
    await ws.send("41/custom")
    await ws.send('42["message","message to main namespace"]')
    # then
    assert await ws.receive() == '42["message-back","message to main namespace"]'


async def test_event_on_a_namespace_after_leaving_it_closes_the_connection(wire: WireClient) -> None:
    # given
    ws = await _connected_websocket(wire)
    await ws.send("41")
    # when
    await ws.send('42["message","after leaving"]')
    # then: as socket.io, a packet for a namespace the client is not in closes the connection
    assert await ws.receive() == WsClosed(WS_PROTOCOL_ERROR)


# -- message -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "_case, namespace, sent, expected",
    [
        ("main namespace", "", '42["message",1,"2",{"3":[true]}]', '42["message-back",1,"2",{"3":[true]}]'),
        (
            "custom namespace",
            "/custom,",
            '42/custom,["message",1,"2",{"3":[true]}]',
            '42/custom,["message-back",1,"2",{"3":[true]}]',
        ),
    ],
)
async def test_plain_text_event_comes_back_as_message_back(
    wire: WireClient, _case: str, namespace: str, sent: str, expected: str
) -> None:
    # given
    ws = await _connected_websocket(wire, namespace)
    # when
    await ws.send(sent)
    # then
    assert await ws.receive() == expected


async def test_event_with_binary_attachments_comes_back_with_them(wire: WireClient) -> None:
    # given
    ws = await _connected_websocket(wire)
    # when
    await ws.send(f'452-["message",{PLACEHOLDERS}]')
    for attachment in ATTACHMENTS:
        await ws.send(attachment)
    # then
    assert await ws.receive_many(3) == [f'452-["message-back",{PLACEHOLDERS}]', *ATTACHMENTS]


@pytest.mark.parametrize(
    "_case, namespace, sent, expected",
    [
        (
            "main namespace",
            "",
            '42456["message-with-ack",1,"2",{"3":[false]}]',
            '43456[1,"2",{"3":[false]}]',
        ),
        ("custom namespace", "/custom,", '42/custom,7["message-with-ack","x"]', '43/custom,7["x"]'),
    ],
)
async def test_plain_text_event_with_an_ack_is_acked_with_its_arguments(
    wire: WireClient, _case: str, namespace: str, sent: str, expected: str
) -> None:
    # given
    ws = await _connected_websocket(wire, namespace)
    # when
    await ws.send(sent)
    # then
    assert await ws.receive() == expected


async def test_event_with_binary_attachments_and_an_ack_gets_a_binary_ack(wire: WireClient) -> None:
    # given
    ws = await _connected_websocket(wire)
    # when
    await ws.send(f'452-789["message-with-ack",{PLACEHOLDERS}]')
    for attachment in ATTACHMENTS:
        await ws.send(attachment)
    # then
    assert await ws.receive_many(3) == [f"462-789[{PLACEHOLDERS}]", *ATTACHMENTS]


@pytest.mark.parametrize(
    "_case, packet",
    [
        ("unknown packet type", "4abc"),
        ("invalid payload format", "42{}"),
        ("invalid ack id", '42abc["message-with-ack",1,"2",{"3":[false]}]'),
    ],
)
async def test_invalid_packet_format_closes_the_connection(wire: WireClient, _case: str, packet: str) -> None:
    # given
    ws = await _connected_websocket(wire)
    # when
    await ws.send(packet)
    # then
    assert await ws.receive() == WsClosed(WS_PROTOCOL_ERROR)


# -- the same exchanges over HTTP long-polling (binary as "b" + base64) ---------------------


async def test_polling_connect_event_and_binary_event_round_trip(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(SOCKETIO)
    # when
    connect = await wire.push(SOCKETIO, sid, "40")
    connected = await wire.poll(SOCKETIO, sid)
    # Engine.IO v4: each binary attachment is its own packet "b" + base64 (<01 02 03> = AQID)
    binary = await wire.push(SOCKETIO, sid, '451-["message",{"_placeholder":true,"num":0}]\x1ebAQID')
    echoed = await wire.poll(SOCKETIO, sid)
    # then
    assert [(r.status, r.text) for r in (connect, binary)] == [(200, "ok")] * 2
    reply, auth = _packets(connected.text)
    _connect_sid(reply, "40")
    assert auth == '42["auth",{}]'
    assert _packets(echoed.text) == ['451-["message-back",{"_placeholder":true,"num":0}]', "bAQID"]


async def test_polling_acks_plain_and_binary_events(wire: WireClient) -> None:
    # given
    sid = await wire.open_polling(SOCKETIO)
    await wire.push(SOCKETIO, sid, "40")
    await wire.poll(SOCKETIO, sid)
    # when: two packets in one payload
    push = await wire.push(
        SOCKETIO,
        sid,
        '4212["message-with-ack","a"]\x1e451-13["message-with-ack",{"_placeholder":true,"num":0}]\x1ebBAUG',
    )
    acks = await wire.poll(SOCKETIO, sid)
    # then
    assert (push.status, push.text) == (200, "ok")
    assert _packets(acks.text) == ['4312["a"]', '461-13[{"_placeholder":true,"num":0}]', "bBAUG"]


async def test_socketio_session_survives_the_upgrade_to_websocket(wire: WireClient) -> None:
    # given: connected to "/" over polling
    sid = await wire.open_polling(SOCKETIO)
    await wire.push(SOCKETIO, sid, "40")
    await wire.poll(SOCKETIO, sid)
    ws = await wire.open_websocket(SOCKETIO, sid)
    # when
    await ws.send("2probe")
    probe_reply = await ws.receive(answer_pings=False)
    await ws.send("5")
    await ws.send(f'452-["message",{PLACEHOLDERS}]')
    for attachment in ATTACHMENTS:
        await ws.send(attachment)
    # then: the namespace connected over polling carries binary frames over the websocket
    assert probe_reply == "3probe"
    assert await ws.receive_many(3) == [f'452-["message-back",{PLACEHOLDERS}]', *ATTACHMENTS]
