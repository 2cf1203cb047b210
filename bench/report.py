"""Markdown summary and latency plot of a benchmark results file.

Every figure of the project is also given as a ratio to the socket.io-on-Node baseline
(server kind ``node``) measured in the same run, on the same layer (``daphne/redis`` against
``node/redis``; ``node/memory`` when the run has no Node on that layer): the machine's speed
drifts, ratios from one run are what compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BASELINE = "node"
# Ratio targets of issues #12 and #9 (project / Node, same run).
RATIO_TARGETS = {
    "daphne": {"relay": 0.45, "fanout": 0.45, "connects": 0.6, "cross": 0.5},
    "uvicorn": {"relay": 0.75, "fanout": 0.75},
}
# Fixed offered rates at which server CPU per message is compared (every server passes them).
CPU_RATES = {"relay": 4000, "fanout": 2000, "cross": 1000}


def _get(results: dict[str, Any], config: str, scenario: str) -> dict[str, Any] | None:
    return results["configs"].get(config, {}).get(scenario)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        value = f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def headline(results: dict[str, Any], config: str) -> dict[str, Any]:
    """The per-configuration figures the targets are stated in."""
    relay = _get(results, config, "relay") or {}
    fanout = _get(results, config, "fanout") or {}
    conn = _get(results, config, "connect") or {}
    storm = _get(results, config, "joinstorm") or {}
    cross = _get(results, config, "cross") or {}
    best = next((s for s in relay.get("steps", []) if s["offered_per_s"] == relay.get("max_ok_per_s")), {})
    return {
        "relay_top_passed": relay.get("ladder_top_passed", False),
        "fanout_top_passed": fanout.get("ladder_top_passed", False),
        "cross_top_passed": cross.get("ladder_top_passed", False),
        "relay_cpu_us": cpu_us_per_msg(relay, CPU_RATES["relay"]),
        "fanout_cpu_us": cpu_us_per_msg(fanout, CPU_RATES["fanout"]),
        "cross_cpu_us": cpu_us_per_msg(cross, CPU_RATES["cross"]),
        "relay_max_ok_per_s": relay.get("max_ok_per_s"),
        "relay_p99_at_max_ms": best.get("p99_ms"),
        "relay_p99_ms_at_2000": relay.get("p99_ms_at_2000"),
        "fanout_deliveries_per_s": fanout.get("max_ok_deliveries_per_s"),
        "connects_per_s": conn.get("connects_per_s"),
        "rss_per_conn_kb": conn.get("rss_per_conn_kb"),
        "idle_dropped": conn.get("dropped"),
        "join_p50_ms": (storm.get("join") or {}).get("p50_ms"),
        "join_p99_ms": (storm.get("join") or {}).get("p99_ms"),
        "room_full": storm.get("room_full"),
        "cap_respected": storm.get("cap_respected"),
        "cross_max_ok_per_s": cross.get("max_ok_per_s"),
    }


def cpu_us_per_msg(data: dict[str, Any], rate: int) -> float | None:
    """Server CPU (all instances) per sent message at the step offering ``rate``/s, in µs."""
    step = next((s for s in data.get("steps", []) if s["offered_per_s"] == rate), None)
    if not step or not step["achieved_per_s"]:
        return None
    return round(step["server_cpu_pct"] / 100 * 1e6 / step["achieved_per_s"], 1)


def baseline_of(results: dict[str, Any], config: str) -> str | None:
    """The Node configuration ``config`` is compared with (same layer first), or None."""
    kind, _, layer = config.partition("/")
    if kind == BASELINE:
        return None
    for candidate in (f"{BASELINE}/{layer}", f"{BASELINE}/memory", f"{BASELINE}/redis"):
        if candidate in results["configs"]:
            return candidate
    return None


def _ratio(value: Any, base: Any, capped: bool = False) -> str:
    """``value`` with its ratio to ``base``; ``<=`` when Node passed the top of the ladder."""
    if value is None:
        return "-"
    if not base:
        return _fmt(value)
    return f"{_fmt(value)} ({'<=' if capped else ''}{value / base:.2f})"


def ratio_table(results: dict[str, Any]) -> list[str]:
    """Project figures beside Node's from the same run, with their ratios (project / Node)."""
    configs = list(results["configs"])
    if not any(c.partition("/")[0] == BASELINE for c in configs):
        return []
    lines = [
        "## Same-run ratios to socket.io on Node",
        "",
        "Each cell: absolute figure (project / Node). Higher is better except for CPU µs and RSS. "
        f"CPU µs per message at fixed offered rates: relay {CPU_RATES['relay']:,}/s, fan-out "
        f"{CPU_RATES['fanout']:,} sends/s, cross {CPU_RATES['cross']:,}/s (both instances). "
        "`<=`: Node passed the top of the rate ladder, so the ratio is an upper bound.",
        "",
        "| configuration | vs | relay max ok /s | relay CPU µs/msg | fan-out deliveries/s | fan-out CPU µs/send "
        "| connects+joins/s | RSS kB/idle conn | cross-instance relays/s | cross CPU µs/msg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        h = headline(results, config)
        base_config = baseline_of(results, config)
        b = headline(results, base_config) if base_config else {}
        lines.append(
            f"| {config} | {base_config or 'baseline'} "
            f"| {_ratio(h['relay_max_ok_per_s'], b.get('relay_max_ok_per_s'), b.get('relay_top_passed', False))} "
            f"| {_ratio(h['relay_cpu_us'], b.get('relay_cpu_us'))} "
            f"| {_ratio(h['fanout_deliveries_per_s'], b.get('fanout_deliveries_per_s'), b.get('fanout_top_passed', False))} "  # noqa: E501
            f"| {_ratio(h['fanout_cpu_us'], b.get('fanout_cpu_us'))} "
            f"| {_ratio(h['connects_per_s'], b.get('connects_per_s'))} "
            f"| {_ratio(h['rss_per_conn_kb'], b.get('rss_per_conn_kb'))} "
            f"| {_ratio(h['cross_max_ok_per_s'], b.get('cross_max_ok_per_s'), b.get('cross_top_passed', False))} "
            f"| {_ratio(h['cross_cpu_us'], b.get('cross_cpu_us'))} |"
        )
    wanted = ", ".join(
        f"{kind} " + " / ".join(f"{name} >= {target}" for name, target in targets.items())
        for kind, targets in RATIO_TARGETS.items()
    )
    lines += ["", f"Ratio targets (issues #12, #9): {wanted}.", ""]
    return lines


def machine_line(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    node = machine.get("baseline")
    lines = [
        f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, {machine['mem_total_gb']} GB RAM; "
        f"Python {machine['python']}; kernel {machine['kernel']}. Server pinned to core "
        f"{machine['server_core']}, load generator to core {machine['load_core']}. "
        f"Load average at start: {' '.join(machine.get('loadavg_at_start', ['?']))} (the machine is shared).",
    ]
    if node:
        lines.append(
            f"Baseline: Node {node['node']}, socket.io {node['socket.io']} (engine.io {node['engine.io']}, "
            f"ws {node['ws']}), @socket.io/redis-adapter {node['@socket.io/redis-adapter']}, "
            f"redis {node['redis']} (`bench/node/`)."
        )
    loads = [
        f"{config} {name} {data['loadavg_before']:.1f}"
        for config, scenarios in results["configs"].items()
        for name, data in scenarios.items()
        if isinstance(data, dict) and "loadavg_before" in data
    ]
    if loads:
        lines.append("Load average before each scenario: " + "; ".join(loads) + ".")
    return lines


def markdown(results: dict[str, Any], plot_name: str | None) -> str:
    lines = [
        f"# Benchmark run {results['started_at']}",
        "",
        *machine_line(results),
        f"Command: `{results['command']}`",
        "",
        *ratio_table(results),
        "## Absolute figures",
        "",
        "| configuration | relay max ok /s | relay p99 @2k/s | fanout deliveries/s | connects/s "
        "| RSS kB/conn | idle drops | join p50/p99 ms | room_full (cap ok) | cross-instance relays/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for config in results["configs"]:
        h = headline(results, config)
        storm = "-" if h["room_full"] is None else f"{h['room_full']} ({'yes' if h['cap_respected'] else 'NO'})"
        join = "-" if h["join_p50_ms"] is None else f"{h['join_p50_ms']:.1f} / {h['join_p99_ms']:.1f}"
        lines.append(
            f"| {config} | {_fmt(h['relay_max_ok_per_s'])} | {_fmt(h['relay_p99_ms_at_2000'], ' ms')} "
            f"| {_fmt(h['fanout_deliveries_per_s'])} | {_fmt(h['connects_per_s'])} | {_fmt(h['rss_per_conn_kb'])} "
            f"| {_fmt(h['idle_dropped'])} | {join} | {storm} | {_fmt(h['cross_max_ok_per_s'])} |"
        )
    lines.append("")
    for config, scenarios in results["configs"].items():
        for name in ("relay", "fanout", "cross"):
            data = scenarios.get(name)
            if not data:
                continue
            if "error" in data:  # the scenario failed: its error, no steps
                lines += [f"## {config}: {name}: failed", "", f"`{data['error']}`", ""]
                continue
            lines += [
                f"## {config}: {name} (fan-out {data['fan']}, {data['clients']} clients, "
                f"{data['duration_s']} s per step)",
                "",
                "| offered/s | achieved/s | deliveries/s | lost | p50 ms | p90 ms | p99 ms | max ms "
                "| server CPU % | load CPU % | ok |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for s in data["steps"]:
                lines.append(
                    f"| {s['offered_per_s']:,} | {s['achieved_per_s']:,.0f} | {s['deliveries_per_s']:,.0f} "
                    f"| {s['lost']} | {_fmt(s['p50_ms'])} | {_fmt(s['p90_ms'])} | {_fmt(s['p99_ms'])} "
                    f"| {_fmt(s['max_ms'])} | {s['server_cpu_pct']} | {s['load_cpu_pct']} | {'yes' if s['ok'] else 'no'} |"  # noqa: E501
                )
            lines.append("")
    lines += overload_tables(results)
    if plot_name:
        lines += [f"![relay latency against offered rate]({plot_name})", ""]
    return "\n".join(lines)


def overload_tables(results: dict[str, Any]) -> list[str]:
    """Past capacity (``overload``: OVERLOAD_LAG default; ``overload_off``: 0), one table each."""
    lines: list[str] = []
    for config, scenarios in results["configs"].items():
        for name in ("overload", "overload_off"):
            data = scenarios.get(name)
            if not data or "steps" not in data:
                continue
            lines += [
                f"## {config}: {name} (rooms of 2, {data['per_client_rate']} offers/s per client, "
                f"{data['duration_s']} s per step; new clients connect during the step)",
                "",
                "| clients sending | offered/s | achieved/s | lost | p50 ms | p99 ms | new accepted | new refused "
                "| /readyz before / after the connects |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            for s in data["steps"]:
                lines.append(
                    f"| {s['clients_sending']} | {s['offered_per_s']:,} | {s['achieved_per_s']:,.0f} "
                    f"| {s['lost_after_5s']} | {_fmt(s['p50_ms'])} | {_fmt(s['p99_ms'])} | {s['new_accepted']} "
                    f"| {s['new_refused']} | {s['readyz_before_connects']} / {s['readyz_after_connects']} |"
                )
            lines.append("")
    return lines


def plot(results_list: list[dict[str, Any]], out: Path, scenario: str = "relay") -> bool:
    """p50/p99 latency against offered rate, one line per configuration (and run)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    configs = sorted({c for r in results_list for c in r["configs"]})
    colours = {c: f"C{i}" for i, c in enumerate(configs)}  # one colour per configuration
    for run_i, results in enumerate(results_list):
        for config, scenarios in results["configs"].items():
            data = scenarios.get(scenario)
            if not data or "steps" not in data:  # the scenario failed (its error is in the results)
                continue
            rates = [s["offered_per_s"] for s in data["steps"] if s["p99_ms"] is not None]
            label = config if len(results_list) == 1 else f"{config} (run {run_i + 1})"
            for ax, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
                values = [s[key] for s in data["steps"] if s["p99_ms"] is not None]
                ax.plot(
                    rates, values, marker="o", label=label, color=colours[config], linestyle="-" if run_i == 0 else "--"
                )
    for ax, key in zip(axes, ("p50", "p99"), strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("offered relays/s")
        ax.set_title(f"{scenario}: {key} latency")
        ax.axhline(50, color="red", linewidth=0.8, linestyle=":")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms (log)")
    if axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True
