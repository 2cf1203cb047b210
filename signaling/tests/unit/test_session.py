"""EngineSession: one test per state transition, legal and illegal (no clock, no I/O)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from signaling.protocol import (
    TRANSITIONS,
    CloseReason,
    EioMessageReceived,
    EngineSession,
    LocalProtocolError,
    RemoteProtocolError,
    SessionClosed,
    SessionConfig,
    SessionEvent,
    SessionState,
    SioAckReceived,
    SioConnect,
    SioDisconnect,
    SioEventReceived,
    Transport,
    UpgradeCompleted,
    encode_ack,
    encode_event,
    transition,
)
from signaling.protocol.session import MAX_NAMESPACE_CHARS, MAX_REFUSED_NAMESPACES

CONFIG = SessionConfig(ping_interval_ms=25000, ping_timeout_ms=20000, max_payload_bytes=1_000_000)
SMALL = SessionConfig(ping_interval_ms=25000, ping_timeout_ms=20000, max_payload_bytes=100)
PLACEHOLDER_0 = '{"_placeholder":true,"num":0}'
PLACEHOLDER_1 = '{"_placeholder":true,"num":1}'


def handshake(upgrades: str, max_payload: int = 1000000) -> str:
    return (
        f'0{{"sid":"eio-1","upgrades":{upgrades},"pingInterval":25000,"pingTimeout":20000,"maxPayload":{max_payload}}}'
    )


def ws_session(config: SessionConfig = CONFIG, *, socketio: bool = True) -> EngineSession:
    session = EngineSession("eio-1", config, now=0.0, transport=Transport.WEBSOCKET, socketio=socketio)
    session.outgoing_ws()  # the handshake
    return session


def connected_ws_session(config: SessionConfig = CONFIG) -> EngineSession:
    session = ws_session(config)
    assert session.receive_ws("40", now=0.1) == [SioConnect("/", None)]
    session.accept_namespace("/", "client-1")
    assert session.outgoing_ws() == ['40{"sid":"client-1"}']
    return session


def polling_session(config: SessionConfig = CONFIG) -> EngineSession:
    session = EngineSession("eio-1", config, now=0.0, transport=Transport.POLLING)
    session.take_polling_payload()  # the handshake
    return session


def connected_polling_session() -> EngineSession:
    session = polling_session()
    assert session.receive_polling_post("40", now=0.1) == [SioConnect("/", None)]
    session.accept_namespace("/", "client-1")
    assert session.take_polling_payload() == '40{"sid":"client-1"}'
    return session


def closed_with(events: list[Any]) -> RemoteProtocolError:
    """Assert the events end with SessionClosed(PARSE_ERROR, error); return the error."""
    last = events[-1]
    assert isinstance(last, SessionClosed)
    assert last.reason is CloseReason.PARSE_ERROR
    assert last.error is not None
    return last.error


# --- handshake -------------------------------------------------------------------------


def test_websocket_handshake_announces_no_upgrades() -> None:
    # given / when
    session = EngineSession("eio-1", CONFIG, now=0.0, transport=Transport.WEBSOCKET)
    # then
    assert session.outgoing_ws() == [handshake("[]")]
    assert session.state is SessionState.OPEN
    assert session.transport is Transport.WEBSOCKET
    assert session.sid == "eio-1"
    assert session.config is CONFIG


def test_polling_handshake_offers_the_websocket_upgrade() -> None:
    # given / when
    session = EngineSession("eio-1", CONFIG, now=0.0, transport=Transport.POLLING)
    # then
    assert session.has_polling_data() is True
    assert session.take_polling_payload() == handshake('["websocket"]')
    assert session.has_polling_data() is False


def test_polling_handshake_offers_nothing_when_upgrades_are_disabled() -> None:
    # given
    config = SessionConfig(upgrades_enabled=False)
    # when
    session = EngineSession("eio-1", config, now=0.0, transport=Transport.POLLING)
    # then
    assert session.take_polling_payload() == handshake("[]")


def test_config_refuses_non_positive_values() -> None:
    # given / when / then
    with pytest.raises(LocalProtocolError):
        SessionConfig(ping_interval_ms=0)


# --- heartbeat -------------------------------------------------------------------------


def test_first_ping_is_sent_one_interval_after_open() -> None:
    # given
    session = ws_session()
    assert session.next_deadline() == 25.0
    # when
    early = session.handle_timer(now=24.9)
    early_frames = session.outgoing_ws()
    due = session.handle_timer(now=25.0)
    # then
    assert early == [] and early_frames == []
    assert due == []
    assert session.outgoing_ws() == ["2"]
    assert session.next_deadline() == 45.0  # the pong deadline


def test_pong_schedules_the_next_ping_one_interval_after_the_previous_ping() -> None:
    # given
    session = connected_ws_session()
    session.handle_timer(now=25.0)
    session.outgoing_ws()
    # when
    events = session.receive_ws("3", now=30.0)
    # then
    assert events == []
    assert session.next_deadline() == 50.0
    assert session.handle_timer(now=50.0) == []
    assert session.outgoing_ws() == ["2"]


def test_missing_pong_closes_with_ping_timeout_after_interval_plus_timeout() -> None:
    # given
    session = ws_session()
    session.handle_timer(now=25.0)
    session.outgoing_ws()
    # when
    before = session.handle_timer(now=44.99)
    at_deadline = session.handle_timer(now=45.0)
    # then
    assert before == []
    assert at_deadline == [SessionClosed(CloseReason.PING_TIMEOUT)]
    assert session.state is SessionState.CLOSED
    assert session.is_closed is True
    assert session.next_deadline() is None
    assert session.handle_timer(now=100.0) == []
    assert session.outgoing_ws() == []  # WebSocket: nothing queued, the adapter closes


def test_polling_ping_timeout_queues_close_and_refuses_the_next_get() -> None:
    # given
    session = polling_session()
    session.handle_timer(now=25.0)
    assert session.take_polling_payload() == "2"
    # when
    events = session.handle_timer(now=45.0)
    # then
    assert events == [SessionClosed(CloseReason.PING_TIMEOUT)]
    assert session.take_polling_payload() == "1"
    with pytest.raises(RemoteProtocolError) as excinfo:
        session.begin_poll()
    assert excinfo.value.http_status == 400


def test_polling_ping_and_pong_keep_the_session_open() -> None:
    # given
    session = connected_polling_session()
    for ping_at in (25.0, 50.0, 75.0):
        # when
        session.handle_timer(now=ping_at)
        payload = session.take_polling_payload()
        events = session.receive_polling_post("3", now=ping_at + 0.01)
        # then
        assert payload == "2"
        assert events == []
        assert session.next_deadline() == ping_at + 25.0


# --- connect timeout (socket.io connectTimeout) -----------------------------------------

SHORT_CONNECT = SessionConfig(ping_interval_ms=25000, ping_timeout_ms=20000, connect_timeout_ms=5000)


@pytest.mark.parametrize("_case, transport", [("websocket", Transport.WEBSOCKET), ("polling", Transport.POLLING)])
def test_session_without_a_namespace_is_closed_at_the_connect_deadline(_case: str, transport: Transport) -> None:
    # given
    session = EngineSession("eio-1", SHORT_CONNECT, now=0.0, transport=transport)
    assert session.next_deadline() == 5.0
    # when
    early = session.handle_timer(now=4.9)
    due = session.handle_timer(now=5.0)
    # then
    assert early == []
    assert due == [SessionClosed(CloseReason.SERVER_CLOSE)]
    assert session.is_closed is True
    assert session.next_deadline() is None


def test_accepted_namespace_cancels_the_connect_deadline() -> None:
    # given
    session = EngineSession("eio-1", SHORT_CONNECT, now=0.0, transport=Transport.WEBSOCKET)
    session.outgoing_ws()
    assert session.receive_ws("40", now=1.0) == [SioConnect("/", None)]
    # when
    session.accept_namespace("/", "client-1")
    # then
    assert session.next_deadline() == 25.0
    assert session.handle_timer(now=5.0) == []
    assert session.is_closed is False


def test_rejected_namespace_leaves_the_connect_deadline() -> None:
    # given
    session = EngineSession("eio-1", SHORT_CONNECT, now=0.0, transport=Transport.WEBSOCKET)
    session.outgoing_ws()
    session.receive_ws('40{"token":"bad"}', now=1.0)
    # when
    session.reject_namespace("/", "invalid_token")
    # then
    assert session.next_deadline() == 5.0
    assert session.handle_timer(now=5.0) == [SessionClosed(CloseReason.SERVER_CLOSE)]


def test_bare_engine_io_session_has_no_connect_deadline() -> None:
    # given / when
    session = EngineSession("eio-1", SHORT_CONNECT, now=0.0, transport=Transport.WEBSOCKET, socketio=False)
    # then
    assert session.next_deadline() == 25.0


# --- polling POST ----------------------------------------------------------------------


def test_post_after_post_is_accepted_once_the_first_ended() -> None:
    # given
    session = connected_polling_session()
    assert session.begin_post(body_size_bytes=2) == []
    session.receive_polling_post("3", now=1.0)
    session.end_post()
    # when
    events = session.begin_post(body_size_bytes=2)
    # then
    assert events == []
    assert session.is_closed is False


def test_overlapping_post_closes_the_session_with_transport_error() -> None:
    # given: a POST whose events are still being handled
    session = connected_polling_session()
    assert session.begin_post(body_size_bytes=2) == []
    # when
    events = session.begin_post(body_size_bytes=2)
    # then: engine.io's "data request overlap from client", HTTP 400
    assert len(events) == 1
    closed = events[0]
    assert isinstance(closed, SessionClosed) and closed.reason is CloseReason.TRANSPORT_ERROR
    assert closed.error is not None and closed.error.http_status == 400
    assert session.is_closed is True
    assert session.take_polling_payload() == "1"


def test_post_over_max_payload_closes_the_session_with_413() -> None:
    # given
    session = EngineSession("eio-1", SMALL, now=0.0, transport=Transport.POLLING)
    session.take_polling_payload()
    # when
    events = session.begin_post(body_size_bytes=101)
    # then
    error = closed_with(events)
    assert (error.http_status, error.ws_close_code) == (413, 1009)
    assert session.is_closed is True


def test_post_for_a_closed_session_is_refused_400() -> None:
    # given
    session = connected_polling_session()
    session.close()
    # when / then
    with pytest.raises(RemoteProtocolError) as excinfo:
        session.begin_post(body_size_bytes=1)
    assert excinfo.value.http_status == 400


def test_client_ping_is_a_protocol_error() -> None:
    # given
    session = ws_session()
    # when
    events = session.receive_ws("2", now=1.0)
    # then
    error = closed_with(events)
    assert len(events) == 1
    assert error.ws_close_code == 1002
    assert session.is_closed is True


# --- close -----------------------------------------------------------------------------


def test_client_close_packet_on_websocket_closes_the_session() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws("1", now=1.0)
    # then
    assert events == [SessionClosed(CloseReason.CLIENT_CLOSE)]
    assert session.state is SessionState.CLOSED
    assert session.outgoing_ws() == []


def test_client_close_on_polling_releases_the_pending_get_with_noop() -> None:
    # given
    session = polling_session()
    session.begin_poll()
    # when
    events = session.receive_polling_post("1", now=1.0)
    # then: the v4 test suite expects "6" for the pending GET, then 400
    assert events == [SessionClosed(CloseReason.CLIENT_CLOSE)]
    assert session.take_polling_payload() == "6"
    session.end_poll()
    with pytest.raises(RemoteProtocolError):
        session.begin_poll()


def test_server_close_on_polling_queues_a_close_packet_once() -> None:
    # given
    session = connected_polling_session()
    # when
    first = session.close()
    second = session.close()
    # then
    assert first == [SessionClosed(CloseReason.SERVER_CLOSE)]
    assert second == []
    assert session.take_polling_payload() == "1"


def test_server_close_on_websocket_keeps_already_queued_frames_only() -> None:
    # given
    session = connected_ws_session()
    session.send_sio_text(encode_event("room_closed", {"roomId": "r_1", "reason": "deleted"}))
    # when
    events = session.close(CloseReason.FORCED_CLOSE)
    # then
    assert events == [SessionClosed(CloseReason.FORCED_CLOSE)]
    assert session.outgoing_ws() == ['42["room_closed",{"roomId":"r_1","reason":"deleted"}]']


def test_transport_closed_reports_transport_close_once() -> None:
    # given
    session = connected_ws_session()
    # when
    first = session.transport_closed(now=1.0)
    second = session.transport_closed(now=1.1)
    # then
    assert first == [SessionClosed(CloseReason.TRANSPORT_CLOSE)]
    assert second == []
    assert session.close() == []


def test_frames_and_sends_after_close_are_ignored() -> None:
    # given
    session = connected_ws_session()
    session.close()
    # when
    events = session.receive_ws('42["offer",{}]', now=1.0)
    session.emit("offer", {})
    session.send_sio_text('2["offer",{}]')
    # then
    assert events == []
    assert session.outgoing_ws() == []


# --- upgrade ---------------------------------------------------------------------------


def test_upgrade_probe_noop_upgrade_moves_buffered_packets_to_the_websocket() -> None:
    # given a polling session with a pending GET
    session = connected_polling_session()
    session.begin_poll()
    # when the probe arrives
    session.begin_upgrade(now=1.0)
    probe_events = session.receive_upgrade_ws("2probe", now=1.1)
    # then 3probe on the probe socket and a NOOP releases the GET
    assert session.state is SessionState.UPGRADING
    assert probe_events == []
    assert session.outgoing_probe_ws() == ["3probe"]
    assert session.take_polling_payload() == "6"
    session.end_poll()
    # when packets are queued while the client is paused, then the upgrade completes
    session.emit("hello", "x")
    session.handle_timer(now=25.0)
    upgrade_events = session.receive_upgrade_ws("5", now=1.2)
    # then
    assert upgrade_events == [UpgradeCompleted()]
    assert session.state is SessionState.OPEN
    assert session.transport is Transport.WEBSOCKET
    assert session.has_polling_data() is False
    assert session.outgoing_ws() == ['42["hello","x"]', "2"]
    assert session.receive_ws('42["hi"]', now=1.3) == [SioEventReceived("/", "hi", [], None, len('["hi"]'))]


def test_upgrade_is_refused_on_a_websocket_session() -> None:
    # given
    session = ws_session()
    # when
    with pytest.raises(RemoteProtocolError) as excinfo:
        session.begin_upgrade(now=1.0)
    # then the session is untouched
    assert excinfo.value.http_status == 400
    assert session.state is SessionState.OPEN
    assert session.transport is Transport.WEBSOCKET
    assert session.outgoing_ws() == []


def test_second_websocket_after_the_upgrade_is_refused() -> None:
    # given
    session = polling_session()
    session.begin_upgrade(now=1.0)
    session.receive_upgrade_ws("2probe", now=1.0)
    session.receive_upgrade_ws("5", now=1.0)
    # when / then
    with pytest.raises(RemoteProtocolError):
        session.begin_upgrade(now=2.0)
    assert session.state is SessionState.OPEN
    assert session.transport is Transport.WEBSOCKET


def test_second_probe_while_upgrading_is_refused() -> None:
    # given
    session = polling_session()
    session.begin_upgrade(now=1.0)
    # when / then
    with pytest.raises(RemoteProtocolError):
        session.begin_upgrade(now=1.5)
    assert session.state is SessionState.UPGRADING


def test_upgrade_is_refused_when_upgrades_are_disabled() -> None:
    # given
    session = polling_session(SessionConfig(upgrades_enabled=False))
    # when / then
    with pytest.raises(RemoteProtocolError):
        session.begin_upgrade(now=1.0)
    assert session.state is SessionState.OPEN


def test_garbage_on_the_probe_socket_aborts_the_upgrade_and_polling_goes_on() -> None:
    # given
    session = connected_polling_session()
    session.begin_upgrade(now=1.0)
    # when
    with pytest.raises(RemoteProtocolError) as excinfo:
        session.receive_upgrade_ws('42["x"]', now=1.1)
    # then
    assert excinfo.value.ws_close_code == 1002
    assert session.state is SessionState.OPEN
    assert session.transport is Transport.POLLING
    assert session.is_closed is False
    assert session.outgoing_probe_ws() == []
    assert session.receive_polling_post('42["a"]', now=1.2) == [SioEventReceived("/", "a", [], None, len('["a"]'))]


def probed_session() -> EngineSession:
    """A connected polling session whose probe got "3probe"; the probe's NOOP was taken."""
    session = connected_polling_session()
    session.begin_upgrade(now=1.0)
    assert session.receive_upgrade_ws("2probe", now=1.0) == []
    assert session.outgoing_probe_ws() == ["3probe"]
    session.begin_poll()
    assert session.take_polling_payload() == "6"
    session.end_poll()
    return session


