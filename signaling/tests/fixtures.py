"""Shared end-to-end fixtures: real server processes, real Socket.IO clients, node runners.

Registered from the root ``conftest.py`` (``pytest_plugins``). Owns:

- ``live_servers`` (function scope) and ``live_servers_module`` (module scope): a factory
  ``start(*, count=1, server="daphne", env=None) -> list[LiveServer]`` that runs
  ``manage.py serve`` subprocesses on free 127.0.0.1 ports against a migrated database,
  waits for ``GET /healthz`` and stops every process it started (terminate, then kill)
  and removes the Redis keys under the test's ``REDIS_PREFIX``;
- ``sio_client``: a factory of :class:`SioClient`, a python-socketio ``AsyncClient`` that
  records every received event in a queue per event name;
- :class:`RawSocketIO`: a hand-driven Engine.IO/Socket.IO websocket (``websockets``) for
  protocol abuse (garbage frames, a peer that stops answering pings);
- :func:`run_node`: runs a node script from the repository root (``node_modules`` there)
  and returns its JSON lines.

Tokens are real HS256 JWTs minted with PyJWT in the Node shape (``agentId``, ``iat``,
``exp``), never a mocked verifier. Never imports the server's modules: the servers under
test are separate processes. Binds and connects to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import socketio
import websockets

from signaling.tests.schemas import SERVER_EVENTS, assert_matches_schema

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = (
    str(REPO_ROOT / ".venv" / "bin" / "python") if (REPO_ROOT / ".venv" / "bin" / "python").exists() else sys.executable
)
HOST = "127.0.0.1"
# 64 bytes: PyJWT warns about HMAC keys shorter than the SHA-256 block.
TEST_SECRET = "e2e-test-secret-" + "0123456789abcdef" * 3
STARTUP_TIMEOUT_S = 60.0  # a bound against hanging, not a speed check: a loaded box (load 20) took over 20 s
STOP_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 5.0
# Configuration variables the servers read (SPEC section 6 and beyond): never inherited from
# the test process (e.g. the PostgreSQL run's DATABASE_URL), only set from `env`.
CONFIG_VARIABLES = (
    "PORT",
    "HOST",
    "JWT_SECRET",
    "CORS_ORIGIN",
    "HEARTBEAT_INTERVAL",
    "HEARTBEAT_TIMEOUT",
    "ROOM_TIMEOUT",
    "MAX_PARTICIPANTS",
    "REDIS_URL",
    "REDIS_PREFIX",
    "DATABASE_URL",
    "LOG_LEVEL",
    "JWT_LEEWAY",
    "JOIN_TOKEN_TTL",
    "MAX_PAYLOAD",
    "MAX_MESSAGE_BYTES",
    "MAX_BUFFERED_BYTES",
    "RATE_LIMIT",
    "RATE_LIMIT_BURST",
    "DEV_MODE",
    "ALLOWED_HOSTS",
    "DJANGO_SETTINGS_MODULE",
    "METRICS_TOKEN",
    "LOG_FORMAT",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "RECOVERY_WINDOW",
    "DRAIN_TIMEOUT",
    "OVERLOAD_LAG",
)
BASE_ENV = {
    "HOST": HOST,
    "JWT_SECRET": TEST_SECRET,
    "HEARTBEAT_INTERVAL": "300",
    "HEARTBEAT_TIMEOUT": "300",
    "LOG_LEVEL": "warning",
    # Teardown's SIGTERM drains: bounded well within STOP_TIMEOUT_S.
    "DRAIN_TIMEOUT": "3000",
    # The machine is shared: a neighbour's load must not make a server refuse sessions
    # mid-test (the overload tests turn it on).
    "OVERLOAD_LAG": "0",
}
# Pings every 300 ms as BASE_ENV sets, but 2 s to answer one: on a loaded 2-core machine a
# client must not be dropped mid-test by a late pong (ping timeouts are tested on their own).
PATIENT_HEARTBEAT = {"HEARTBEAT_TIMEOUT": "2000"}
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
CLUSTER_SKIP_REASON = "needs Redis at 127.0.0.1:6379 and PostgreSQL at 127.0.0.1:5432"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def mint_token(secret: str, agent_id: str, *, ttl_s: int = 3600, is_staff: bool = False, **extra_claims: Any) -> str:
    """An agent token as agent-link mints it: exactly ``{agentId, iat, exp}`` (plus extras)."""
    now = int(time.time())
    claims: dict[str, Any] = {"agentId": agent_id, "iat": now, "exp": now + ttl_s}
    if is_staff:
        claims["is_staff"] = True
    claims.update(extra_claims)
    return jwt.encode(claims, secret, algorithm="HS256")


def tcp_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts a TCP connection at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def cluster_backends_available() -> bool:
    """True when Redis (6379) and PostgreSQL (5432) answer on 127.0.0.1."""
    return tcp_answers(HOST, 6379) and tcp_answers(HOST, 5432)


# -- live servers ------------------------------------------------------------------------


@dataclass
class LiveServer:
    """One running ``manage.py serve`` process."""

    port: int
    process: subprocess.Popen[bytes]
    secret: str
    env: dict[str, str]
    workdir: Path
    name: str = "server"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://{HOST}:{self.port}"

    def mint(self, agent_id: str, ttl_s: int = 3600, is_staff: bool = False, **extra_claims: Any) -> str:
        """An agent token this server accepts: ``{agentId, iat, exp}`` (the seed's shape)."""
        return mint_token(self.secret, agent_id, ttl_s=ttl_s, is_staff=is_staff, **extra_claims)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """One HTTP request; returns ``(status, parsed JSON or None)`` for any status."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def get(self, path: str) -> tuple[int, Any]:
        """``GET path`` -> ``(status, json)``."""
        return self.request("GET", path)

    def create_room(self, token: str | None = None, **body: Any) -> dict[str, Any]:
        """``POST /api/rooms`` (defaults: name "e2e room", type voice); fails unless 201."""
        payload = {"name": "e2e room", "type": "voice", **body}
        status, room = self.request("POST", "/api/rooms", payload, token=token or self.mint("agent-creator"))
        assert status == 201, f"POST /api/rooms answered {status}: {room}"
        return dict(room)

    async def arequest(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        """:meth:`request` off the event loop (clients keep answering pings meanwhile)."""
        return await asyncio.wait_for(asyncio.to_thread(self.request, method, path, body, **kwargs), HTTP_TIMEOUT_S + 1)

    async def aget(self, path: str) -> tuple[int, Any]:
        """:meth:`get` off the event loop."""
        return await self.arequest("GET", path)

    async def acreate_room(self, token: str | None = None, **body: Any) -> dict[str, Any]:
        """:meth:`create_room` off the event loop."""
        return await asyncio.wait_for(asyncio.to_thread(self.create_room, token, **body), HTTP_TIMEOUT_S + 1)

    def kill(self) -> None:
        """SIGKILL the server (no goodbye to anyone) and reap it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bounded wait."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr so far."""
        path = self.workdir / f"{self.name}.stderr"
        return path.read_text(errors="replace") if path.exists() else ""


_template_db: Path | None = None


def _migrated_sqlite(target: Path, env: dict[str, str]) -> None:
    """Put a migrated SQLite database at ``target`` (migrate runs once per test session)."""
    global _template_db
    if _template_db is None or not _template_db.exists():
        template_dir = Path(tempfile.mkdtemp(prefix="e2e-template-db-"))
        atexit.register(shutil.rmtree, template_dir, True)
        template = template_dir / "db.sqlite3"
        _migrate({**env, "DATABASE_URL": f"sqlite:///{template}"})
        _template_db = template
    shutil.copyfile(_template_db, target)


def _migrate(env: dict[str, str]) -> None:
    result = subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"migrate failed:\n{result.stderr.decode(errors='replace')}"


def _base_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(BASE_ENV)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServerFactory:
    """Starts servers and stops every one of them (and cleans Redis) on :meth:`close`."""

    def __init__(self) -> None:
        self.servers: list[LiveServer] = []
        self.workdirs: list[Path] = []
        self.redis_prefixes: list[tuple[str, str]] = []

    def start(self, *, count: int = 1, server: str = "daphne", env: dict[str, str] | None = None) -> list[LiveServer]:
        """Start ``count`` instances sharing one database (and Redis, when ``env`` says so).

        Args:
            count: how many processes.
            server: ``daphne`` or ``uvicorn``.
            env: overrides of the test configuration (``REDIS_URL``, ``DATABASE_URL``, ...).

        Returns:
            The servers, each answering ``GET /healthz`` with 200.
        """
        workdir = Path(tempfile.mkdtemp(prefix="e2e-servers-"))
        self.workdirs.append(workdir)
        base = _base_environment()
        base.update(env or {})
        if "DATABASE_URL" in (env or {}):
            _migrate(base)
        else:
            database = workdir / "db.sqlite3"
            _migrated_sqlite(database, base)
            base["DATABASE_URL"] = f"sqlite:///{database}"
        if base.get("REDIS_URL"):
            # Never the default prefix: teardown deletes every key under it.
            base.setdefault("REDIS_PREFIX", "e2e" + uuid.uuid4().hex[:16])
            self.redis_prefixes.append((base["REDIS_URL"], base["REDIS_PREFIX"]))
        started = []
        for _ in range(count):
            port = free_port()
            while port in {s.port for s in started}:  # not bound yet: the kernel may hand it out again
                port = free_port()
            proc_env = {**base, "PORT": str(port)}
            name = f"server{len(self.servers)}"
            stdout = open(workdir / f"{name}.stdout", "wb")  # noqa: SIM115 - closed below
            stderr = open(workdir / f"{name}.stderr", "wb")  # noqa: SIM115
            process = subprocess.Popen(
                [PYTHON, "manage.py", "serve", "--server", server],
                cwd=REPO_ROOT,
                env=proc_env,
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
            stdout.close()
            stderr.close()
            live = LiveServer(
                port,
                process,
                base["JWT_SECRET"],
                proc_env,
                workdir,
                name,
            )
            self.servers.append(live)
            started.append(live)
        for live in started:
            _wait_healthy(live)
        return started

    def close(self) -> None:
        """Stop every server, remove its files and the Redis keys of its prefix."""
        for live in self.servers:
            live.stop()
        self.servers.clear()
        for url, prefix in self.redis_prefixes:
            _delete_redis_keys(url, prefix)
        self.redis_prefixes.clear()
        for workdir in self.workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
        self.workdirs.clear()


def _wait_healthy(live: LiveServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if live.process.poll() is not None:
            pytest.fail(f"{live.name} exited with {live.process.returncode}:\n{live.stderr_text()}")
        try:
            with urllib.request.urlopen(live.url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.05)
    live.stop()
    pytest.fail(f"{live.name} did not answer /healthz within {STARTUP_TIMEOUT_S} s:\n{live.stderr_text()}")


def _delete_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)
    except redis.RedisError:
        pass  # Redis went away: nothing left to clean
    finally:
        client.close()


@pytest.fixture
def live_servers() -> Iterator[Callable[..., list[LiveServer]]]:
    """Factory ``start(*, count=1, server="daphne", env=None) -> list[LiveServer]`` (function scope)."""
    factory = ServerFactory()
    try:
        yield factory.start
    finally:
        factory.close()


@pytest.fixture(scope="module")
def live_servers_module() -> Iterator[Callable[..., list[LiveServer]]]:
    """The same factory, its servers shared by a test module (stopped after its last test)."""
    factory = ServerFactory()
    try:
        yield factory.start
    finally:
        factory.close()


@pytest.fixture
def redis_prefix() -> str:
    """A ``REDIS_PREFIX`` of this test alone, so tests never see each other's keys."""
    return "e2e" + uuid.uuid4().hex[:16]


# -- a Redis of a test's own ---------------------------------------------------------------


class RedisServer:
    """A redis-server of this test's own, on a free port, that keeps nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own (it may stop and start it); skipped without redis-server."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server on PATH")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


# -- python-socketio client ----------------------------------------------------------------

RESERVED = ("connect", "connect_error", "disconnect")


class SioClient:
    """A python-socketio ``AsyncClient`` recording every received event per event name.

    Payloads are queued as received: one argument as itself, several as a list, none as None.
    ``connect_error`` gets the refusal data (``{"message": ...}``), ``disconnect`` the reason.
    """

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queues: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.agent_id: str | None = None
        self.server: LiveServer | None = None
        sio = self.sio

        @sio.on("*")
        async def _any(event: str, *args: Any) -> None:
            self._record(event, args)

        @sio.event
        async def connect() -> None:
            self._record("connect", ())

        @sio.event
        async def connect_error(*args: Any) -> None:
            self._record("connect_error", args)

        @sio.event
        async def disconnect(*args: Any) -> None:
            self._record("disconnect", args)

    def _record(self, event: str, args: tuple[Any, ...]) -> None:
        payload = None if not args else args[0] if len(args) == 1 else list(args)
        self.queues[event].put_nowait(payload)

    async def connect(
        self,
        server: LiveServer,
        *,
        token: str | None = None,
        transports: list[str] | None = None,
        auth: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        query: str = "",
        timeout: float = 3.0,
    ) -> None:
        """Connect; ``token`` goes in ``auth`` (give ``auth``/``headers``/``query`` for the other ways).

        Raises:
            socketio.exceptions.ConnectionError: the server refused the connection.
        """
        self.server = server
        if auth is None and token is not None:
            auth = {"token": token}
        url = server.url + (f"?{query}" if query else "")
        await asyncio.wait_for(
            self.sio.connect(url, auth=auth, headers=headers or {}, transports=transports, wait_timeout=timeout),
            timeout + 2,
        )
        self.drain("connect")  # python-socketio's own `connect`: connected is the SPEC event

    async def connect_as(
        self, server: LiveServer, agent_id: str, *, transports: list[str] | None = None
    ) -> dict[str, Any]:
        """Mint a token for ``agent_id``, connect and return the ``connected`` payload."""
        self.agent_id = agent_id
        await self.connect(server, token=server.mint(agent_id), transports=transports)
        return dict(await self.next("connected"))

    async def refused(self, server: LiveServer, **kwargs: Any) -> Any:
        """Connect expecting a refusal; returns the ``connect_error`` data."""
        with pytest.raises(socketio.exceptions.ConnectionError):
            await self.connect(server, **kwargs)
        return await self.next("connect_error")

    @property
    def client_id(self) -> str:
        """The Socket.IO sid of the default namespace (the client's ``socket.id``)."""
        sid = self.sio.get_sid("/")
        assert sid is not None, "not connected"
        return str(sid)

    @property
    def transport(self) -> str | None:
        """``polling`` or ``websocket``."""
        return self.sio.transport()

    async def call(self, event: str, data: Any = None, timeout: float = 2.0) -> Any:
        """Emit with an ack callback and return the ack's argument."""
        args = () if data is None else (data,)
        return await asyncio.wait_for(self.sio.call(event, *args, timeout=timeout), timeout + 1)

    async def emit(self, event: str, data: Any = None, timeout: float = 2.0) -> None:
        """Emit without an ack."""
        if data is None:
            await asyncio.wait_for(self.sio.emit(event), timeout)
        else:
            await asyncio.wait_for(self.sio.emit(event, data), timeout)

    async def next(self, event: str, timeout: float = 2.0) -> Any:
        """The next payload of ``event`` (at most ``timeout`` s), checked against its SPEC schema."""
        try:
            payload = await asyncio.wait_for(self.queues[event].get(), timeout)
        except TimeoutError:
            pytest.fail(f"no {event!r} within {timeout} s (pending: {self.pending()})")
        if event in SERVER_EVENTS:
            assert_matches_schema(event, payload)  # every received server event has its SPEC shape
        return payload

    async def receive_nothing(self, event: str | None = None, timeout: float = 0.3) -> bool:
        """True when, after ``timeout`` seconds, nothing (of ``event``) is pending."""
        await asyncio.sleep(timeout)
        if event is not None:
            return self.queues[event].empty()
        return not any(not q.empty() for q in self.queues.values())

    def pending(self) -> dict[str, int]:
        """How many payloads wait in each queue (for failure messages)."""
        return {name: q.qsize() for name, q in self.queues.items() if q.qsize()}

    def drain(self, event: str) -> list[Any]:
        """Take every pending payload of ``event``."""
        items = []
        queue = self.queues[event]
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    async def join(self, room_id: str, timeout: float = 2.0, **extra: Any) -> Any:
        """``join_room`` with an ack; also consumes this socket's ``joined`` on success."""
        reply = await self.call("join_room", {"roomId": room_id, **extra}, timeout=timeout)
        if isinstance(reply, dict) and reply.get("ok"):
            await self.next("joined", timeout=timeout)
        return reply

    async def disconnect(self) -> None:
        """Disconnect (no-op when not connected)."""
        with contextlib.suppress(TimeoutError, OSError):  # the server may be dead already (kill tests)
            await asyncio.wait_for(self.sio.disconnect(), 3)


@pytest.fixture
async def sio_client() -> AsyncIterator[Callable[[], SioClient]]:
    """Factory of :class:`SioClient`; every client made is disconnected at teardown."""
    made: list[SioClient] = []

    def make() -> SioClient:
        client = SioClient()
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.disconnect()


# -- raw Engine.IO / Socket.IO over websockets ---------------------------------------------


@dataclass
class RawSocketIO:
    """A websocket speaking Engine.IO v4 / Socket.IO v5 by hand.

    A reader task queues every text/bytes frame; it answers pings (``2`` -> ``3``) while
    ``answers_pings`` is True. ``closed`` is set with the close code when the server closes.
    """

    ws: Any
    answers_pings: bool = True
    frames: asyncio.Queue[str | bytes] = field(default_factory=asyncio.Queue)
    close_code: int | None = None
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    client_id: str | None = None

    @classmethod
    async def open(cls, server: LiveServer, query: str = "", *, max_size: int | None = 2**24) -> RawSocketIO:
        """Open ``/socket.io/?EIO=4&transport=websocket`` (+ ``query``) and read the OPEN packet."""
        url = f"{server.ws_url}/socket.io/?EIO=4&transport=websocket" + (f"&{query}" if query else "")
        ws = await asyncio.wait_for(websockets.connect(url, max_size=max_size, open_timeout=3), 4)
        raw = cls(ws)
        raw.reader = asyncio.get_running_loop().create_task(raw._read())
        return raw

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if frame == "2" and self.answers_pings:
                    await self.ws.send("3")
                    continue
                self.frames.put_nowait(frame)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    async def next_frame(self, timeout: float = 2.0, *, skip_pings: bool = True) -> str | bytes:
        """The next frame (pings skipped unless asked for)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                frame = await asyncio.wait_for(self.frames.get(), max(remaining, 0.001))
            except TimeoutError:
                pytest.fail(f"no frame within {timeout} s")
            if skip_pings and frame == "2":
                continue
            return frame

    async def handshake(self, token: str, timeout: float = 2.0) -> dict[str, Any]:
        """OPEN, CONNECT with ``auth.token``, the ``connected`` event; returns its payload."""
        opening = await self.next_frame(timeout)
        assert isinstance(opening, str) and opening.startswith("0{"), opening
        await self.send("40" + json.dumps({"token": token}))
        accepted = await self.next_frame(timeout)
        assert isinstance(accepted, str) and accepted.startswith("40{"), accepted
        self.client_id = json.loads(accepted[2:])["sid"]
        event = await self.next_event(timeout)
        assert event[0] == "connected", event
        return dict(event[1])

    async def next_event(self, timeout: float = 2.0) -> list[Any]:
        """The next Socket.IO EVENT (``42[...]``) as its decoded array."""
        frame = await self.next_frame(timeout)
        assert isinstance(frame, str) and frame.startswith("42"), frame
        return list(json.loads(frame[2:]))

    async def join(self, room_id: str, timeout: float = 2.0) -> dict[str, Any]:
        """``join_room`` with ack id 1; returns the ack payload (the ``joined`` event is consumed)."""
        await self.send("421" + json.dumps(["join_room", {"roomId": room_id}]))
        ack: dict[str, Any] | None = None
        joined = False
        while ack is None or not joined:
            frame = await self.next_frame(timeout)
            assert isinstance(frame, str), frame
            if frame.startswith("431"):
                ack = json.loads(frame[3:])[0]
                if not ack.get("ok"):
                    return ack
            elif frame.startswith("42") and json.loads(frame[2:])[0] == "joined":
                joined = True
        return ack

    async def send(self, frame: str | bytes) -> None:
        """Send one frame."""
        await asyncio.wait_for(self.ws.send(frame), 2)

    async def wait_closed(self, timeout: float = 2.0) -> int | None:
        """Wait for the server to close the websocket; returns the close code."""
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        """Close our side and stop the reader."""
        with contextlib.suppress(TimeoutError, websockets.WebSocketException, OSError):  # already gone
            await asyncio.wait_for(self.ws.close(), 2)
        if self.reader is not None:
            self.reader.cancel()


@pytest.fixture
async def raw_socket() -> AsyncIterator[Callable[..., Any]]:
    """Factory ``await open(server, query="") -> RawSocketIO``; closed at teardown."""
    made: list[RawSocketIO] = []

    async def open_raw(server: LiveServer, query: str = "", **kwargs: Any) -> RawSocketIO:
        raw = await RawSocketIO.open(server, query, **kwargs)
        made.append(raw)
        return raw

    try:
        yield open_raw
    finally:
        for raw in made:
            await raw.close()


# -- node clients --------------------------------------------------------------------------

NODE_TIMEOUT_S = 20.0


def run_node(
    script_path: str | Path, *args: str, env: dict[str, str] | None = None, timeout: float = NODE_TIMEOUT_S
) -> tuple[int, list[Any]]:
    """Run ``node script args...`` from the repository root; stdout lines parsed as JSON.

    Args:
        script_path: the script (ES module).
        args: its arguments.
        env: added to the environment.
        timeout: seconds before the process is killed and the test fails.

    Returns:
        ``(returncode, [one decoded JSON value per non-empty stdout line])``.
    """
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (./run test installs node_modules and needs node 18+)")
    process = subprocess.Popen(
        [node, str(script_path), *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(
            f"node {script_path} did not finish in {timeout} s\nstdout:\n{out.decode()}\nstderr:\n{err.decode()}"
        )
    lines = []
    for line in out.decode().splitlines():
        if line.strip():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pytest.fail(f"node printed a non-JSON line {line!r}\nstderr:\n{err.decode()}")
    if process.returncode != 0:
        sys.stderr.write(err.decode())
    return process.returncode, lines


@pytest.fixture(name="run_node")
def run_node_fixture() -> Callable[..., tuple[int, list[Any]]]:
    """:func:`run_node` as a fixture."""
    return run_node
