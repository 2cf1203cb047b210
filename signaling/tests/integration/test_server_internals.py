"""What ``signaling.daphne_launcher`` and ``signaling.twisted_writes`` rely on in daphne and Twisted.

Fails loudly when a Twisted or daphne upgrade changes the internals the write-coalescing
reactor uses, or the import-time reactor choice of ``daphne.server`` the launcher relies on.
A reactor runs once per process, so the real-socket checks run in a fresh interpreter.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import twisted

from signaling import twisted_writes

ROOT = Path(__file__).resolve().parents[3]
TESTED_DAPHNE = "4.2.3"

# Run in a fresh interpreter: the launcher's install, then daphne's import, then a TCP
# server on the reactor that counts what it reads (4 MB from the client) and writes 200
# small chunks in one turn, 8 MB to a client that does not read yet (more than the kernel
# buffers), and closes; a thread sends and reads it all.
SCRIPT = r"""
import json, socket, threading, time
from signaling.daphne_launcher import install_loop_and_reactor
kind = install_loop_and_reactor()
import daphne.server
from twisted.internet import protocol
from twisted.internet.asyncioreactor import AsyncioSelectorReactor
reactor = daphne.server.reactor
stock_registrations = []
stock_add_writer = AsyncioSelectorReactor.addWriter
def counting_add_writer(self, writer):
    stock_registrations.append(writer)
    stock_add_writer(self, writer)
