"""A bare ASGI app that exercises ``signaling.consumers.server_transports`` inside a real
daphne or uvicorn (run by ``test_server_transports.py``; imports nothing of Django).

On a websocket: accept, send ``{"kind": ..., "direct": ...}`` (what :func:`transport_of`
recognised, and whether it writes text frames by a plain call), then
obey the client's text frames:

- ``fill``: write 64 kB frames while the client is not reading, until the server holds
  over 1 MB (daphne) or a send may wait (asyncio), then print one JSON line to stdout with
  what was written and what the transport reports, then write ``{"filled": ...}`` and wait
  until the transport reports an empty buffer (the client reads again) and write
  ``{"drained": ...}``.
- ``abort``: fill again, abort the connection, print ``{"aborted": ..., "written": ...}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from signaling.consumers.server_transports import transport_of

CHUNK = "x" * 65536
FULL_BYTES = 1_000_000
MAX_WRITTEN_BYTES = 256_000_000  # the kernel's buffers fill long before this
DRAIN_TIMEOUT_S = 20.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"]
            await send({"type": kind + ".complete"})
            if kind == "lifespan.shutdown":
                return
    assert scope["type"] == "websocket"
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    transport = transport_of(send)
    hello = {"kind": transport.kind, "direct": transport.write_text is not None}
    await send({"type": "websocket.send", "text": json.dumps(hello)})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        written = await fill(send, transport)
        if message.get("text") == "abort":
            print(json.dumps({"aborted": transport.abort(), "written": written}), flush=True)
            return
        report = {"written": written, "buffered": transport.buffered_bytes(), "may_wait": transport.send_may_wait()}
        print(json.dumps(report), flush=True)
        await send({"type": "websocket.send", "text": json.dumps({"filled": report})})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_TIMEOUT_S
        while transport.buffered_bytes() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        drained = {"buffered": transport.buffered_bytes(), "may_wait": transport.send_may_wait()}
        await send({"type": "websocket.send", "text": json.dumps({"drained": drained})})


async def fill(send: Any, transport: Any) -> int:
    written = 0
    while written < MAX_WRITTEN_BYTES:
        if transport.send_may_wait() or transport.buffered_bytes() > FULL_BYTES:
            break
        if transport.write_text is not None:
            transport.write_text(CHUNK)  # what the relay path does where it can
        else:
            await send({"type": "websocket.send", "text": CHUNK})
        written += len(CHUNK)
        await asyncio.sleep(0)  # let the server's loop hand what it can to the kernel
    return written


if __name__ == "__main__":
    sys.exit("run me with daphne or uvicorn")
