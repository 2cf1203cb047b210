"""Engine.IO HTTP long-polling transport as a Channels consumer (Engine.IO v4, "HTTP long-polling").

Thin adapter: GET without ``sid`` is the handshake; GET with ``sid`` holds until the session
has data (a ping counts) and returns it as one payload; POST delivers a payload. One GET may
be pending per session; a client that goes away during a GET ends its session. CORS comes
from ``CORS_ORIGIN`` (echoed origin, as socket.io's ``cors`` option does). No ORM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer

from signaling.consumers.connection import Connection, SocketApp
from signaling.consumers.websocket import parse_query
from signaling.protocol import (
    Event,
    RemoteProtocolError,
    SessionClosed,
    SessionConfig,
    Transport,
)

logger = logging.getLogger(__name__)

# engine.io's own error codes for a refused request (engine.io server, lib/server.ts).
UNKNOWN_TRANSPORT, UNKNOWN_SID, BAD_REQUEST, UNSUPPORTED_VERSION = 0, 1, 3, 5
TEXT_PLAIN = b"text/plain; charset=UTF-8"
# CORS: without a preflight's Access-Control-Request-Headers, the headers a client may send.
DEFAULT_ALLOWED_HEADERS = b"content-type, authorization"
# How long a browser may cache a preflight (s); Chromium caps it at 7200, Firefox at 86400.
CORS_MAX_AGE_S = b"7200"
# RFC 9110 field names separated by commas: what a preflight may ask for, echoed as it came.
_HEADER_LIST = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")
MAX_REQUESTED_HEADERS_BYTES = 4096


class EnginePollingConsumer(AsyncConsumer):
    """Serves ``/socket.io/?EIO=4&transport=polling[&sid=...]``."""

    channel_layer_alias = "__no_layer__"

    def __init__(
        self,
        *,
        app: SocketApp,
        session_config: SessionConfig,
        cors_origins: tuple[str, ...] = ("*",),
        socketio: bool = True,
    ) -> None:
        self.app = app
        self.session_config = session_config
        self.cors_origins = cors_origins
        self.socketio = socketio
        self.body: list[bytes] = []
        self.body_size = 0
        self.is_routed = False
        self.responded = False
        self.waiting: asyncio.Task[None] | None = None
        self.conn: Connection | None = None

    async def http_request(self, message: dict[str, Any]) -> None:
        if self.is_routed:
            return  # the rest of a body past maxPayload: already answered, not kept
        chunk = message.get("body", b"")
        self.body_size += len(chunk)
        if self.body_size > self.session_config.max_payload_bytes:
            # Stop reading at the limit: nothing more is kept or joined; the request is
            # answered now (a POST 413: the session decides).
            self.body = []
        else:
            self.body.append(chunk)
            if message.get("more_body"):
                return
        self.is_routed = True
        body = b"".join(self.body)
        self.body = []
        try:
            await self.route(body)
        except Exception:
            logger.exception("polling request failed")
            if self.conn is not None:
                await self.conn.abort()
            await self.respond(500, b'{"code":3,"message":"Internal error"}', json_body=True)

    async def http_disconnect(self, message: dict[str, Any]) -> None:
        if self.waiting is not None and not self.responded:
            self.waiting.cancel()
            conn = self.conn
            if conn is not None:
                conn.session.end_poll()
                await conn.transport_closed()
        raise StopConsumer()

    async def route(self, body: bytes) -> None:
        method = self.scope["method"]
        if method == "OPTIONS":
            await self.respond(204, b"")
            return
        query = parse_query(self.scope)
        if query.get("EIO") != "4":
            await self.refuse(UNSUPPORTED_VERSION, "Unsupported protocol version")
            return
        if query.get("transport") != "polling":
            await self.refuse(UNKNOWN_TRANSPORT, "Transport unknown")
            return
        sid = query.get("sid")
        if sid is None:
            if method != "GET":
                await self.refuse(BAD_REQUEST, "Bad handshake method")
                return
            self.conn = Connection(self.app, self.session_config, Transport.POLLING, self.scope, socketio=self.socketio)
            await self.respond(200, self.conn.session.take_polling_payload().encode())
            return
        conn = self.conn = Connection.registry.get(sid)
        if conn is None:
            await self.refuse(UNKNOWN_SID, "Session ID unknown")
        elif method == "GET":
            await self.begin_get(conn)
        elif method == "POST":
            await self.post(conn, body)
        else:
            await self.refuse(BAD_REQUEST, "Bad request method", status=405)

    async def begin_get(self, conn: Connection) -> None:
        try:
            conn.session.begin_poll()
        except RemoteProtocolError as exc:
            await self.respond(exc.http_status, _error_body(BAD_REQUEST, str(exc)), json_body=True)
            # A duplicate GET closed the session (its close, TRANSPORT_ERROR, is reported by
            # close()); a GET after the upgrade leaves it alone (Engine.IO v4 suite: "ignores
            # HTTP requests with same sid after upgrade").
            if conn.session.is_closed:
                await conn.handle(conn.session.close())
            return
        self.waiting = asyncio.get_running_loop().create_task(self.hold_get(conn))

    async def hold_get(self, conn: Connection) -> None:
        session = conn.session
        if not session.has_polling_data() and not session.is_closed:
            conn.poll_ready.clear()
            await conn.poll_ready.wait()
        conn.poll_ready.clear()
        payload = session.take_polling_payload() if session.has_polling_data() else "1"
        session.end_poll()
        await self.respond(200, payload.encode())

    async def post(self, conn: Connection, body: bytes) -> None:
        # The session decides: one POST at a time, maxPayload (the body may be cut short).
        try:
            refused = conn.session.begin_post(body_size_bytes=self.body_size)
        except RemoteProtocolError as exc:
            await self.respond(exc.http_status, _error_body(BAD_REQUEST, str(exc)), json_body=True)
            return
        if refused:
            await self.answer_error(conn, refused)
            return
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text = "\x00"  # not a payload: the session reports the parse error
        events: list[Event] = []
        slices = conn.session.polling_post_slices(text, now=time.monotonic())
        try:
            # Answer after the events ran: the client's next POST then cannot overtake them.
            # One slice of packets at a time, yielding to the loop in between: a POST of
            # many packets does not hold every other socket up (issue 11).
            for events in slices:
                await conn.handle(events)
                if conn.is_finished or conn.are_events_paused(time.monotonic()):
                    break  # over its rate limit: the rest of the body is dropped unread
                await asyncio.sleep(0)
        finally:
            slices.close()
            conn.session.end_post()
        if _close_error(events) is not None:
            await self.answer_error(conn, events)
        else:
            await self.respond(200, b"ok")

    async def answer_error(self, conn: Connection, events: list[Event]) -> None:
        """Answer with the status of the peer error that closed the session; run the close."""
        error = _close_error(events)
        assert error is not None
        await self.respond(error.http_status, _error_body(BAD_REQUEST, str(error)), json_body=True)
        if not conn.is_finished:
            await conn.handle(events)

    async def refuse(self, code: int, message: str, *, status: int = 400) -> None:
        await self.respond(status, _error_body(code, message), json_body=True)

    async def respond(self, status: int, body: bytes, *, json_body: bool = False) -> None:
        if self.responded:
            return
        self.responded = True
        headers = [(b"content-type", b"application/json" if json_body else TEXT_PLAIN)]
        headers.extend(self.cors_headers())
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    def cors_headers(self) -> list[tuple[bytes, bytes]]:
        """CORS for an allowed origin, as the ``cors`` package socket.io uses: the origin
        echoed, and on a preflight the requested headers echoed plus a ``Max-Age``."""
        headers = dict(self.scope.get("headers", ()))
        origin = headers.get(b"origin")
        allow_all = "*" in self.cors_origins
        if origin is None:
            return [(b"access-control-allow-origin", b"*")] if allow_all else []
        if not allow_all and origin.decode("latin-1").rstrip("/") not in self.cors_origins:
            return []
        cors = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
        ]
        if self.scope["method"] != "OPTIONS":
            cors += [(b"access-control-allow-headers", DEFAULT_ALLOWED_HEADERS), (b"vary", b"Origin")]
            return cors
        requested = headers.get(b"access-control-request-headers", b"").strip()
        is_echoable = len(requested) <= MAX_REQUESTED_HEADERS_BYTES and _HEADER_LIST.fullmatch(requested)
        cors += [
            (b"access-control-allow-headers", requested if is_echoable else DEFAULT_ALLOWED_HEADERS),
            (b"access-control-max-age", CORS_MAX_AGE_S),
            (b"vary", b"Origin, Access-Control-Request-Headers"),
        ]
        return cors


def _close_error(events: list[Event]) -> RemoteProtocolError | None:
    """The peer error of the ``SessionClosed`` among ``events``, if any."""
    return next((e.error for e in events if isinstance(e, SessionClosed) and e.error is not None), None)


def _error_body(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()
