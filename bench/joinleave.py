"""Join/leave ack latency with and without webhooks: ``python -m bench.joinleave``.

Starts one ``manage.py serve`` (daphne) on 127.0.0.1 with a fresh SQLite file, or on the
PostgreSQL of ``--database-url`` (a database of its own is created and dropped), optionally
with ``WEBHOOK_URL`` pointing at a local receiver that answers 200, and times ``join_room``
and ``leave_room`` acks of one python-socketio client, one call at a time (a latency figure,
not a throughput one). Prints the median and the 90th percentile of each, and with webhooks
how long until the receiver had every event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import jwt
import socketio
from aiohttp import web

from bench.servers import ROOT, free_port

SECRET = "bench-joinleave-secret-0123456789abcdef"
WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def mint(agent_id: str) -> str:
    now = int(time.time())
    return jwt.encode({"agentId": agent_id, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")


def create_room(url: str) -> str:
    request = urllib.request.Request(
        url + "/api/rooms",
        data=b'{"name": "bench", "type": "voice"}',
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {mint('bench-creator')}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["id"])


async def receiver() -> tuple[str, web.AppRunner, list[int]]:
    count = [0]

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        count[0] += 1
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}/hooks", runner, count


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, rounds: int) -> dict[str, list[float]]:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, auth={"token": mint("bench-agent")}, transports=["websocket"], wait_timeout=10)
    room_id = create_room(url)
    joins: list[float] = []
    leaves: list[float] = []
    # a second member keeps the room occupied: no occupancy mark per round
    keeper = socketio.AsyncClient(reconnection=False)
    await keeper.connect(url, auth={"token": mint("bench-keeper")}, transports=["websocket"], wait_timeout=10)
    await keeper.call("join_room", {"roomId": room_id}, timeout=10)
    for _ in range(rounds):
        t0 = time.perf_counter()
        reply = await client.call("join_room", {"roomId": room_id}, timeout=10)
        t1 = time.perf_counter()
        assert reply["ok"] is True, reply
        reply = await client.call("leave_room", {"roomId": room_id}, timeout=10)
        t2 = time.perf_counter()
        assert reply["ok"] is True, reply
        joins.append((t1 - t0) * 1000)
        leaves.append((t2 - t1) * 1000)
    await client.disconnect()
    await keeper.disconnect()
    return {"join": joins, "leave": leaves}


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    process = subprocess.Popen(
        [python, "manage.py", "serve", "--server", "daphne"],
        cwd=ROOT,
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
            return process
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--webhooks", action="store_true", help="set WEBHOOK_URL (a local receiver)")
    parser.add_argument("--database-url", default="", help="a PostgreSQL server URL (default: SQLite file)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "WEBHOOK_URL"}}
    env.update({"HOST": "127.0.0.1", "JWT_SECRET": SECRET, "LOG_LEVEL": "warning"})
    workdir = Path(tempfile.mkdtemp(prefix="bench-joinleave-"))
    db_name = ""
    if args.database_url:
        db_name = "bench_jl_" + uuid.uuid4().hex[:8]
        base = args.database_url.rstrip("/")
        subprocess.run(["psql", base + "/postgres", "-qc", f"CREATE DATABASE {db_name}"], check=True)
        env["DATABASE_URL"] = f"{base}/{db_name}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{workdir / 'db.sqlite3'}"
    runner: web.AppRunner | None = None
    received: list[int] = [0]
    if args.webhooks:
        hook_url, runner, received = await receiver()
        env.update({"WEBHOOK_URL": hook_url, "WEBHOOK_SECRET": WEBHOOK_SECRET})
    port = free_port()
    server = start_server(env, port)
    try:
        started = time.perf_counter()
        result: dict[str, Any] = await measure(f"http://127.0.0.1:{port}", args.rounds)
        # room.created, room.started, the keeper's join, a join and a leave per round, its leave
        expected = 2 * args.rounds + 4 if args.webhooks else 0
        deadline = time.monotonic() + 120
        while received[0] < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        drained_s = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=15)
        if runner is not None:
            await runner.cleanup()
        if db_name:
            subprocess.run(["psql", args.database_url.rstrip("/") + "/postgres", "-qc", f"DROP DATABASE {db_name}"])
    database = "postgresql" if db_name else "sqlite"
    delivered = (
        f"; webhooks received: {received[0]} of {expected}, {drained_s:.1f} s after the first join" if expected else ""
    )
    print(f"{database} webhooks={'on' if args.webhooks else 'off'} rounds={args.rounds}{delivered}")
    for name, values in result.items():
        print(
            f"  {name}: median {statistics.median(values):.2f} ms, p90 {percentile(values, 0.9):.2f} ms, "
            f"mean {statistics.fmean(values):.2f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
