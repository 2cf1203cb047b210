"""Engine.IO WebSocket transport as a Channels consumer (Engine.IO v4, "WebSocket").

Thin adapter: ASGI websocket messages in, session frames out. A websocket without ``sid``
opens a new session; one with ``sid`` is the upgrade probe of a polling session. No
business rules, no ORM; the consumer has no channel-layer inbox of its own (the service's
per-process hub receives channel-layer traffic and delivers through :class:`Connection`).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import AsyncConsumer, get_handler_name
from channels.exceptions import StopConsumer

from signaling.admission import REFUSAL_MESSAGES, Admission
from signaling.consumers.connection import Connection, SocketApp, close_websocket
from signaling.protocol import RemoteProtocolError, SessionConfig, Transport

logger = logging.getLogger(__name__)
# RFC 6455: the close code of a websocket refused after its accept (no such session).
WS_CLOSE_POLICY_VIOLATION = 1008


def parse_query(scope: dict[str, Any]) -> dict[str, str]:
    """The request's query string as a flat dict (last value wins)."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {key: values[-1] for key, values in parse_qs(raw).items()}


class EngineWebsocketConsumer(AsyncConsumer):
    """Serves ``/socket.io/?EIO=4&transport=websocket[&sid=...]``."""

    channel_layer_alias = "__no_layer__"  # no per-socket inbox: see module docstring

    def __init__(
        self,
        *,
        app: SocketApp,
        session_config: SessionConfig,
        socketio: bool = True,
        admission: Admission | None = None,
    ) -> None:
        self.app = app
        self.session_config = session_config
        self.socketio = socketio
        self.admission = admission
        self.is_accepted = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Read the one ASGI queue directly and dispatch each message in order.

        Channels' ``AsyncConsumer`` runs every message through a new task
        (``await_many_dispatch``) and a thread hop (``aclose_old_connections``); this consumer
        has no channel layer and no ORM, and those two cost more than the relay itself
        (py-spy profile in docs/benchmarks.md).
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        """``AsyncConsumer.dispatch`` without the per-message ``close_old_connections``
        (and without the handler-name lookup for a received frame, the bulk of the traffic)."""
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        query = parse_query(self.scope)
        self.conn: Connection | None = None
        self.is_probe = False
        if query.get("EIO") != "4" or query.get("transport") != "websocket":
            await self.send({"type": "websocket.close", "code": 1002})
            return
        sid = query.get("sid")
        if sid is None:
            refusal = self.admission.refusal(time.monotonic()) if self.admission is not None else None
            if refusal is not None:
                # Closed before the accept: the ASGI server answers the handshake with 403.
                logger.debug("websocket session refused: %s", REFUSAL_MESSAGES[refusal])
                await self.send({"type": "websocket.close", "code": WS_CLOSE_POLICY_VIOLATION})
                return
            self.conn = Connection(
                self.app, self.session_config, Transport.WEBSOCKET, self.scope, socketio=self.socketio
            )
            await self._accept()
            self.conn.attach_websocket(self.send, self.base_send)
            await self.conn.flush()
            return
        conn = Connection.registry.get(sid)
        # engine.io (lib/server.ts onWebSocket) accepts the websocket of a session that is
        # gone, already upgrading or upgraded, then closes it; the session is left alone.
        await self._accept()
        if conn is None:
            logger.debug("websocket for unknown session %s closed", sid)
            await close_websocket(self.send, WS_CLOSE_POLICY_VIOLATION)
            return
        try:
            conn.session.begin_upgrade(now=time.monotonic())
        except RemoteProtocolError as exc:
            conn.log_protocol_error(exc)
            await close_websocket(self.send, WS_CLOSE_POLICY_VIOLATION)
            return
        self.conn, self.is_probe = conn, True
        conn.probe_send = self.send

    async def _accept(self) -> None:
        await self.send({"type": "websocket.accept"})
        self.is_accepted = True
        Connection.websocket_opened()

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        conn = self.conn
        if conn is None:
            return
        frame = message.get("text")
        if frame is None:
            frame = message.get("bytes") or b""
        try:
            if not self.is_probe:
                await conn.receive_ws(frame)
                return
            await self._receive_probe(conn, frame)
        except Exception:
            logger.exception("websocket session %s failed; closing it", conn.eio_sid)
            await conn.abort()

    async def _receive_probe(self, conn: Connection, frame: str | bytes) -> None:
        try:
            events = conn.session.receive_upgrade_ws(frame, now=time.monotonic())
        except RemoteProtocolError as exc:
            conn.log_protocol_error(exc)
            self.is_probe, self.conn = False, None
            conn.probe_send = None
            await close_websocket(self.send, exc.ws_close_code)
            await conn.flush()
            return
        for out in conn.session.outgoing_probe_ws():
            key = "text" if isinstance(out, str) else "bytes"
            await self.send({"type": "websocket.send", key: out})
        if conn.session.transport is Transport.WEBSOCKET:
            self.is_probe = False
            conn.probe_send = None
            conn.attach_websocket(self.send, self.base_send)
        await conn.handle(events)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self.is_accepted:
            self.is_accepted = False
            Connection.websocket_gone()
        conn = self.conn
        if conn is not None:
            if self.is_probe:
                if conn.probe_send == self.send:
                    conn.probe_send = None
                conn.session.abort_upgrade()
                await conn.flush()
            elif conn.ws_send == self.send:
                conn.detach_websocket()
                try:
                    await conn.transport_closed()
                except Exception:
                    logger.exception("teardown of session %s failed", conn.eio_sid)
        raise StopConsumer()


async def refuse_websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI app for a websocket to any path but the Engine.IO one: closed before the accept.

    ASGI servers answer that close with HTTP 403 (and log nothing): the router's fallback,
    so an unknown path is refused cleanly instead of raising in the router.
    """
    message = await receive()
    if message["type"] == "websocket.connect":
        logger.debug("websocket to %r refused: not an Engine.IO path", scope.get("path"))
        await send({"type": "websocket.close", "code": WS_CLOSE_POLICY_VIOLATION})
