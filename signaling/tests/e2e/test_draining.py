"""Draining on SIGTERM (SPEC section 7), with real daphne and uvicorn processes.

Two instances over Redis and PostgreSQL; the clients reach the first through a small TCP proxy
that the test points at the second once the first is told to stop, as a load balancer that
watches ``/readyz`` would. Clients: stock socket.io-client (node; default transports and
websocket-only) and python-socketio with its default reconnection.

To look at the first instance *while* it drains, a client sits alone in a room whose row the
test holds locked (``SELECT ... FOR UPDATE``): that client's leave writes the room's empty
mark, which waits for the lock, so the instance holds a closing session until the test lets
go. Nothing here is timed: each step waits for an event with a generous bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from signaling.tests.e2e.recovery_client import RecoveringClient
from signaling.tests.fixtures import (
    CLUSTER_SKIP_REASON,
    HOST,
    PATIENT_HEARTBEAT,
    POSTGRES_URL,
    REDIS_URL,
    REPO_ROOT,
    LiveServer,
    SioClient,
    cluster_backends_available,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not cluster_backends_available(), reason=CLUSTER_SKIP_REASON),
]
NODE_SCRIPT = Path(__file__).parent / "node" / "drain_client.mjs"
WAIT_S = 20.0
SERVERS = [pytest.param("daphne", id="daphne"), pytest.param("uvicorn", id="uvicorn")]


# -- the parts --------------------------------------------------------------------------------


class TcpProxy:
    """A load balancer in miniature: each new TCP connection goes to the current ``target``."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, HOST, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.target)
        except OSError:
            writer.close()
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        with contextlib.suppress(OSError):
            sink.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()


