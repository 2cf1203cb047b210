"""Fixtures of the conformance e2e tests: the conformance app as a subprocess, raw wire clients.

Owns: ``conformance_server`` (``python -m signaling.conformance`` on a free 127.0.0.1 port,
once per ASGI server, daphne and uvicorn) and ``wire`` (an aiohttp client speaking raw
Engine.IO v4 / Socket.IO v5 frames: long-polling GET/POST and raw websockets), as the
reference suites do with ``fetch`` and ``WebSocket``.

Private to ``test_conformance_engineio.py`` and ``test_conformance_socketio.py``, which import
the fixtures by name. Never imports Django, never touches a database or a JWT: the conformance
app needs none. Reference: socket.io's ``docs/engine.io-protocol/v4-test-suite`` and
``docs/socket.io-protocol/v5-test-suite`` (their behaviours are re-checked here in our own
tests; none of their code is used).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

HOST = "127.0.0.1"
SERVERS = ("daphne", "uvicorn")
# The reference values that both suites hard-code (conformance.REFERENCE_CONFIG).
PING_INTERVAL_MS = 300
PING_TIMEOUT_MS = 200
MAX_PAYLOAD_BYTES = 1_000_000
RECORD_SEPARATOR = "\x1e"  # Engine.IO v4 polling payload separator
STARTUP_TIMEOUT_S = 60.0  # a bound against hanging, not a speed check: a loaded box (load 20) took over 20 s
STOP_TIMEOUT_S = 5.0
RECEIVE_TIMEOUT_S = 2.0  # for one frame; the heartbeat sends one every 300 ms anyway
# A pending GET is answered by a PING within pingInterval: no poll should come near this.
HTTP_TIMEOUT_S = 5.0
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class ConformanceServer:
    """A running conformance app."""

    name: str
    port: int

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _python() -> str:
    venv_python = REPO_ROOT / ".venv" / "bin" / "python"
    return str(venv_python) if venv_python.exists() else sys.executable


def _answers_handshake(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="session", params=SERVERS)
def conformance_server(request: pytest.FixtureRequest) -> Iterator[ConformanceServer]:
    """The conformance app under daphne, then uvicorn (session scope: one process each)."""
    name: str = request.param
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONUNBUFFERED"] = "1"
    command = [_python(), "-m", "signaling.conformance", "--port", str(port), "--host", HOST, "--server", name]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            handshake_url = f"http://{HOST}:{port}/socket.io/?EIO=4&transport=polling"
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _answers_handshake(handshake_url):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")[-2000:]
                    pytest.fail(f"conformance app ({name}) did not start on port {port}:\n{output}")
                time.sleep(0.1)
            yield ConformanceServer(name, port)
        finally:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)


@dataclass(frozen=True)
class HttpReply:
    """Status and body of one polling request."""

    status: int
    text: str
    headers: dict[str, str]


@dataclass(frozen=True)
class WsClosed:
    """The server closed the websocket (``code``: its close code)."""

    code: int | None


@dataclass(frozen=True)
class WsRefused:
    """The server refused the websocket handshake with this HTTP status."""

    status: int


Frame = str | bytes | WsClosed


class RawWebSocket:
    """A raw websocket: one Engine.IO packet per frame, as the suites' ``WebSocket``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def send(self, frame: str | bytes) -> None:
        if isinstance(frame, str):
            await self.ws.send_str(frame)
        else:
            await self.ws.send_bytes(frame)

    async def receive(self, *, timeout: float = RECEIVE_TIMEOUT_S, answer_pings: bool = True) -> Frame:
        """The next frame; with ``answer_pings``, Engine.IO PINGs are answered and skipped.

        Raises:
            TimeoutError: no frame within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                message = await self.ws.receive()
                if message.type is aiohttp.WSMsgType.TEXT:
                    if answer_pings and message.data == "2":
                        await self.ws.send_str("3")
                        continue
                    return str(message.data)
                if message.type is aiohttp.WSMsgType.BINARY:
                    return bytes(message.data)
                if message.type is aiohttp.WSMsgType.CLOSE:
                    return WsClosed(int(message.data))
                if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return WsClosed(self.ws.close_code)
                raise AssertionError(f"unexpected websocket message {message!r}")

    async def receive_many(self, count: int, *, timeout: float = RECEIVE_TIMEOUT_S) -> list[Frame]:
        """The next ``count`` frames, PINGs answered and skipped."""
        return [await self.receive(timeout=timeout) for _ in range(count)]

    async def receive_nothing(self, *, timeout: float) -> bool:
        """True if no frame but PINGs (answered) arrives within ``timeout`` seconds."""
        try:
            frame = await self.receive(timeout=timeout)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {frame!r}")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                await self.ws.close()


class WireClient:
    """Raw Engine.IO requests against one conformance server (paths like ``/engine.io/``)."""

    def __init__(self, server: ConformanceServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.sockets: list[RawWebSocket] = []

    async def request(
        self, method: str, path_and_query: str, body: str | bytes | None = None, **kwargs: Any
    ) -> HttpReply:
        """One HTTP request; ``path_and_query`` is sent as written."""
        url = self.server.http_url + path_and_query
        async with asyncio.timeout(HTTP_TIMEOUT_S):
            async with self.http.request(method, url, data=body, **kwargs) as response:
                text = await response.text()
                return HttpReply(response.status, text, dict(response.headers))

    async def get(self, path_and_query: str, **kwargs: Any) -> HttpReply:
        return await self.request("GET", path_and_query, **kwargs)

    async def post(self, path_and_query: str, body: str | bytes, **kwargs: Any) -> HttpReply:
        return await self.request("POST", path_and_query, body, **kwargs)

    async def poll(self, path: str, sid: str) -> HttpReply:
        """A polling GET of session ``sid``."""
        return await self.get(f"{path}?EIO=4&transport=polling&sid={sid}")

    async def push(self, path: str, sid: str, body: str | bytes) -> HttpReply:
        """A polling POST of ``body`` to session ``sid``."""
        return await self.post(f"{path}?EIO=4&transport=polling&sid={sid}", body)

    async def open_polling(self, path: str) -> str:
        """A polling handshake; returns the Engine.IO sid."""
        reply = await self.get(f"{path}?EIO=4&transport=polling")
        assert reply.status == 200 and reply.text.startswith("0"), reply
        return str(json.loads(reply.text[1:])["sid"])

    async def websocket(self, path_and_query: str) -> RawWebSocket | WsRefused:
        """A raw websocket (not receiving anything yet), or how its handshake was refused."""
        try:
            async with asyncio.timeout(HTTP_TIMEOUT_S):
                ws = await self.http.ws_connect(self.server.ws_url + path_and_query, autoping=True)
        except aiohttp.WSServerHandshakeError as exc:
            return WsRefused(exc.status)
        raw = RawWebSocket(ws)
        self.sockets.append(raw)
        return raw

    async def open_websocket(self, path: str, sid: str | None = None) -> RawWebSocket:
        """A websocket to ``path`` (an upgrade probe of ``sid`` if given); must be accepted."""
        query = f"{path}?EIO=4&transport=websocket" + (f"&sid={sid}" if sid else "")
        raw = await self.websocket(query)
        assert isinstance(raw, RawWebSocket), raw
        return raw


@pytest.fixture
async def wire(conformance_server: ConformanceServer) -> AsyncIterator[WireClient]:
    """A raw wire client for one test; its websockets are closed at teardown."""
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        client = WireClient(conformance_server, http)
        try:
            yield client
        finally:
            for raw in client.sockets:
                await raw.close()


def open_packet(text: str) -> dict[str, Any]:
    """The JSON data of an Engine.IO OPEN packet (``0{...}``)."""
    assert text[:1] == "0", text
    data = json.loads(text[1:])
    assert isinstance(data, dict), text
    return data