def test_get_pending_during_the_upgrade_is_answered_noop_at_the_next_check() -> None:
    # given: the client polled again after the probe's NOOP (engine.io-client's race)
    session = probed_session()
    session.begin_poll()
    assert session.has_polling_data() is False
    # when: the upgrade check is due, 100 ms after the probe (long before the PING)
    assert session.next_deadline() == pytest.approx(1.1)
    events = session.handle_timer(now=1.1)
    # then: the GET is released with a NOOP, and the check repeats
    assert events == []
    assert session.take_polling_payload() == "6"
    assert session.next_deadline() == pytest.approx(1.2)


def test_upgrade_check_without_a_pending_get_queues_nothing() -> None:
    # given
    session = probed_session()
    # when
    events = session.handle_timer(now=1.1)
    # then
    assert events == []
    assert session.has_polling_data() is False
    assert session.next_deadline() == pytest.approx(1.2)


def test_upgrade_check_leaves_a_get_with_data_to_that_data() -> None:
    # given: a pending GET and a packet queued for it
    session = probed_session()
    session.begin_poll()
    session.emit("hello")
    # when
    session.handle_timer(now=1.1)
    # then: no NOOP appended to the data
    assert session.take_polling_payload() == '42["hello"]'


def test_upgrade_packet_releases_a_still_pending_get_and_ends_the_checks() -> None:
    # given
    session = probed_session()
    session.begin_poll()
    # when
    assert session.receive_upgrade_ws("5", now=1.05) == [UpgradeCompleted()]
    # then: that GET gets a NOOP, never the websocket's packets; checks stop, the PING is next
    assert session.has_polling_data() is True
    assert session.take_polling_payload() == "6"
    session.end_poll()
    assert session.has_polling_data() is False
    assert session.next_deadline() == pytest.approx(25.0)
    session.emit("hello")
    assert session.outgoing_ws() == ['42["hello"]']


