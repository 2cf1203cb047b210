"""A stopped instance ends by itself: status 0, the exit watchdog silent (under uvicorn: each task
finished when ``asyncio.run`` cancelled it).

Real ``manage.py serve`` processes (daphne and uvicorn), over Redis and PostgreSQL and over
the in-memory layer, with python-socketio clients in a room on each transport, stopped by
SIGTERM (the drain, then the server's own shutdown) or SIGINT (at once, clients still
connected). The watchdog (:mod:`signaling.exit_watchdog`) would also end a stalled process
with status 0, so the test looks for its warning: under uvicorn a loop that lost its cancel
(Python 3.11's ``asyncio.wait_for`` in a redis-py call, :mod:`signaling.service.cancellation`)
kept ``asyncio.run``'s final task cancellation waiting until the watchdog fired.

The sweepers run every 10 ms here (``HEARTBEAT_INTERVAL`` 40 ms) and three instances stop
at once, so that a shutdown often finds a sweeper inside a Redis call: on the code before
the fix, 4 of 10 runs of the uvicorn-over-Redis cases failed (the watchdog named the
liveness task); a miss proves nothing, a failure is a real task that ignored its cancel.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from signaling.exit_watchdog import WATCHDOG_WARNING
from signaling.tests.e2e.test_draining import exit_status
from signaling.tests.fixtures import (
    CLUSTER_SKIP_REASON,
    POSTGRES_URL,
    REDIS_URL,
    SioClient,
    cluster_backends_available,
)

# Three servers start per test: more than the default 60 s on a loaded machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

_REDIS = pytest.mark.skipif(not cluster_backends_available(), reason=CLUSTER_SKIP_REASON)
# Five of the eight combinations (CI time): the stall was uvicorn's over Redis, under both
# signals; daphne and the in-memory layer once each.
CASES = [
    pytest.param("uvicorn", signal.SIGTERM, "redis", id="uvicorn-SIGTERM-redis", marks=_REDIS),
    pytest.param("uvicorn", signal.SIGINT, "redis", id="uvicorn-SIGINT-redis", marks=_REDIS),
    pytest.param("daphne", signal.SIGTERM, "redis", id="daphne-SIGTERM-redis", marks=_REDIS),
    pytest.param("daphne", signal.SIGINT, "memory", id="daphne-SIGINT-memory"),
    pytest.param("uvicorn", signal.SIGTERM, "memory", id="uvicorn-SIGTERM-memory"),
]
# Engine.IO pings every 40 ms (2 s to answer); the sweepers run every heartbeat / 4.
BUSY_HEARTBEAT = {"HEARTBEAT_INTERVAL": "40", "HEARTBEAT_TIMEOUT": "2000"}
# Instances stopped at once: each shutdown is one more chance to catch a task that ignores
# its cancel (the instances of the memory layer share a database, nothing else).
INSTANCES = 3
# One client per transport choice: websocket only, polling only, polling upgraded.
TRANSPORTS: list[list[str] | None] = [["websocket"], ["polling"], None]
# What the stop leaves in the log, per signal.
STOP_LINES = {signal.SIGTERM: "drain: no socket left; stopping", signal.SIGINT: "SIGINT: stopping at once"}
# asyncio.run's words for a task that ended with an error when it was cancelled at exit.
UNHANDLED_AT_EXIT = "unhandled exception during asyncio.run() shutdown"


def layer_env(layer: str) -> dict[str, str]:
    if layer == "redis":
        return {"REDIS_URL": REDIS_URL, "DATABASE_URL": POSTGRES_URL, **BUSY_HEARTBEAT}
    return dict(BUSY_HEARTBEAT)


@pytest.mark.parametrize(("server_kind", "stop_signal", "layer"), CASES)
async def test_stopped_instances_with_clients_in_a_room_exit_0_by_themselves(
    live_servers: Any, server_kind: str, stop_signal: signal.Signals, layer: str
) -> None:
    # given instances with a client on each transport in one room
    servers = live_servers(count=INSTANCES, server=server_kind, env=layer_env(layer))
    room = (await servers[0].acreate_room())["id"]
    clients = []
    for server in servers:
        for transports in TRANSPORTS:
            client = SioClient()
            await client.connect_as(server, f"agent-{len(clients)}", transports=transports)
            assert (await client.join(room))["ok"] is True
            clients.append(client)

    # when they are told to stop
    for server in servers:
        server.process.send_signal(stop_signal)

    # then each ends by itself with status 0, without the watchdog, every task finished cleanly
    for server in servers:
        assert await exit_status(server) == 0
        log = server.stderr_text()
        assert STOP_LINES[stop_signal] in log, log
        assert WATCHDOG_WARNING not in log, log
        assert UNHANDLED_AT_EXIT not in log, log
        assert "Traceback" not in log, log
    for client in clients:
        await client.disconnect()
