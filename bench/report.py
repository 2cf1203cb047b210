"""Markdown summary and latency plot of a benchmark results file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TARGETS = {
    "relay_max_ok_per_s": 10000,
    "relay_p99_ms_at_2000": 5.0,
    "fanout_deliveries_per_s": 45000,
    "connects_per_s": 1300,
    "rss_per_conn_kb": 13.0,
    "cross_max_ok_per_s": 2500,
}


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


def markdown(results: dict[str, Any], plot_name: str | None) -> str:
    machine = results["machine"]
    lines = [
        f"# Benchmark run {results['started_at']}",
        "",
        f"Machine: {machine['nproc']} CPUs, {machine['cpu_model']}, {machine['mem_total_gb']} GB RAM; "
        f"Python {machine['python']}; kernel {machine['kernel']}. Server pinned to core "
        f"{machine['server_core']}, load generator to core {machine['load_core']}.",
        f"Command: `{results['command']}`",
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
    lines += [
        "",
        "Targets: relay >= 10,000/s (p99 <= 50 ms, no loss); relay p99 <= 5 ms at 2,000/s; "
        "fanout >= 45,000 deliveries/s; >= 1,300 connects/s; <= 13 kB RSS per idle connection; "
        "cross-instance >= 2,500 relays/s.",
        "",
    ]
    for config, scenarios in results["configs"].items():
        for name in ("relay", "fanout", "cross"):
            data = scenarios.get(name)
            if not data:
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
    if plot_name:
        lines += [f"![relay latency against offered rate]({plot_name})", ""]
    return "\n".join(lines)


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
            if not data:
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
