"""Instructions per relay, per fan-out send and per connect+join under callgrind: ``python -m bench.instructions``.

CPU time on this shared 2-core box drifts with the load (the same relay cost 205 µs on a
quiet machine and 445 µs at load 8); the instruction count of the server process does not.
Each server kind runs under ``valgrind --tool=callgrind --instr-atstart=no`` (counting off
while it starts, connects and joins); the kit then turns counting on
(``callgrind_control -i on``), sends ``--messages`` relays (1.5 KB SDP offers, member to
member in rooms of 2) and then as many fan-out messages (ICE candidates to rooms of ``--fan-size``), one at a
time, each waiting for its deliveries, and reads the instructions counted for each phase, less
those of an idle stretch as long as the phase (the server's timers run per second of wall time).

The connect phase then opens ``--connects`` websockets (Socket.IO CONNECT with a token, then
``join_room`` into rooms of 4 made beforehand, as the ``connect`` scenario does), 20 at a
time, and counts the server's instructions per connect+join (its database threads included).

One message in flight is the low-rate regime (no batching across messages): the figure is a
cost per message, comparable between kinds and commits, not a capacity. Python servers only
(Node's JIT under valgrind says little). Needs Debian's ``valgrind``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import scenarios, servers
from bench.wsclient import EioClient

TOTALS = re.compile(r"^(?:totals|summary):\s+(\d+)", re.MULTILINE)


def _callgrind_control(*args: str) -> str:
    # valgrind names its vgdb pipes after $HOST, which the servers' environment sets
    env = {**os.environ, "HOST": "127.0.0.1"}
    done = subprocess.run(
        ["callgrind_control", *args], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    return done.stdout + done.stderr


def _instructions(pid: int, workdir: Path, tag: str) -> int:
    """Dump the counters of ``pid`` (zeroing them) and return the instructions in the dump."""
    seen = {path: path.stat().st_mtime_ns for path in workdir.glob(f"callgrind.out.{pid}*")}
    _callgrind_control(f"--dump={tag}", str(pid))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for path in workdir.glob(f"callgrind.out.{pid}*"):
            if seen.get(path) == path.stat().st_mtime_ns:
                continue
            text = path.read_text(errors="replace")
            match = TOTALS.search(text)
            if match and tag in text:
                return int(match.group(1))
        time.sleep(0.5)
    raise RuntimeError(f"no callgrind dump for {pid} in {workdir}")


async def _one_at_a_time(
    pop: scenarios.Population, sends: list[tuple[EioClient, bytes, bytes]], receivers: int, count: int
) -> None:
    """Send ``count`` messages round-robin over ``sends``; each waits for its ``receivers``
    deliveries (to members of ``pop``) before the next goes."""
    state = {"received": 0}
    done: asyncio.Event = asyncio.Event()

    def on_event(payload: bytes) -> None:
        if b"T@" in payload:
            state["received"] += 1
            if state["received"] >= receivers:
                done.set()

    for client in pop.clients:
        client.on_event = on_event
    for i in range(count):
        client, head, tail = sends[i % len(sends)]
        state["received"] = 0
        done.clear()
        client.send(head + b"0:0" + tail)
        await asyncio.wait_for(done.wait(), 60)


def _fanout_sends(pop: scenarios.Population) -> list[tuple[EioClient, bytes, bytes]]:
    """The fan-out scenario's message: an ICE candidate to the whole room."""
    return [(members[0], b'42["candidate",{"candidate":"T@', b"|" + scenarios.CANDIDATE_TAIL) for members in pop.rooms]


