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


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def loop_report(request: pytest.FixtureRequest, live_servers_module: Any) -> list[dict[str, Any]]:
    """What each of SOCKETS default-option clients saw, one after the other, on one server."""
    server: LiveServer
    (server,) = live_servers_module(server=request.param, env=HEARTBEAT)
    code, lines = run_node(
        NODE_DIR / "upgrade_loop.mjs", server.url, str(SOCKETS), env={"JWT_SECRET": server.secret}, timeout=120
    )
    assert code == 0, lines
    return [line["data"] for line in lines if line["step"] == "socket"]


def test_default_client_upgrades_before_any_ping_every_time(loop_report: list[dict[str, Any]]) -> None:
    # given / when: SOCKETS clients with default options, each emitting during its upgrade
    # then: every upgrade completed before the server's first PING, and the emit was served
    assert [(r["index"], r["first"], r["transport"], r["ackCode"]) for r in loop_report] == [
        (index, "upgrade", "websocket", "not_in_room") for index in range(SOCKETS)
    ]


def test_default_client_negotiates_no_websocket_extension(loop_report: list[dict[str, Any]]) -> None:
    # given / when: the client offers permessage-deflate (engine.io-client's default)
    # then: the server accepts no extension, as socket.io's server by default
    assert {r["extensions"] for r in loop_report} == {""}