def test_aborted_upgrade_ends_the_checks() -> None:
    # given
    session = probed_session()
    session.begin_poll()
    # when
    session.abort_upgrade()
    # then
    assert session.next_deadline() == pytest.approx(25.0)
    assert session.handle_timer(now=1.1) == []
    assert session.has_polling_data() is False


def test_probe_socket_closing_before_upgrade_packet_aborts_the_upgrade() -> None:
    # given
    session = polling_session()
    session.begin_upgrade(now=1.0)
    session.receive_upgrade_ws("2probe", now=1.1)
    # when
    session.abort_upgrade()
    # then
    assert session.state is SessionState.OPEN
    assert session.transport is Transport.POLLING
    assert session.outgoing_probe_ws() == []
    session.begin_upgrade(now=2.0)
    assert session.state is SessionState.UPGRADING


def test_receive_upgrade_ws_outside_an_upgrade_is_a_local_error() -> None:
    # given
    session = polling_session()
    # when / then
    with pytest.raises(LocalProtocolError):
        session.receive_upgrade_ws("2probe", now=1.0)


# --- polling GET / POST ----------------------------------------------------------------


def test_second_pending_get_closes_the_session() -> None:
    # given
    session = polling_session()
    session.begin_poll()
    # when
    with pytest.raises(RemoteProtocolError) as excinfo:
        session.begin_poll()
    # then
    assert excinfo.value.http_status == 400
    assert session.is_closed is True
    assert session.take_polling_payload() == "1"  # the first GET, as in the v4 test suite
    assert session.close() == [SessionClosed(CloseReason.TRANSPORT_ERROR, excinfo.value)]
    assert session.transport_closed(now=1.0) == []


