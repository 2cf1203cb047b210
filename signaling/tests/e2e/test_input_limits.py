"""Hostile input costs the server bounded work and memory (issue 11), on a real daphne.

Raw Engine.IO frames (``websockets``) and raw long-polling requests (``aiohttp``): bursts over
the rate limit get one refusal and are dropped unread, binary attachments are never held
for an unauthenticated socket, refused namespaces are bounded, an upgraded session cannot be
ended by a POST naming its sid, repeated upgrade probes queue one NOOP, a 5,000-digit integer
is an ``invalid_payload``, request headers over 16 KiB get an HTTP answer, CR/LF in an
agentId cannot forge log lines, and daphne is told not to cut websockets after 24 h.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import websockets

from rooms.tests.fixtures import ANY_TEXT
from signaling.management.commands.serve import APPLICATION, DAPHNE_WS_OPTIONS
from signaling.protocol.session import MAX_REFUSED_NAMESPACES
from signaling.tests.fixtures import LiveServer, RawSocketIO, free_port, tcp_answers

pytestmark = pytest.mark.e2e

RS = "\x1e"
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)
BURST = 20
# Slow pings (a polling GET is answered by data, not by a ping), a tiny rate limit so that
# every count below is exact whatever the machine's speed: one token a second.
ENV = {
    "HEARTBEAT_INTERVAL": "25000",
    "HEARTBEAT_TIMEOUT": "20000",
    "RATE_LIMIT": "1",
    "RATE_LIMIT_BURST": str(BURST),
    "LOG_LEVEL": "info",
}
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def server(live_servers_module: Any) -> LiveServer:
    (live,) = live_servers_module(env=ENV)
    return live


class Polling:
    """One Engine.IO session over raw long-polling requests."""

    def __init__(self, server: LiveServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.sid = ""

    @property
    def url(self) -> str:
        return f"{self.server.url}/socket.io/?EIO=4&transport=polling&sid={self.sid}"

    async def open(self, agent_id: str) -> str:
        """Handshake and CONNECT; returns the client id."""
        async with self.http.get(f"{self.server.url}/socket.io/?EIO=4&transport=polling") as response:
            self.sid = json.loads((await response.text())[1:])["sid"]
        assert await self.post("40" + json.dumps({"token": self.server.mint(agent_id)})) == (200, "ok")
        status, text = await self.get()
        assert status == 200 and text.startswith('40{"sid"'), text
        return str(json.loads(text.split(RS)[0][2:])["sid"])

    async def post(self, body: str) -> tuple[int, str]:
        async with self.http.post(self.url, data=body.encode()) as response:
            return response.status, await response.text()

    async def get(self) -> tuple[int, str]:
        async with self.http.get(self.url) as response:
            return response.status, await response.text()


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        yield session


def error_codes(packets: list[str]) -> list[str]:
    """The `code` of every `error` event among Engine.IO text packets."""
    codes = []
    for packet in packets:
        if packet.startswith('42["error"'):
            codes.append(json.loads(packet[2:])[1]["code"])
    return codes


# -- 1. one POST (or one burst) over the limit costs one answer ---------------------------


async def test_polling_post_of_5000_events_is_answered_once_past_the_rate_limit(
    server: LiveServer, http: aiohttp.ClientSession
) -> None:
    # given a connected polling session with a burst of BURST events
    polling = Polling(server, http)
    await polling.open("agent-poster")
    # when one POST carries 5,000 events (unknown ones: each accepted event is answered)
    assert await polling.post(RS.join(['42["nope"]'] * 5000)) == (200, "ok")
    status, text = await polling.get()
    # then: BURST answers, one `rate_limited`, and the other 4,979 events were dropped unread
    assert status == 200
    assert error_codes(text.split(RS)) == ["unknown_event"] * BURST + ["rate_limited"]
    # and the session is alive: after a token comes back, it is served again
    await asyncio.sleep(1.2)
    assert await polling.post('42["again"]') == (200, "ok")
    status, text = await polling.get()
    assert error_codes(text.split(RS)) == ["unknown_event"]


async def test_websocket_burst_of_5000_events_is_answered_a_bounded_number_of_times(
    server: LiveServer, raw_socket: Any
) -> None:
    # given
    raw: RawSocketIO = await raw_socket(server)
    await raw.handshake(server.mint("agent-burster"))
    # when it sends 5,000 events back to back, then (a token later) one with an ack
    for _ in range(5000):
        await raw.ws.send('42["nope"]')
    await asyncio.sleep(1.5)
    await raw.send('427["marker"]')
    # then every frame before the marker's ack is one of few answers (not 5,000)
    frames: list[str] = []
    while True:
        frame = await raw.next_frame(timeout=10)
        assert isinstance(frame, str)
        if frame.startswith("437"):
            break
        frames.append(frame)
    codes = error_codes(frames)
    assert codes[: BURST + 1] == ["unknown_event"] * BURST + ["rate_limited"]
    # each second of sending refills one token: a slow machine may serve a few more
    assert len(frames) == len(codes) <= BURST + 1 + 10
    assert json.loads(frame[3:]) == [{"ok": False, "error": {"code": "unknown_event", "message": ANY_TEXT}}]


# -- 2. input that must keep nothing -------------------------------------------------------


async def test_binary_packet_before_authentication_closes_at_once(server: LiveServer, raw_socket: Any) -> None:
    # given a websocket that has not connected the namespace (no token yet)
    raw: RawSocketIO = await raw_socket(server)
    assert str(await raw.next_frame()).startswith("0{")
    # when it announces a binary event (its attachment never sent)
    await raw.send('451-["upload",{"_placeholder":true,"num":0}]')
    # then it is closed at once as a protocol error: the server awaits no attachment
    assert await raw.wait_closed(timeout=5) == 1002


async def test_connects_to_invalid_namespaces_are_refused_then_bounded(server: LiveServer, raw_socket: Any) -> None:
    # given
    raw: RawSocketIO = await raw_socket(server)
    assert str(await raw.next_frame()).startswith("0{")
    # when the client asks for MAX_REFUSED_NAMESPACES invalid namespaces, then one more
    for i in range(MAX_REFUSED_NAMESPACES):
        await raw.send(f"40/nope{i},")
    refusals = [await raw.next_frame() for _ in range(MAX_REFUSED_NAMESPACES)]
    await raw.send("40/one-more,")
    # then each was refused as the protocol says, and the one more closes the connection
    assert refusals == [f'44/nope{i},{{"message":"Invalid namespace"}}' for i in range(MAX_REFUSED_NAMESPACES)]
    assert await raw.wait_closed(timeout=5) == 1002


async def test_connect_to_a_namespace_with_a_100_kb_name_closes_without_an_echo(
    server: LiveServer, raw_socket: Any
) -> None:
    # given
    raw: RawSocketIO = await raw_socket(server)
    assert str(await raw.next_frame()).startswith("0{")
    # when
    await raw.send("40/" + "n" * 100_000 + ",")
    # then
    assert await raw.wait_closed(timeout=5) == 1002
    assert raw.frames.empty()


# -- 3. smaller holes ----------------------------------------------------------------------


async def upgrade(server: LiveServer, polling: Polling) -> Any:
    """Upgrade ``polling``'s session to a websocket (2probe, 3probe, 5); returns it."""
    ws = await websockets.connect(f"{server.ws_url}/socket.io/?EIO=4&transport=websocket&sid={polling.sid}")
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
    assert await polling.get() == (200, "6")
    await ws.send("5")
    return ws


