"""Clients that join a room and then stop reading, but keep answering pings (issue 11).

- :class:`SlowWebsocketReader`: a raw TCP socket (small receive buffer) that completes the
  websocket handshake, the Socket.IO CONNECT and a ``join_room``, then stops reading the
  socket and sends a PONG (``3``) every ``pong_every_s`` without reading the PINGs: what the
  server sees is a live client whose TCP receive window is shut.
- :class:`SlowPollingReader`: a polling client that does the same over HTTP: after its join
  it never GETs again and POSTs a PONG every ``pong_every_s``.

Both say when the server ended them: the websocket one by reaching the end of the stream
once it reads again, the polling one when a POST for its session is refused (400).
Never imports the server's modules; 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
from typing import Any

import aiohttp

from bench.wsclient import frame_text as _frame
from signaling.tests.fixtures import HOST, LiveServer

SMALL_RECEIVE_BUFFER = 4096  # the kernel keeps little for us, so the server's buffer fills


PROBE_CHUNK_BYTES = 65536  # text frames of this size are counted, not queued (the transport probe's)


class RawWebsocket(asyncio.Protocol):
    """A client websocket over a raw socket: text frames in ``texts`` (frames of
    ``PROBE_CHUNK_BYTES`` only counted in ``chunks``), ``ended`` set when the connection ends."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.is_open = False
        self.texts: asyncio.Queue[bytes] = asyncio.Queue()
        self.ended = asyncio.Event()
        self.received_bytes = 0
        self.chunks = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended.set()

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        buf = self.buf
        buf += data
        if not self.is_open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            assert bytes(buf[:12]) == b"HTTP/1.1 101", bytes(buf[: end + 4])
            del buf[: end + 4]
            self.is_open = True
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if pos + head + length > n:
                break
            if buf[pos] & 0x0F == 1 and length == PROBE_CHUNK_BYTES:
                self.chunks += 1
            elif buf[pos] & 0x0F == 1:
                self.texts.put_nowait(bytes(buf[pos + head : pos + head + length]))
            pos += head + length
        del buf[:pos]

    def send_text(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_frame(payload))


async def open_raw_websocket(host: str, port: int, path: str, *, timeout: float = 5.0) -> RawWebsocket:
    """Open a websocket from a socket with a small receive buffer (``SMALL_RECEIVE_BUFFER``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    _, protocol = await loop.create_connection(RawWebsocket, sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    assert protocol.transport is not None
    protocol.transport.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    return protocol


class SlowWebsocketReader:
    """See the module docstring."""

    def __init__(self, protocol: RawWebsocket) -> None:
        self._protocol = protocol
        self.client_id = ""
        self._ponger: asyncio.Task[None] | None = None

    @classmethod
    async def join(
        cls, server: LiveServer, token: str, room_id: str, *, pong_every_s: float = 0.1, timeout: float = 5.0
    ) -> SlowWebsocketReader:
        """Connect, authenticate, join ``room_id``, then stop reading."""
        protocol = await open_raw_websocket(HOST, server.port, "/socket.io/?EIO=4&transport=websocket")
        client = cls(protocol)
        await client._expect(b"0{", timeout)
        client._write(_frame(b"40" + json.dumps({"token": token}).encode()))
        accepted = await client._expect(b"40{", timeout)
        client.client_id = json.loads(accepted[2:])["sid"]
        await client._expect(b'42["connected"', timeout)
        client._write(_frame(b"421" + json.dumps(["join_room", {"roomId": room_id}]).encode()))
        ack = await client._expect(b"431[", timeout)
        assert json.loads(ack[3:])[0]["ok"] is True, ack
        client.stop_reading(pong_every_s)
        return client

    def _write(self, data: bytes) -> None:
        assert self._protocol.transport is not None
        self._protocol.transport.write(data)

    async def _expect(self, prefix: bytes, timeout: float) -> bytes:
        async with asyncio.timeout(timeout):
            while True:
                text = await self._protocol.texts.get()
                if text == b"2":
                    self._write(_frame(b"3"))
                elif text.startswith(prefix):
                    return text

    def stop_reading(self, pong_every_s: float) -> None:
        """Stop reading the socket; answer pings blindly from now on."""
        assert self._protocol.transport is not None
        self._protocol.transport.pause_reading()
        self._ponger = asyncio.get_running_loop().create_task(self._pong(pong_every_s))

    async def _pong(self, every_s: float) -> None:
        while not self._protocol.ended.is_set():
            self._write(_frame(b"3"))
            await asyncio.sleep(every_s)

    async def wait_ended_by_server(self, timeout: float) -> int:
        """Read again, and wait for the server to have ended the connection; returns the
        bytes received in all (the server dropped what it held for us)."""
        assert self._protocol.transport is not None
        self._protocol.transport.resume_reading()
        await asyncio.wait_for(self._protocol.ended.wait(), timeout)
        return self._protocol.received_bytes

    async def close(self) -> None:
        if self._ponger is not None:
            self._ponger.cancel()
        if self._protocol.transport is not None:
            self._protocol.transport.abort()


class SlowPollingReader:
    """See the module docstring."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self.client_id = ""
        self.ended = asyncio.Event()
        self._ponger: asyncio.Task[None] | None = None

    @classmethod
    async def join(
        cls, server: LiveServer, token: str, room_id: str, *, pong_every_s: float = 0.1, timeout: float = 5.0
    ) -> SlowPollingReader:
        """Handshake, authenticate, join ``room_id``, then never GET again."""
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        base = f"{server.url}/socket.io/?EIO=4&transport=polling"
        async with http.get(base) as response:
            opening = await response.text()
        assert opening.startswith("0{"), opening
        client = cls(http, f"{base}&sid={json.loads(opening[1:])['sid']}")
        await client._post("40" + json.dumps({"token": token}))
        accepted = await client._get_until("40{")
        client.client_id = json.loads(accepted[2:])["sid"]
        await client._post("421" + json.dumps(["join_room", {"roomId": room_id}]))
        ack = await client._get_until("431[")
        assert json.loads(ack[3:])[0]["ok"] is True, ack
        client._ponger = asyncio.get_running_loop().create_task(client._pong(pong_every_s))
        return client

    async def _post(self, body: str) -> int:
        async with self._http.post(self._url, data=body.encode()) as response:
            await response.read()
            return response.status

    async def _get_until(self, prefix: str) -> str:
        while True:
            async with self._http.get(self._url) as response:
                payload = await response.text()
            for packet in payload.split("\x1e"):
                if packet == "2":
                    await self._post("3")
                elif packet.startswith(prefix):
                    return packet

    async def _pong(self, every_s: float) -> None:
        while True:
            if await self._post("3") == 400:  # "Session ID unknown": the server ended us
                self.ended.set()
                return
            await asyncio.sleep(every_s)

    async def wait_ended_by_server(self, timeout: float) -> None:
        """Wait until a POST for this session is refused."""
        await asyncio.wait_for(self.ended.wait(), timeout)

    async def close(self) -> None:
        if self._ponger is not None:
            self._ponger.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self._ponger
        await self._http.close()


async def close_all(clients: list[Any]) -> None:
    """Close every slow client (test teardown)."""
    for client in clients:
        await client.close()