def test_get_after_the_upgrade_is_refused_and_the_session_goes_on() -> None:
    # given
    session = polling_session()
    session.begin_upgrade(now=1.0)
    session.receive_upgrade_ws("5", now=1.0)
    # when
    with pytest.raises(RemoteProtocolError) as excinfo:
        session.begin_poll()
    # then
    assert excinfo.value.http_status == 400
    assert session.is_closed is False


def test_post_after_the_upgrade_is_refused_and_the_session_goes_on() -> None:
    # given: an upgraded session (engine.io answers such a POST 400, TRANSPORT_MISMATCH)
    session = connected_polling_session()
    session.begin_upgrade(now=1.0)
    session.receive_upgrade_ws("5", now=1.0)
    # when
    with pytest.raises(RemoteProtocolError) as excinfo:
        session.begin_post(body_size_bytes=7)
    # then the session is untouched and still reads its websocket
    assert excinfo.value.http_status == 400
    assert session.is_closed is False
    assert session.receive_ws('42["a"]', now=2.0) == [SioEventReceived("/", "a", [], None, 5)]


def test_repeated_probes_queue_one_noop_for_polling() -> None:
    # given
    session = connected_polling_session()
    session.begin_upgrade(now=1.0)
    # when the client probes 1,000 times
    for _ in range(1000):
        assert session.receive_upgrade_ws("2probe", now=1.0) == []
    # then every probe is answered, and a GET gets a single NOOP
    assert session.outgoing_probe_ws() == ["3probe"] * 1000
    session.begin_poll()
    assert session.take_polling_payload() == "6"


def test_upgrade_packet_without_a_probe_releases_the_pending_get() -> None:
    # given a GET pending when "5" arrives, with no "2probe" before it
    session = connected_polling_session()
    session.begin_poll()
    session.begin_upgrade(now=1.0)
    # when
    events = session.receive_upgrade_ws("5", now=1.0)
    # then
    assert events == [UpgradeCompleted()]
    assert session.has_polling_data() is True
    assert session.take_polling_payload() == "6"


def test_polling_post_is_decoded_in_slices_and_closing_early_drops_the_rest() -> None:
    # given a POST of 200 events, and a binary event cut by the end of the second slice
    session = connected_polling_session()
    body = "\x1e".join(['42["e"]'] * 127 + [f'451-["b",{PLACEHOLDER_0}]'] + ['42["e"]'] * 72)
    # when the adapter stops after two slices
    slices = session.polling_post_slices(body, now=1.0, packets_per_slice=64)
    first, second = next(slices), next(slices)
    slices.close()
    # then it saw 64 + 63 events, nothing after, and the session is fine
    assert len(first) == 64 and len(second) == 63
    assert session.is_closed is False
    assert session.receive_polling_post('42["after"]', now=2.0) == [SioEventReceived("/", "after", [], None, 9)]


def test_binary_packet_before_connect_closes_before_any_attachment() -> None:
    # given an unauthenticated websocket (no namespace connected)
    session = ws_session()
    # when it announces a binary event
    events = session.receive_ws(f'451-["upload",{PLACEHOLDER_0}]', now=1.0)
    # then the session closes at once: no attachment is awaited, nor kept
    assert closed_with(events).ws_close_code == 1002


def test_binary_packet_while_connect_is_pending_closes_the_session() -> None:
    # given
    session = ws_session()
    assert session.receive_ws('40{"token":"t"}', now=1.0) == [SioConnect("/", {"token": "t"})]
    # when
    events = session.receive_ws(f'451-["upload",{PLACEHOLDER_0}]', now=1.1)
    # then
    closed_with(events)


