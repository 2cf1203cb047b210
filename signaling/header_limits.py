"""The bound on request header size, answered in HTTP rather than by a dropped connection.

twisted (under daphne) reads at most 16 KiB of request line plus headers and, past that,
writes a bare "400 Bad Request" and closes while the client is still sending, so the client
usually sees a reset and no answer (an ``Authorization`` header over ~16 kB). This module
(1) lets twisted read up to ``SERVER_HEADER_LIMIT_BYTES`` (``install``), and (2) answers a
request whose headers pass ``MAX_HEADER_BYTES`` with ``431`` and a JSON body (``HeaderLimit``
ASGI middleware; a websocket handshake is refused, HTTP 403). Past the server's own limit
the server's answer stands (daphne: 400 and close; uvicorn's h11: 400 "Invalid HTTP request").
Imports nothing of the project.
"""

from __future__ import annotations

import json
from typing import Any

# What the application accepts: the request headers' names and values, summed.
MAX_HEADER_BYTES = 16 * 1024
# What twisted is allowed to read before it gives up on its own (4x the bound above).
SERVER_HEADER_LIMIT_BYTES = 64 * 1024
TOO_LARGE_BODY = json.dumps(
    {"detail": f"request headers exceed {MAX_HEADER_BYTES} bytes", "code": "request_header_fields_too_large"}
).encode()


def install() -> bool:
    """Raise twisted's header limits (daphne's HTTP parser); True when twisted is present."""
    try:
        from twisted.web.http import HTTPChannel
    except ImportError:
        return False
    HTTPChannel.totalHeadersSize = SERVER_HEADER_LIMIT_BYTES
    HTTPChannel.MAX_LENGTH = SERVER_HEADER_LIMIT_BYTES  # LineReceiver: one header line
    return True


def header_bytes(scope: dict[str, Any]) -> int:
    """The size of a request's headers as the application sees them."""
    return sum(len(name) + len(value) for name, value in scope.get("headers", ()))


class HeaderLimit:
    """ASGI middleware: 431 JSON for an HTTP request with too large headers; a websocket
    handshake with them is refused before the accept (HTTP 403)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or header_bytes(scope) <= MAX_HEADER_BYTES:
            await self.inner(scope, receive, send)
            return
        if kind == "websocket":
            if (await receive())["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1008})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 431,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(TOO_LARGE_BODY)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": TOO_LARGE_BODY})
