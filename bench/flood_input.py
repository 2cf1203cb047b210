"""``python -m bench.flood_input [--root DIR] [--seconds S]``: what hostile input costs bystanders.

Starts one ``manage.py serve`` (daphne, fresh SQLite, default limits) from the project tree
``--root`` (default: this one; point it at another checkout to compare), puts two bystander
websockets in a room and measures the relay latency from one to the other (one offer every
10 ms, each timed from send to receipt): first alone, then while two polling clients POST
1 MB bodies of 123,750 tiny events back to back (the attack of issue 11), then while one
client POSTs a 20 MB body (past maxPayload) in one request. Prints p50 / p99 / max latency,
the server's CPU seconds and RSS for each phase, and the attackers' POST count and the
size of their queued replies. Figures, not assertions: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import websockets

from bench.scenarios import mint_token
from bench.servers import cpu_seconds, free_port, rss_kb

RS = "\x1e"
ATTACK_EVENTS = 123_750  # 1 MB of '42["a"]' + separator, under the 1,000,000-byte maxPayload
OVERSIZE_BYTES = 20_000_000


def start_server(root: Path, workdir: Path, secret: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    python = str(root / ".venv" / "bin" / "python")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")},
        "JWT_SECRET": secret,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "LOG_LEVEL": "warning",
        "HEARTBEAT_INTERVAL": "25000",
        "HEARTBEAT_TIMEOUT": "60000",
    }
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=root, env=env, check=True)
    process = subprocess.Popen(
        [python, "manage.py", "serve"], cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return process, port


async def wait_healthy(port: int) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


async def ws_member(port: int, token: str, room_id: str) -> tuple[Any, str]:
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", max_size=None)
    await ws.recv()  # OPEN
    await ws.send("40" + json.dumps({"token": token}))
    client_id = json.loads((await ws.recv())[2:])["sid"]
    await ws.recv()  # connected
    await ws.send("421" + json.dumps(["join_room", {"roomId": room_id}]))
    while not str(await ws.recv()).startswith("431"):
        pass
    return ws, client_id


class Bystanders:
    """Alice relays to bob every 10 ms; each relay's latency is recorded."""

    def __init__(self, alice: Any, bob: Any, bob_id: str) -> None:
        self.alice, self.bob, self.bob_id = alice, bob, bob_id
        self.sent: dict[str, float] = {}
        self.samples_ms: list[float] = []
        self.recording = False
        self.sent_while_recording = 0

    async def send_forever(self) -> None:
        n = 0
        while True:
            n += 1
            tag = f"t{n}"
            if self.recording:
                self.sent[tag] = time.perf_counter()
                self.sent_while_recording += 1
            await self.alice.send("42" + json.dumps(["offer", {"to": self.bob_id, "sdp": tag}]))
            await asyncio.sleep(0.01)

    async def receive_forever(self) -> None:
        async for frame in self.bob:
            if frame == "2":
                await self.bob.send("3")
            elif isinstance(frame, str) and frame.startswith('42["offer"'):
                tag = json.loads(frame[2:])[1]["sdp"]
                sent = self.sent.pop(tag, None)
                if sent is not None:
                    self.samples_ms.append((time.perf_counter() - sent) * 1000)

    async def drain_alice(self) -> None:
        async for frame in self.alice:
            if frame == "2":
                await self.alice.send("3")


async def polling_attacker(port: int, token: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    body = RS.join(['42["a"]'] * ATTACK_EVENTS).encode()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        async with http.get(base) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        async with http.post(f"{base}&sid={sid}", data=("40" + json.dumps({"token": token})).encode()) as response:
            await response.read()
        while not stop.is_set():
            async with http.post(f"{base}&sid={sid}", data=body) as response:
                await response.read()
            counts["posts"] += 1
        async with http.get(f"{base}&sid={sid}") as response:  # what the attacks queued
            counts["reply_bytes"] += len(await response.read())


async def oversize_attacker(port: int, stop: asyncio.Event, counts: dict[str, int]) -> None:
    base = f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling"
    body = b"4" + b"x" * (OVERSIZE_BYTES - 1)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        while not stop.is_set():
            async with http.get(base) as response:
                sid = json.loads((await response.text())[1:])["sid"]
            try:
                async with http.post(f"{base}&sid={sid}", data=body) as response:
                    await response.read()
                    counts[f"status_{response.status}"] = counts.get(f"status_{response.status}", 0) + 1
            except aiohttp.ClientError:
                counts["dropped"] = counts.get("dropped", 0) + 1
            counts["posts"] += 1


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def phase(name: str, seconds: float, pid: int, bystanders: Bystanders, attack: Any) -> dict[str, Any]:
    stop = asyncio.Event()
    counts: dict[str, int] = {"posts": 0, "reply_bytes": 0}
    tasks = [asyncio.create_task(make(stop, counts)) for make in attack]
    cpu_before = cpu_seconds(pid)
    bystanders.samples_ms, bystanders.sent, bystanders.sent_while_recording = [], {}, 0
    bystanders.recording = True
    await asyncio.sleep(seconds)
    bystanders.recording = False
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    # Offers sent during the phase may still be on their way: give them a grace period.
    for _ in range(100):
        if not bystanders.sent:
            break
        await asyncio.sleep(0.1)
    return {
        "phase": name,
        "latency": summary(bystanders.samples_ms),
        "relays_sent": bystanders.sent_while_recording,
        "relays_lost_or_over_10s": len(bystanders.sent),
        "server_cpu_s": round(cpu_seconds(pid) - cpu_before, 2),
        "server_rss_mb": round(rss_kb(pid) / 1024, 1),
        **counts,
    }


async def main(root: Path, seconds: float) -> None:
    secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        process, port = start_server(root, Path(tmp), secret)
        try:
            await wait_healthy(port)
            async with aiohttp.ClientSession() as http:
                headers = {"Authorization": f"Bearer {mint_token(secret, 'agent-bench')}"}
                async with http.post(
                    f"http://127.0.0.1:{port}/api/rooms", json={"name": "flood", "type": "voice"}, headers=headers
                ) as response:
                    room_id = (await response.json())["id"]
            alice, _ = await ws_member(port, mint_token(secret, "agent-alice"), room_id)
            bob, bob_id = await ws_member(port, mint_token(secret, "agent-bob"), room_id)
            bystanders = Bystanders(alice, bob, bob_id)
            loops = [
                asyncio.create_task(bystanders.send_forever()),
                asyncio.create_task(bystanders.receive_forever()),
                asyncio.create_task(bystanders.drain_alice()),
            ]
            pid = process.pid
            results = [await phase("quiet", seconds, pid, bystanders, [])]
            attackers = [
                lambda stop, counts, n=n: polling_attacker(port, mint_token(secret, f"agent-mallory-{n}"), stop, counts)
                for n in range(2)
            ]
            results.append(await phase("two 1 MB event POSTs back to back", seconds, pid, bystanders, attackers))
            oversize = [lambda stop, counts: oversize_attacker(port, stop, counts)]
            results.append(await phase("20 MB POSTs past maxPayload", seconds, pid, bystanders, oversize))
            for task in loops:
                task.cancel()
            print(json.dumps({"root": str(root), "seconds_per_phase": seconds, "results": results}, indent=2))
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    asyncio.run(main(args.root.resolve(), args.seconds))
    sys.exit(0)
