"""Per-connection Engine.IO v4 session state machine, with the Socket.IO v5 layer on top.

Owns: the session states and their legal transitions (``TRANSITIONS``, the one table),
the handshake (OPEN packet), the heartbeat (server PING every ``pingInterval``, close after
``pingTimeout`` without PONG), the polling buffer and the single pending GET, the
polling -> WebSocket upgrade (``2probe`` / ``3probe`` / NOOP / ``5``), the namespace
bookkeeping of Socket.IO (CONNECT first, then EVENT / ACK / DISCONNECT) and the typed events
handed to the adapter. Bytes and text in, events and wire frames out: no I/O, no clock, no
id generation (the adapter passes ``now`` in monotonic seconds and the ids).

Never imports: Django, channels, asyncio, time, random, os, uuid.
Implements: Engine.IO v4 "Transports", "Handshake", "Heartbeat", "Upgrade"; Socket.IO v5
"Exchange protocol"; SPEC.md section 3 (maxPayload: WebSocket close 1009, polling 413;
an invalid frame closes the connection).

Peer errors never raise out of ``receive_*``: the session closes and the returned events end
with ``SessionClosed(PARSE_ERROR, error=exc)``; ``exc.ws_close_code`` / ``exc.http_status``
say how to answer. ``LocalProtocolError`` means the adapter or the app misused the session.
Outbound calls on a closed session are silently dropped: relays racing a close are normal.

Outgoing bound (a client that does not read): the session counts the bytes of its own queue
plus what the adapter reports still waiting in the server's write buffer
(``note_transport_backlog``); past ``max_buffered_bytes`` it drops its queue and closes as a
lost transport (``TRANSPORT_ERROR``, ``SessionClosed.buffered_bytes`` set). The close is
reported by the adapter's next ``close()`` call (check ``is_closed`` after queueing).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Any, TypeAlias, cast

from signaling.protocol.engineio import (
    BINARY_PREFIX,
    RECORD_SEPARATOR,
    EioPacketType,
    encode_polling_item,
    open_packet_data,
)
from signaling.protocol.errors import (
    HTTP_PAYLOAD_TOO_LARGE,
    WS_CLOSE_MESSAGE_TOO_BIG,
    LocalProtocolError,
    RemoteProtocolError,
)
from signaling.protocol.socketio import (
    RESERVED_EVENTS,
    SioDecoder,
    SioPacket,
    SioPacketType,
    encode_packet,
    incoming_event_name,
    namespace_prefix,
    parse_json,
    utf8_length,
)

__all__ = [
    "TRANSITIONS",
    "CloseReason",
    "EioMessageReceived",
    "EngineSession",
    "Event",
    "SessionClosed",
    "SessionConfig",
    "SessionEvent",
    "SessionState",
    "SioAckReceived",
    "SioConnect",
    "SioDisconnect",
    "SioEventReceived",
    "Transport",
    "UpgradeCompleted",
    "transition",
]


class Transport(StrEnum):
    """Engine.IO transport names (the ``transport`` query parameter)."""

    POLLING = "polling"
    WEBSOCKET = "websocket"


class SessionState(StrEnum):
    """Engine.IO session states; the legal moves are ``TRANSITIONS``."""

    OPEN = "open"
    UPGRADING = "upgrading"
    # Reserved: Engine.IO has no closing handshake, so this core closes at once (OPEN or
    # UPGRADING -> CLOSED) and never enters CLOSING; kept for the shared vocabulary.
    CLOSING = "closing"
    CLOSED = "closed"


class SessionEvent(StrEnum):
    """What moves a session from one state to another (the keys of ``TRANSITIONS``)."""

    PROBE_OPENED = "probe opened"  # a WebSocket with this sid arrived (begin_upgrade)
    UPGRADE_RECEIVED = "upgrade received"  # "5" on the probe WebSocket
    PROBE_FAILED = "probe failed"  # the probe WebSocket sent garbage or went away
    CLOSE = "close"  # any close: app, client, transport, timeout, peer error


# The one table of legal state transitions (STYLE.md section 1), as h11's: (state, event)
# -> next state; a pair that is not here is a bug of the caller (LocalProtocolError).
TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    (SessionState.OPEN, SessionEvent.PROBE_OPENED): SessionState.UPGRADING,
    (SessionState.OPEN, SessionEvent.CLOSE): SessionState.CLOSED,
    (SessionState.UPGRADING, SessionEvent.UPGRADE_RECEIVED): SessionState.OPEN,
    (SessionState.UPGRADING, SessionEvent.PROBE_FAILED): SessionState.OPEN,
    (SessionState.UPGRADING, SessionEvent.CLOSE): SessionState.CLOSED,
    (SessionState.CLOSING, SessionEvent.CLOSE): SessionState.CLOSED,
}


def transition(current: SessionState, event: SessionEvent) -> SessionState:
    """The state that ``event`` leads to from ``current`` (``TRANSITIONS``).

    Raises:
        LocalProtocolError: ``event`` is not legal in ``current``.
    """
    new = TRANSITIONS.get((current, event))
    if new is None:
        raise LocalProtocolError(f"illegal session event {event!r} in state {current}")
    return new


class CloseReason(StrEnum):
    """Why a session closed (the reason strings of the reference server)."""

    TRANSPORT_CLOSE = "transport close"
    CLIENT_CLOSE = "client close"
    PING_TIMEOUT = "ping timeout"
    PARSE_ERROR = "parse error"
    SERVER_CLOSE = "server close"
    TRANSPORT_ERROR = "transport error"
    FORCED_CLOSE = "forced close"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Engine.IO parameters announced in the handshake (SPEC.md section 3 defaults)."""

    ping_interval_ms: int = 25000
    ping_timeout_ms: int = 20000
    max_payload_bytes: int = 1_000_000
    upgrades_enabled: bool = True
    # socket.io's connectTimeout: a Socket.IO session that has connected no namespace by
    # then is closed (server close); bare Engine.IO sessions have no such deadline.
    connect_timeout_ms: int = 45000
    # Bytes that may wait for one client (queued here plus the server's write buffer) before
    # the session is closed as too slow a reader: twice maxPayload (see docs/protocol.md).
    max_buffered_bytes: int = 2_000_000

    def __post_init__(self) -> None:
        for name in (
            "ping_interval_ms",
            "ping_timeout_ms",
            "max_payload_bytes",
            "connect_timeout_ms",
            "max_buffered_bytes",
        ):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise LocalProtocolError(f"SessionConfig.{name} must be a positive int")