def test_binary_packet_in_flight_after_a_refused_connect_is_dropped_unkept() -> None:
    # given a refused root namespace
    session = ws_session()
    session.receive_ws('40{"token":"bad"}', now=1.0)
    session.reject_namespace("/", "invalid_token")
    session.outgoing_ws()
    # when the client's in-flight binary event and its attachments arrive
    header = session.receive_ws(f'452-["upload",{PLACEHOLDER_0},{PLACEHOLDER_1}]', now=1.1)
    first = session.receive_ws(b"\x01" * 50, now=1.2)
    second = session.receive_ws(b"\x02" * 50, now=1.3)
    # then nothing is delivered, the session stays, and the next packet is read normally
    assert header == first == second == []
    assert session.is_closed is False
    assert session.receive_ws("40", now=1.4) == [SioConnect("/", None)]


def test_connect_to_a_namespace_with_a_too_long_name_closes_the_session() -> None:
    # given
    session = ws_session()
    # when
    events = session.receive_ws("40/" + "n" * MAX_NAMESPACE_CHARS + ",", now=1.0)
    # then
    closed_with(events)
    assert session.outgoing_ws() == []


def test_refused_namespaces_are_forgotten_and_bounded_per_session() -> None:
    # given a client refused MAX_REFUSED_NAMESPACES times
    session = ws_session()
    for i in range(MAX_REFUSED_NAMESPACES):
        assert session.receive_ws(f"40/ns{i},", now=1.0) == [SioConnect(f"/ns{i}", None)]
        session.reject_namespace(f"/ns{i}", "Invalid namespace")
    refused = session.outgoing_ws()
    # when it tries once more
    events = session.receive_ws("40/one-more,", now=1.1)
    # then every refusal was answered, and the next CONNECT closes the session
    assert refused == [f'44/ns{i},{{"message":"Invalid namespace"}}' for i in range(MAX_REFUSED_NAMESPACES)]
    closed_with(events)


def test_packet_for_a_refused_namespace_closes_the_session_as_socketio_does() -> None:
    # given
    session = ws_session()
    session.receive_ws("40/admin,", now=1.0)
    session.reject_namespace("/admin", "Invalid namespace")
    # when
    events = session.receive_ws('42/admin,["x"]', now=1.1)
    # then
    closed_with(events)


def test_event_with_an_integer_past_the_int_str_limit_is_delivered_as_infinity() -> None:
    # given a valid JSON integer of 5,000 digits (Python's int() stops at 4,300)
    session = connected_ws_session()
    frame = '42["offer",{"n":' + "9" * 5000 + "}]"
    # when
    events = session.receive_ws(frame, now=1.0)
    # then the event reaches the app, read as JSON.parse reads it
    assert events == [SioEventReceived("/", "offer", [{"n": float("inf")}], None, len(frame) - 2)]


def test_polling_post_with_several_packets_yields_every_event() -> None:
    # given
    session = connected_polling_session()
    # when
    events = session.receive_polling_post('42["hello"]\x1e42["world"]', now=1.0)
    # then
    assert events == [
        SioEventReceived("/", "hello", [], None, 9),
        SioEventReceived("/", "world", [], None, 9),
    ]


def test_polling_post_keeps_events_before_an_invalid_packet() -> None:
    # given
    session = connected_polling_session()
    # when
    events = session.receive_polling_post('42["a"]\x1eabc\x1e42["b"]', now=1.0)
    # then
    assert events[0] == SioEventReceived("/", "a", [], None, 5)
    assert len(events) == 2
    closed_with(events)
    assert session.take_polling_payload() == "1"


def test_polling_body_with_bad_base64_closes_the_session() -> None:
    # given
    session = connected_polling_session()
    # when
    events = session.receive_polling_post("b%%%", now=1.0)
    # then
    assert closed_with(events).http_status == 400
    assert len(events) == 1


def test_take_polling_payload_without_data_is_a_local_error() -> None:
    # given
    session = polling_session()
    # when / then
    with pytest.raises(LocalProtocolError):
        session.take_polling_payload()


# --- limits and parse errors -----------------------------------------------------------


def test_oversize_websocket_frame_closes_with_1009() -> None:
    # given
    session = connected_ws_session(SMALL)
    # when
    events = session.receive_ws("4" + "x" * 100, now=1.0)
    # then
    error = closed_with(events)
    assert len(events) == 1
    assert error.ws_close_code == 1009
    assert error.http_status == 413


def test_frame_size_is_counted_in_utf8_bytes() -> None:
    # given: 100 bytes (38 characters) are allowed; 101 bytes are not
    session = connected_ws_session(SMALL)
    at_limit = '42["x' + "€" * 31 + '"]'  # 7 ASCII + 31 * 3 = 100 bytes
    over_limit = '42["xx' + "€" * 31 + '"]'
    # when
    accepted = session.receive_ws(at_limit, now=1.0)
    refused = session.receive_ws(over_limit, now=1.1)
    # then
    assert accepted == [SioEventReceived("/", "x" + "€" * 31, [], None, 98)]
    assert closed_with(refused).ws_close_code == 1009


def test_oversize_binary_frame_closes_with_1009() -> None:
    # given
    session = connected_ws_session(SMALL)
    # when
    events = session.receive_ws(b"\x00" * 101, now=1.0)
    # then
    assert closed_with(events).ws_close_code == 1009


def test_oversize_polling_post_closes_with_413() -> None:
    # given
    session = polling_session(SMALL)
    # when
    events = session.receive_polling_post("4" + "x" * 100, now=1.0)
    # then
    error = closed_with(events)
    assert len(events) == 1
    assert error.http_status == 413
    assert session.take_polling_payload() == "1"


def test_bad_json_closes_with_parse_error() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws('42["offer",', now=1.0)
    # then
    error = closed_with(events)
    assert len(events) == 1
    assert (error.http_status, error.ws_close_code) == (400, 1002)


@pytest.mark.parametrize(
    ("_case", "frame"),
    [
        ("unknown engine.io type", "9"),
        ("garbage", "abc"),
        ("empty frame", ""),
        ("open from client", "0"),
        ("upgrade on the active transport", "5"),
        ("unknown socket.io type", "47"),
        ("socket.io garbage", "4abc"),
        ("event not an array", '42{"a":1}'),
        ("reserved event name", '42["disconnect"]'),
        ("empty event array", "42[]"),
    ],
)
def test_invalid_frame_closes_with_parse_error(_case: str, frame: str) -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws(frame, now=1.0)
    # then
    closed_with(events)
    assert len(events) == 1
    assert session.is_closed is True


