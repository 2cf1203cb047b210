"""One Engine.IO connection's I/O shell around the sans-IO session (STYLE section 1).

Owns, per process: the registry of live Engine.IO sessions (polling requests and upgrade
websockets find their session here by ``sid``), the single timer armed at the session's
next deadline, and the writing of the session's output to whichever transport is active.
It hands every session event to a :class:`SocketApp` (the signaling service, or the
conformance app) and never decides anything about rooms. No ORM, no channel layer.

Websocket writes (issue 11): a write goes out at once while the server would take it without
waiting (daphne always; uvicorn until its transport pauses); otherwise one drain task per
connection writes the queue in order and nobody else waits for a slow client. After each
write the server's write-buffer backlog is reported to the session, which closes a client
whose queue plus backlog passes ``max_buffered_bytes``; such a connection is aborted (a close
frame would wait behind what it never read), and the app hears ``on_close`` as for any lost
transport.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from signaling.consumers import server_transports
from signaling.consumers.server_transports import ServerTransport, UnknownTransport
from signaling.protocol import (
    CloseReason,
    EioMessageReceived,
    EngineSession,
    RemoteProtocolError,
    SessionClosed,
    SessionConfig,
    SioAckReceived,
    SioConnect,
    SioDisconnect,
    SioEventReceived,
    Transport,
    UpgradeCompleted,
)

logger = logging.getLogger(__name__)

# ASGI send callable of the transport currently carrying the session's websocket frames.
WsSend = Callable[[dict[str, Any]], Awaitable[None]]
SID_BYTES = 15  # 20 URL-safe characters, as socket.io's own ids
# Engine.IO MESSAGE + Socket.IO EVENT without attachments: the frames a pause drops unread
# (pings, pongs, closes, CONNECTs and binary packets are always read).
EVENT_FRAME_PREFIX = "42"
# Peers remembered for "log once at WARNING"; the set is cleared when it grows past this.
MAX_WARNED_PEERS = 10_000


# Random bytes for ids come from the OS in batches: one getrandom() call per 256 ids
# instead of one per id (that call was an eighth of the connect path's CPU in a profile).
_RANDOM_BATCH_BYTES = SID_BYTES * 256
_random_pool = b""
_random_offset = 0


def new_sid() -> str:
    """An unguessable URL-safe id (Engine.IO sid or Socket.IO client id): 120 random bits."""
    global _random_pool, _random_offset
    if _random_offset + SID_BYTES > len(_random_pool):
        _random_pool, _random_offset = secrets.token_bytes(_RANDOM_BATCH_BYTES), 0
    chunk = _random_pool[_random_offset : _random_offset + SID_BYTES]
    _random_offset += SID_BYTES
    return base64.urlsafe_b64encode(chunk).decode("ascii")


# RFC 6455 normal closure: the one close code every ASGI server lets an application send.
WS_CLOSE_NORMAL = 1000


async def close_websocket(send: WsSend, code: int) -> None:
    """Send ``websocket.close`` with ``code``, or with 1000 if the ASGI server refuses ``code``.

    Some ASGI servers accept only application close codes (1000, 3000-4999); daphne is
    taught the RFC 6455 protocol codes by ``daphne_close_codes``. Where a server still
    refuses, a plain close is better than a socket left open after its session ended.
    """
    try:
        await send({"type": "websocket.close", "code": code})
    except Exception:  # autobahn raises a bare Exception for a refused close code
        if code == WS_CLOSE_NORMAL:
            raise
        logger.debug("close code %s refused by the ASGI server; closing with 1000", code)
        await send({"type": "websocket.close", "code": WS_CLOSE_NORMAL})


class SocketApp(Protocol):
    """What a Socket.IO application implements; the connection calls it for each event."""

    async def on_connect(self, conn: Connection, event: SioConnect) -> None: ...
    async def on_event(self, conn: Connection, event: SioEventReceived) -> None: ...
    async def on_ack(self, conn: Connection, event: SioAckReceived) -> None: ...
    async def on_message(self, conn: Connection, event: EioMessageReceived) -> None: ...
    async def on_sio_disconnect(self, conn: Connection, event: SioDisconnect) -> None: ...
    async def on_close(self, conn: Connection, reason: CloseReason) -> None: ...


class Connection:
    """A live Engine.IO session plus the handles of its transport(s)."""

    registry: dict[str, Connection] = {}
    _warned_peers: set[tuple[str, str]] = set()  # (what was logged, client address)
    # What a drain waits for besides the registry: sessions whose close is still running (the
    # app's on_close), and accepted websockets the ASGI server has not yet reported gone.
    _closing_count = 0
    _open_websockets = 0

    def __init__(
        self,
        app: SocketApp,
        config: SessionConfig,
        transport: Transport,
        scope: dict[str, Any],
        *,
        socketio: bool = True,
    ) -> None:
        self.app = app
        self.scope = scope
        self.eio_sid = new_sid()
        self.session = EngineSession(self.eio_sid, config, now=time.monotonic(), transport=transport, socketio=socketio)
        self.ws_send: WsSend | None = None
        self.probe_send: WsSend | None = None  # the upgrade probe's websocket, until it carries the session
        self.ws_transport: ServerTransport = UnknownTransport()
        self._drain_task: asyncio.Task[None] | None = None
        self._poll_ready: asyncio.Event | None = None  # made by the first poll (memory per socket)
        self.state: Any = None  # owned by the app (the signaling service's SocketState)
        self.namespaces: dict[str, str] = {}  # namespace -> Socket.IO client id
        # With connection state recovery on: the last packets written (a bounded deque the
        # app installs), so that what the client may not have received can be held for it.
        self.sent: deque[str] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        # Monotonic time until which the app refuses this session's events (rate limit):
        # until then incoming EVENT packets are dropped unread (see ``pause_events``).
        self._events_paused_until = 0.0
        Connection.registry[self.eio_sid] = self
        self._arm_timer()  # the session's deadlines: heartbeat, connect timeout, upgrade checks

    # -- inbound ---------------------------------------------------------------------

    async def handle(self, events: list[Any]) -> None:
        """Dispatch session events to the app, then write whatever the session queued."""
        app = self.app
        for event in events:
            kind = type(event)
            if kind is SioEventReceived:
                await app.on_event(self, event)
            elif kind is SioAckReceived:
                await app.on_ack(self, event)
            elif kind is SioConnect:
                await app.on_connect(self, event)
            elif kind is EioMessageReceived:
                await app.on_message(self, event)
            elif kind is SioDisconnect:
                self.namespaces.pop(event.namespace, None)
                await app.on_sio_disconnect(self, event)
            elif kind is SessionClosed:
                await self._finish(event)
                return
            elif kind is UpgradeCompleted:
                logger.debug("session %s upgraded to websocket", self.eio_sid)
        await self.flush()

    async def receive_ws(self, frame: str | bytes) -> None:
        """A frame from the active websocket; a text EVENT while events are paused is
        dropped unread (its parse would be work for nothing)."""
        now = time.monotonic()
        if now < self._events_paused_until and type(frame) is str and frame.startswith(EVENT_FRAME_PREFIX):
            return
        await self.handle(self.session.receive_ws(frame, now=now))

    def pause_events(self, duration_s: float) -> None:
        """The app refuses this session's events for ``duration_s``: text EVENT packets
        arriving meanwhile are dropped unread (websocket), and a polling POST stops being
        decoded (the rest of its body is dropped)."""
        self._events_paused_until = time.monotonic() + duration_s

    def are_events_paused(self, now: float) -> bool:
        """True while ``pause_events`` is in force."""
        return now < self._events_paused_until

    @property
    def poll_ready(self) -> asyncio.Event:
        """Set when a polling GET has something to return (or the session ended).

        Made on first use: a websocket-only session never polls, and an ``asyncio.Event``
        costs 0.75 KB per socket."""
        if self._poll_ready is None:
            self._poll_ready = asyncio.Event()
            if self._closed:
                self._poll_ready.set()
        return self._poll_ready

    def _wake_poll(self) -> None:
        if self._poll_ready is not None:
            self._poll_ready.set()

    # -- outbound --------------------------------------------------------------------

    def accept(self, namespace: str, client_id: str, *, pid: str | None = None) -> None:
        """Accept a namespace CONNECT under ``client_id`` (the client's ``socket.id``); ``pid``:
        the recovery session id the CONNECT reply carries (connection state recovery)."""
        self.namespaces[namespace] = client_id
        self.session.accept_namespace(namespace, client_id, pid=pid)

    def attach_websocket(self, send: WsSend, asgi_send: Any) -> None:
        """The websocket whose ASGI ``send`` is ``asgi_send`` now carries the session
        (``send``: the consumer's wrapper of it)."""
        self.ws_send = send
        self.ws_transport = server_transports.transport_of(asgi_send)

    def detach_websocket(self) -> None:
        """The websocket went away."""
        self.ws_send = None
        self.ws_transport = UnknownTransport()

    async def send_sio_text(self, text: str) -> None:
        """Queue one pre-encoded Socket.IO packet and write it (the relay hot path).

        Once the session is closed nothing is written; with recovery on (``sent`` kept) the
        packet is still remembered, for the hold of this session that its close may bring
        (``recovery.hold`` takes ``sent`` and sets it to None)."""
        session = self.session
        if session.is_closed:
            if self.sent is not None:
                self.sent.append(text)
            return
        session.send_sio_text(text)
        if self.sent is not None:
            self.sent.append(text)
        if session.is_closed:  # past the outgoing bound: the client is not reading
            self._end_overflowed()
        elif session.transport is Transport.WEBSOCKET:
            await self._write_ws()  # sending moves no deadline: no timer work on the hot path
        elif session.has_polling_data():
            self._wake_poll()

    async def flush(self) -> None:
        """Write queued output to the active transport and re-arm the timer."""
        session = self.session
        if session.is_closed:
            self._end_overflowed()  # in case a queued packet passed the outgoing bound
        if session.transport is Transport.WEBSOCKET:
            await self._write_ws()
        if session.has_polling_data():  # after the upgrade: the NOOP releasing a pending GET
            self._wake_poll()
        self._arm_timer()

    async def _write_ws(self) -> None:
        send = self.ws_send
        if send is None or self._drain_task is not None:
            return  # the drain task writes what is queued, in order
        transport = self.ws_transport
        frames = self.session.outgoing_ws()
        if not frames:
            return
        write_text = transport.write_text
        try:
            for index, frame in enumerate(frames):
                if transport.send_may_wait():
                    self._drain_task = asyncio.get_running_loop().create_task(self._drain_ws(send, frames[index:]))
                    return
                if type(frame) is not str:
                    await send({"type": "websocket.send", "bytes": frame})
                elif write_text is not None:
                    write_text(frame)  # the server's send as a plain call (server_transports)
                else:
                    await send({"type": "websocket.send", "text": frame})
        except Exception:
            # The websocket closed under us (daphne: autobahn Disconnected; uvicorn:
            # ClientDisconnected); its own websocket.disconnect ends the session. Raising here
            # would abort the *caller's* work: the other recipients of a broadcast and, from a
            # leaver's teardown, the leaver's remove_connection (a leaked count).
            logger.debug("write to closed websocket of session %s dropped", self.eio_sid)
            return
        overflow = self.session.note_transport_backlog(transport.buffered_bytes())
        if overflow:
            self._end_overflowed(overflow)

    def _end_overflowed(self, events: list[Any] | None = None) -> None:
        """Run the close of a session that passed its outgoing bound (``events``, else the
        close the bound left unreported, if any) in a task of its own: the writer may hold a
        room's lock (a join's `joined`), which the app's ``on_close`` takes to leave the room."""
        if events is None:
            events = self.session.close()
        if events:
            task = asyncio.get_running_loop().create_task(self._handle_in_background(events))
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _handle_in_background(self, events: list[Any]) -> None:
        try:
            await self.handle(events)
        except Exception:
            logger.exception("close of session %s failed", self.eio_sid)
            await self.abort()

    async def _drain_ws(self, send: WsSend, frames: list[str | bytes]) -> None:
        """Write ``frames`` and whatever queues meanwhile, waiting for the client as needed."""
        session = self.session
        try:
            while frames and self.ws_send is send:
                for frame in frames:
                    if type(frame) is str:
                        await send({"type": "websocket.send", "text": frame})
                    else:
                        await send({"type": "websocket.send", "bytes": frame})
                frames = session.outgoing_ws()
        except Exception:  # the websocket closed under us; its websocket.disconnect ends the session
            logger.debug("write to closed websocket of session %s dropped", self.eio_sid)
            frames = []
        finally:
            self._drain_task = None
        if self.ws_send is send:
            overflow = session.note_transport_backlog(self.ws_transport.buffered_bytes())
            if overflow:
                self._end_overflowed(overflow)

    async def close(self, reason: CloseReason = CloseReason.SERVER_CLOSE) -> None:
        """Close the session from our side (the app decided)."""
        events = self.session.close(reason)
        await self.flush()
        await self.handle(events)  # SessionClosed: _finish closes the websocket

    async def transport_closed(self) -> None:
        """The active transport went away."""
        await self.handle(self.session.transport_closed(now=time.monotonic()))

    # -- timer -----------------------------------------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.session.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - time.monotonic())
            self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        task = asyncio.get_running_loop().create_task(self._timer_fired())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _timer_fired(self) -> None:
        try:
            await self.handle(self.session.handle_timer(now=time.monotonic()))
        except Exception:
            logger.exception("timer of session %s failed; closing it", self.eio_sid)
            await self.abort()

    # -- teardown --------------------------------------------------------------------

    async def _finish(self, event: SessionClosed) -> None:
        if self._closed:
            return
        self._closed = True
        Connection._closing_count += 1
        try:
            await self._teardown(event)
        finally:
            Connection._closing_count -= 1

    async def _teardown(self, event: SessionClosed) -> None:
        Connection.registry.pop(self.eio_sid, None)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._wake_poll()
        if event.error is not None:
            self.log_protocol_error(event.error)
        if event.buffered_bytes is not None:
            self.log_slow_reader(event.buffered_bytes)
        drain, self._drain_task = self._drain_task, None
        if drain is not None and drain is not asyncio.current_task():
            drain.cancel()  # what it waits to write will never be read
        if self.ws_send is not None:
            await self._close_websocket(event, is_congested=drain is not None)
        probe_send, self.probe_send = self.probe_send, None
        if probe_send is not None:  # a probe left open would outlive its session
            await self._send_close(probe_send, WS_CLOSE_NORMAL)
        await self.app.on_close(self, event.reason)

    async def _close_websocket(self, event: SessionClosed, *, is_congested: bool) -> None:
        send = self.ws_send
        assert send is not None
        transport = self.ws_transport
        code = event.error.ws_close_code if event.error is not None else WS_CLOSE_NORMAL
        if (event.buffered_bytes is not None or is_congested) and transport.abort():
            return  # the client is not taking what we write: a close frame would wait behind it
        if is_congested or transport.send_may_wait():
            # The close may wait for the client: never let it hold up the app's on_close.
            task = asyncio.get_running_loop().create_task(self._send_close(send, code))
            _background.add(task)
            task.add_done_callback(_background.discard)
            return
        await self._send_close(send, code)

    async def _send_close(self, send: WsSend, code: int) -> None:
        try:
            await close_websocket(send, code)
        except Exception:  # the socket may already be gone; nothing left to tell it
            logger.debug("close of session %s websocket failed", self.eio_sid)

    @classmethod
    def websocket_opened(cls) -> None:
        """An accepted websocket (new session or probe) is open: the process holds it."""
        cls._open_websockets += 1

    @classmethod
    def websocket_gone(cls) -> None:
        """The ASGI server reported an accepted websocket closed."""
        cls._open_websockets -= 1

    @classmethod
    def held(cls) -> tuple[int, int]:
        """What this process still holds: (sessions live or closing, accepted websockets open)."""
        return len(cls.registry) + cls._closing_count, cls._open_websockets

    @property
    def is_finished(self) -> bool:
        """True once the session's close has been handled (the app heard ``on_close``)."""
        return self._closed

    async def abort(self) -> None:
        """Last resort after an unexpected error: end this session only."""
        if not self._closed:
            await self._finish(SessionClosed(CloseReason.FORCED_CLOSE))

    def log_protocol_error(self, error: RemoteProtocolError) -> None:
        """Log a peer's protocol error once at WARNING per client address, then DEBUG."""
        peer, level = self._peer_log_level("protocol")
        logger.log(level, "session %s from %s broke the protocol: %s", self.eio_sid, peer, error)

    def log_slow_reader(self, buffered_bytes: int) -> None:
        """Log a close for a full outgoing buffer once at WARNING per client address, then DEBUG."""
        peer, level = self._peer_log_level("slow")
        logger.log(
            level,
            "session %s from %s closed: %d bytes waited for a client that does not read (MAX_BUFFERED_BYTES %d)",
            self.eio_sid,
            peer,
            buffered_bytes,
            self.session.config.max_buffered_bytes,
        )

    def _peer_log_level(self, kind: str) -> tuple[str, int]:
        """The client's address, and WARNING the first time it is logged for ``kind``."""
        client = self.scope.get("client") or ("?", 0)
        peer = str(client[0])
        key = (kind, peer)
        level = logging.DEBUG if key in Connection._warned_peers else logging.WARNING
        if len(Connection._warned_peers) >= MAX_WARNED_PEERS:
            Connection._warned_peers.clear()
        Connection._warned_peers.add(key)
        return peer, level


_background: set[asyncio.Task[None]] = set()