class NodeClient:
    """``drain_client.mjs`` running in the background; its JSON lines are read as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def start(
        cls,
        url: str,
        room_id: str,
        mode: str,
        secret: str,
        *,
        script: Path = NODE_SCRIPT,
        extra: list[str] | None = None,
    ) -> NodeClient:
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not installed")
        process = await asyncio.create_subprocess_exec(
            node,
            str(script),
            url,
            room_id,
            mode,
            *(extra or []),
            cwd=REPO_ROOT,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", "JWT_SECRET": secret},
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )
        return cls(process)

    async def step(self, name: str, timeout: float = WAIT_S) -> Any:
        """The data of the next line with ``step == name`` (earlier other steps are kept in ``seen``)."""
        assert self.process.stdout is not None
        while True:
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            except TimeoutError:
                pytest.fail(f"node client: no {name!r} within {timeout} s; seen {self.seen}")
            if not raw:
                pytest.fail(f"node client ended before {name!r}; seen {self.seen}")
            line = json.loads(raw)
            self.seen.append(line)
            if line["step"] == "error":
                pytest.fail(f"node client failed: {line['data']}; seen {self.seen}")
            if line["step"] == name:
                return line["data"]

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.process.wait(), WAIT_S)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


class ReconnectingClient(SioClient):
    """python-socketio with its default reconnection (the fixture's client has it off)."""

    def __init__(self) -> None:
        super().__init__()
        self.sio.reconnection = True


class Address:
    """Where a python-socketio client connects (the proxy), in the shape ``SioClient`` reads."""

    def __init__(self, url: str, behind: LiveServer) -> None:
        self.url = url
        self.mint = behind.mint


@contextlib.contextmanager
def room_row_locked(room_id: str) -> Iterator[None]:
    """Hold the room's row ``FOR UPDATE`` in an open transaction (the empty mark waits)."""
    with psycopg.connect(POSTGRES_URL.replace("postgres://", "postgresql://")) as conn, conn.transaction():
        conn.execute("SELECT id FROM rooms_room WHERE id = %s FOR UPDATE", (room_id,))
        yield


def polling_handshake(server: LiveServer) -> tuple[int, Any]:
    request = urllib.request.Request(server.url + "/socket.io/?EIO=4&transport=polling")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


async def websocket_handshake_status(server: LiveServer) -> int:
    """101 when a new websocket session opens, else the HTTP status of the refusal."""
    try:
        async with ws_connect(server.ws_url + "/socket.io/?EIO=4&transport=websocket", open_timeout=5):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


async def wait_for_log(server: LiveServer, text: str, timeout: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in server.stderr_text():
        assert asyncio.get_running_loop().time() < deadline, f"no {text!r} in the log:\n{server.stderr_text()}"
        await asyncio.sleep(0.05)


async def wait_until_refused(server: LiveServer, timeout: float = WAIT_S) -> None:
    """Wait until the server no longer accepts TCP connections (its listener closed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection(HOST, server.port)
        except OSError:
            return
        writer.close()
        assert asyncio.get_running_loop().time() < deadline, "the server still accepts connections"
        await asyncio.sleep(0.05)


async def exit_status(server: LiveServer, timeout: float = WAIT_S) -> int:
    """The process's exit status; fails after ``timeout`` (polled: no thread left waiting)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (status := server.process.poll()) is None:
        assert asyncio.get_running_loop().time() < deadline, f"still running:\n{server.stderr_text()}"
        await asyncio.sleep(0.05)
    return status


def cluster_env(**extra: str) -> dict[str, str]:
    return {"REDIS_URL": REDIS_URL, "DATABASE_URL": POSTGRES_URL, **PATIENT_HEARTBEAT, **extra}


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    balancer = TcpProxy(target=0)
    await balancer.start()
    yield balancer
    await balancer.close()


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("server_kind", SERVERS)
async def test_sigterm_drains_and_every_client_reconnects_to_the_other_instance(
    live_servers: Any, proxy: TcpProxy, server_kind: str
) -> None:
    # given two instances; clients reach the first through the proxy; a peer sits on the second
    first, second = live_servers(count=2, server=server_kind, env=cluster_env(DRAIN_TIMEOUT="60000"))
    proxy.target = first.port
    room = (await first.acreate_room())["id"]
    held_room = (await first.acreate_room())["id"]
    peer = SioClient()
    await peer.connect_as(second, "agent-peer")
    assert (await peer.join(room))["ok"] is True
    node_default = await NodeClient.start(proxy.url, room, "default", first.secret)
    node_websocket = await NodeClient.start(proxy.url, room, "websocket", first.secret)
    node_polling = await NodeClient.start(proxy.url, room, "polling", first.secret)
    python_client = ReconnectingClient()
    await python_client.connect_as(Address(proxy.url, first), "agent-python")  # type: ignore[arg-type]
    assert (await python_client.join(room))["ok"] is True
    holder = SioClient()  # alone in held_room: its leave waits for the row lock
    await holder.connect_as(first, "agent-holder")
    assert (await holder.join(held_room))["ok"] is True
    before = {}
    nodes = (node_default, node_websocket, node_polling)
    for node in nodes:
        joined = await node.step("joined")
        assert joined["ok"] is True
        before[node] = joined["clientId"]
    old_ids = {*before.values(), python_client.client_id}
    for _ in range(4):
        await peer.next("user_joined", timeout=WAIT_S)

    with room_row_locked(held_room):
        # when the first instance gets SIGTERM and the balancer stops sending it new connections
        first.process.send_signal(signal.SIGTERM)
        proxy.target = second.port
        await wait_for_log(first, "SIGTERM: draining")

        # then, while it drains: not ready, new sessions refused, REST still answers
        status, body = await first.aget("/readyz")
        assert (status, body["status"], body["code"]) == (503, "draining", "draining")
        assert polling_handshake(first) == (
            503,
            {"code": "draining", "message": "this instance is shutting down; connect to another one"},
        )
        assert await websocket_handshake_status(first) == 403
        status, detail = await first.aget(f"/api/rooms/{room}")
        assert status == 200 and detail["id"] == room
        assert first.process.poll() is None  # the holder's close is still running

        # and every client reconnects by itself, to the second instance, and rejoins
        for node in nodes:
            # polling: the pending GET got the Engine.IO CLOSE ("transport close"), or, between
            # two GETs, the next one found no session ("transport error"); both reconnect
            reasons = {"transport close", "transport error"} if node is node_polling else {"transport close"}
            assert await node.step("disconnect") in reasons
            rejoined = await node.step("joined")
            assert rejoined["ok"] is True and rejoined["count"] == 2
            assert await node.exit_code() == 0
        assert await python_client.next("disconnect", timeout=WAIT_S) is not None
        again = await python_client.next("connected", timeout=WAIT_S)
        assert again["clientId"] not in old_ids  # recovery off: a new session
        assert (await python_client.join(room))["ok"] is True

        # and the peer heard each old session leave, as `disconnected` (recovery is off)
        left = [await peer.next("user_left", timeout=WAIT_S) for _ in range(4)]
        assert {payload["clientId"] for payload in left} == old_ids
        assert {payload["reason"] for payload in left} == {"disconnected"}

    # then, the lock released, the last session closes and the process exits 0 at once
    assert await exit_status(first) == 0
    assert "drain: no socket left" in first.stderr_text()
    assert "Traceback" not in first.stderr_text()
    await python_client.disconnect()
    await peer.disconnect()


@pytest.mark.parametrize("server_kind", SERVERS)
async def test_drain_ends_at_drain_timeout_while_a_session_is_still_closing(
    live_servers: Any, server_kind: str
) -> None:
    # given one instance with a short DRAIN_TIMEOUT and a session that cannot finish closing
    (server,) = live_servers(server=server_kind, env=cluster_env(DRAIN_TIMEOUT="1000"))
    room = (await server.acreate_room())["id"]
    holder = SioClient()
    await holder.connect_as(server, "agent-holder")
    assert (await holder.join(room))["ok"] is True
    with room_row_locked(room):
        # when it gets SIGTERM
        server.process.send_signal(signal.SIGTERM)
        # then it gives up waiting at DRAIN_TIMEOUT and hands over to the server's shutdown
        await wait_for_log(server, "drain: DRAIN_TIMEOUT reached with 1 session(s)")
    assert await exit_status(server) == 0


@pytest.mark.parametrize("second_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("server_kind", SERVERS)
async def test_a_second_signal_stops_a_draining_instance_at_once(
    live_servers: Any, server_kind: str, second_signal: signal.Signals
) -> None:
    # given an instance draining for up to a minute, held by a session that is still closing
    (server,) = live_servers(server=server_kind, env=cluster_env(DRAIN_TIMEOUT="60000"))
    room = (await server.acreate_room())["id"]
    holder = SioClient()
    await holder.connect_as(server, "agent-holder")
    assert (await holder.join(room))["ok"] is True
    with room_row_locked(room):
        server.process.send_signal(signal.SIGTERM)
        await wait_for_log(server, "SIGTERM: draining")
        # when a second signal comes
        server.process.send_signal(second_signal)
        # then it stops serving without waiting for the drain (still held by the lock)
        await wait_for_log(server, f"{second_signal.name}: stopping at once")
        await wait_until_refused(server)
        assert "drain: no socket left" not in server.stderr_text()
    assert await exit_status(server) == 0


@pytest.mark.parametrize("server_kind", SERVERS)
async def test_sigterm_with_no_socket_exits_0(live_servers: Any, server_kind: str) -> None:
    # given an instance that served REST only (the signaling service never started)
    (server,) = live_servers(server=server_kind, env=cluster_env())
    assert (await server.aget("/api/rooms"))[0] == 200
    # when it gets SIGTERM
    server.process.send_signal(signal.SIGTERM)
    # then it holds no socket and exits 0
    assert await exit_status(server) == 0
    assert "drain: no socket left" in server.stderr_text()


@pytest.mark.parametrize("server_kind", SERVERS)
async def test_with_recovery_a_drained_call_resumes_on_the_other_instance_with_no_relay_lost(
    live_servers: Any, proxy: TcpProxy, server_kind: str
) -> None:
    # given two instances with recovery on; two stock clients (default transports and
    # websocket-only) reach the first through the proxy; the peer sits on the second
    env = cluster_env(DRAIN_TIMEOUT="30000", RECOVERY_WINDOW="30000")
    first, second = live_servers(count=2, server=server_kind, env=env)
    proxy.target = first.port
    room = (await first.acreate_room())["id"]
    peer = RecoveringClient(second, "agent-peer")
    await peer.connect()
    await peer.until("connected")
    assert (await peer.call("join_room", {"roomId": room}, 1))["ok"] is True
    relays = 30
    script = Path(__file__).parent / "node" / "drain_recovery_client.mjs"
    nodes = []
    for mode in ("default", "websocket"):
        nodes.append(await NodeClient.start(proxy.url, room, mode, first.secret, script=script, extra=[str(relays)]))
    ids = []
    for node in nodes:
        joined = await node.step("joined")
        assert joined["ok"] is True
        ids.append(joined["clientId"])
    joiners = [await peer.until("user_joined", timeout=WAIT_S) for _ in nodes]
    assert sorted(payload["clientId"] for payload in joiners) == sorted(ids)

    async def relay(start: int, stop: int) -> None:
        for index in range(start, stop):
            for target in ids:
                ack = await peer.call("offer", {"to": target, "sdp": f"sdp-{index}"}, 100 + index)
                assert ack == {"ok": True}, ack

    # when: relays before the drain, the first instance gets SIGTERM, and relays go on
    # while its clients are away and after they resumed through the proxy on the second
    await relay(0, 10)
    first.process.send_signal(signal.SIGTERM)
    proxy.target = second.port
    await wait_for_log(first, "SIGTERM: draining")
    await relay(10, 20)
    for node in nodes:
        assert await node.step("disconnect") == "transport close"
        back = await node.step("connected")
        assert back["recovered"] is True and back["socketRecovered"] is True
    await relay(20, relays)

    # then each client kept its id, got every relay exactly once and in order, never rejoined
    for node, client_id in zip(nodes, ids, strict=True):
        done = await node.step("done")
        assert done["received"] == [f"sdp-{index}" for index in range(relays)]
        assert done["id"] == client_id and done["connects"] == 2
        assert await node.exit_code() == 0
    # and the peer was told nothing of the hand-over (no user_left, no second user_joined)
    assert "user_left" not in peer.dropped and "user_joined" not in peer.dropped, peer.dropped
    assert await exit_status(first) == 0
    assert "Traceback" not in first.stderr_text()
    await peer.close()