@pytest.mark.parametrize(
    ("_case", "frame", "expected"),
    [
        (
            "fast path",
            '42[123,{"sdp":"x"}]',
            SioEventReceived("/", "123", [{"sdp": "x"}], None, 17),
        ),
        ("with an ack id", "427[5]", SioEventReceived("/", "5", [], 7, 3)),
        ("a fraction", "42[1.5,1]", SioEventReceived("/", "1.5", [1], None, 7)),
    ],
)
def test_event_named_by_a_number_reaches_the_app_as_its_text(
    _case: str, frame: str, expected: SioEventReceived
) -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws(frame, now=1.0)
    # then: an ordinary (unknown) event name for the app; the session goes on
    assert events == [expected]
    assert session.is_closed is False


def test_noop_from_the_client_is_ignored() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws("6", now=1.0)
    # then
    assert events == []
    assert session.is_closed is False


def test_bytes_frame_with_nothing_pending_closes_the_session() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws(b"\x01\x02", now=1.0)
    # then
    closed_with(events)
    assert len(events) == 1


def test_receive_ws_on_a_polling_session_is_a_local_error() -> None:
    # given
    session = polling_session()
    # when / then
    with pytest.raises(LocalProtocolError):
        session.receive_ws("3", now=1.0)


# --- Socket.IO: namespaces, events, acks, binary ---------------------------------------


def test_connect_with_auth_then_accept_writes_the_socket_id() -> None:
    # given
    session = ws_session()
    # when
    events = session.receive_ws('40{"token":"abc"}', now=1.0)
    session.accept_namespace("/", "client-1")
    # then
    assert events == [SioConnect("/", {"token": "abc"})]
    assert session.outgoing_ws() == ['40{"sid":"client-1"}']


def test_connect_to_a_custom_namespace_then_accept_is_namespace_prefixed() -> None:
    # given
    session = ws_session()
    # when
    events = session.receive_ws('40/admin,{"token":"abc"}', now=1.0)
    session.accept_namespace("/admin", "client-2")
    # then
    assert events == [SioConnect("/admin", {"token": "abc"})]
    assert session.outgoing_ws() == ['40/admin,{"sid":"client-2"}']


def test_reject_writes_connect_error_and_drops_in_flight_packets() -> None:
    # given
    session = ws_session()
    session.receive_ws('40{"token":"bad"}', now=1.0)
    # when
    session.reject_namespace("/", "invalid_token")
    late = session.receive_ws('42["join_room",{}]', now=1.1)
    # then
    assert session.outgoing_ws() == ['44{"message":"invalid_token"}']
    assert late == []
    assert session.is_closed is False


def test_reject_with_data_on_a_custom_namespace() -> None:
    # given
    session = ws_session()
    session.receive_ws("40/admin,", now=1.0)
    # when
    session.reject_namespace("/admin", "forbidden", {"code": 1})
    # then
    assert session.outgoing_ws() == ['44/admin,{"message":"forbidden","data":{"code":1}}']


def test_accept_without_a_pending_connect_is_a_local_error() -> None:
    # given
    session = ws_session()
    # when / then
    with pytest.raises(LocalProtocolError):
        session.accept_namespace("/", "client-1")
    assert session.outgoing_ws() == []


def test_event_before_connect_closes_the_session() -> None:
    # given
    session = ws_session()
    # when
    events = session.receive_ws('42["join_room",{"roomId":"r_1"}]', now=1.0)
    # then
    closed_with(events)
    assert len(events) == 1


def test_event_while_connect_is_pending_closes_the_session() -> None:
    # given
    session = ws_session()
    session.receive_ws("40", now=1.0)
    # when
    events = session.receive_ws('42["join_room",{}]', now=1.1)
    # then
    closed_with(events)


def test_second_connect_to_the_same_namespace_closes_the_session() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws("40", now=1.0)
    # then
    closed_with(events)


def test_event_on_the_fast_path_carries_name_args_and_size() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws('42["offer",{"to":"c2","sdp":"v=0"}]', now=1.0)
    # then
    assert events == [
        SioEventReceived(
            "/",
            "offer",
            [{"to": "c2", "sdp": "v=0"}],
            None,
            len('["offer",{"to":"c2","sdp":"v=0"}]'),
        )
    ]


def test_event_size_is_counted_in_utf8_bytes() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws('42["m","€"]', now=1.0)
    # then: 9 characters, "€" is 3 bytes
    assert events == [SioEventReceived("/", "m", ["€"], None, 11)]


def test_event_with_ack_id_and_the_server_ack() -> None:
    # given
    session = connected_ws_session()
    # when
    events = session.receive_ws('4212["join_room",{"roomId":"r_1"}]', now=1.0)
    session.ack(12, [{"ok": True}])
    # then
    assert events == [
        SioEventReceived(
            "/",
            "join_room",
            [{"roomId": "r_1"}],
            12,
            len('["join_room",{"roomId":"r_1"}]'),
        )
    ]
    assert session.outgoing_ws() == ['4312[{"ok":true}]']


def test_server_event_with_ack_id_and_the_client_ack() -> None:
    # given
    session = connected_ws_session()
    # when
    session.emit("ping_me", 1, ack_id=5)
    frames = session.outgoing_ws()
    events = session.receive_ws('435["pong"]', now=1.0)
    # then
    assert frames == ['425["ping_me",1]']
    assert events == [SioAckReceived("/", 5, ["pong"])]


def test_events_and_acks_on_a_custom_namespace() -> None:
    # given
    session = ws_session()
    session.receive_ws("40/admin,", now=1.0)
    session.accept_namespace("/admin", "client-2")
    session.outgoing_ws()
    # when
    event = session.receive_ws('42/admin,1["tellme"]', now=1.1)
    session.ack(1, ["told"], namespace="/admin")
    ack = session.receive_ws('43/admin,2["done"]', now=1.2)
    # then
    assert event == [SioEventReceived("/admin", "tellme", [], 1, len('["tellme"]'))]
    assert session.outgoing_ws() == ['43/admin,1["told"]']
    assert ack == [SioAckReceived("/admin", 2, ["done"])]