@dataclass(frozen=True, slots=True)
class SioConnect:
    """The client asked to join ``namespace``; answer with accept_ / reject_namespace."""

    namespace: str
    auth: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class SioDisconnect:
    """The client left ``namespace`` (Socket.IO DISCONNECT)."""

    namespace: str


@dataclass(frozen=True, slots=True)
class SioEventReceived:
    """A client event. ``size_bytes``: exact UTF-8 size of the packet's JSON part, plus the
    binary attachments' sizes (O(1) for ASCII text; one UTF-8 encode otherwise)."""

    namespace: str
    event: str
    args: list[Any]
    ack_id: int | None
    size_bytes: int


@dataclass(frozen=True, slots=True)
class SioAckReceived:
    """The client acknowledged the server event ``ack_id``."""

    namespace: str
    ack_id: int
    args: list[Any]


@dataclass(frozen=True, slots=True)
class EioMessageReceived:
    """A raw Engine.IO MESSAGE (only for sessions created with ``socketio=False``)."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class UpgradeCompleted:
    """The probe WebSocket is now the session's transport; drain ``outgoing_ws()`` on it."""


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session is over; reported exactly once. ``error`` is set for peer errors;
    ``buffered_bytes`` when the client stopped reading: that many bytes waited for it, over
    ``max_buffered_bytes`` (reason ``TRANSPORT_ERROR``: a lost transport, not a peer error)."""

    reason: CloseReason
    error: RemoteProtocolError | None = None
    buffered_bytes: int | None = None


Event: TypeAlias = (
    SioConnect
    | SioDisconnect
    | SioEventReceived
    | SioAckReceived
    | EioMessageReceived
    | UpgradeCompleted
    | SessionClosed
)


class _Namespace(Enum):
    PENDING = "pending"  # CONNECT received, the app has not answered yet
    CONNECTED = "connected"
    # The server rejected or disconnected it: packets still in flight are dropped.
    LEFT = "left"


# Engine.IO v4 text packets written by the server (type digit + payload).
_PING = str(EioPacketType.PING.value)
_CLOSE = str(EioPacketType.CLOSE.value)
_NOOP = str(EioPacketType.NOOP.value)
_MESSAGE = str(EioPacketType.MESSAGE.value)
_PROBE_PING = "2probe"  # Engine.IO v4 "Upgrade": ping with the string "probe"
_PROBE_PONG = "3probe"
_UPGRADE = str(EioPacketType.UPGRADE.value)
_FAST_EVENT_PREFIX = "42["  # MESSAGE + EVENT on "/" without ack id nor attachments
_ROOT = "/"
# engine.io (lib/socket.ts, onPacket of the probe): while an upgrade is in progress, a pending
# polling GET is answered with a NOOP every 100 ms, so a GET the client sent after the probe's
# NOOP cannot hold its upgrade packet until the next PING.
UPGRADE_NOOP_INTERVAL_S = 0.1
# How many packets of a polling POST are decoded per slice (``polling_post_slices``): the
# adapter hands each slice's events to the app and yields to its event loop in between, so
# one POST of many tiny packets cannot hold the loop (issue 11).
POLLING_SLICE_PACKETS = 64
# A namespace name longer than this is refused as a protocol error (the session closes):
# socket.io has no bound, but a refused CONNECT echoes the name back, and nothing a real
# client sends comes close (namespaces are short paths such as "/admin").
MAX_NAMESPACE_CHARS = 256
# Refused CONNECTs (CONNECT_ERROR sent) a session may make before it is closed: a client
# retrying the wrong namespace a few times is a bug, thousands is an attack.
MAX_REFUSED_NAMESPACES = 16


def _item_size(item: str | bytes) -> int:
    """Bytes of one queued wire item (a text packet's UTF-8 length, a binary one's length)."""
    return utf8_length(item) if type(item) is str else len(item)


def _oversize(size_hint: int, limit: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"packet of {size_hint} bytes exceeds maxPayload {limit}",
        http_status=HTTP_PAYLOAD_TOO_LARGE,
        ws_close_code=WS_CLOSE_MESSAGE_TOO_BIG,
    )


class EngineSession:
    """One Engine.IO v4 session (and its Socket.IO v5 namespaces), sans I/O.

    Args:
        sid: the Engine.IO session id (generated by the adapter).
        config: handshake and limits.
        now: monotonic seconds; the first PING is due at ``now + ping_interval``.
        transport: the transport that opened the session.
        socketio: False for a bare Engine.IO session delivering ``EioMessageReceived``.
    """

    __slots__ = (
        "_backlog_bytes",
        "_close_event",
        "_close_reported",
        "_config",
        "_connect_deadline",
        "_decoder",
        "_is_closed",
        "_is_poll_pending",
        "_is_poll_release_due",
        "_is_posting",
        "_is_probed",
        "_is_root_connected",
        "_last_ping_at",
        "_max_buffered_bytes",
        "_max_payload_bytes",
        "_namespaces",
        "_next_ping_at",
        "_out",
        "_out_bytes",
        "_ping_interval_s",
        "_ping_timeout_s",
        "_pong_deadline",
        "_probe_out",
        "_refused_namespaces",
        "_sid",
        "_socketio",
        "_state",
        "_transport",
        "_upgrade_noop_at",
    )

    def __init__(
        self,
        sid: str,
        config: SessionConfig,
        *,
        now: float,
        transport: Transport,
        socketio: bool = True,
    ) -> None:
        self._sid = sid
        self._config = config
        self._transport = transport
        self._socketio = socketio
        self._state = SessionState.OPEN
        self._is_closed = False
        self._close_reported = True
        self._close_event: SessionClosed | None = None
        self._decoder: SioDecoder | None = SioDecoder() if socketio else None
        self._namespaces: dict[str, _Namespace] = {}
        self._is_root_connected = False
        self._is_poll_pending = False
        self._max_payload_bytes = config.max_payload_bytes
        self._max_buffered_bytes = config.max_buffered_bytes
        self._backlog_bytes = 0  # reported by the adapter: bytes in the server's write buffer
        self._ping_interval_s = config.ping_interval_ms / 1000
        self._ping_timeout_s = config.ping_timeout_ms / 1000
        self._next_ping_at: float | None = now + self._ping_interval_s
        self._pong_deadline: float | None = None
        self._last_ping_at = now
        self._probe_out: list[str | bytes] = []
        self._upgrade_noop_at: float | None = None
        self._is_posting = False
        self._is_probed = False
        self._refused_namespaces = 0
        self._connect_deadline: float | None = now + config.connect_timeout_ms / 1000 if socketio else None
        self._is_poll_release_due = False
        upgrades = [Transport.WEBSOCKET.value] if transport is Transport.POLLING and config.upgrades_enabled else []
        # Wire items, in order: a str is one Engine.IO text packet (type digit first), a
        # bytes is one binary MESSAGE. The same list is the polling buffer before the upgrade
        # and the WebSocket buffer after it, so buffered packets "move" for free.
        self._out: list[str | bytes] = []
        self._out_bytes = 0  # UTF-8 bytes of the text items plus the binary items' lengths
        self._push(
            str(EioPacketType.OPEN.value)
            + open_packet_data(
                sid,
                upgrades=upgrades,
                ping_interval_ms=config.ping_interval_ms,
                ping_timeout_ms=config.ping_timeout_ms,
                max_payload_bytes=config.max_payload_bytes,
            )
        )

    # -- properties --------------------------------------------------------------------

    @property
    def sid(self) -> str:
        """The Engine.IO session id."""
        return self._sid

    @property
    def state(self) -> SessionState:
        """The current state (see ``TRANSITIONS``)."""
        return self._state

    @property
    def transport(self) -> Transport:
        """The active transport (switches to WEBSOCKET on ``UpgradeCompleted``)."""
        return self._transport

    @property
    def is_closed(self) -> bool:
        """True once the session is closed (a GET or POST for it then gets HTTP 400)."""
        return self._is_closed

    @property
    def config(self) -> SessionConfig:
        """The configuration announced in the handshake."""
        return self._config

    # -- inbound -----------------------------------------------------------------------

    def receive_ws(self, frame: str | bytes, *, now: float) -> list[Event]:
        """Handle one frame from the session's active WebSocket.

        Returns:
            The events; after a peer error the last one is ``SessionClosed(PARSE_ERROR)``.

        Raises:
            LocalProtocolError: the transport is not (yet) WEBSOCKET.
        """
        if self._is_closed:
            return []
        if self._transport is not Transport.WEBSOCKET:
            raise LocalProtocolError("receive_ws before the upgrade: use receive_upgrade_ws")
        try:
            if isinstance(frame, str):
                length = len(frame)
                limit = self._max_payload_bytes
                # Cheap bound first: a char is 1 to 4 UTF-8 bytes.
                if length * 4 > limit and (length > limit or utf8_length(frame) > limit):
                    raise _oversize(length, limit)
                return self._receive_text(frame)
            if len(frame) > self._max_payload_bytes:
                raise _oversize(len(frame), self._max_payload_bytes)
            return self._receive_message(bytes(frame))
        except RemoteProtocolError as exc:
            return self._fail(exc)

    def begin_post(self, *, body_size_bytes: int) -> list[Event]:
        """Register a polling POST whose body is ``body_size_bytes`` long (or longer: the
        adapter may stop reading past maxPayload). Engine.IO v4: one POST at a time.

        Returns:
            ``[]``: go on with ``receive_polling_post``, then ``end_post``. Otherwise the
            session is now closed and the list is ``[SessionClosed(reason, error)]``: answer
            this POST with ``error.http_status`` and do not call ``end_post``. Overlapping
            POST: 400, TRANSPORT_ERROR (engine.io: "data request overlap from client").
            Body over maxPayload: 413, PARSE_ERROR (SPEC section 3).

        Raises:
            RemoteProtocolError: (HTTP 400) the session is already closed, or upgraded to
                websocket: then the session goes on untouched (engine.io answers such a
                request 400 "Bad request", TRANSPORT_MISMATCH), so whoever learns a sid
                cannot end the session with a POST.
        """
        if self._is_closed:
            raise RemoteProtocolError("polling POST for a closed session")
        if self._transport is not Transport.POLLING:
            raise RemoteProtocolError("polling POST on a session upgraded to websocket")
        if self._is_posting:
            error = RemoteProtocolError("overlapping polling POST requests")
            return [self._close(CloseReason.TRANSPORT_ERROR, error, polling_packet=_CLOSE)]
        if body_size_bytes > self._max_payload_bytes:
            return self._fail(_oversize(body_size_bytes, self._max_payload_bytes))
        self._is_posting = True
        return []

    def end_post(self) -> None:
        """The POST registered by ``begin_post`` is handled (its events ran)."""
        self._is_posting = False

    def receive_polling_post(self, body: str, *, now: float) -> list[Event]:
        """Handle the body of one polling POST (several packets separated by ``\\x1e``).

        Events of the packets before an invalid one are kept; the list then ends with
        ``SessionClosed(PARSE_ERROR, error)``: answer that POST with ``error.http_status``
        (413 when the body exceeds maxPayload, else 400). Otherwise answer ``ok``.
        The whole body at once: ``polling_post_slices`` is the same in slices.
        """
        events: list[Event] = []
        for chunk in self.polling_post_slices(body, now=now, packets_per_slice=len(body) + 1):
            events.extend(chunk)
        return events

    def polling_post_slices(
        self, body: str, *, now: float, packets_per_slice: int = POLLING_SLICE_PACKETS
    ) -> Iterator[list[Event]]:
        """``receive_polling_post`` in slices: yields the events of at most
        ``packets_per_slice`` packets at a time (an empty list for a slice without events).

        The adapter handles each slice before asking for the next, and may stop early (close
        the iterator): the packets not decoded yet are dropped unread, and a binary packet
        still waiting for its attachments is dropped with them. The last slice after a peer
        error ends with ``SessionClosed(PARSE_ERROR, error)``, as ``receive_polling_post``.
        """
        if self._is_closed:
            return
        try:
            if self._transport is not Transport.POLLING:
                raise RemoteProtocolError("polling POST on a session upgraded to websocket")
            length = len(body)
            limit = self._max_payload_bytes
            if length * 4 > limit and (length > limit or utf8_length(body) > limit):
                raise _oversize(length, limit)
        except RemoteProtocolError as exc:
            yield self._fail(exc)
            return
        # Packets are cut out one at a time (no split of the whole body): what an adapter
        # drops after closing the iterator is never even scanned.
        position, end = 0, len(body)
        is_complete = False
        try:
            while position <= end:
                events: list[Event] = []
                try:
                    for _ in range(packets_per_slice):
                        cut = body.find(RECORD_SEPARATOR, position)
                        if cut < 0:
                            cut = end
                        part = body[position:cut] if position or cut != end else body
                        position = cut + 1
                        events.extend(self._receive_polling_packet(part))
                        if self._is_closed or position > end:  # CLOSE: ignore what follows it
                            break
                except RemoteProtocolError as exc:
                    events.extend(self._fail(exc))
                yield events
                if self._is_closed:
                    break
            is_complete = True
        finally:
            if not is_complete and self._decoder is not None:
                self._decoder.discard_pending()

    def _receive_polling_packet(self, part: str) -> list[Event]:
        if part[:1] == BINARY_PREFIX:
            # Engine.IO v4: binary in a polling payload is "b" + base64.
            try:
                data = base64.b64decode(part[1:], validate=True)
            except ValueError as exc:  # binascii.Error, or non-ASCII text
                raise RemoteProtocolError("bad base64 in binary polling packet") from exc
            return self._receive_message(data)
        return self._receive_text(part)

    def _receive_text(self, text: str) -> list[Event]:
        """One Engine.IO text packet from the active transport (size already checked)."""
        decoder = self._decoder
        if (
            self._is_root_connected
            and text.startswith(_FAST_EVENT_PREFIX)
            and decoder is not None
            and not decoder.is_reconstructing
        ):
            # Fast path, the bulk of the traffic: '42[' + JSON array, one parse, no SioPacket.
            data = parse_json(text, 2)
            if type(data) is not list or not data:
                raise RemoteProtocolError("EVENT payload must be [event_name, *args]")
            event = data[0]
            if type(event) is not str:
                event = incoming_event_name(event)
                if event is None:
                    raise RemoteProtocolError(f"invalid event name {data[0]!r}")
            elif event in RESERVED_EVENTS:
                raise RemoteProtocolError(f"reserved event name {event!r}")
            return [SioEventReceived(_ROOT, event, data[1:], None, utf8_length(text, 2))]
        kind = text[:1]
        if kind == _MESSAGE:
            return self._receive_message(text[1:])
        if kind == "3":  # PONG
            if self._pong_deadline is not None:
                self._pong_deadline = None
                # The server pings every pingInterval, counted from the previous PING.
                self._next_ping_at = self._last_ping_at + self._ping_interval_s
            return []
        if kind == _CLOSE:
            # Engine.IO: the client closes; release a pending GET with a NOOP, as the
            # reference server does (its test suite expects "6" there).
            return [self._close(CloseReason.CLIENT_CLOSE, None, polling_packet=_NOOP)]
        if kind == _NOOP:
            return []
        if kind == _PING:
            raise RemoteProtocolError("PING from the client (v4: the server pings)")
        if kind in ("0", _UPGRADE):
            raise RemoteProtocolError(f"unexpected Engine.IO packet type {kind!r}")
        raise RemoteProtocolError(f"unknown Engine.IO packet type {kind!r}")

    def _receive_message(self, data: str | bytes) -> list[Event]:
        decoder = self._decoder
        if decoder is None:
            return [EioMessageReceived(data)]
        packet = decoder.feed(data)
        if packet is None:
            pending = decoder.pending_namespace
            if pending is not None and self._namespaces.get(pending) is not _Namespace.CONNECTED:
                # A binary packet's attachments are held only for a connected (authenticated)
                # namespace: before that nothing may make the server keep bytes.
                if self._namespaces.get(pending) is _Namespace.LEFT:
                    decoder.skip_pending()  # in flight while we refused it: dropped unread
                else:
                    raise RemoteProtocolError(f"binary packet for unconnected namespace {pending!r}")
            return []
        return self._receive_sio(packet, decoder.data_size_bytes)

    def _receive_sio(self, packet: SioPacket, size_bytes: int) -> list[Event]:
        namespace = packet.namespace
        state = self._namespaces.get(namespace)
        packet_type = packet.type
        if packet_type is SioPacketType.CONNECT:
            if state is _Namespace.PENDING or state is _Namespace.CONNECTED:
                raise RemoteProtocolError(f"second CONNECT for namespace {namespace!r}")
            if len(namespace) > MAX_NAMESPACE_CHARS:
                raise RemoteProtocolError(f"namespace name of {len(namespace)} characters")
            if self._refused_namespaces >= MAX_REFUSED_NAMESPACES:
                raise RemoteProtocolError(f"more than {MAX_REFUSED_NAMESPACES} refused CONNECTs")
            self._namespaces[namespace] = _Namespace.PENDING
            return [SioConnect(namespace, packet.data)]
        if state is not _Namespace.CONNECTED:
            if state is _Namespace.LEFT:
                return []  # in flight while we rejected / disconnected it
            # Socket.IO v5: "If the server does not receive a CONNECT packet first, then it
            # MUST close the connection immediately."
            raise RemoteProtocolError(f"packet for unconnected namespace {namespace!r}")
        data = packet.data
        if packet_type is SioPacketType.EVENT:
            event = incoming_event_name(data[0])
            assert event is not None  # the decoder refuses any other first element
            return [SioEventReceived(namespace, event, data[1:], packet.id, size_bytes)]
        if packet_type is SioPacketType.ACK:
            assert packet.id is not None  # the decoder refuses an ACK without id
            return [SioAckReceived(namespace, packet.id, data)]
        # DISCONNECT (the decoder lets no other type through)
        del self._namespaces[namespace]
        if namespace == _ROOT:
            self._is_root_connected = False
        return [SioDisconnect(namespace)]

    # -- upgrade -----------------------------------------------------------------------

    def begin_upgrade(self, *, now: float) -> None:
        """A WebSocket with this sid arrived: start probing it (state UPGRADING).

        Raises:
            RemoteProtocolError: (HTTP 400 / close 1002) upgrade not possible now (not a
                polling session, already upgrading or upgraded, upgrades disabled, closed).
                The session is unchanged: refuse / close that WebSocket only.
        """
        if (
            self._state is not SessionState.OPEN
            or self._transport is not Transport.POLLING
            or not self._config.upgrades_enabled
        ):
            raise RemoteProtocolError(f"upgrade refused (state {self._state}, transport {self._transport})")
        self._state = transition(self._state, SessionEvent.PROBE_OPENED)
        self._probe_out = []
        self._is_probed = False

    def receive_upgrade_ws(self, frame: str | bytes, *, now: float) -> list[Event]:
        """Handle one frame of the probe WebSocket (state UPGRADING).

        ``2probe`` queues ``3probe`` for ``outgoing_probe_ws()`` and a NOOP for the polling
        GET (wake it). ``5`` completes the upgrade: returns ``[UpgradeCompleted()]``; from then
        on this WebSocket is the transport (use ``receive_ws`` / ``outgoing_ws``).

        Returns ``[]`` if the session is closed (the adapter then closes the WebSocket).

        Raises:
            RemoteProtocolError: any other frame. The upgrade is aborted (state OPEN, polling
                goes on); close that WebSocket with ``exc.ws_close_code``.
            LocalProtocolError: the session is not UPGRADING.
        """
        if self._is_closed:
            return []
        if self._state is not SessionState.UPGRADING:
            raise LocalProtocolError("receive_upgrade_ws outside of an upgrade")
        if frame == _PROBE_PING:
            self._probe_out.append(_PROBE_PONG)
            if not self._is_probed:
                # Engine.IO v4 "Upgrade": send a noop to any pending GET so polling ends
                # cleanly. Once: a client repeating the probe gets 3probe again, but the
                # polling buffer does not grow by one NOOP per probe.
                self._is_probed = True
                self._push(_NOOP)
            if not self._is_closed:  # the NOOP may have passed the outgoing bound
                self._upgrade_noop_at = now + UPGRADE_NOOP_INTERVAL_S
            return []
        if frame == _UPGRADE:
            self._state = transition(self._state, SessionEvent.UPGRADE_RECEIVED)
            self._transport = Transport.WEBSOCKET
            self._upgrade_noop_at = None
            # A GET still pending is answered NOOP: polling ends, nothing is left hanging.
            self._is_poll_release_due = self._is_poll_pending
            if _NOOP in self._out:
                # The probe's NOOP was for a polling GET; none took it, so it must not
                # reach the websocket (the v4 suite expects the next frame to be data).
                self._out = [item for item in self._out if item != _NOOP]
            if self._probe_out:
                self._out[:0] = self._probe_out
                self._probe_out = []
            self._out_bytes = sum(map(_item_size, self._out))
            return [UpgradeCompleted()]
        self.abort_upgrade()
        raise RemoteProtocolError("unexpected frame on the probe websocket")

    def abort_upgrade(self) -> None:
        """The probe WebSocket went away before ``5``: back to OPEN on polling.

        A no-op unless UPGRADING (after the upgrade, a closed WebSocket is
        ``transport_closed``).
        """
        if self._state is SessionState.UPGRADING:
            self._state = transition(self._state, SessionEvent.PROBE_FAILED)
            self._probe_out = []
            self._upgrade_noop_at = None

    def outgoing_probe_ws(self) -> list[str | bytes]:
        """Frames to write on the probe WebSocket (clears them)."""
        frames = self._probe_out
        self._probe_out = []
        return frames

    # -- polling GET -------------------------------------------------------------------

    def begin_poll(self) -> None:
        """Register a polling GET; it waits until ``has_polling_data()``.

        Raises:
            RemoteProtocolError: (HTTP 400) the session is closed, or upgraded to websocket
                (the session goes on), or a GET is already pending: then the session CLOSES
                (Engine.IO v4: "the server MUST return an HTTP 400 error status and close the
                session"), queues CLOSE for the pending GET, and the next ``close()`` /
                ``transport_closed()`` call returns its ``SessionClosed(TRANSPORT_ERROR)``.
        """
        if self._is_closed:
            raise RemoteProtocolError("polling GET for a closed session")
        if self._transport is not Transport.POLLING:
            raise RemoteProtocolError("polling GET on a session upgraded to websocket")
        if self._is_poll_pending:
            error = RemoteProtocolError("a second polling GET while one is pending")
            self._close(CloseReason.TRANSPORT_ERROR, error, polling_packet=_CLOSE)
            self._close_reported = False
            raise error
        self._is_poll_pending = True

    def end_poll(self) -> None:
        """The pending GET finished (answered or gone)."""
        self._is_poll_pending = False
        self._is_poll_release_due = False

    def has_polling_data(self) -> bool:
        """True when a polling GET has something to return: buffered packets (transport still
        POLLING), or the NOOP that releases a GET left pending by the upgrade."""
        if self._transport is Transport.POLLING:
            return bool(self._out)
        return self._is_poll_release_due

    def take_polling_payload(self) -> str:
        """All buffered packets as one polling payload (binary as ``b`` + base64); clears them.

        Raises:
            LocalProtocolError: nothing buffered (see ``has_polling_data``).
        """
        if not self.has_polling_data():
            raise LocalProtocolError("no polling data (check has_polling_data first)")
        if self._transport is Transport.WEBSOCKET:
            self._is_poll_release_due = False
            return _NOOP
        items = self._out
        self._out = []
        self._out_bytes = 0
        if len(items) == 1:
            return encode_polling_item(items[0])
        return RECORD_SEPARATOR.join([encode_polling_item(item) for item in items])

    # -- outbound (app) ----------------------------------------------------------------

    def _require_socketio(self) -> None:
        if not self._socketio:
            raise LocalProtocolError("Socket.IO call on a bare Engine.IO session")

    def accept_namespace(self, namespace: str, sio_sid: str) -> None:
        """Accept a pending CONNECT: queues ``0[<namespace>,]{"sid":...}``.

        Raises:
            LocalProtocolError: the namespace has no pending CONNECT.
        """
        self._require_socketio()
        if self._is_closed:
            return
        if self._namespaces.get(namespace) is not _Namespace.PENDING:
            raise LocalProtocolError(f"no pending CONNECT for namespace {namespace!r}")
        self._queue_packets(encode_packet(SioPacket(SioPacketType.CONNECT, namespace, {"sid": sio_sid})))
        if self._is_closed:  # the reply passed the outgoing bound
            return
        self._namespaces[namespace] = _Namespace.CONNECTED
        self._connect_deadline = None
        if namespace == _ROOT:
            self._is_root_connected = True

    def reject_namespace(self, namespace: str, message: str, data: Any = None) -> None:
        """Refuse a pending CONNECT: queues ``4[<namespace>,]{"message":...[,"data":...]}``.

        Raises:
            LocalProtocolError: the namespace has no pending CONNECT.
        """
        self._require_socketio()
        if self._is_closed:
            return
        if self._namespaces.get(namespace) is not _Namespace.PENDING:
            raise LocalProtocolError(f"no pending CONNECT for namespace {namespace!r}")
        payload: dict[str, Any] = {"message": message}
        if data is not None:
            payload["data"] = data
        self._queue_packets(encode_packet(SioPacket(SioPacketType.CONNECT_ERROR, namespace, payload)))
        self._refused_namespaces += 1
        if namespace == _ROOT:
            self._namespaces[namespace] = _Namespace.LEFT
        else:
            # Nothing is kept for a refused namespace (its name may be long): a later packet
            # for it closes the session, as socket.io's server closes a client that sends
            # to a namespace it is not connected to (lib/client.ts "invalid state").
            del self._namespaces[namespace]

    def emit(self, event: str, *args: Any, namespace: str = "/", ack_id: int | None = None) -> None:
        """Queue an EVENT (binary arguments supported). Hot path: ``encode_event`` +
        ``send_sio_text`` (encode once, send to many)."""
        self._require_socketio()
        if self._is_closed:
            return
        self._queue_packets(encode_packet(SioPacket(SioPacketType.EVENT, namespace, [event, *args], ack_id)))

    def ack(self, ack_id: int, args: list[Any], *, namespace: str = "/") -> None:
        """Queue an ACK for the client's event ``ack_id`` (binary arguments supported)."""
        self._require_socketio()
        if self._is_closed:
            return
        self._queue_packets(encode_packet(SioPacket(SioPacketType.ACK, namespace, args, ack_id)))

    def send_sio_text(self, text: str) -> None:
        """Queue an already-encoded Socket.IO text packet (from ``encode_event`` /
        ``encode_ack``): the hot path, no JSON work and no validation here."""
        if self._is_closed:
            return
        self._push(_MESSAGE + text)

    def send_eio_message(self, data: str | bytes) -> None:
        """Queue a raw Engine.IO MESSAGE (bare Engine.IO sessions, e.g. an echo server)."""
        if self._is_closed:
            return
        self._push(_MESSAGE + data if isinstance(data, str) else bytes(data))

    def disconnect_namespace(self, namespace: str = "/") -> None:
        """Queue a Socket.IO DISCONNECT for ``namespace``; its in-flight packets are dropped."""
        self._require_socketio()
        if self._is_closed:
            return
        self._push(_MESSAGE + "1" + namespace_prefix(namespace))
        self._namespaces[namespace] = _Namespace.LEFT
        if namespace == _ROOT and not self._is_closed:
            self._is_root_connected = False

    def _queue_packets(self, items: list[str | bytes]) -> None:
        # encode_packet returns the text packet first, then the binary attachments.
        self._push(_MESSAGE + cast(str, items[0]))
        for attachment in items[1:]:
            self._push(attachment)

    def _push(self, item: str | bytes) -> None:
        """Queue one wire item; past the outgoing bound, close the session (slow reader)."""
        self._out.append(item)
        self._out_bytes += _item_size(item)
        if self._out_bytes + self._backlog_bytes > self._max_buffered_bytes:
            self._overflow()

    def note_transport_backlog(self, buffered_bytes: int) -> list[Event]:
        """The adapter reports how many bytes it wrote that still wait in the server's write
        buffer (0 where it cannot tell, or where writes wait for the peer instead).

        Returns:
            ``[SessionClosed(TRANSPORT_ERROR, buffered_bytes=...)]`` when this backlog plus
            the session's queue exceed ``max_buffered_bytes`` (the session is now closed;
            drop the connection), else ``[]``.
        """
        if self._is_closed:
            return []
        self._backlog_bytes = buffered_bytes
        if self._out_bytes + buffered_bytes > self._max_buffered_bytes:
            self._overflow()
            return self._take_unreported_close()
        return []

    @property
    def buffered_bytes(self) -> int:
        """Bytes waiting for the client: the session's queue plus the last reported backlog."""
        return self._out_bytes + self._backlog_bytes

    def _overflow(self) -> None:
        # socket.io and browsers buffer without limit; a client that does not read would
        # hold the server's memory: drop what waits for it and close, as a lost transport.
        waiting = self._out_bytes + self._backlog_bytes
        self._out = []
        self._out_bytes = 0
        self._close(CloseReason.TRANSPORT_ERROR, None, polling_packet=_CLOSE, buffered_bytes=waiting)
        self._close_reported = False

    def close(self, reason: CloseReason = CloseReason.SERVER_CLOSE) -> list[Event]:
        """Close the session (idempotent).

        WebSocket: nothing more is queued (drain ``outgoing_ws()``, then close the socket).
        Polling: queues an Engine.IO CLOSE for the pending / next GET.

        Returns:
            ``[SessionClosed(reason)]`` the first time (or the close that ``begin_poll``
            could not report), then ``[]``.
        """
        if self._is_closed:
            return self._take_unreported_close()
        return [self._close(reason, None, polling_packet=_CLOSE)]

    def transport_closed(self, *, now: float) -> list[Event]:
        """The active transport went away (WebSocket disconnect, polling client gone).

        Returns:
            ``[SessionClosed(TRANSPORT_CLOSE)]`` once (or an unreported close), then ``[]``.
        """
        if self._is_closed:
            return self._take_unreported_close()
        return [self._close(CloseReason.TRANSPORT_CLOSE, None, polling_packet=None)]

    def _take_unreported_close(self) -> list[Event]:
        if self._close_reported or self._close_event is None:
            return []
        self._close_reported = True
        return [self._close_event]

    def _close(
        self,
        reason: CloseReason,
        error: RemoteProtocolError | None,
        *,
        polling_packet: str | None,
        buffered_bytes: int | None = None,
    ) -> SessionClosed:
        self._state = transition(self._state, SessionEvent.CLOSE)
        self._is_closed = True
        self._next_ping_at = None
        self._pong_deadline = None
        self._probe_out = []
        self._upgrade_noop_at = None
        self._connect_deadline = None
        self._is_root_connected = False
        if polling_packet is not None and self._transport is Transport.POLLING:
            self._out.append(polling_packet)  # past the bound too: the close must go out
            self._out_bytes += len(polling_packet)
        event = SessionClosed(reason, error, buffered_bytes)
        self._close_event = event
        return event

    def _fail(self, error: RemoteProtocolError) -> list[Event]:
        return [self._close(CloseReason.PARSE_ERROR, error, polling_packet=_CLOSE)]

    # -- draining ----------------------------------------------------------------------

    def outgoing_ws(self) -> list[str | bytes]:
        """Frames to write on the active WebSocket, in order (clears them). Each Engine.IO
        packet is one frame; a binary Socket.IO packet is its text frame, then bytes frames.

        Raises:
            LocalProtocolError: the transport is not WEBSOCKET (yet).
        """
        if self._transport is not Transport.WEBSOCKET:
            raise LocalProtocolError("outgoing_ws on a polling session")
        frames = self._out
        self._out = []
        self._out_bytes = 0
        return frames

    # -- timers ------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest of the next PING, the PONG deadline, the connect deadline (until a
        namespace is accepted) and, while an upgrade probe is in progress, the next NOOP
        check of the pending GET; ``None`` once closed."""
        timers = (self._next_ping_at, self._pong_deadline, self._upgrade_noop_at, self._connect_deadline)
        deadlines = [at for at in timers if at is not None]
        return min(deadlines) if deadlines else None

    def handle_timer(self, *, now: float) -> list[Event]:
        """Run the timers at ``now``: close on PONG timeout or when no namespace was
        accepted within ``connect_timeout_ms``; queue a due PING; while an upgrade probe is
        in progress, queue a NOOP for a pending GET that has nothing.

        Returns:
            ``[SessionClosed(PING_TIMEOUT)]`` / ``[SessionClosed(SERVER_CLOSE)]`` on timeout,
            ``[SessionClosed(TRANSPORT_ERROR, buffered_bytes=...)]`` when the PING passed
            the outgoing bound, else ``[]`` (a PING may be queued: drain / wake the GET).
        """
        if self._is_closed:
            return []
        if self._pong_deadline is not None and now >= self._pong_deadline:
            return [self._close(CloseReason.PING_TIMEOUT, None, polling_packet=_CLOSE)]
        if self._connect_deadline is not None and now >= self._connect_deadline:
            # socket.io (lib/client.ts): "no namespace joined yet, close the client".
            return [self._close(CloseReason.SERVER_CLOSE, None, polling_packet=_CLOSE)]
        if self._upgrade_noop_at is not None and now >= self._upgrade_noop_at:
            # A GET pending with nothing to say during the upgrade gets a NOOP (engine.io).
            if self._is_poll_pending and not self._out:
                self._push(_NOOP)
            self._upgrade_noop_at = now + UPGRADE_NOOP_INTERVAL_S
        if self._next_ping_at is not None and now >= self._next_ping_at:
            self._push(_PING)
            self._last_ping_at = now
            self._pong_deadline = now + self._ping_timeout_s
            self._next_ping_at = None
        if self._is_closed:  # the NOOP or the PING passed the outgoing bound
            self._pong_deadline = self._upgrade_noop_at = None
            return self._take_unreported_close()
        return []
