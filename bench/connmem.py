"""Python heap per idle connection, by allocation site: ``python -m bench.connmem [--server daphne|uvicorn]``.

Starts the server as ``manage.py serve`` would (daphne through ``signaling.daphne_launcher``,
uvicorn with the same options) inside a wrapper that runs ``tracemalloc`` and dumps a
snapshot whenever a trigger file appears (a thread polls for it: no signal handling in the
server's loop; tracing starts at the first one, so B - A is what was allocated after A and is
still alive). Connects ``--warm`` clients (imports, caches, the hub: not counted), takes
snapshot A, connects and joins ``--connections`` more (rooms of 4, as the ``connect``
scenario), waits, takes snapshot B, and prints B - A per connection: the total and the top
allocation sites (``--group lineno|traceback|filename``). tracemalloc sees the Python heap
only (not uvloop's or the kernel's buffers, not RSS fragmentation); it slows the server, so
use the ``connect`` scenario for connects/s and RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import servers
from bench.scenarios import create_rooms, mint_token
from bench.wsclient import connect

WRAPPER = r"""
import gc, os, sys, threading, time, tracemalloc
trigger = os.environ["CONNMEM_TRIGGER"]
def inspect_objects(path):
    # Live objects per class (those with many instances), and one websocket protocol's attributes.
    import collections, json
    counts = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.get_objects())
    out = {"counts": {k: v for k, v in counts.most_common(60)}}
    for o in gc.get_objects():
        if type(o).__name__ in ("WebSocketProtocol", "WebSocketServerProtocol") and hasattr(o, "__dict__"):
            d = o.__dict__
            out["protocol_dict_bytes"] = sys.getsizeof(d)
            out["protocol_attrs"] = {k: [type(v).__name__, sys.getsizeof(v)] for k, v in d.items()}
            break
    for name in ("HTTPChannel", "WebRequest", "Headers"):
        obj = next((o for o in gc.get_objects() if type(o).__name__ == name), None)
        if obj is None:
            continue
        refs = []
        for r in gc.get_referrers(obj):
            if r is out or type(r).__name__ == "frame":
                continue
            desc = type(r).__name__
            if desc == "cell":
                fns = [getattr(f, "__qualname__", type(f).__name__) for f in gc.get_referrers(r) if f is not refs]
                desc += f" (of {fns[:3]})"
            if isinstance(r, dict):
                owners = [type(x).__name__ for x in gc.get_referrers(r) if getattr(x, "__dict__", None) is r]
                desc += f" (keys {[k for k, v in r.items() if v is obj][:3]}, of {owners})"
            refs.append(desc)
        out[f"referrers_{name}"] = refs
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
def watch():
    n = 0
    while True:
        time.sleep(0.1)
        if os.path.exists(trigger):
            if not tracemalloc.is_tracing():  # from the first snapshot on: startup stays fast
                tracemalloc.start(int(os.environ["CONNMEM_FRAMES"]))
            gc.collect()
            tracemalloc.take_snapshot().dump(f"{trigger}.{n}")
            if n:
                inspect_objects(f"{trigger}.objects")
            n += 1
            os.rename(trigger, f"{trigger}.done{n}")
threading.Thread(target=watch, daemon=True).start()
kind = sys.argv[1]
sys.argv = [kind, *sys.argv[2:]]
if kind == "daphne":
    from signaling.daphne_launcher import main
    main(sys.argv[1:])
else:
    from uvicorn.main import main
    main(sys.argv[1:])
