"""``signaling.daphne_frames``: daphne with the one-step frame paths answers byte for byte as stock.

A real daphne ``Server`` (the launcher's loop and reactor, an echo ASGI application) runs in a
fresh interpreter, once with :func:`signaling.daphne_frames.install` and once without; a raw
client sends the same cases to both (whole text frames several to a TCP write, a frame split
across writes, 16- and 64-bit lengths both ways, multi-byte UTF-8, a fragmented message, a
ping, a binary frame, invalid UTF-8, an unmasked frame, a non-minimal length, frames past the
payload limit) and records every byte the server wrote back after the handshake. Both runs
must match, and the fast run must have kept whole text frames from autobahn's ``processData``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from signaling import daphne_frames
from signaling.tests.fixtures import free_port

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import json, socket, struct, sys, threading, time
mode, port, limit, wanted = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
from signaling.daphne_launcher import install_loop_and_reactor
install_loop_and_reactor()
from signaling import daphne_app_queue, daphne_frames
daphne_app_queue.install()
installed = daphne_frames.install() if mode == "fast" else False
from autobahn.websocket.protocol import WebSocketProtocol
calls = {"processData": 0}
stock_process = WebSocketProtocol.processData
def counting_process(self):
    calls["processData"] += 1
    return stock_process(self)
WebSocketProtocol.processData = counting_process
from daphne.server import Server
from twisted.internet import reactor

async def echo(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            text = message.get("text")
            if text is None:
                await send({"type": "websocket.send", "bytes": b"bin:" + message["bytes"]})
            elif text == "big":
                await send({"type": "websocket.send", "text": "\u00e9" * 40000})
            elif text == "mid":
                await send({"type": "websocket.send", "text": "m" * 300})
            else:
                await send({"type": "websocket.send", "text": "echo:" + text})
        else:
            return

def frame(payload, opcode=1, fin=True, mask=b"\x01\x02\x03\x04", length_bytes=None):
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | opcode,))
    flag = 0x80 if mask else 0
    if length_bytes == 2 or (length_bytes is None and 126 <= n <= 0xFFFF):
        head += bytes((flag | 126,)) + struct.pack("!H", n)
    elif length_bytes == 8 or (length_bytes is None and n > 0xFFFF):
        head += bytes((flag | 127,)) + struct.pack("!Q", n)
    else:
        head += bytes((flag | n,))
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

CLOSE = frame(struct.pack("!H", 1000), opcode=8)
CASES = {
    "several_in_one_write": [frame(b"a") + frame(b"bb") + frame("\u00fc\u20ac\U0001f600".encode()) + frame(b"mid")],
    "split_across_writes": [frame(b"x" * 200)[:3], frame(b"x" * 200)[3:100], frame(b"x" * 200)[100:] + frame(b"y")],
    "long_lengths": [frame(b"big"), frame(b"z" * 70000), frame(b"w" * 126)],
    "long_past_the_limit": [frame(b"ok"), frame(b"z" * 70000) + frame(b"never")],
    "empty_text": [frame(b"")],
    "fragmented": [frame(b"frag", fin=False) + frame(b"ment", opcode=0) + frame(b"after")],
    "ping_between": [frame(b"one") + frame(b"hi", opcode=9) + frame(b"two")],
    "binary": [frame(b"\x00\xff", opcode=2) + frame(b"text")],
    "invalid_utf8": [frame(b"ok"), frame(b"\xed\xa0\x80") + frame(b"never")],
    "unmasked": [frame(b"ok"), frame(b"plain", mask=None) + frame(b"never")],
    "non_minimal_length": [frame(b"ok"), frame(b"short", length_bytes=2) + frame(b"never")],
    "past_the_limit": [frame(b"ok"), frame(b"L" * 1500) + frame(b"never")],
}

def run_case(chunks):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(5)
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    status, _, head = received.partition(b"\r\n\r\n")
    parts = [head]
    def read():  # at once: data not read when the server resets the connection is lost
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                parts.append(data)
        except OSError:
            return
    reader = threading.Thread(target=read)
    reader.start()
    for chunk in chunks:
        try:
            sock.sendall(chunk)
        except OSError:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    try:
        sock.sendall(CLOSE)
    except OSError:
        pass
    reader.join()
    received = b"".join(parts)
    sock.close()
    return {"status": status.split(b"\r\n")[0].decode(), "received": received.hex()}

results = {}
def client():
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        for name in wanted:
            results[name] = run_case(CASES[name])
    except Exception as exc:
        results["error"] = repr(exc)
    finally:
        reactor.callFromThread(reactor.stop)

threading.Thread(target=client, daemon=True).start()
server = Server(
    application=echo,
    endpoints=[f"tcp:port={port}:interface=127.0.0.1"],
    signal_handlers=False,
    websocket_max_message_size=limit,
    websocket_max_frame_size=limit,
)
server.run()
print(json.dumps({"installed": installed, "calls": calls, "results": results}))
"""