AsyncioSelectorReactor.addWriter = counting_add_writer
SMALL = b"".join(b"%05d\n" % i for i in range(200))
BIG = bytes(range(256)) * (8 * 1024 * 1024 // 256)
out = {"kind": kind, "reactor": type(reactor).__name__, "loop": type(reactor._asyncioEventloop).__module__}

UPLOAD = b"u" * (4 * 1024 * 1024)
out["read"] = 0

class Sender(protocol.Protocol):
    def dataReceived(self, data):
        out["read"] += len(data)
    def connectionMade(self):
        for i in range(200):
            self.transport.write(b"%05d\n" % i)
        out["registered_after_small_writes"] = len(stock_registrations)
        reactor.callLater(0.2, self.send_big)
    def send_big(self):
        out["registered_before_big"] = len(stock_registrations)
        self.transport.write(BIG)
        self.transport.loseConnection()

factory = protocol.ServerFactory()
factory.protocol = Sender
port = reactor.listenTCP(0, factory, interface="127.0.0.1")

def client():
    sock = socket.create_connection(("127.0.0.1", port.getHost().port))
    sock.sendall(UPLOAD)
    time.sleep(0.6)  # let the big write overrun the kernel buffers
    chunks = []
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        chunks.append(data)
    received = b"".join(chunks)
    out["small_intact"] = received[: len(SMALL)] == SMALL
    out["big_intact"] = received[len(SMALL):] == BIG
    out["received"] = len(received)
    out["registered_total"] = len(stock_registrations)
    reactor.callFromThread(reactor.stop)

threading.Thread(target=client, daemon=True).start()
reactor.callLater(20, reactor.stop)
reactor.run(installSignalHandlers=False)
print(json.dumps(out))
"""


def run_script() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=40, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_installed_twisted_and_daphne_are_the_tested_releases() -> None:
    # given the releases the reactor and the launcher were written against
    # when
    installed = (twisted.__version__, version("daphne"))
    # then: an upgrade must look at twisted_writes.py and daphne_launcher.py again
    assert installed == (twisted_writes.TESTED_TWISTED, TESTED_DAPHNE)


def test_asyncio_reactor_keeps_the_internals_the_coalescing_reactor_uses() -> None:
    # when
    missing = twisted_writes.missing_internals()
    # then
    assert missing == []


def test_launcher_gives_daphne_the_coalescing_reactor_on_uvloop_and_writes_arrive_whole() -> None:
    # when: the launcher's install, daphne's import, small and large writes on real sockets
    result = run_script()
    # then: daphne kept the installed reactor, on a uvloop loop
    assert result["kind"] == "uvloop+coalescing"
    assert result["reactor"] == "CoalescingReactor"
    assert result["loop"] == "uvloop"
    # small writes were flushed without registering the socket with the loop (no epoll_ctl)
    assert result["registered_after_small_writes"] == 0
    assert result["registered_before_big"] == 0
    # the 8 MB write overran the kernel buffers: registered the stock way, delivered in full
    assert result["registered_total"] == 1
    assert result["small_intact"] is True
    assert result["big_intact"] is True
    assert result["received"] == 200 * 6 + 8 * 1024 * 1024
    # and reads, dispatched without Twisted's per-read log context, got every byte
    assert result["read"] == 4 * 1024 * 1024


def test_daphne_create_application_is_the_source_the_app_queue_patch_reproduces() -> None:
    # when
    from signaling import daphne_app_queue

    # then: a daphne upgrade must look at daphne_app_queue.py again
    assert daphne_app_queue.TESTED_DAPHNE == TESTED_DAPHNE
    assert daphne_app_queue.is_tested_daphne()


async def test_app_queue_is_fifo_for_items_and_for_waiting_getters() -> None:
    # given
    from signaling.daphne_app_queue import AppQueue

    queue = AppQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    # when
    queue.put_nowait("a")
    queue.put_nowait("b")
    queue.put_nowait("c")
    # then
    assert await first == "a"
    assert await second == "b"
    assert queue.qsize() == 1 and not queue.empty()
    assert await queue.get() == "c"
    assert queue.empty()


async def test_app_queue_getter_cancelled_after_its_wake_up_passes_the_item_on() -> None:
    # given: two waiting getters
    from signaling.daphne_app_queue import AppQueue

    queue = AppQueue()
    first = asyncio.ensure_future(queue.get())
    second = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    # when: the first is woken by a put, then cancelled before it runs
    queue.put_nowait("only")
    first.cancel()
    # then: the item is not lost, the second getter takes it
    assert await asyncio.wait_for(second, 2) == "only"
    assert first.cancelled()


async def test_app_queue_cancelled_waiting_getter_leaves_no_waiter_behind() -> None:
    # given
    from signaling.daphne_app_queue import AppQueue

    queue = AppQueue()
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    # when
    waiting.cancel()
    await asyncio.sleep(0)
    queue.put_nowait("x")
    # then
    assert await queue.get() == "x"
    assert queue._getters == []


# -- uvicorn: signaling.uvicorn_ws ---------------------------------------------------------

# Run in a fresh interpreter: uvicorn on a bound socket with the protocol `manage.py serve`
# gives it (its transport wrapped to count pause_reading), an echo app that reports what it
# sees of its protocol, and websockets' own sync client in a thread.
UVICORN_SCRIPT = r"""
import asyncio, json, socket, sys, threading
import uvicorn
from websockets.protocol import Protocol
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from signaling import uvicorn_ws

out = {"protocol": uvicorn_ws.WebSocketProtocol.__name__, "pauses": 0}

class CountingTransport:
    def __init__(self, transport):
        self._transport = transport
    def pause_reading(self):
        out["pauses"] += 1
        self._transport.pause_reading()
    def __getattr__(self, name):
        return getattr(self._transport, name)

out["fast_bytes"] = 0

class Probe(uvicorn_ws.WebSocketProtocol):
    def connection_made(self, transport):
        super().connection_made(CountingTransport(transport))
    def take_whole_frames(self, data):
        rest = super().take_whole_frames(data)
        out["fast_bytes"] += len(data) - len(rest)
        return rest

async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    proto = send.__self__
    out["queue"] = type(proto.queue).__name__
    out["writable"] = type(proto.writable).__name__
    out["request_kept"] = proto.request is not None
    out["response_kept"] = proto.response is not None
    out["parser"] = proto.conn.parser.gi_code.co_qualname
    out["ping_timer"] = proto.ping_timer is not None
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            out.setdefault("disconnect_codes", []).append(message["code"])
            return
        if message.get("text") == "fall behind":
            await asyncio.sleep(0.5)  # not reading: the client's next messages pile up
            out["paused_while_behind"] = proto.read_paused
            continue
        if message.get("text") == "pauses?":
            await send({"type": "websocket.send", "text": str(out["pauses"])})
            continue
        await send({"type": "websocket.send", **{k: v for k, v in message.items() if k in ("text", "bytes")}})

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.listen(128)  # before the client thread starts: its connect waits in the backlog
config = uvicorn.Config(app, ws=Probe, ws_ping_interval=0, ws_per_message_deflate=False, lifespan="off",
                        log_level="warning", loop="uvloop", http="httptools")
server = uvicorn.Server(config)

def client():
    try:
        with connect(f"ws://127.0.0.1:{port}/", compression=None, max_size=None, max_queue=None) as ws:
            echoed = []
            for i in range(200):  # one at a time: the app keeps up
                ws.send(f"m{i}")
                echoed.append(ws.recv())
            out["in_step_echoes_ok"] = echoed == [f"m{i}" for i in range(200)]
            ws.send("pauses?")
            out["pauses_in_step"] = int(ws.recv())
            sizes = (0, 1, 125, 126, 127, 65535, 65536, 70000)
            texts = ["\u00e9" * (n // 2) + "x" * (n % 2) for n in sizes]
            blobs = [bytes(range(256)) * (n // 256) + bytes(n % 256) for n in sizes]
            for text, blob in zip(texts, blobs):
                ws.send(text)
                ws.send(blob)
            got = [ws.recv() for _ in range(2 * len(sizes))]
            out["sizes_ok"] = got == [m for pair in zip(texts, blobs) for m in pair]
            ws.send(["frag", "mented"])  # a fragmented message, then a ping: websockets' parser
            out["fragments_ok"] = ws.recv() == "fragmented"
            out["ping_answered"] = ws.ping().wait(5)
            ws.send("after")
            out["after_ok"] = ws.recv() == "after"
            ws.send("fall behind")
            burst = [f"b{i}:" + "y" * 2000 for i in range(3000)]
            for message in burst:
                ws.send(message)
            out["burst_ok"] = [ws.recv() for _ in burst] == burst
            ws.send("pauses?")
            out["pauses_total"] = int(ws.recv())
        # a client offering permessage-deflate (as browsers and node's ws do) is refused it,
        # as socket.io's server refuses it by default: its frames take the lean paths too
        with connect(f"ws://127.0.0.1:{port}/", compression="deflate") as ws:
            out["deflate_negotiated"] = [e.name for e in ws.protocol.extensions]
            ws.send("plain")
            out["deflate_client_ok"] = ws.recv() == "plain"
        # a text frame that is not UTF-8 is left to uvicorn's own path: close 1007
        with connect(f"ws://127.0.0.1:{port}/") as ws:
            ws.send(b"ok \xff", text=True)
            try:
                ws.recv(timeout=5)
            except ConnectionClosed as closed:
                out["invalid_utf8_close"] = closed.rcvd.code if closed.rcvd else None
    except Exception as exc:
        out["client_error"] = repr(exc)
    finally:
        server.should_exit = True

threading.Thread(target=client, daemon=True).start()
timer = threading.Timer(40, lambda: setattr(server, "should_exit", True))
timer.daemon = True
timer.start()
server.run(sockets=[sock])
print(json.dumps(out))
"""


def run_uvicorn_script() -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", UVICORN_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_installed_uvicorn_and_websockets_are_the_sources_the_lean_protocol_was_written_against() -> None:
    # when
    from signaling import uvicorn_ws

    # then: an upgrade of either must look at signaling/uvicorn_ws.py again
    assert uvicorn_ws.changed_internals() == []
    assert uvicorn_ws.WebSocketProtocol is uvicorn_ws.LeanWebSocketsSansIOProtocol


def test_lean_protocol_falls_back_to_uvicorn_stock_class_on_untested_internals(caplog: Any) -> None:
    # given
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from signaling import uvicorn_ws

    # when: a release whose relied-on code differs
    with caplog.at_level("WARNING", logger=uvicorn_ws.__name__):
        chosen = uvicorn_ws.choose_protocol(["uvicorn 9.0.0 (tested 0.54.0)"])
    # then
    assert chosen is WebSocketsSansIOProtocol
    assert "uvicorn 9.0.0" in caplog.text


def test_lean_frame_header_is_the_one_websockets_serialises_for_a_server_frame() -> None:
    # given
    from websockets.frames import Frame, Opcode

    from signaling import uvicorn_ws

    for opcode, first_byte in ((Opcode.TEXT, 0x81), (Opcode.BINARY, 0x82)):
        for length in (0, 1, 125, 126, 127, 65535, 65536, 70000):
            payload = b"a" * length
            # when
            lean = uvicorn_ws.frame_header(first_byte, length) + payload
            # then
            assert lean == Frame(opcode, payload).serialize(mask=False, extensions=[]), (opcode, length)


def test_lean_protocol_on_real_sockets_pauses_reads_only_when_the_app_falls_behind() -> None:
    # when: uvicorn with the lean protocol, websockets' own client
    result = run_uvicorn_script()
    # then: the lean class ran, with its per-socket objects and without the handshake's
    assert "client_error" not in result, result
    assert result["protocol"] == "LeanWebSocketsSansIOProtocol"
    assert result["queue"] == "AppQueue"
    assert result["writable"] == "WritableFlag"
    assert result["request_kept"] is False
    assert result["response_kept"] is False
    assert result["parser"] == "Protocol.parse"
    assert result["ping_timer"] is False
    # a client waiting for each echo never got its reads paused (stock: one pause per message)
    assert result["in_step_echoes_ok"] is True
    assert result["pauses_in_step"] == 0
    # frames of every length class arrive as websockets' client expects them, whole frames
    # read without websockets' parser, the others (fragments, pings, 64-bit lengths) with it
    assert result["sizes_ok"] is True
    assert result["fragments_ok"] is True
    assert result["ping_answered"] is True
    assert result["after_ok"] is True
    assert result["fast_bytes"] > 3000 * 2000
    # an app that stops reading gets the transport paused, and nothing is lost or reordered
    assert result["paused_while_behind"] is True
    assert result["burst_ok"] is True
    assert result["pauses_total"] >= 1
    # invalid UTF-8 in a text frame: uvicorn's close, as stock
    assert result["invalid_utf8_close"] == 1007
    # permessage-deflate offered and refused
    assert result["deflate_negotiated"] == []
    assert result["deflate_client_ok"] is True
    # each connection's end reached its app as a disconnect (the clients' closes; the 1007)
    assert result["disconnect_codes"] == [1000, 1000, 1007]


# A daphne Server in a fresh interpreter, set up as the launcher does (with the per-socket
# trims of signaling.daphne_connections when PATCH=1, stock daphne when PATCH=0), serving an
# echo websocket app; a thread opens one websocket, sends a frame and reads the echo, then the
# reactor reports what the live socket's objects hold and stops.
CONNECTIONS_SCRIPT = r"""
import gc, json, os, socket, sys, threading
from signaling.daphne_launcher import install_loop_and_reactor
install_loop_and_reactor()
from signaling import daphne_app_queue, daphne_connections
daphne_app_queue.install()
out = {"installed": daphne_connections.install() if os.environ["PATCH"] == "1" else False}
from daphne.server import Server
from daphne.http_protocol import WebRequest
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet import reactor

async def echo(scope, receive, send):
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message["text"]})

probe = socket.socket()
probe.bind(("127.0.0.1", 0))
port = probe.getsockname()[1]
probe.close()
server = Server(echo, endpoints=[f"tcp:port={port}:interface=127.0.0.1"], signal_handlers=False,
                ping_timeout=17, websocket_handshake_timeout=7, verbosity=0)

def inspect_socket():
    gc.collect()
    protocols = [o for o in gc.get_objects() if isinstance(o, WebSocketProtocol)]
    out["protocols"] = len(protocols)
    p = protocols[0]
    values = {a: getattr(p, a) for a in WebSocketProtocol.CONFIG_ATTRS}
    out["config"] = {a: getattr(v, "__qualname__", None) or repr(v) for a, v in values.items()}
    out["config_not_the_factory_object"] = [a for a, v in values.items() if v is not getattr(p.factory, a)]
    out["config_in_instance"] = sorted(a for a in WebSocketProtocol.CONFIG_ATTRS if a in p.__dict__)
    out["instance_attrs"] = len(p.__dict__)
    requests = [o for o in gc.get_objects() if isinstance(o, WebRequest)]
    out["web_requests_alive"] = len(requests)
    channel = p.transport.producer
    out["producer"] = type(channel).__name__
    out["channel_requests"] = len(channel.requests)
    out["channel_handling_request"] = channel._handlingRequest
    out["channel_request_producer"] = repr(channel._requestProducer)

def client():
    import time
    for _ in range(100):
        try:
            sock = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            time.sleep(0.05)
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    out["status"] = data.split(b"\r\n")[0].decode()
    sock.sendall(b"\x81\x82\x00\x00\x00\x00hi")  # masked text frame "hi", all-zero key
    reply = data.split(b"\r\n\r\n", 1)[1]
    while len(reply) < 4:
        reply += sock.recv(4096)
    out["echo"] = reply[:4].hex()
    done = threading.Event()
    def on_reactor():
        inspect_socket()
        done.set()
    # daphne's application checker forgets the upgraded request in its connections within 1 s
    reactor.callFromThread(reactor.callLater, 2.5, on_reactor)
    done.wait(10)
    sock.close()
    reactor.callFromThread(reactor.stop)

threading.Thread(target=client, daemon=True).start()
reactor.callLater(20, reactor.stop)
server.run()
print(json.dumps(out))
"""


def run_connections_script(patch: bool) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CONNECTIONS_SCRIPT],
        cwd=ROOT,
        env={**os.environ, "PATCH": "1" if patch else "0"},
        capture_output=True,
        text=True,
        timeout=40,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_autobahn_daphne_and_twisted_sources_are_the_ones_the_per_socket_trims_rely_on() -> None:
    # when
    from signaling import daphne_connections

    # then: an upgrade must look at daphne_connections.py again
    assert daphne_connections.TESTED_DAPHNE == TESTED_DAPHNE
    assert daphne_connections.changed_internals() == []


def test_per_socket_trims_keep_every_option_value_and_drop_the_upgraded_request() -> None:
    # given: the same server and socket on stock daphne and with the trims
    stock = run_connections_script(patch=False)
    # when
    trimmed = run_connections_script(patch=True)
    # then: both upgraded and echoed
    for result in (stock, trimmed):
        assert result["status"] == "HTTP/1.1 101 Switching Protocols"
        assert result["echo"] == "81026869"
        assert result["protocols"] == 1
    assert trimmed["installed"] is True
    # the protocol reads the same option values, from its class instead of ~30 instance copies
    assert trimmed["config"] == stock["config"]
    assert trimmed["config"]["openHandshakeTimeout"] == "7"
    assert trimmed["config"]["autoPingTimeout"] == "17"
    assert stock["config_not_the_factory_object"] == trimmed["config_not_the_factory_object"] == []
    assert len(stock["config_in_instance"]) == len(stock["config"])
    assert trimmed["config_in_instance"] == []
    # Python dicts of 86+ keys take 3.3 KB instead of 1.6 KB: the trimmed one stays below
    assert stock["instance_attrs"] > 85 >= trimmed["instance_attrs"]
    # the upgraded request is gone; the HTTP channel stays the transport's producer, and
    # its pause/resume/stop are no-ops there (mid-request, no request producer)
    assert stock["web_requests_alive"] == 1 and stock["channel_requests"] == 1
    assert trimmed["web_requests_alive"] == 0 and trimmed["channel_requests"] == 0
    for result in (stock, trimmed):
        assert result["producer"] == "HTTPChannel"
        assert result["channel_handling_request"] is True
        assert result["channel_request_producer"] == "None"
