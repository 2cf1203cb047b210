"""uvicorn's websocket layer alone: ``python -m bench.uvicorn_layer stock|lean N`` (per message),
``python -m bench.uvicorn_layer idle stock|stock-pings|lean N`` (Python heap per idle socket).

Drives one uvicorn websocket protocol object (``stock``: uvicorn's ``WebSocketsSansIOProtocol``;
``lean``: :class:`signaling.uvicorn_ws.LeanWebSocketsSansIOProtocol`) in-process on a uvloop
loop, with a transport that only counts bytes (no sockets, no syscalls) and an echo ASGI
app: the handshake, then N masked 1.5 KB text frames, one per ``data_received``, each echoed
before the next. Meant for instruction counts that the machine's load does not change::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python -m bench.uvicorn_layer lean 3000

(the difference between two N, divided by the difference in N, is the cost per message of
the protocol plus the app's minimal receive/send; the pause/resume syscalls the lean
protocol saves are not in it, the transport here has none).
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
from typing import Any

import uvloop
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from signaling.uvicorn_ws import LeanWebSocketsSansIOProtocol

PAYLOAD = ("x" * 1460).encode()


class CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def masked_frame(payload: bytes) -> bytes:
    key = b"\x01\x02\x03\x04"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    header = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126, n >> 8, n & 0xFF))
    return header + key + masked


async def main(kind: str, count: int) -> None:
    echoed = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": message["text"]})
            echoed.set()

    config = Config(app, ws_ping_interval=0, ws_per_message_deflate=False, lifespan="off", log_level="warning")
    config.load()
    cls = LeanWebSocketsSansIOProtocol if kind == "lean" else WebSocketsSansIOProtocol
    protocol = cls(config, ServerState(), {})
    transport = CountingTransport()
    protocol.connection_made(transport)
    key = base64.b64encode(os.urandom(16))
    protocol.data_received(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    for _ in range(20):
        await asyncio.sleep(0)
    frame = masked_frame(PAYLOAD)
    for _ in range(count):
        echoed.clear()
        protocol.data_received(frame)
        await echoed.wait()
    protocol.connection_lost(None)
    for _ in range(20):
        await asyncio.sleep(0)
    print(kind, count, "written", transport.written)


async def idle_sockets(kind: str, count: int) -> None:
    """Python heap per idle socket (tracemalloc): ``count`` handshakes, each app waiting in receive."""
    import gc
    import tracemalloc

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    config = Config(app, ws_ping_interval=0, ws_per_message_deflate=False, lifespan="off", log_level="warning")
    config.load()
    cls = LeanWebSocketsSansIOProtocol if kind == "lean" else WebSocketsSansIOProtocol
    state = ServerState()
    if kind == "stock-pings":  # stock with uvicorn's default keepalive ping (a timer per socket)
        config.ws_ping_interval = 20.0
    kept = []
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(count):
        protocol = cls(config, state, {})
        protocol.connection_made(CountingTransport())
        key = base64.b64encode(os.urandom(16))
        protocol.data_received(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
            b"User-Agent: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        kept.append(protocol)
    for _ in range(20):
        await asyncio.sleep(0)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    print(f"{kind}: {(after - before) / count / 1024:.2f} KiB of Python heap per idle socket ({count} sockets)")
    sys.stdout.flush()
    os._exit(0)  # the sockets' app tasks are left waiting: no teardown to measure or log


if __name__ == "__main__":
    if sys.argv[1] == "idle":
        uvloop.run(idle_sockets(sys.argv[2], int(sys.argv[3])))
    else:
        uvloop.run(main(sys.argv[1], int(sys.argv[2])))
