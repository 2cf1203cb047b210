"""Guard of ``signaling/consumers/server_transports.py``: what it reads of daphne, Twisted and
uvicorn still holds in the installed versions (issue 11).

A bare ASGI app (``transport_probe_app.py``) runs inside a real daphne and a real uvicorn; a
raw client stops reading while the app writes. The module must recognise the server (not
fall back to ``unknown``), see the bytes wait in the server's write buffer, see them drain
when the client reads again, and abort the connection with what it still held. A new daphne,
Twisted or uvicorn that changes any of that fails here, by name.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signaling.tests.e2e.slow_clients import open_raw_websocket
from signaling.tests.fixtures import HOST, PYTHON, REPO_ROOT, free_port, tcp_answers

pytestmark = pytest.mark.e2e

APP = "signaling.tests.e2e.transport_probe_app:app"
BIN = Path(PYTHON).parent
CHUNK_BYTES = 65536
COMMANDS = {
    "daphne": [str(BIN / "daphne"), "-b", HOST, "-p", "{port}", APP],
    # The daphne `manage.py serve` runs (signaling/daphne_launcher.py: frames written directly).
    "daphne-serve": [PYTHON, "-m", "signaling.daphne_launcher", "-b", HOST, "-p", "{port}", APP],
    # Every --ws implementation of uvicorn goes through the same asyncio transport.
    "uvicorn": [str(BIN / "uvicorn"), "--host", HOST, "--port", "{port}", "--ws", "auto", APP],
    "uvicorn-wsproto": [str(BIN / "uvicorn"), "--host", HOST, "--port", "{port}", "--ws", "wsproto", APP],
    # The protocol `manage.py serve --server uvicorn` runs (signaling/uvicorn_ws.py).
    "uvicorn-lean": [
        *[str(BIN / "uvicorn"), "--host", HOST, "--port", "{port}", "--ws", "signaling.uvicorn_ws:WebSocketProtocol"],
        *["--ws-ping-interval", "0", "--ws-per-message-deflate", "false", APP],
    ],
}
EXPECTED_KIND = {
    "daphne": "daphne",
    "daphne-serve": "daphne",
    "uvicorn": "asyncio",
    "uvicorn-wsproto": "asyncio",
    "uvicorn-lean": "asyncio",
}
# Where text frames are written by a plain call (server_transports' write_text), not `send`.
DIRECT_WRITES = {"daphne-serve"}


class ProbeServer:
    def __init__(self, server: str, workdir: Path) -> None:
        self.port = free_port()
        self.stdout_path = workdir / "stdout"
        argv = [part.replace("{port}", str(self.port)) for part in COMMANDS[server]]
        with open(self.stdout_path, "wb") as out, open(workdir / "stderr", "wb") as err:
            self.process = subprocess.Popen(
                argv, cwd=REPO_ROOT, stdout=out, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )

    async def started(self) -> None:
        for _ in range(400):
            if tcp_answers(HOST, self.port, 0.1):
                return
            assert self.process.poll() is None, "the server exited"
            await asyncio.sleep(0.05)
        pytest.fail("the probe server did not start")

    async def next_report(self, count: int, timeout: float = 20.0) -> dict[str, Any]:
        """The ``count``-th JSON line the app printed."""
        async with asyncio.timeout(timeout):
            while True:
                lines = [line for line in self.stdout_path.read_text().splitlines() if line.startswith("{")]
                if len(lines) >= count:
                    return dict(json.loads(lines[count - 1]))
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def probe_server(tmp_path: Path) -> Iterator[Any]:
    made: list[ProbeServer] = []

    def start(server: str) -> ProbeServer:
        made.append(ProbeServer(server, tmp_path))
        return made[-1]

    yield start
    for server in made:
        server.stop()


async def next_json(client: Any) -> dict[str, Any]:
    """The next text frame that is JSON (the 64 kB chunks are skipped)."""
    while True:
        text = await asyncio.wait_for(client.texts.get(), 20)
        if text[:1] == b"{":
            return dict(json.loads(text))


@pytest.mark.parametrize("_case", list(COMMANDS))
async def test_server_transport_sees_the_write_buffer_fill_drain_and_abort(_case: str, probe_server: Any) -> None:
    # given: the app inside a real server, a client with a small receive buffer
    server = probe_server(_case)
    await server.started()
    client = await open_raw_websocket(HOST, server.port, "/")
    hello = await next_json(client)
    assert hello == {"kind": EXPECTED_KIND[_case], "direct": _case in DIRECT_WRITES}, "server_transports changed"
    # when: the client stops reading and the app writes until the server holds the rest
    client.transport.pause_reading()
    client.send_text(b"fill")
    report = await server.next_report(1)
    # then: the bytes are seen waiting in the server (daphne never makes a send wait)
    if EXPECTED_KIND[_case] == "daphne":
        assert report["buffered"] > 1_000_000 and report["may_wait"] is False, report
    else:
        assert report["buffered"] > 0 and report["may_wait"] is True, report
    assert report["buffered"] <= report["written"]
    # when: the client reads again
    client.transport.resume_reading()
    assert (await next_json(client))["filled"] == report
    # then: everything written arrived, and the buffer is seen empty
    assert await next_json(client) == {"drained": {"buffered": 0, "may_wait": False}}
    assert client.chunks == report["written"] // CHUNK_BYTES
    # when: the client stops reading again and the app aborts the connection
    client.transport.pause_reading()
    before = client.chunks
    client.send_text(b"abort")
    aborted = await server.next_report(2)
    client.transport.resume_reading()
    await asyncio.wait_for(client.ended.wait(), 20)
    # then: the connection ended without what the server still held
    assert aborted["aborted"] is True
    assert client.chunks - before < aborted["written"] // CHUNK_BYTES
