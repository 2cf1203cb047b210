"""A minimal, CPU-cheap Engine.IO v4 / Socket.IO v5 client over a raw WebSocket.

Built for load generation, not for correctness testing: an ``asyncio.Protocol`` that speaks
just enough RFC 6455 (client frames masked with the all-zero key, so masking costs nothing;
server frames parsed in place) and just enough Engine.IO (answers ``2`` with ``3``). Hot
``42`` frames go to a callback as raw bytes without JSON decoding; everything else
(handshake, acks) is matched against awaited prefixes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from typing import Any

_ZERO_MASK = b"\x00\x00\x00\x00"


def frame_text(payload: bytes) -> bytes:
    """One masked (zero key) text frame carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, 0x80 | n)) + _ZERO_MASK + payload
    if n < 65536:
        return bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big") + _ZERO_MASK + payload
    return bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big") + _ZERO_MASK + payload


_PONG = frame_text(b"3")


class EioClient(asyncio.Protocol):
    """One Engine.IO-over-WebSocket connection (see module docstring)."""

    __slots__ = (
        "ack_seq",
        "buf",
        "client_id",
        "dropped",
        "inbox",
        "is_closing",
        "is_open",
        "lost",
        "on_event",
        "opened",
        "pings",
        "transport",
        "waiters",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.is_open = False
        self.opened: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.on_event: Callable[[bytes], None] | None = None
        self.waiters: list[tuple[tuple[bytes, ...], asyncio.Future[bytes]]] = []
        self.inbox: list[bytes] = []
        self.client_id = ""
        self.ack_seq = 0
        self.pings = 0
        self.is_closing = False
        self.dropped = False

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.is_closing:
            self.dropped = True
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during handshake"))
        for _, fut in self.waiters:
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        self.waiters.clear()
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.is_open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[:12])
            del buf[: end + 4]
            if status != b"HTTP/1.1 101":
                self.opened.set_exception(ConnectionError(f"upgrade refused: {status!r}"))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.is_open = True
            self.opened.set_result(None)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if b1 & 0x80:
                head += 4  # servers never mask, but be lenient
            end = pos + head + length
            if end > n:
                break
            opcode = b0 & 0x0F
            payload = bytes(buf[pos + head : end])
            pos = end
            if opcode == 1:
                self._text(payload)
            elif opcode == 9:
                self.transport.write(bytes((0x8A, 0x80 | len(payload))) + _ZERO_MASK + payload)  # type: ignore[union-attr]
            elif opcode == 8:
                self.transport.close()  # type: ignore[union-attr]
        if pos:
            del buf[:pos]

    # -- Engine.IO -------------------------------------------------------------------

    def _text(self, payload: bytes) -> None:
        if payload == b"2":
            self.pings += 1
            self.transport.write(_PONG)  # type: ignore[union-attr]
            return
        on_event = self.on_event
        if on_event is not None and payload[:2] == b"42":
            on_event(payload)
            return
        for i, (prefixes, fut) in enumerate(self.waiters):
            if payload.startswith(prefixes):
                del self.waiters[i]
                if not fut.done():
                    fut.set_result(payload)
                return
        if len(self.inbox) < 64:
            self.inbox.append(payload)

    def send(self, payload: bytes) -> None:
        """Send one Engine.IO packet (already encoded, e.g. ``b'42["offer",{...}]'``)."""
        self.transport.write(frame_text(payload))  # type: ignore[union-attr]

    async def wait_for(self, *prefixes: bytes, timeout: float = 10.0) -> bytes:
        """The first (queued or future) control frame starting with one of ``prefixes``."""
        for i, frame in enumerate(self.inbox):
            if frame.startswith(prefixes):
                del self.inbox[i]
                return frame
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiters.append((prefixes, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.waiters = [w for w in self.waiters if w[1] is not fut]

    async def call(self, event: str, data: dict[str, Any], timeout: float = 10.0) -> Any:
        """Emit ``event`` with an ack id and return the ack's first argument (decoded)."""
        self.ack_seq += 1
        ack = self.ack_seq
        self.send(b"42%d" % ack + json.dumps([event, data], separators=(",", ":")).encode())
        frame = await self.wait_for(b"43%d[" % ack, timeout=timeout)
        return json.loads(frame[2 + len(str(ack)) :])[0]

    def close(self) -> None:
        """Close abruptly (no close handshake; the server sees the TCP FIN)."""
        self.is_closing = True
        if self.transport is not None:
            self.transport.close()


async def connect(host: str, port: int, token: str, *, timeout: float = 10.0) -> EioClient:
    """Open a websocket, authenticate with ``token``; ``client.client_id`` is set.

    Raises:
        ConnectionError: the upgrade or the Socket.IO CONNECT was refused.
    """
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(loop.create_connection(lambda: EioClient(loop), host, port), timeout)
    key = base64.b64encode(os.urandom(16))
    client.transport.write(  # type: ignore[union-attr]
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%d\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n" % (host.encode(), port, key)
    )
    try:
        await asyncio.wait_for(asyncio.shield(client.opened), timeout)
        await client.wait_for(b"0{", timeout=timeout)
        client.send(b'40{"token":"%s"}' % token.encode())
        reply = await client.wait_for(b"40", b"44", timeout=timeout)
        if reply.startswith(b"44"):
            raise ConnectionError(f"connect refused: {reply!r}")
        client.client_id = json.loads(reply[2:])["sid"]
        await client.wait_for(b'42["connected"', timeout=timeout)
    except BaseException:
        client.close()
        raise
    return client