WITHIN_LIMITS = (
    "several_in_one_write",
    "split_across_writes",
    "long_lengths",
    "empty_text",
    "fragmented",
    "ping_between",
    "binary",
    "invalid_utf8",
    "unmasked",
    "non_minimal_length",
)
PAST_LIMITS = ("past_the_limit", "long_past_the_limit")


def _run(mode: str, limit: int, cases: tuple[str, ...]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(free_port()), str(limit), ",".join(cases)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    out: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "error" not in out["results"], out["results"]["error"]
    return out


def test_autobahn_and_daphne_are_the_sources_the_frame_paths_reproduce() -> None:
    # Fails when a daphne or autobahn upgrade changed a function the fast paths stand in for:
    # compare the new source with the fast paths, then record the new hashes in
    # signaling/daphne_frames.py (SOURCE_SHA256, TESTED).
    assert daphne_frames.changed_sources() == []


def test_daphne_with_the_frame_paths_writes_what_stock_daphne_writes() -> None:
    # given the same cases against daphne with and without the one-step frame paths
    fast = _run("fast", 1 << 20, WITHIN_LIMITS)
    stock = _run("stock", 1 << 20, WITHIN_LIMITS)
    # then the fast paths were in use: autobahn's parser (two processData calls per frame)
    # did not see at least the four frames of one write
    assert fast["installed"] is True
    assert stock["calls"]["processData"] - fast["calls"]["processData"] >= 8
    # and every case got the same bytes back (echoes, pongs, close frames and codes)
    assert fast["results"] == stock["results"]
    # and the cases did what they are named for (read on the stock run)
    received = {name: bytes.fromhex(case["received"]) for name, case in stock["results"].items()}
    assert all(case["status"] == "HTTP/1.1 101 Switching Protocols" for case in stock["results"].values())
    assert received["several_in_one_write"].startswith(b"\x81\x06echo:a\x81\x07echo:bb")
    assert b"\x81\x7e\x01\x2c" + b"m" * 300 in received["several_in_one_write"]
    assert b"\x81\x7f" + (80000).to_bytes(8, "big") + "\u00e9".encode() * 40000 in received["long_lengths"]
    assert b"echo:fragment" in received["fragmented"] and b"echo:after" in received["fragmented"]
    assert b"\x8a\x02hi" in received["ping_between"]  # the pong
    assert b"\x82\x06bin:\x00\xff" in received["binary"]
    # a protocol error drops the connection (autobahn's failByDrop): "ok" echoed, nothing after
    for name in ("invalid_utf8", "unmasked", "non_minimal_length"):
        assert received[name] == b"\x81\x07echo:ok", name


def test_daphne_with_the_frame_paths_refuses_frames_past_the_limit_as_stock_daphne() -> None:
    # given a 1000-byte payload limit, a 16-bit and a 64-bit frame over it
    fast = _run("fast", 1000, PAST_LIMITS)
    stock = _run("stock", 1000, PAST_LIMITS)
    # then
    assert fast["installed"] is True
    assert fast["results"] == stock["results"]
    for case in stock["results"].values():
        assert bytes.fromhex(case["received"]) == b"\x81\x07echo:ok"  # then dropped: nothing after