"""


def _argv(kind: str, port: int) -> list[str]:
    from signaling.management.commands import serve

    if kind == "daphne":
        args = ["-b", "127.0.0.1", "-p", str(port), "--proxy-headers", *serve.DAPHNE_WS_OPTIONS, serve.APPLICATION]
    else:
        args = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--proxy-headers"]
        args += [*serve.UVICORN_WS_OPTIONS, serve.APPLICATION]
    return [servers.PYTHON, "-c", WRAPPER, kind, *args]


def _snapshot(trigger: Path, n: int) -> tracemalloc.Snapshot:
    trigger.write_text("")
    deadline = time.monotonic() + 60
    while not Path(f"{trigger}.done{n + 1}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not dump a snapshot")
        time.sleep(0.1)
    return tracemalloc.Snapshot.load(f"{trigger}.{n}")


async def measure(kind: str, connections: int, warm: int, frames: int) -> tuple[tracemalloc.Snapshot, ...]:
    secret = "connmem-secret-" + "x" * 32
    trigger = Path(tempfile.mkdtemp(prefix="connmem-")) / "trigger"
    stock_argv = servers._argv
    servers._argv = lambda k, port: _argv(k, port)  # type: ignore[assignment]
    try:
        cluster = servers.start_cluster(
            kind,
            "memory",
            extra_env={
                "CONNMEM_TRIGGER": str(trigger),
                "CONNMEM_FRAMES": str(frames),
                "HEARTBEAT_INTERVAL": "25000",
                "OVERLOAD_LAG": "0",
            },
            jwt_secret=secret,
        )
    finally:
        servers._argv = stock_argv  # type: ignore[assignment]
    try:
        server = cluster.servers[0]
        owner = mint_token(secret, "connmem-owner")
        total = warm + connections
        rooms = await create_rooms(server.base_url, owner, (total + 3) // 4, 4)
        clients = []

        async def one(i: int) -> None:
            client = await connect("127.0.0.1", server.port, mint_token(secret, f"connmem-{i}"), timeout=60)
            ack = await client.call("join_room", {"roomId": rooms[i // 4]}, timeout=60)
            assert ack.get("ok"), ack
            clients.append(client)

        await asyncio.gather(*(one(i) for i in range(warm)))
        await asyncio.sleep(1.0)
        before = _snapshot(trigger, 0)
        rss_before = servers.rss_kb(server.pid)
        sem = asyncio.Semaphore(100)

        async def limited(i: int) -> None:
            async with sem:
                await one(i)

        await asyncio.gather(*(limited(i) for i in range(warm, total)))
        for client in clients:
            client.inbox.clear()
        await asyncio.sleep(2.0)
        rss_after = servers.rss_kb(server.pid)
        after = _snapshot(trigger, 1)
        objects = Path(f"{trigger}.objects")
        if objects.exists():
            Path("/tmp/connmem-objects.json").write_text(objects.read_text())
        print(f"{kind}: RSS {rss_before} -> {rss_after} kB = {(rss_after - rss_before) / connections:.2f} kB/conn")
        for client in clients:
            client.close()
        return before, after
    except BaseException:
        Path("/tmp/connmem-server.log").write_bytes(cluster.servers[0].log_path.read_bytes())
        raise
    finally:
        servers.stop_cluster(cluster)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.connmem")
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"))
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=40)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--group", default="lineno", choices=("lineno", "traceback", "filename"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    servers.raise_fd_limit()
    before, after = asyncio.run(measure(args.server, args.connections, args.warm, args.frames))
    stats = after.compare_to(before, args.group)
    n = args.connections
    total = sum(s.size_diff for s in stats)
    count = sum(s.count_diff for s in stats)
    print(f"{args.server}: Python heap +{total / n:.0f} B/conn in {count / n:.1f} blocks/conn ({n} connections)")
    for stat in stats[: args.top]:
        if args.group == "traceback":
            print(f"{stat.size_diff / n:8.0f} B {stat.count_diff / n:6.2f} blocks")
            for line in stat.traceback.format(most_recent_first=True)[:16]:
                print("        " + line)
        else:
            frame = stat.traceback[0]
            where = f"{os.path.relpath(frame.filename)}:{frame.lineno}"
            print(f"{stat.size_diff / n:8.0f} B {stat.count_diff / n:6.2f} blocks  {where}")


if __name__ == "__main__":
    main(sys.argv[1:])
