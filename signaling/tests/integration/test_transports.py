"""Engine.IO transports in-process: handshake, CONNECT and its refusals, long-polling, the
polling -> WebSocket upgrade, protocol abuse and the heartbeat (SPEC section 3).

The application is ``signaling.routing.build_application``, built per test after the
settings change; websocket sessions over ``WebsocketCommunicator``, polling requests over
``ApplicationCommunicator`` (see ``signaling/tests/integration/fixtures.py``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from channels.testing import ApplicationCommunicator

from rooms.tests.fixtures import ANY_TEXT
from rooms.tokens import mint_agent_token
from signaling.consumers.connection import Connection
from signaling.consumers.polling import EnginePollingConsumer
from signaling.protocol import CloseReason
from signaling.routing import session_config
from signaling.service.sockets import SignalingApp
from signaling.tests.integration.fixtures import ANY_SID, Harness

pytestmark = pytest.mark.django_db(transaction=True)

RECORD_SEPARATOR = "\x1e"  # Engine.IO v4: packets of one polling payload
TEXT_PLAIN = "text/plain; charset=UTF-8"
UNKNOWN_SID_BODY = {"code": 1, "message": "Session ID unknown"}


def connected_frames(client_id: str, agent_id: str) -> str:
    """The CONNECT reply and the `connected` event, as one polling payload."""
    return (
        f'40{{"sid":"{client_id}"}}'
        + RECORD_SEPARATOR
        + "42"
        + json.dumps(
            ["connected", {"clientId": client_id, "agentId": agent_id, "iceServers": []}], separators=(",", ":")
        )
    )


async def polling_session(signaling: Harness, agent_id: str) -> tuple[str, str]:
    """Handshake and CONNECT over long-polling; returns ``(eio_sid, client_id)``."""
    eio_sid = (await signaling.polling_handshake())["sid"]
    posted = await signaling.post(eio_sid, "40" + json.dumps({"token": mint_agent_token(agent_id)}))
    assert (posted.status, posted.text) == (200, "ok")
    reply = await (await signaling.get(eio_sid)).response()
    client_id = json.loads(reply.text.split(RECORD_SEPARATOR)[0][2:])["sid"]
    assert reply.text == connected_frames(client_id, agent_id)
    return eio_sid, client_id


# --- websocket handshake and CONNECT ----------------------------------------------------


async def test_websocket_open_packet_announces_settings(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given
    signaling_config(heartbeat_interval_ms=12345, heartbeat_timeout_ms=6789, max_payload_bytes=424242)
    # when
    client = await signaling.ws()
    # then
    assert client.open_packet == {
        "sid": ANY_SID,
        "upgrades": [],
        "pingInterval": 12345,
        "pingTimeout": 6789,
        "maxPayload": 424242,
    }
    assert await client.receive_nothing()


async def test_connect_with_valid_token_answers_sid_then_connected(signaling: Harness) -> None:
    # given
    client = await signaling.ws()
    # when
    await client.send("40" + json.dumps({"token": mint_agent_token("agent-alice")}))
    # then
    accepted = await client.frame()
    assert isinstance(accepted, str) and accepted.startswith("40")
    assert json.loads(accepted[2:]) == {"sid": ANY_SID}
    client_id = json.loads(accepted[2:])["sid"]
    assert await client.event() == ("connected", {"clientId": client_id, "agentId": "agent-alice", "iceServers": []})
    assert await client.receive_nothing()


@pytest.mark.parametrize(
    ("_case", "auth", "message"),
    [
        ("no_auth", None, "missing_token"),
        ("empty_auth", {}, "missing_token"),
        ("empty_token", {"token": ""}, "missing_token"),
        ("garbage_token", {"token": "garbage"}, "invalid_token"),
        ("non_string_token", {"token": 5}, "invalid_token"),
        ("wrong_secret", "wrong_secret", "invalid_token"),
        ("expired", "expired", "token_expired"),
    ],
)
async def test_connect_refusal_answers_connect_error_and_nothing_else(
    signaling: Harness,
    make_jwt: Callable[..., str],
    agent_token: Callable[..., str],
    _case: str,
    auth: Any,
    message: str,
) -> None:
    # given
    if auth == "wrong_secret":
        auth = {"token": make_jwt({"agentId": "agent-alice", "iat": 1, "exp": 4102444800}, key="x" * 64)}
    elif auth == "expired":
        auth = {"token": agent_token("agent-alice", ttl_s=-60)}
    client = await signaling.ws()
    # when
    await client.send("40" if auth is None else "40" + json.dumps(auth))
    # then
    assert await client.frame() == "44" + json.dumps({"message": message}, separators=(",", ":"))
    # and the refused namespace ignores what follows
    await client.send('421["join_room",{"roomId":"r_x"}]')
    assert await client.receive_nothing()


@pytest.mark.parametrize("_case", ["query_token", "authorization_header"])
async def test_connect_takes_the_token_from_query_or_authorization_header(signaling: Harness, _case: str) -> None:
    # given
    token = mint_agent_token("agent-bob")
    if _case == "query_token":
        client = await signaling.ws(f"token={token}")
    else:
        client = await signaling.ws(headers=[(b"authorization", f"Bearer {token}".encode())])
    # when
    await client.send("40")
    # then
    accepted = await client.frame()
    assert isinstance(accepted, str)
    client_id = json.loads(accepted[2:])["sid"]
    assert accepted == f'40{{"sid":"{client_id}"}}'
    assert await client.event() == ("connected", {"clientId": client_id, "agentId": "agent-bob", "iceServers": []})


async def test_connect_to_unknown_namespace_answers_connect_error(signaling: Harness) -> None:
    # given
    client = await signaling.ws()
    # when
    await client.send("40/admin," + json.dumps({"token": mint_agent_token("agent-alice")}))
    # then
    assert await client.frame() == '44/admin,{"message":"Invalid namespace"}'
    assert await client.receive_nothing()


# --- long-polling -----------------------------------------------------------------------


async def test_polling_handshake_get_answers_open_packet_with_websocket_upgrade(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given
    signaling_config(heartbeat_interval_ms=25000, heartbeat_timeout_ms=5000, max_payload_bytes=100000)
    # when
    response = await (await signaling.get()).response()
    # then
    assert response.status == 200
    assert response.headers["content-type"] == TEXT_PLAIN
    assert response.text[0] == "0"
    assert json.loads(response.text[1:]) == {
        "sid": ANY_SID,
        "upgrades": ["websocket"],
        "pingInterval": 25000,
        "pingTimeout": 5000,
        "maxPayload": 100000,
    }


async def test_polling_post_connect_then_get_returns_connect_reply(signaling: Harness) -> None:
    # given
    eio_sid = (await signaling.polling_handshake())["sid"]
    # when
    posted = await signaling.post(eio_sid, "40" + json.dumps({"token": mint_agent_token("agent-alice")}))
    reply = await (await signaling.get(eio_sid)).response()
    # then
    assert (posted.status, posted.text) == (200, "ok")
    assert reply.status == 200
    client_id = json.loads(reply.text.split(RECORD_SEPARATOR)[0][2:])["sid"]
    assert client_id == ANY_SID
    assert reply.text == connected_frames(client_id, "agent-alice")


async def test_pending_get_is_released_by_data_from_a_peer(signaling: Harness, open_room: Any) -> None:
    # given a polling client in a room, its GET pending
    room = await open_room()
    eio_sid, _client_id = await polling_session(signaling, "agent-alice")
    await signaling.post(eio_sid, '42["join_room",' + json.dumps({"roomId": room.id}) + "]")
    joined = await (await signaling.get(eio_sid)).response()
    assert joined.text.startswith('42["joined",')
    pending = await signaling.get(eio_sid)
    assert await pending.is_pending()
    # when a websocket peer joins the room
    bob = await signaling.in_room("agent-bob", room.id)
    # then
    response = await pending.response()
    assert response.status == 200
    assert response.text == "42" + json.dumps(
        ["user_joined", {"roomId": room.id, "clientId": bob.client_id, "agentId": "agent-bob", "muted": False}],
        separators=(",", ":"),
    )


async def test_upgrade_probe_releases_pending_get_and_moves_buffered_packets_to_websocket(
    signaling: Harness, open_room: Any
) -> None:
    # given a polling client in a room with a peer, and its GET pending
    room = await open_room()
    eio_sid, client_id = await polling_session(signaling, "agent-alice")
    await signaling.post(eio_sid, '42["join_room",' + json.dumps({"roomId": room.id}) + "]")
    await (await signaling.get(eio_sid)).response()
    bob = await signaling.in_room("agent-bob", room.id)
    assert (await (await signaling.get(eio_sid)).response()).text.startswith('42["user_joined",')
    pending = await signaling.get(eio_sid)
    probe = await signaling.ws(f"sid={eio_sid}", expect_open=False)
    assert probe.close_code is None
    # when the probe is pinged
    await probe.send("2probe")
    # then it answers, and the pending GET is released with a NOOP
    assert await probe.frame() == "3probe"
    released = await pending.response()
    assert (released.status, released.text) == (200, "6")
    # when a packet for alice arrives before the upgrade completes, then "5" is sent
    assert await bob.call("offer", {"to": client_id, "sdp": "v=0"}) == {"ok": True}
    await probe.send("5")
    # then the buffered packet comes on the websocket, which now carries the session
    assert await probe.event() == (
        "offer",
        {"sdp": "v=0", "from": bob.client_id, "agentId": "agent-bob", "roomId": room.id},
    )
    await probe.send('421["leave_room",{}]')
    assert await probe.frame() == "431" + json.dumps([{"ok": True, "roomId": room.id}], separators=(",", ":"))
    # and polling is over for this session
    after = await (await signaling.get(eio_sid)).response()
    assert after.status == 400


async def test_second_get_while_one_is_pending_answers_400_and_ends_the_session(
    signaling: Harness, open_room: Any
) -> None:
    # given a polling client in a room with a peer, its GET pending
    room = await open_room()
    eio_sid, client_id = await polling_session(signaling, "agent-alice")
    await signaling.post(eio_sid, '42["join_room",' + json.dumps({"roomId": room.id}) + "]")
    await (await signaling.get(eio_sid)).response()
    bob = await signaling.in_room("agent-bob", room.id)
    assert (await (await signaling.get(eio_sid)).response()).text.startswith('42["user_joined",')
    first = await signaling.get(eio_sid)
    assert await first.is_pending()
    # when
    second = await (await signaling.get(eio_sid)).response()
    # then
    assert second.status == 400
    assert second.json() == {"code": 3, "message": ANY_TEXT}
    assert (await first.response()).text == "1"  # Engine.IO CLOSE
    assert await bob.event() == (
        "user_left",
        {"roomId": room.id, "clientId": client_id, "agentId": "agent-alice", "reason": "disconnected"},
    )
    gone = await signaling.post(eio_sid, "3")
    assert (gone.status, gone.json()) == (400, UNKNOWN_SID_BODY)


async def test_post_to_unknown_sid_answers_400_session_id_unknown(signaling: Harness) -> None:
    # when
    response = await signaling.post("no-such-session", "40")
    # then
    assert response.status == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == UNKNOWN_SID_BODY


async def test_oversize_polling_post_answers_413_and_ends_the_session(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given
    signaling_config(max_payload_bytes=1000)
    eio_sid, _ = await polling_session(signaling, "agent-alice")
    # when
    response = await signaling.post(eio_sid, '42["offer",' + json.dumps({"sdp": "x" * 2000}) + "]")
    # then
    assert response.status == 413
    assert response.json() == {"code": 3, "message": ANY_TEXT}
    gone = await signaling.post(eio_sid, "3")
    assert (gone.status, gone.json()) == (400, UNKNOWN_SID_BODY)


async def test_polling_body_past_max_payload_is_answered_at_the_limit_and_the_rest_not_kept(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given a polling consumer of the application, fed by hand in 8 KiB chunks
    signaling_config(max_payload_bytes=100_000)
    eio_sid, _ = await polling_session(signaling, "agent-alice")
    consumer = EnginePollingConsumer(app=SignalingApp(), session_config=session_config())
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/socket.io/",
        "query_string": f"EIO=4&transport=polling&sid={eio_sid}".encode(),
        "headers": [],
        "client": ("127.0.0.1", 50000),
    }
    communicator = ApplicationCommunicator(consumer, scope)
    chunk = b"x" * 8192
    for _ in range(13):  # 106,496 bytes: the 13th chunk crosses the limit
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": True})
    # when the body goes on (20 MB more)
    start = await communicator.receive_output(2)
    for _ in range(2500):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": True})
    await communicator.send_input({"type": "http.request", "body": b"", "more_body": False})
    await communicator.receive_output(2)  # the 413 body
    # then the request was answered 413 at the limit, once, and nothing past it was kept
    assert start["status"] == 413
    assert await communicator.receive_nothing(0.2)
    assert consumer.body == []
    gone = await signaling.post(eio_sid, "3")
    assert (gone.status, gone.json()) == (400, UNKNOWN_SID_BODY)
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(2)


async def test_oversize_websocket_frame_closes_with_1009(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given
    signaling_config(max_payload_bytes=1000)
    alice = await signaling.connect("agent-alice")
    # when
    await alice.emit("offer", {"sdp": "x" * 2000})
    # then
    assert await alice.wait_closed() == 1009
    assert alice.backlog == deque()


async def test_websocket_with_unknown_sid_is_accepted_then_closed(signaling: Harness) -> None:
    # when
    client = await signaling.ws("sid=no-such-session", expect_open=False)
    # then: accepted (as engine.io does), then closed before any frame
    assert client.close_code is None
    assert await client.wait_closed() == 1008
    assert client.backlog == deque()


# --- protocol abuse and heartbeat -------------------------------------------------------


@pytest.mark.parametrize(
    ("_case", "frame"),
    [
        ("unknown_packet_type", "garbage"),
        ("event_not_json", "42not json"),
        ("event_not_an_array", '42{"event":"offer"}'),
        ("client_ping", "2"),
        ("second_connect", '40{"token":"x"}'),
    ],
)
async def test_invalid_frame_closes_only_that_session_and_room_hears_disconnected(
    signaling: Harness, open_room: Any, _case: str, frame: str
) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert (await alice.event())[0] == "user_joined"
    # when
    await alice.send(frame)
    # then
    assert await alice.wait_closed() == 1002
    assert alice.backlog == deque()
    assert await bob.event() == (
        "user_left",
        {"roomId": room.id, "clientId": alice.client_id, "agentId": "agent-alice", "reason": "disconnected"},
    )
    assert await bob.call("leave_room", {}) == {"ok": True, "roomId": room.id}


async def test_peer_that_stops_answering_pings_is_dropped_and_room_hears_timeout(
    signaling: Harness, signaling_config: Callable[..., None], open_room: Any
) -> None:
    # given a tiny heartbeat and alice and bob in the room (both answering pings so far: a
    # slow join under load must not time alice out before the test begins)
    signaling_config(heartbeat_interval_ms=100, heartbeat_timeout_ms=100)
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    # when alice stops answering pings (her user_joined frame for bob is already queued)
    alice.answers_pings = False
    # then
    assert await bob.event(timeout=5) == (
        "user_left",
        {"roomId": room.id, "clientId": alice.client_id, "agentId": "agent-alice", "reason": "timeout"},
    )
    assert await alice.wait_closed(timeout=5) == 1000
    assert list(alice.backlog) == [
        "42"
        + json.dumps(
            ["user_joined", {"roomId": room.id, "clientId": bob.client_id, "agentId": "agent-bob", "muted": False}],
            separators=(",", ":"),
        ),
        "2",
    ]


# --- more ways to end or keep a session -------------------------------------------------


async def polling_member(signaling: Harness, room_id: str, agent_id: str) -> tuple[str, str]:
    """A polling session that has joined ``room_id`` (everything queued for it read)."""
    eio_sid, client_id = await polling_session(signaling, agent_id)
    await signaling.post(eio_sid, '42["join_room",' + json.dumps({"roomId": room_id}) + "]")
    joined = await (await signaling.get(eio_sid)).response()
    assert joined.text.startswith('42["joined",')
    return eio_sid, client_id


async def test_client_gone_during_pending_get_ends_the_session(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    bob = await signaling.in_room("agent-bob", room.id)
    eio_sid, client_id = await polling_member(signaling, room.id, "agent-alice")
    assert (await bob.event())[0] == "user_joined"
    pending = await signaling.get(eio_sid)
    assert await pending.is_pending()
    # when
    await pending.client_gone()
    # then
    assert await bob.event() == (
        "user_left",
        {"roomId": room.id, "clientId": client_id, "agentId": "agent-alice", "reason": "disconnected"},
    )
    gone = await signaling.post(eio_sid, "3")
    assert (gone.status, gone.json()) == (400, UNKNOWN_SID_BODY)


@pytest.mark.parametrize(
    ("_case", "frame", "close_code"), [("engine_io_close", "1", 1000), ("socket_io_disconnect", "41", None)]
)
async def test_client_close_or_disconnect_packet_tells_the_room_disconnected(
    signaling: Harness, open_room: Any, _case: str, frame: str, close_code: int | None
) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert (await alice.event())[0] == "user_joined"
    # when
    await alice.send(frame)
    # then
    assert await bob.event() == (
        "user_left",
        {"roomId": room.id, "clientId": alice.client_id, "agentId": "agent-alice", "reason": "disconnected"},
    )
    if close_code is None:
        assert await alice.receive_nothing()
    else:
        assert await alice.wait_closed() == close_code
    assert await bob.receive_nothing()


async def test_socket_io_disconnect_then_connect_again_gets_a_new_client_id(signaling: Harness) -> None:
    # given
    alice = await signaling.connect("agent-alice")
    await alice.send("41")
    # when
    await alice.send("40" + json.dumps({"token": mint_agent_token("agent-alice")}))
    # then
    accepted = await alice.frame()
    assert isinstance(accepted, str)
    client_id = json.loads(accepted[2:])["sid"]
    assert client_id != alice.client_id
    assert await alice.event() == ("connected", {"clientId": client_id, "agentId": "agent-alice", "iceServers": []})


async def test_probe_websocket_that_goes_away_leaves_polling_working(signaling: Harness) -> None:
    # given
    eio_sid, _client_id = await polling_session(signaling, "agent-alice")
    probe = await signaling.ws(f"sid={eio_sid}", expect_open=False)
    await probe.send("2probe")
    assert await probe.frame() == "3probe"
    assert (await (await signaling.get(eio_sid)).response()).text == "6"
    # when
    await probe.disconnect()
    # then
    await signaling.post(eio_sid, '421["leave_room",{}]')
    reply = await (await signaling.get(eio_sid)).response()
    assert reply.status == 200
    assert json.loads(reply.text[3:]) == [{"ok": False, "error": {"code": "not_in_room", "message": ANY_TEXT}}]


async def test_second_probe_while_upgrading_is_accepted_then_closed(signaling: Harness) -> None:
    # given
    eio_sid, _ = await polling_session(signaling, "agent-alice")
    first = await signaling.ws(f"sid={eio_sid}", expect_open=False)
    assert first.close_code is None
    # when
    second = await signaling.ws(f"sid={eio_sid}", expect_open=False)
    # then
    assert await second.wait_closed() == 1008
    assert second.backlog == deque()
    await first.send("2probe")
    assert await first.frame() == "3probe"


async def test_polling_post_with_several_packets_answers_each_in_order(signaling: Harness) -> None:
    # given
    eio_sid, _ = await polling_session(signaling, "agent-alice")
    # when
    posted = await signaling.post(eio_sid, '42["leave_room",{}]' + RECORD_SEPARATOR + '42["dance",{}]')
    reply = await (await signaling.get(eio_sid)).response()
    # then
    assert (posted.status, posted.text) == (200, "ok")
    first, second = reply.text.split(RECORD_SEPARATOR)
    assert json.loads(first[2:]) == ["error", {"code": "not_in_room", "message": ANY_TEXT, "event": "leave_room"}]
    assert json.loads(second[2:]) == ["error", {"code": "unknown_event", "message": ANY_TEXT, "event": "dance"}]


async def test_polling_session_answering_pings_stays_open(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given a short ping interval, and a timeout long enough for a loaded machine's round trip
    signaling_config(heartbeat_interval_ms=100, heartbeat_timeout_ms=2000)
    eio_sid, _ = await polling_session(signaling, "agent-alice")
    # when three pings come through GETs and are answered by POSTs
    for _ in range(3):
        ping = await (await signaling.get(eio_sid)).response(timeout=5)
        assert (ping.status, ping.text) == (200, "2")
        pong = await signaling.post(eio_sid, "3")
        assert (pong.status, pong.text) == (200, "ok")
    # then
    await signaling.post(eio_sid, '421["leave_room",{}]')
    reply = await (await signaling.get(eio_sid)).response()
    assert reply.text.startswith("431[")


@pytest.mark.parametrize(
    ("_case", "origin", "allowed"),
    [("listed_origin", b"https://app.example", True), ("unlisted_origin", b"https://evil.example", False)],
)
async def test_polling_echoes_a_listed_origin_only(
    signaling: Harness, signaling_config: Callable[..., None], _case: str, origin: bytes, allowed: bool
) -> None:
    # given
    signaling_config(cors_origins=("https://app.example",))
    # when
    response = await (await signaling.get(headers=[(b"origin", origin)])).response()
    # then
    assert response.status == 200
    assert response.headers.get("access-control-allow-origin") == (origin.decode() if allowed else None)


CORS_PREFLIGHT = [
    (b"origin", b"https://app.example"),
    (b"access-control-request-method", b"POST"),
    (b"access-control-request-headers", b"content-type,x-agent-link-trace"),
]


async def test_polling_preflight_echoes_the_requested_headers_for_an_allowed_origin(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given: a browser client with extraHeaders (any header but the usual two)
    signaling_config(cors_origins=("https://app.example",))
    # when
    response = await (await signaling.request("OPTIONS", headers=CORS_PREFLIGHT)).response()
    # then: as the cors package that socket.io uses, plus a Max-Age
    assert response.status == 204
    cors = {k: v for k, v in response.headers.items() if k.startswith("access-control-") or k == "vary"}
    assert cors == {
        "access-control-allow-origin": "https://app.example",
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "GET, POST, OPTIONS",
        "access-control-allow-headers": "content-type,x-agent-link-trace",
        "access-control-max-age": "7200",
        "vary": "Origin, Access-Control-Request-Headers",
    }


async def test_polling_preflight_from_an_unlisted_origin_gets_no_cors_headers(
    signaling: Harness, signaling_config: Callable[..., None]
) -> None:
    # given
    signaling_config(cors_origins=("https://app.example",))
    headers = [(b"origin", b"https://evil.example"), *CORS_PREFLIGHT[1:]]
    # when
    response = await (await signaling.request("OPTIONS", headers=headers)).response()
    # then
    assert response.status == 204
    assert [k for k in response.headers if k.startswith("access-control-")] == []


@pytest.mark.parametrize(
    ("_case", "requested"),
    [("none requested", None), ("not a header list", b"x-a;rm -rf"), ("too long", b"x-" + b"a" * 5000)],
)
async def test_polling_preflight_without_an_echoable_request_allows_the_default_headers(
    signaling: Harness, signaling_config: Callable[..., None], _case: str, requested: bytes | None
) -> None:
    # given
    signaling_config(cors_origins=("*",))
    headers = [(b"origin", b"https://app.example")]
    if requested is not None:
        headers.append((b"access-control-request-headers", requested))
    # when
    response = await (await signaling.request("OPTIONS", headers=headers)).response()
    # then
    assert response.status == 204
    assert response.headers["access-control-allow-headers"] == "content-type, authorization"
    assert response.headers["access-control-max-age"] == "7200"


async def test_polling_peer_that_stops_answering_pings_is_dropped_and_room_hears_timeout(
    signaling: Harness, signaling_config: Callable[..., None], open_room: Any
) -> None:
    # given a short heartbeat and a polling member that never answers the ping (the interval
    # leaves a loaded machine time to join before the first ping)
    signaling_config(heartbeat_interval_ms=1500, heartbeat_timeout_ms=100)
    room = await open_room()
    bob = await signaling.in_room("agent-bob", room.id)
    eio_sid, client_id = await polling_member(signaling, room.id, "agent-alice")
    assert (await bob.event())[0] == "user_joined"
    # when the ping goes unanswered
    ping = await (await signaling.get(eio_sid)).response(timeout=5)
    closing = await (await signaling.get(eio_sid)).response(timeout=5)
    # then
    assert (ping.text, closing.text) == ("2", "1")
    assert await bob.event(timeout=5) == (
        "user_left",
        {"roomId": room.id, "clientId": client_id, "agentId": "agent-alice", "reason": "timeout"},
    )


async def test_session_that_never_connects_a_namespace_is_closed_after_connect_timeout(
    signaling: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: socket.io's connectTimeout, shortened for the test
    monkeypatch.setattr("signaling.routing.CONNECT_TIMEOUT_MS", 200)
    client = await signaling.ws()
    # when: the client opens the Engine.IO session but never sends CONNECT
    # then
    assert await client.wait_closed() == 1000


async def test_connected_session_outlives_the_connect_timeout(
    signaling: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setattr("signaling.routing.CONNECT_TIMEOUT_MS", 200)
    client = await signaling.ws()
    await client.send("40" + json.dumps({"token": mint_agent_token("agent-alice")}))
    assert (await client.frame()).startswith('40{"sid":')
    assert (await client.frame()).startswith('42["connected",')
    # when: longer than the connect timeout passes
    # then: the socket is still served
    assert await client.receive_nothing(timeout=0.5)
    reply = await client.call("leave_room", {})
    assert reply == {"ok": False, "error": {"code": "not_in_room", "message": ANY_TEXT}}


async def test_a_session_closed_by_a_drain_closes_its_upgrade_probe_too(signaling: Harness) -> None:
    # given a polling session with an upgrade probe that never sends "5"
    eio_sid, _ = await polling_session(signaling, "agent-alice")
    probe = await signaling.ws(f"sid={eio_sid}", expect_open=False)
    await probe.send("2probe")
    assert await probe.frame() == "3probe"
    # when the drain closes the session (signaling.lifecycle: the same call for every session)
    await Connection.registry[eio_sid].close(CloseReason.SERVER_SHUTTING_DOWN)
    # then the probe websocket is closed too (it held the process), and the sid is gone
    assert await probe.wait_closed() == 1000
    assert eio_sid not in Connection.registry
    refused = await (await signaling.get(eio_sid)).response()
    assert (refused.status, json.loads(refused.text)) == (400, UNKNOWN_SID_BODY)
