"""``python -m bench run [--quick] [--scenarios ...] [--servers ...] [--layers ...]``.

Starts each server configuration (fresh SQLite, migrated, pinned to core 0), drives it from
this process (pinned to core 1, uvloop, raw WebSocket frames), stops it, and writes
``bench/results/<timestamp>.json`` plus a Markdown summary and a latency plot. The ``node``
server kind (socket.io 4 on Node, ``bench/node/``) is the baseline: the summary gives every
figure of the project as a ratio to Node's from the same run.
``python -m bench report FILE.json [FILE.json ...]`` re-renders the summary/plot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, scenarios, servers
from bench.servers import (
    BASELINE,
    LOAD_CORE,
    SERVER_CORE,
    SERVER_KINDS,
    ensure_node_packages,
    node_versions,
    raise_fd_limit,
    start_cluster,
    stop_cluster,
)

RESULTS = Path(__file__).resolve().parent / "results"
ALL_SCENARIOS = ("connect", "relay", "fanout", "joinstorm", "cross")
# Past capacity (not in the default run: it saturates the machine on purpose): with the
# overload check at its default, and with OVERLOAD_LAG=0 for comparison.
OVERLOAD_SCENARIOS = {"overload": {}, "overload_off": {"OVERLOAD_LAG": "0"}}


def machine_info() -> dict[str, Any]:
    cpu_model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu_model = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_total_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "server_core": SERVER_CORE,
        "load_core": LOAD_CORE,
        "taskset": bool(shutil.which("taskset")),
        "fd_limit": raise_fd_limit(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def start_profiler(cluster: Any, stem: str, wanted: bool) -> subprocess.Popen[bytes] | None:
    """py-spy record of the first server for the whole scenario (collapsed stacks)."""
    spy = Path(sys.executable).parent / "py-spy"
    if not wanted or not spy.exists() or cluster.kind == BASELINE:
        return None
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"profile-{stem}.txt"
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(cluster.servers[0].pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def run_config(kind: str, layer: str, wanted: list[str], quick: bool, args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    out: dict[str, Any] = {}
    for name in wanted:
        if name == "cross" and layer != "redis":
            continue
        instances = 2 if name == "cross" else 1
        extra = {"HEARTBEAT_INTERVAL": str(args.heartbeat_ms)} if name == "connect" else {}
        extra.update(OVERLOAD_SCENARIOS.get(name, {}))
        loadavg = Path("/proc/loadavg").read_text().split()[0]
        print(f"  [{kind}/{layer}] {name} (loadavg {loadavg})", flush=True)
        cluster = start_cluster(kind, layer, instances=instances, extra_env=extra, jwt_secret=secret)
        profiler = start_profiler(cluster, f"{kind}-{layer}-{name}".replace("/", "-"), args.profile)
        try:
            if name == "connect":
                conns = args.connections or (1000 if quick else 5000)
                result = await scenarios.scenario_connect(cluster, secret, quick, conns, 6.0 if quick else args.hold_s)
            elif name == "relay":
                result = await scenarios.scenario_relay(cluster, secret, quick)
            elif name == "cross":
                result = await scenarios.scenario_relay(cluster, secret, quick, cross=True)
            elif name == "fanout":
                result = await scenarios.scenario_fanout(cluster, secret, quick)
            elif name in OVERLOAD_SCENARIOS:
                result = await scenarios.scenario_overload(cluster, secret, quick)
            else:
                result = await scenarios.scenario_joinstorm(cluster, secret, quick)
            result["loadavg_before"] = float(loadavg)
            out[name] = result
        except Exception as exc:  # one failing scenario must not lose the others' numbers
            logs = "".join(s.log_path.read_text(errors="replace")[-3000:] for s in cluster.servers)
            print(f"    FAILED: {exc!r}\n{logs}", flush=True)
            out[name] = {"error": repr(exc), "server_log_tail": logs}
        finally:
            stop_profiler(profiler)
            stop_cluster(cluster)
            await asyncio.sleep(1.0)
    return out


async def run(args: argparse.Namespace) -> Path:
    wanted = [s for s in args.scenarios.split(",") if s]
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([".venv/bin/python -m bench", *sys.argv[1:]]),
        "machine": machine_info(),
        "quick": args.quick,
        "nice": args.nice,
        "db_dir": args.db_dir or "(temp dir)",
        "configs": {},
    }
    if BASELINE in args.servers.split(","):
        results["machine"]["baseline"] = node_versions()
    for kind in args.servers.split(","):
        for layer in args.layers.split(","):
            results["configs"][f"{kind}/{layer}"] = await run_config(kind, layer, wanted, args.quick, args)
    return write(results, args.label)


def write(results: dict[str, Any], label: str = "") -> Path:
    RESULTS.mkdir(exist_ok=True)
    stem = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + (f"-{label}" if label else "")
    path = RESULTS / f"{stem}.json"
    path.write_text(json.dumps(results, indent=2))
    plot_name = f"{stem}-relay.png" if report.plot([results], RESULTS / f"{stem}-relay.png") else None
    (RESULTS / f"{stem}.md").write_text(report.markdown(results, plot_name))
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return path


def prioritise(nice: int) -> None:
    """Give this run (load generator and the servers it starts) CPU priority ``nice``.

    With CONFIG_SCHED_AUTOGROUP (``/proc/sys/kernel/sched_autogroup_enabled``), niceness only
    ranks processes inside one session's autogroup; against other sessions' work the
    autogroup's own nice counts. So: a new session (re-exec under ``setsid`` if this process
    leads its group), then that autogroup's nice, then the process nice.
    """
    try:
        os.setsid()
    except OSError:
        if os.environ.get("BENCH_SETSID") != "1" and shutil.which("setsid"):
            os.environ["BENCH_SETSID"] = "1"
            os.execvp("setsid", ["setsid", "-w", sys.executable, "-m", "bench", *sys.argv[1:]])
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))
    with contextlib.suppress(OSError):
        os.nice(nice)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="start servers, run scenarios, write results")
    p_run.add_argument("--quick", action="store_true", help="smaller and shorter (a smoke run)")
    p_run.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"comma list of {ALL_SCENARIOS} or {tuple(OVERLOAD_SCENARIOS)}",
    )
    p_run.add_argument(
        "--servers", default="daphne,uvicorn,node", help=f"comma list of {SERVER_KINDS} (node: the baseline)"
    )
    p_run.add_argument("--layers", default="memory,redis", help="comma list of memory,redis")
    p_run.add_argument("--connections", type=int, default=0, help="connect scenario size (5000; quick 1000)")
    p_run.add_argument("--hold-s", type=float, default=20.0, help="idle hold with pings flowing")
    p_run.add_argument("--heartbeat-ms", type=int, default=5000, help="HEARTBEAT_INTERVAL for the connect scenario")
    p_run.add_argument(
        "--profile", action="store_true", help="py-spy record each server (raw stacks in results/); node: --cpu-prof"
    )
    p_run.add_argument(
        "--nice",
        type=int,
        default=-20,
        help="niceness of servers and load, and of their autogroup (default -20: other work on the box yields)",
    )
    p_run.add_argument("--db-dir", default=None, help="directory of the temporary SQLite file (default: the temp dir)")
    p_run.add_argument("--label", default="", help="suffix of the results file names")
    p_rep = sub.add_parser("report", help="re-render summary and a combined plot from results files")
    p_rep.add_argument("files", nargs="+", type=Path)
    p_rep.add_argument("--out", type=Path, default=RESULTS / "combined-relay.png")
    p_rep.add_argument("--scenario", default="relay")
    args = parser.parse_args()

    if args.command == "report":
        loaded = [json.loads(f.read_text()) for f in args.files]
        report.plot(loaded, args.out, args.scenario)
        for data in loaded:
            print(report.markdown(data, None))
        return
    bad = [k for k in args.servers.split(",") if k not in SERVER_KINDS]
    if bad:
        parser.error(f"unknown server kind(s) {bad}")
    if BASELINE in args.servers.split(","):
        ensure_node_packages()
    raise_fd_limit()
    servers.DB_DIR = args.db_dir
    if args.profile:  # Node profiles itself: V8 .cpuprofile files (python -m bench.stacks reads them)
        servers.NODE_FLAGS = ["--cpu-prof", f"--cpu-prof-dir={RESULTS / 'node-profiles'}"]
    if args.nice:
        prioritise(args.nice)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > LOAD_CORE:
        os.sched_setaffinity(0, {LOAD_CORE})
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.monotonic()
    asyncio.run(run(args))
    print(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