async def measure(kind: str, messages: int, fan_size: int, connects: int) -> dict[str, Any]:
    secret = secrets.token_hex(32)
    servers.ARGV_PREFIX = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--trace-children=yes",
    ]  # serve execs the server
    servers.READY_TIMEOUT_S = 300.0
    # valgrind slows the loop past the overload check: it would refuse the connects
    cluster = servers.start_cluster(kind, "memory", jwt_secret=secret, extra_env={"OVERLOAD_LAG": "0"})
    try:
        server = cluster.servers[0]
        # Outside the count: connects, joins, a warm-up of each kind of message.
        pairs = await scenarios.populate(cluster, secret, 4, 2, "ir-relay")
        fans = await scenarios.populate(cluster, secret, 2, fan_size, "ir-fan")
        relay = scenarios.relay_sends(pairs, cross=False)
        fanout = _fanout_sends(fans)
        owner = scenarios.mint_token(secret, "ir-conn-owner")
        conn_rooms = await scenarios.create_rooms(server.base_url, owner, (connects + 3) // 4 + 1, 4)
        conn_tokens = [scenarios.mint_token(secret, f"ir-conn-{i}") for i in range(connects)]
        warm_token = scenarios.mint_token(secret, "ir-conn-warm")
        warm, _ = await scenarios.connect_and_join(server.port, [warm_token], [conn_rooms.pop()], 1, timeout=120)
        await _one_at_a_time(pairs, relay, 1, 50)
        await _one_at_a_time(fans, fanout, fan_size - 1, 20)
        workdir = Path(servers.ROOT)
        _callgrind_control("--instr=on", str(server.pid))
        counted: dict[str, int] = {}
        for phase, pop, sends, receivers in (("relay", pairs, relay, 1), ("fanout", fans, fanout, fan_size - 1)):
            # The server's timers (heartbeats, sweeps, daphne's timeout checks) run per second of
            # wall time, which valgrind and the box's load stretch: an idle stretch as long as
            # the phase is counted too and taken off.
            started = time.monotonic()
            await _one_at_a_time(pop, sends, receivers, messages)
            busy_s = time.monotonic() - started
            busy = _instructions(server.pid, workdir, phase)
            await asyncio.sleep(busy_s)
            idle = _instructions(server.pid, workdir, phase + "-idle")
            counted[phase] = busy - idle
            counted[phase + "_idle_share_pct"] = round(100 * idle / busy)
        started = time.monotonic()
        joined, _ = await scenarios.connect_and_join(server.port, conn_tokens, conn_rooms, 20, timeout=120)
        busy_s = time.monotonic() - started
        busy = _instructions(server.pid, workdir, "connect")
        await asyncio.sleep(busy_s)
        idle = _instructions(server.pid, workdir, "connect-idle")
        counted["connect"] = busy - idle
        counted["connect_idle_share_pct"] = round(100 * idle / busy)
        _callgrind_control("--instr=off", str(server.pid))
        scenarios.close_all(pairs.clients + fans.clients + joined + warm)
    finally:
        servers.stop_cluster(cluster)
        for path in Path(servers.ROOT).glob("callgrind.out.*"):
            path.unlink()
    return {
        "kind": kind,
        "messages": messages,
        "fan_size": fan_size,
        "instructions_per_relay": counted["relay"] // messages,
        "instructions_per_fanout_send": counted["fanout"] // messages,
        "instructions_per_fanout_delivery": counted["fanout"] // (messages * (fan_size - 1)),
        "connects": connects,
        "instructions_per_connect_join": counted["connect"] // connects,
        "idle_share_pct": (
            counted["relay_idle_share_pct"],
            counted["fanout_idle_share_pct"],
            counted["connect_idle_share_pct"],
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="daphne,uvicorn", help="comma list of Python server kinds")
    parser.add_argument("--messages", type=int, default=500, help="relays, then fan-out sends, counted")
    parser.add_argument("--fan-size", type=int, default=10, help="members of a fan-out room")
    parser.add_argument("--connects", type=int, default=200, help="connects+joins counted (rooms of 4)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (Debian: apt-get install valgrind)")
    for kind in args.servers.split(","):
        if kind not in servers.SERVER_KINDS or kind == servers.BASELINE:
            raise SystemExit(f"not a Python server kind: {kind}")
        result = asyncio.run(measure(kind, args.messages, args.fan_size, args.connects))
        print(
            f"{kind:>18}: {result['instructions_per_relay']:>10,} instructions per relay, "
            f"{result['instructions_per_fanout_send']:>10,} per fan-out send "
            f"({result['instructions_per_fanout_delivery']:,} per delivery, rooms of {args.fan_size}), "
            f"{result['instructions_per_connect_join']:>11,} per connect+join "
            f"(idle share taken off: {' / '.join(f'{p} %' for p in result['idle_share_pct'])})",
            flush=True,
        )


if __name__ == "__main__":
    main()
