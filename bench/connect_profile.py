"""CPU per connect+join, and a py-spy profile of only that phase: ``python -m bench.connect_profile``.

Starts the server as ``manage.py serve`` does (``--server daphne|uvicorn``), creates rooms of
4 through REST, connects one warm-up socket, then (py-spy recording the server, unless
``--no-profile``) connects and joins ``--connections`` sockets, 200 at a time, as the ``connect``
scenario does, and prints connects/s and the server's CPU time per connect+join (from
``/proc/PID/stat``). py-spy runs with ``--gil`` (only the thread holding the GIL is sampled:
the database threads' waits for it are not counted as work) at 1,000 Hz; read the raw stacks
with ``python -m bench.split FILE`` or ``python -m bench.stacks FILE``. py-spy slows the server:
take CPU figures from a ``--no-profile`` run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import scenarios, servers
from bench.wsclient import connect


async def run(kind: str, connections: int, out: Path | None) -> None:
    secret = secrets.token_urlsafe(32)
    cluster = servers.start_cluster(kind, "memory", jwt_secret=secret)
    try:
        server = cluster.servers[0]
        owner = scenarios.mint_token(secret, "profile-owner")
        rooms = await scenarios.create_rooms(server.base_url, owner, connections // 4 + 1, 4)
        tokens = [scenarios.mint_token(secret, f"profile-{i}") for i in range(connections)]
        warm = await connect("127.0.0.1", server.port, scenarios.mint_token(secret, "profile-warm"))
        await warm.call("join_room", {"roomId": rooms.pop()})
        await asyncio.sleep(1)
        spy = None
        if out is not None:
            py_spy = Path(sys.executable).parent / "py-spy"
            command = [str(py_spy), "record", "--pid", str(server.pid), "--rate", "1000", "--gil"]
            command += ["--format", "raw", "--nonblocking", "-o", str(out)]
            spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(1)
        cpu0, t0 = servers.cpu_seconds(server.pid), time.perf_counter()
        clients, _ = await scenarios.connect_and_join(server.port, tokens, rooms, 200)
        elapsed, cpu = time.perf_counter() - t0, servers.cpu_seconds(server.pid) - cpu0
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        print(
            f"{kind}: {connections} connects+joins in {elapsed:.2f} s = {connections / elapsed:.0f}/s; "
            f"server CPU {cpu:.2f} s = {1e6 * cpu / connections:.0f} µs per connect+join"
            + (f"; profile {out}" if out else ""),
            flush=True,
        )
        scenarios.close_all([*clients, warm])
    finally:
        servers.stop_cluster(cluster)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.connect_profile", description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"))
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--no-profile", action="store_true", help="measure only (py-spy slows the server)")
    parser.add_argument("--out", default=None, help="raw stacks file (default results/profile-connect-KIND.txt)")
    args = parser.parse_args()
    default = servers.ROOT / "bench" / "results" / f"profile-connect-{args.server}.txt"
    out = None if args.no_profile else Path(args.out or default)
    asyncio.run(run(args.server, args.connections, out))


if __name__ == "__main__":
    main()
