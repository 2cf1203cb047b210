"""Protocol errors raised by the sans-IO Engine.IO / Socket.IO core.

Owns: the two error families of ``signaling.protocol`` (STYLE.md section 6):
``RemoteProtocolError`` (the peer broke the protocol; carries the HTTP status and the
WebSocket close code the adapter should answer with) and ``LocalProtocolError`` (our own
code asked for something illegal: a bug). Adapters catch only the first.

Never imports: Django, channels, asyncio, time, random, os, uuid (pure stdlib, no I/O).
Implements: Engine.IO v4 "Transports" (HTTP 400 answers) and SPEC.md section 3
(an oversize packet closes the connection: WebSocket close 1009, polling 413).
"""

from __future__ import annotations

__all__ = [
    "HTTP_BAD_REQUEST",
    "HTTP_PAYLOAD_TOO_LARGE",
    "WS_CLOSE_MESSAGE_TOO_BIG",
    "WS_CLOSE_PROTOCOL_ERROR",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]

# Engine.IO v4: "the server MUST return an HTTP 400 response" for any bad request.
HTTP_BAD_REQUEST = 400
# SPEC.md section 3: a packet larger than maxPayload is answered 413 on polling.
HTTP_PAYLOAD_TOO_LARGE = 413
# RFC 6455 section 7.4.1: 1002 protocol error, 1009 message too big.
WS_CLOSE_PROTOCOL_ERROR = 1002
WS_CLOSE_MESSAGE_TOO_BIG = 1009


class ProtocolError(Exception):
    """Base class of every error raised by ``signaling.protocol``."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the Engine.IO / Socket.IO protocol.

    Args:
        message: human readable reason, for logs only (never sent to the peer).
        http_status: status a polling adapter answers with (413 for oversize payloads).
        ws_close_code: close code a WebSocket adapter closes with (1009 for oversize frames).
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int = HTTP_BAD_REQUEST,
        ws_close_code: int = WS_CLOSE_PROTOCOL_ERROR,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.ws_close_code = ws_close_code

    def __repr__(self) -> str:
        return (
            f"RemoteProtocolError({self.message!r}, http_status={self.http_status}, "
            f"ws_close_code={self.ws_close_code})"
        )


class LocalProtocolError(ProtocolError):
    """Our own code asked the protocol core for something illegal (a programming error)."""