def test_binary_event_attachments_are_reassembled() -> None:
    # given
    session = connected_ws_session()
    text = f'452-["upload",{PLACEHOLDER_0},{PLACEHOLDER_1}]'
    # when
    first = session.receive_ws(text, now=1.0)
    second = session.receive_ws(b"\x01\x02\x03", now=1.1)
    third = session.receive_ws(b"\x04\x05\x06", now=1.2)
    # then
    assert first == [] and second == []
    assert third == [
        SioEventReceived(
            "/",
            "upload",
            [b"\x01\x02\x03", b"\x04\x05\x06"],
            None,
            len(text) - len("452-") + 6,
        )
    ]


def test_binary_event_over_polling_uses_base64_attachments() -> None:
    # given
    session = connected_polling_session()
    text = f'451-["upload",{PLACEHOLDER_0}]'
    # when
    events = session.receive_polling_post(text + "\x1ebAQIDBA==", now=1.0)
    # then
    assert events == [SioEventReceived("/", "upload", [b"\x01\x02\x03\x04"], None, len(text) - len("451-") + 4)]


def test_binary_ack_from_the_client_is_reassembled() -> None:
    # given
    session = connected_ws_session()
    # when
    session.receive_ws(f"461-15[{PLACEHOLDER_0}]", now=1.0)
    events = session.receive_ws(b"\xff", now=1.1)
    # then
    assert events == [SioAckReceived("/", 15, [b"\xff"])]


def test_emit_with_bytes_writes_a_text_frame_then_binary_frames() -> None:
    # given
    session = connected_ws_session()
    # when
    session.emit("file", {"name": "a", "blob": b"\x01\x02"})
    # then
    assert session.outgoing_ws() == [
        f'451-["file",{{"name":"a","blob":{PLACEHOLDER_0}}}]',
        b"\x01\x02",
    ]


def test_emit_with_bytes_over_polling_base64_encodes_attachments() -> None:
    # given
    session = connected_polling_session()
    # when
    session.emit("file", b"\x01\x02\x03\x04")
    # then
    assert session.take_polling_payload() == (
        f'451-["file",{PLACEHOLDER_0}]\x1e' + "b" + base64.b64encode(b"\x01\x02\x03\x04").decode()
    )


def test_send_sio_text_queues_pre_encoded_packets_in_order() -> None:
    # given
    session = connected_ws_session()
    # when
    session.send_sio_text(encode_event("offer", {"sdp": "x"}))
    session.send_sio_text(encode_ack(3, [{"ok": True}]))
    # then
    assert session.outgoing_ws() == ['42["offer",{"sdp":"x"}]', '433[{"ok":true}]']


def test_client_disconnect_reports_the_namespace_and_later_events_close() -> None:
    # given
    session = connected_ws_session()
    # when
    left = session.receive_ws("41", now=1.0)
    after = session.receive_ws('42["offer",{}]', now=1.1)
    # then
    assert left == [SioDisconnect("/")]
    closed_with(after)


def test_server_disconnect_writes_disconnect_and_drops_in_flight_events() -> None:
    # given
    session = connected_ws_session()
    # when
    session.disconnect_namespace()
    late = session.receive_ws('42["offer",{}]', now=1.0)
    # then
    assert session.outgoing_ws() == ["41"]
    assert late == []
    assert session.is_closed is False


def test_client_may_reconnect_a_namespace_after_its_disconnect() -> None:
    # given
    session = connected_ws_session()
    session.receive_ws("41", now=1.0)
    # when
    events = session.receive_ws("40", now=1.1)
    # then
    assert events == [SioConnect("/", None)]


# --- bare Engine.IO ---------------------------------------------------------------------


def test_bare_engineio_session_delivers_and_sends_raw_messages() -> None:
    # given
    session = ws_session(socketio=False)
    # when
    text = session.receive_ws("4hello", now=1.0)
    binary = session.receive_ws(b"\x01\x02\x03", now=1.1)
    session.send_eio_message("hello")
    session.send_eio_message(b"\x01\x02\x03")
    # then
    assert text == [EioMessageReceived("hello")]
    assert binary == [EioMessageReceived(b"\x01\x02\x03")]
    assert session.outgoing_ws() == ["4hello", b"\x01\x02\x03"]


def test_bare_engineio_session_echoes_a_mixed_polling_payload() -> None:
    # given
    bare = EngineSession("eio-2", CONFIG, now=0.0, transport=Transport.POLLING, socketio=False)
    bare.take_polling_payload()
    # when
    events = bare.receive_polling_post("4hello\x1ebAQIDBA==", now=1.0)
    for event in events:
        assert isinstance(event, EioMessageReceived)
        bare.send_eio_message(event.data)
    # then
    assert bare.take_polling_payload() == "4hello\x1ebAQIDBA=="


def test_socketio_calls_on_a_bare_session_are_local_errors() -> None:
    # given
    session = ws_session(socketio=False)
    # when / then
    with pytest.raises(LocalProtocolError):
        session.emit("a")


# --- the transition table ----------------------------------------------------------------


S, E = SessionState, SessionEvent


@pytest.mark.parametrize(
    ("_case", "current", "event", "new"),
    [
        ("probe opened while open", S.OPEN, E.PROBE_OPENED, S.UPGRADING),
        ("close while open", S.OPEN, E.CLOSE, S.CLOSED),
        ("upgrade packet while upgrading", S.UPGRADING, E.UPGRADE_RECEIVED, S.OPEN),
        ("probe failed while upgrading", S.UPGRADING, E.PROBE_FAILED, S.OPEN),
        ("close while upgrading", S.UPGRADING, E.CLOSE, S.CLOSED),
        ("close while closing", S.CLOSING, E.CLOSE, S.CLOSED),
    ],
)
def test_legal_event_leads_to_its_state(
    _case: str, current: SessionState, event: SessionEvent, new: SessionState
) -> None:
    # given / when / then
    assert transition(current, event) is new
    assert TRANSITIONS[(current, event)] is new


