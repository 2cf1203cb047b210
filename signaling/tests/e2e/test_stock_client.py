"""socket.io-client (node) with its default options, many times over, on daphne and uvicorn.

Issue #10: the polling -> websocket upgrade never waits for a PING (engine.io answers a poll
pending during the upgrade with a NOOP), and no websocket extension is negotiated (socket.io's
``perMessageDeflate`` default is off; uvicorn's is on unless ``serve`` turns it off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from signaling.tests.fixtures import LiveServer, run_node

pytestmark = pytest.mark.e2e

NODE_DIR = Path(__file__).parent / "node"
SOCKETS = 20
# A ping every 2 s: a stalled upgrade shows as a PING before the "upgrade" event (with the
# test default of 300 ms the stall would hide behind the frequent pings' answers).
HEARTBEAT = {"HEARTBEAT_INTERVAL": "2000", "HEARTBEAT_TIMEOUT": "2000"}


# The websocket's server -> client bytes are delayed this much by the script's TCP relay:
# the probe's NOOP then overtakes "3probe", the race that stalled engine.io-client's upgrade.
WS_DELAY_MS = 50


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server(request: pytest.FixtureRequest, live_servers_module: Any) -> LiveServer:
    """A server with a 2 s heartbeat, under daphne then uvicorn."""
    (live,) = live_servers_module(server=request.param, env=HEARTBEAT)
    return live


def run_loop(server: LiveServer, *extra: str) -> list[dict[str, Any]]:
    """What each of SOCKETS default-option clients saw, one after the other."""
    args = (server.url, str(SOCKETS), *extra)
    code, lines = run_node(NODE_DIR / "upgrade_loop.mjs", *args, env={"JWT_SECRET": server.secret}, timeout=150)
    assert code == 0, lines
    return [line["data"] for line in lines if line["step"] == "socket"]


@pytest.fixture(scope="module")
def loop_report(server: LiveServer) -> list[dict[str, Any]]:
    """SOCKETS clients straight to the server."""
    return run_loop(server)


@pytest.fixture(scope="module")
def slow_websocket_report(server: LiveServer) -> list[dict[str, Any]]:
    """SOCKETS clients whose websocket lags their polling requests by WS_DELAY_MS."""
    return run_loop(server, str(WS_DELAY_MS))


def test_default_client_upgrades_before_any_ping_every_time(loop_report: list[dict[str, Any]]) -> None:
    # given / when: SOCKETS clients with default options, each emitting during its upgrade
    # then: every upgrade completed before the server's first PING, and the emit was served
    assert [(r["index"], r["first"], r["transport"], r["ackCode"]) for r in loop_report] == [
        (index, "upgrade", "websocket", "not_in_room") for index in range(SOCKETS)
    ]


def test_default_client_with_a_lagging_websocket_upgrades_before_any_ping_every_time(
    slow_websocket_report: list[dict[str, Any]],
) -> None:
    # given / when: the probe's NOOP reaches each client before "3probe", so it polls again
    # then: that poll is answered (NOOP) and the upgrade never waits for a PING
    assert [(r["index"], r["first"], r["transport"], r["ackCode"]) for r in slow_websocket_report] == [
        (index, "upgrade", "websocket", "not_in_room") for index in range(SOCKETS)
    ]


def test_default_client_negotiates_no_websocket_extension(loop_report: list[dict[str, Any]]) -> None:
    # given / when: the client offers permessage-deflate (engine.io-client's default)
    # then: the server accepts no extension, as socket.io's server by default
    assert {r["extensions"] for r in loop_report} == {""}