async def test_polling_post_naming_an_upgraded_session_is_refused_and_the_session_lives(
    server: LiveServer, http: aiohttp.ClientSession
) -> None:
    # given a session upgraded to websocket
    polling = Polling(server, http)
    await polling.open("agent-upgraded")
    ws = await upgrade(server, polling)
    try:
        # when anyone who knows the sid POSTs to it
        status, text = await polling.post("41")
        # then engine.io's answer (400 "Bad request"), and the websocket session goes on
        assert status == 400
        assert json.loads(text) == {"code": 3, "message": ANY_TEXT}
        await ws.send('421["nope"]')
        reply = await asyncio.wait_for(ws.recv(), 5)
        assert json.loads(reply[3:]) == [{"ok": False, "error": {"code": "unknown_event", "message": ANY_TEXT}}]
    finally:
        await ws.close()


async def test_upgrade_packet_without_a_probe_releases_the_pending_get(
    server: LiveServer, http: aiohttp.ClientSession
) -> None:
    # given a GET pending on a connected polling session
    polling = Polling(server, http)
    await polling.open("agent-no-probe")
    pending = asyncio.ensure_future(polling.get())
    await asyncio.sleep(0.3)
    assert not pending.done()
    ws = await websockets.connect(f"{server.ws_url}/socket.io/?EIO=4&transport=websocket&sid={polling.sid}")
    try:
        # when the probe websocket sends "5" with no "2probe" before it
        await ws.send("5")
        # then the GET is answered (NOOP) and the session lives on the websocket
        assert await asyncio.wait_for(pending, 5) == (200, "6")
        await ws.send('421["nope"]')
        assert (await asyncio.wait_for(ws.recv(), 5)).startswith("431")
    finally:
        await ws.close()


async def test_thousands_of_probes_queue_a_single_noop(server: LiveServer, http: aiohttp.ClientSession) -> None:
    # given
    polling = Polling(server, http)
    await polling.open("agent-prober")
    ws = await websockets.connect(f"{server.ws_url}/socket.io/?EIO=4&transport=websocket&sid={polling.sid}")
    try:
        # when the probe websocket sends 2,000 probes (each answered)
        for _ in range(2000):
            await ws.send("2probe")
        for _ in range(2000):
            assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
        # then polling holds one NOOP, not 2,000
        assert await polling.get() == (200, "6")
    finally:
        await ws.close()


