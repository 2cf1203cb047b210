"""Metrics and structured logs of a real daphne after real traffic (SPEC section 10).

``GET /metrics`` is parsed with prometheus_client's own parser and checked with
``promtool check metrics`` (Debian's prometheus package); ``LOG_FORMAT=json`` lines are
parsed as JSON.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, SioClient

pytestmark = [pytest.mark.e2e]

METRICS_TOKEN = "scrape-" + "x" * 24
DASHBOARD = Path(__file__).resolve().parents[3] / "docs" / "grafana-dashboard.json"


def scrape(server: LiveServer, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(server.url + "/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as ``{(name, sorted labels): value}``."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_after_real_traffic_count_connects_events_and_members(
    live_servers: Callable[..., list[LiveServer]], sio_client: Callable[[], SioClient], tmp_path: Path
) -> None:
    # given: two peers in a room who relay, one refused connect, one unknown event
    (server,) = live_servers(env={**PATIENT_HEARTBEAT, "METRICS_TOKEN": METRICS_TOKEN})
    room_id = (await server.acreate_room())["id"]
    alice, bob = sio_client(), sio_client()
    await alice.connect_as(server, "agent-alice", transports=["websocket"])
    await bob.connect_as(server, "agent-bob")
    assert (await alice.join(room_id))["ok"] and (await bob.join(room_id))["ok"]
    assert await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}) == {"ok": True}
    assert (await alice.call("no_such_event", {}))["error"]["code"] == "unknown_event"
    refused = sio_client()
    assert (await refused.refused(server, token="not-a-jwt"))["message"] == "invalid_token"
    # when
    status, content_type, text = scrape(server, METRICS_TOKEN)
    # then
    assert status == 200 and content_type.startswith("text/plain")
    found = samples(text)
    assert found[("signaling_connects_total", (("result", "ok"),))] == 2
    assert found[("signaling_connects_total", (("result", "invalid_token"),))] == 1
    assert found[("signaling_events_total", (("event", "join_room"), ("result", "ok")))] == 2
    assert found[("signaling_events_total", (("event", "offer"), ("result", "ok")))] == 1
    assert found[("signaling_events_total", (("event", "other"), ("result", "unknown_event")))] == 1
    assert found[("signaling_event_seconds_count", (("event", "offer"),))] == 1
    assert found[("signaling_participants", ())] == 2
    assert found[("signaling_rooms_active", ())] == 1
    transports = {
        dict(labels)["transport"]: v for (name, labels), v in found.items() if name == "signaling_connections"
    }
    assert sum(transports.values()) == 2 and transports["websocket"] >= 1
    assert any(name.startswith("process_") for name, _ in found)
    assert any(name.startswith("python_gc_") for name, _ in found)
    # no label carries a room, client or agent id
    values = {value for _, labels in found for _, value in labels}
    assert not values & {room_id, alice.client_id, bob.client_id, "agent-alice", "agent-bob"}
    # and Prometheus' own checker accepts the exposition
    if shutil.which("promtool") is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    checked = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()
    # the Grafana dashboard queries only series that exist, in valid PromQL
    check_dashboard(found, tmp_path)


def check_dashboard(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    names = {name for name, _ in found} | {name.removesuffix("_total") for name, _ in found}
    for expr in exprs:
        for metric in re.findall(r"\b(signaling_[a-z_]+|process_[a-z_]+|python_gc_[a-z_]+)", expr):
            assert metric in names or metric.removesuffix("_bucket") + "_count" in names, (metric, expr)
    rules = {
        "groups": [
            {"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)]}
        ]
    }
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(rules))  # YAML is a superset of JSON
    checked = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, check=False)
    assert checked.returncode == 0, checked.stdout.decode() + checked.stderr.decode()


async def test_metrics_need_the_token_when_one_is_set(live_servers: Callable[..., list[LiveServer]]) -> None:
    # given
    (server,) = live_servers(env={"METRICS_TOKEN": METRICS_TOKEN})
    # when
    missing, _, body = scrape(server)
    wrong, _, _ = scrape(server, "wrong")
    right, _, _ = scrape(server, METRICS_TOKEN)
    # then
    assert (missing, wrong, right) == (401, 401, 200)
    assert json.loads(body)["code"] == "unauthorized"


async def test_json_logs_are_one_object_per_line_with_the_ids_in_context(
    live_servers: Callable[..., list[LiveServer]], sio_client: Callable[[], SioClient]
) -> None:
    # given
    (server,) = live_servers(env={**PATIENT_HEARTBEAT, "LOG_FORMAT": "json", "LOG_LEVEL": "info"})
    room_id = (await server.acreate_room())["id"]
    alice = sio_client()
    await alice.connect_as(server, "agent-alice", transports=["websocket"])
    # when
    assert (await alice.join(room_id))["ok"] is True
    client_id = alice.client_id
    await alice.disconnect()
    server.stop()
    # then: every line is a JSON object with level, logger and message
    lines = [line for line in server.stderr_text().splitlines() if line.strip()]
    records: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith(("WARNING: DEV_MODE", "Traceback")):
            continue
        records.append(json.loads(line))
    assert records and all({"level", "logger", "message"} <= set(r) for r in records)
    joined = [r for r in records if "joined room" in r["message"]]
    assert len(joined) == 1
    assert joined[0]["client_id"] == client_id
    assert joined[0]["room_id"] == room_id
    assert joined[0]["instance"].startswith("signaling.instance.")
    assert joined[0]["level"] == "INFO" and joined[0]["logger"] == "signaling.service.participation"
