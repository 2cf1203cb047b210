"""Start and stop signaling server processes for the benchmark (127.0.0.1 only).

Each server gets a fresh temporary SQLite database (migrated first), runs pinned to the
server core with ``taskset`` and a raised file-descriptor limit, and is stopped by its own
process id. Server kinds: ``daphne`` and ``uvicorn`` go through ``manage.py serve`` (what
operators run); ``uvicorn-stock`` is the uvicorn binary with its defaults;
``uvicorn-<ws>`` variants run the uvicorn binary on the same application with another
``--ws`` implementation, to compare; ``node`` is the baseline, socket.io 4 on
Node (``bench/node/server.js``, the same events), on the redis layer over
``@socket.io/redis-adapter``. Node needs no database; its npm packages are installed from
``bench/node/package-lock.json`` by :func:`ensure_node_packages`.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
APPLICATION = "signaling_project.asgi:application"
FD_LIMIT = 65536
SERVER_CORE = 0
LOAD_CORE = 1
REDIS_URL = "redis://127.0.0.1:6379/0"
SERVER_KINDS = (
    "daphne",
    "uvicorn",
    "daphne-stock",
    "daphne-uvloop",
    "daphne-noframes",
    "uvicorn-stock",
    "uvicorn-websockets",
    "uvicorn-wsproto",
    "uvicorn-websockets-sansio",
    "node",
)
# The daphne configurations before issue #12's levers, to measure each lever in the same run:
# the daphne binary (stock asyncio loop and reactor), and daphne with uvloop's policy
# installed first (its stock reactor then runs on a uvloop loop). ``daphne`` is
# ``manage.py serve`` (uvloop and the write-coalescing reactor, signaling/daphne_launcher.py).
DAPHNE_UVLOOP = (
    "import asyncio, sys, uvloop; asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
    "from daphne.cli import CommandLineInterface; CommandLineInterface().run(sys.argv[1:])"
)
# ``serve``'s daphne without signaling/daphne_frames.py (autobahn's own frame code): that lever alone.
DAPHNE_NOFRAMES = (
    f"import sys; sys.path.insert(0, {str(ROOT)!r}); from signaling import daphne_frames; "
    "daphne_frames.install_or_warn = lambda: None; "
    "from signaling.daphne_launcher import main; main(sys.argv[1:])"
)
NODE_DIR = ROOT / "bench" / "node"
BASELINE = "node"
# ``uvicorn`` is ``manage.py serve --server uvicorn`` (signaling/uvicorn_ws.py's protocol, no
# websocket pings); ``uvicorn-stock`` is what serve ran before: the uvicorn binary with its
# defaults (websockets-sansio, keepalive pings every 20 s) and permessage-deflate off.
UVICORN_STOCK_OPTIONS = ("--log-level", "warning", "--proxy-headers", "--ws-per-message-deflate", "false")


def ensure_node_packages() -> None:
    """``npm ci --prefix bench/node`` when its node_modules is missing or older than the lock file.

    Raises:
        RuntimeError: node or npm is not installed, or the install failed.
    """
    if not (shutil.which("node") and shutil.which("npm")):
        raise RuntimeError("the node baseline needs node and npm (Debian: apt-get install nodejs npm)")
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= (NODE_DIR / "package-lock.json").stat().st_mtime:
        return
    done = subprocess.run(
        ["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci --prefix bench/node failed: {done.stderr[-2000:]}")


def node_versions() -> dict[str, str]:
    """Node.js and the baseline's npm packages (from its lock file), for the results file."""
    version = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    packages = lock.get("packages", {})
    wanted = ("socket.io", "@socket.io/redis-adapter", "redis", "engine.io", "ws", "jsonwebtoken")
    return {"node": version, **{name: packages.get(f"node_modules/{name}", {}).get("version", "?") for name in wanted}}


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE as far as the hard limit allows; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = FD_LIMIT if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` in kB (from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (from /proc/<pid>/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """One running server process."""

    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """The servers of one scenario, sharing a database (and Redis when the layer is redis)."""

    kind: str
    layer: str
    env: dict[str, str]
    workdir: Path
    servers: list[Server] = field(default_factory=list)


DB_DIR: str | None = None  # set by the CLI (--db-dir): where the temporary SQLite file lives
NODE_FLAGS: list[str] = []  # set by the CLI (--profile): node's --cpu-prof flags
ARGV_PREFIX: list[str] = []  # a command that runs the server (bench.instructions: valgrind); no pinning then
READY_TIMEOUT_S = 30.0


def _preexec() -> None:
    raise_fd_limit()  # the niceness and the autogroup are inherited from the load process


def _argv(kind: str, port: int) -> list[str]:
    pin = ["taskset", "-c", str(SERVER_CORE)] if shutil.which("taskset") else []
    if kind == BASELINE:
        return [*pin, "node", *NODE_FLAGS, str(NODE_DIR / "server.js")]
    if kind in ("daphne", "uvicorn"):
        return [*pin, PYTHON, str(ROOT / "manage.py"), "serve", "--server", kind]
    if kind.startswith("daphne-"):
        daphne_args = ["-b", "127.0.0.1", "-p", str(port), "--proxy-headers", "--websocket_timeout", "-1", APPLICATION]
        if kind == "daphne-stock":
            return [*pin, str(Path(PYTHON).parent / "daphne"), *daphne_args]
        if kind == "daphne-noframes":
            return [*pin, PYTHON, "-c", DAPHNE_NOFRAMES, *daphne_args]
        return [*pin, PYTHON, "-c", DAPHNE_UVLOOP, *daphne_args]
    uvicorn = str(Path(PYTHON).parent / "uvicorn")
    if kind == "uvicorn-stock":
        return [*pin, uvicorn, "--host", "127.0.0.1", "--port", str(port), *UVICORN_STOCK_OPTIONS, APPLICATION]
    ws = kind.removeprefix("uvicorn-")
    return [
        *pin,
        uvicorn,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--ws",
        ws,
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        APPLICATION,
    ]


def start_cluster(
    kind: str, layer: str, *, instances: int = 1, extra_env: dict[str, str] | None = None, jwt_secret: str
) -> Cluster:
    """Migrate a fresh SQLite database (not for Node) and start ``instances`` servers of ``kind``."""
    workdir = Path(tempfile.mkdtemp(prefix="signaling-bench-", dir=DB_DIR))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "DEV_MODE")}
    env.update(
        {
            "JWT_SECRET": jwt_secret,
            "HOST": "127.0.0.1",
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "LOG_LEVEL": "warning",
            "RATE_LIMIT": "1000000",
            "RATE_LIMIT_BURST": "1000000",
            "HEARTBEAT_INTERVAL": "25000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if layer == "redis":
        env["REDIS_URL"] = REDIS_URL
        env["REDIS_PREFIX"] = f"bench-{uuid.uuid4().hex[:12]}"
    env.update(extra_env or {})
    if kind != BASELINE:
        subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=env,
            check=True,
            timeout=120,
        )
    cluster = Cluster(kind, layer, env, workdir)
    try:
        for i in range(instances):
            port = free_port()
            log_path = workdir / f"server-{i}.log"
            argv = _argv(kind, port)
            if ARGV_PREFIX:
                argv = [*ARGV_PREFIX, *(argv[3:] if argv[0] == "taskset" else argv)]
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env={**env, "PORT": str(port)},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_preexec,
                )
            server = Server(kind, port, proc, log_path)
            cluster.servers.append(server)
            _wait_ready(server)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def _wait_ready(server: Server, timeout_s: float | None = None) -> None:
    timeout_s = READY_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.kind} exited: {server.log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(server.base_url + "/healthz", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{server.kind} on port {server.port} not ready in {timeout_s} s")


def stop_cluster(cluster: Cluster) -> None:
    """Stop every server of the cluster (SIGTERM, then SIGKILL) and remove its files."""
    for server in cluster.servers:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
    for server in cluster.servers:
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=10)
    if cluster.layer == "redis":
        _forget_redis_keys(cluster.env["REDIS_PREFIX"])
    shutil.rmtree(cluster.workdir, ignore_errors=True)


def _forget_redis_keys(prefix: str) -> None:
    """Delete the keys this run created under its unique prefix (bounded SCAN)."""
    try:
        import redis
    except ImportError:
        return
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))[:100000]
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
    finally:
        client.close()