async def test_event_with_a_5000_digit_integer_is_invalid_payload_and_the_socket_stays(
    server: LiveServer, raw_socket: Any
) -> None:
    # given a socket in a room
    room = await server.acreate_room(name="numbers")
    raw: RawSocketIO = await raw_socket(server)
    await raw.handshake(server.mint("agent-digits"))
    assert (await raw.join(room["id"]))["ok"] is True
    # when it relays a valid JSON integer of 5,000 digits
    await raw.send('422["offer",{"sdp":{"n":' + "9" * 5000 + "}}]")
    # then
    reply = await raw.next_frame()
    assert isinstance(reply, str) and reply.startswith("432"), reply
    assert json.loads(reply[3:]) == [{"ok": False, "error": {"code": "invalid_payload", "message": ANY_TEXT}}]
    await raw.send('423["leave_room",{}]')
    assert json.loads(str(await raw.next_frame())[3:]) == [{"ok": True, "roomId": room["id"]}]


def raw_http(port: int, request: bytes) -> bytes:
    """Send one raw HTTP/1.1 request; everything the server answered before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("path", ["/api/rooms", "/socket.io/?EIO=4&transport=polling"])
async def test_authorization_header_over_16_kib_is_answered_431_json(server: LiveServer, path: str) -> None:
    # given
    header = "Bearer " + "a" * 20_000
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {header}\r\nConnection: close\r\n\r\n"
    # when
    answer = await asyncio.to_thread(raw_http, server.port, request.encode())
    # then
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"detail": ANY_TEXT, "code": "request_header_fields_too_large"}


async def test_cr_lf_in_an_agent_id_cannot_forge_a_log_line(server: LiveServer, raw_socket: Any) -> None:
    # given an agentId carrying a line break and a fake log line
    forged = "2026-12-02 00:00:00,000 WARNING forged: admin logged in"
    room = await server.acreate_room(name="logs")
    raw: RawSocketIO = await raw_socket(server)
    await raw.handshake(server.mint("agent-evil\r\n" + forged))
    # when the server logs its join (INFO)
    assert (await raw.join(room["id"]))["ok"] is True
    await raw.send('422["leave_room",{}]')
    await raw.next_frame()
    # then the agentId is in the log, escaped, and no line starts with the forgery
    deadline = time.monotonic() + 5
    while "agent-evil\\r\\n" not in server.stderr_text() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    lines = server.stderr_text().splitlines()
    assert any("agent-evil\\r\\n" + forged in line for line in lines), lines[-5:]
    assert not any(line.startswith(forged) for line in lines)


# -- daphne's websocket lifetime -------------------------------------------------------------


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


async def test_serve_runs_daphne_with_no_websocket_lifetime_and_daphne_honours_it(
    server: LiveServer, raw_socket: Any
) -> None:
    # given: the daphne that `manage.py serve` exec'd, and a second daphne of the same
    # application told to cut websockets after 1 s (to show what the option does)
    argv = cmdline(server.process.pid)
    assert argv[argv.index("--websocket_timeout") + 1] == "-1"
    assert DAPHNE_WS_OPTIONS == ("--websocket_timeout", "-1")
    port = free_port()
    # serve runs `python -m signaling.daphne_launcher DAPHNE-ARGS`: keep everything up to the
    # module (the same daphne command line follows it)
    command = argv[: argv.index("signaling.daphne_launcher") + 1]
    env = {**server.env, "PORT": str(port), "DJANGO_SETTINGS_MODULE": "signaling_project.settings"}
    cut = subprocess.Popen(
        [*command, "-b", "127.0.0.1", "-p", str(port), "--websocket_timeout", "1", APPLICATION],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(server.workdir / "cut.stderr", "wb"),  # noqa: SIM115 - the child holds it
    )
    try:
        deadline = time.monotonic() + 20
        while not tcp_answers("127.0.0.1", port) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        kept: RawSocketIO = await raw_socket(server)
        await kept.handshake(server.mint("agent-kept"))
        assert tcp_answers("127.0.0.1", port), (server.workdir / "cut.stderr").read_text()
        cut_server = LiveServer(port, cut, server.secret, env, server.workdir, "cut")
        doomed: RawSocketIO = await raw_socket(cut_server)
        await doomed.handshake(server.mint("agent-doomed"))
        # when the 1 s lifetime (checked every 2 s by daphne) has passed
        await doomed.wait_closed(timeout=10)
        # then the socket of `serve` (opened first) is still open and served
        assert kept.closed.is_set() is False
        await kept.send('421["nope"]')
        assert str(await kept.next_frame()).startswith("431")
    finally:
        cut.terminate()
        cut.wait(timeout=10)