@pytest.mark.parametrize(
    ("_case", "current", "event"),
    [
        ("close when closed", S.CLOSED, E.CLOSE),
        ("probe when closed", S.CLOSED, E.PROBE_OPENED),
        ("second probe while upgrading", S.UPGRADING, E.PROBE_OPENED),
        ("upgrade packet while open", S.OPEN, E.UPGRADE_RECEIVED),
        ("probe failed while open", S.OPEN, E.PROBE_FAILED),
        ("upgrade packet while closing", S.CLOSING, E.UPGRADE_RECEIVED),
    ],
)
def test_illegal_event_raises_local_protocol_error(_case: str, current: SessionState, event: SessionEvent) -> None:
    # given / when / then
    with pytest.raises(LocalProtocolError):
        transition(current, event)


def test_every_state_but_closed_has_a_way_to_close() -> None:
    # given / when / then: the table is total for CLOSE
    assert {state for (state, event) in TRANSITIONS if event is E.CLOSE} == set(S) - {S.CLOSED}


# --- outgoing bound (a client that does not read) ---------------------------------------

BOUNDED = SessionConfig(ping_interval_ms=25000, ping_timeout_ms=20000, max_payload_bytes=100, max_buffered_bytes=1000)
RELAY_100 = '2["offer",{"sdp":"' + "x" * 78 + '"}]'  # queued as "4" + this: 100 bytes


def test_polling_queue_past_the_bound_drops_it_and_closes_as_a_lost_transport() -> None:
    # given: a polling client that connected and then never GETs again
    session = EngineSession("eio-1", BOUNDED, now=0.0, transport=Transport.POLLING)
    session.take_polling_payload()
    for _ in range(10):
        session.send_sio_text(RELAY_100)  # 10 x 100 bytes: exactly the bound
    assert (session.is_closed, session.buffered_bytes) == (False, 1000)
    # when
    session.send_sio_text(RELAY_100)
    # then: the queue is dropped for one CLOSE packet; the close is reported once
    assert session.is_closed
    assert session.close() == [SessionClosed(CloseReason.TRANSPORT_ERROR, None, buffered_bytes=1100)]
    assert session.close() == []
    assert session.take_polling_payload() == "1"


def test_queue_under_the_bound_is_emptied_by_each_get() -> None:
    # given
    session = EngineSession("eio-1", BOUNDED, now=0.0, transport=Transport.POLLING)
    session.take_polling_payload()
    # when: 30 x 100 bytes, a GET after every 9
    for index in range(30):
        session.send_sio_text(RELAY_100)
        if index % 9 == 8:
            session.take_polling_payload()
    # then
    assert (session.is_closed, session.buffered_bytes) == (False, 300)


def test_multibyte_text_counts_its_utf8_bytes_against_the_bound() -> None:
    # given: 333 characters of 3 UTF-8 bytes each
    session = ws_session(BOUNDED)
    # when
    session.send_sio_text("2" + "\u20ac" * 333)
    # then: "4" + "2" + 999 bytes = 1001 > 1000
    assert session.is_closed
    assert session.close() == [SessionClosed(CloseReason.TRANSPORT_ERROR, None, buffered_bytes=1001)]


def test_transport_backlog_counts_toward_the_bound() -> None:
    # given: the adapter wrote everything; the server still holds 900 bytes of it
    session = ws_session(BOUNDED)
    session.send_sio_text(RELAY_100)
    session.outgoing_ws()
    assert session.note_transport_backlog(900) == []
    assert session.buffered_bytes == 900
    # when: the next 100 bytes fit, the next ones do not
    session.send_sio_text(RELAY_100)
    assert not session.is_closed
    session.send_sio_text(RELAY_100)
    # then
    assert session.close() == [SessionClosed(CloseReason.TRANSPORT_ERROR, None, buffered_bytes=1100)]
    assert session.outgoing_ws() == []


def test_transport_backlog_past_the_bound_closes_the_session_at_once() -> None:
    # given
    session = ws_session(BOUNDED)
    # when
    events = session.note_transport_backlog(1001)
    # then
    assert events == [SessionClosed(CloseReason.TRANSPORT_ERROR, None, buffered_bytes=1001)]
    assert session.is_closed
    assert session.close() == []
    assert session.next_deadline() is None


def test_draining_backlog_lets_the_queue_grow_again() -> None:
    # given
    session = ws_session(BOUNDED)
    assert session.note_transport_backlog(950) == []
    # when: the client read it all
    assert session.note_transport_backlog(0) == []
    for _ in range(10):
        session.send_sio_text(RELAY_100)
    # then
    assert (session.is_closed, session.buffered_bytes) == (False, 1000)


def test_ping_past_the_bound_is_reported_by_the_timer() -> None:
    # given: the queue is full to the byte
    session = ws_session(BOUNDED)
    assert session.note_transport_backlog(1000) == []
    # when: the PING is due
    events = session.handle_timer(now=25.0)
    # then
    assert events == [SessionClosed(CloseReason.TRANSPORT_ERROR, None, buffered_bytes=1001)]
    assert session.next_deadline() is None


def test_upgrade_moves_the_queue_and_its_size_to_the_websocket() -> None:
    # given: a polling session with 300 queued bytes, upgrading
    session = EngineSession("eio-1", BOUNDED, now=0.0, transport=Transport.POLLING)
    session.take_polling_payload()
    for _ in range(3):
        session.send_sio_text(RELAY_100)
    session.begin_upgrade(now=1.0)
    assert session.receive_upgrade_ws("2probe", now=1.0) == []
    # when
    assert session.receive_upgrade_ws("5", now=1.1) == [UpgradeCompleted()]
    # then: 3probe + the three packets (the probe's NOOP is gone)
    assert session.buffered_bytes == 306
    assert session.outgoing_ws() == ["3probe", "4" + RELAY_100, "4" + RELAY_100, "4" + RELAY_100]
    assert session.buffered_bytes == 0


def test_config_refuses_a_non_positive_bound() -> None:
    with pytest.raises(LocalProtocolError):
        SessionConfig(max_buffered_bytes=0)
