"""Past capacity (docs/protocol.md): a server whose event loop runs late refuses new sessions,
says so in ``/readyz``, and keeps serving the sessions it has.

The lag is real, not simulated: the test stops the server process (SIGSTOP) for a moment
and lets it go on (SIGCONT), so every timer of its loop fires late, exactly as it does
when the loop is too busy to keep time. Each step waits for an event (a log line, an
answer) with a generous bound; nothing is timed.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from typing import Any

import pytest

from signaling.tests.e2e.test_draining import SERVERS, wait_for_log, websocket_handshake_status
from signaling.tests.fixtures import PATIENT_HEARTBEAT, LiveServer, SioClient

pytestmark = pytest.mark.e2e
# Stopped this long, the loop is late by as much: well past OVERLOAD_LAG.
STALL_S = 1.5


def polling_handshake(server: LiveServer) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(server.url + "/socket.io/?EIO=4&transport=polling", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("server_kind", SERVERS)
async def test_a_late_loop_refuses_new_sessions_and_keeps_the_established_ones(
    live_servers: Any, server_kind: str
) -> None:
    # given a server with OVERLOAD_LAG 500 ms and two clients relaying in a room
    env = {"OVERLOAD_LAG": "500", "HEARTBEAT_INTERVAL": "5000", "HEARTBEAT_TIMEOUT": "10000"}
    (server,) = live_servers(server=server_kind, env={**PATIENT_HEARTBEAT, **env})
    room = (await server.acreate_room())["id"]
    alice, bob = SioClient(), SioClient()
    await alice.connect_as(server, "agent-alice")
    bob_id = (await bob.connect_as(server, "agent-bob"))["clientId"]
    assert (await alice.join(room))["ok"] is True
    assert (await bob.join(room))["ok"] is True
    assert (await server.aget("/readyz")) == (200, {"status": "ready"})

    # when its loop falls 1.5 s behind
    server.process.send_signal(signal.SIGSTOP)
    time.sleep(STALL_S)
    server.process.send_signal(signal.SIGCONT)
    await wait_for_log(server, "overloaded: the event loop ran")

    # then new sessions are refused and /readyz says why
    status, body = await server.aget("/readyz")
    assert (status, body["status"], body["code"]) == (503, "overloaded", "overloaded")
    assert polling_handshake(server) == (
        503,
        {"code": "overloaded", "message": "this instance is past its capacity; retry later or connect to another one"},
    )
    assert await websocket_handshake_status(server) == 403
    # and the established sessions go on
    reply = await alice.call("offer", {"to": bob_id, "sdp": "v=0"}, timeout=5)
    assert reply == {"ok": True}
    assert (await bob.next("offer", timeout=5))["sdp"] == "v=0"

    # then, once the loop kept time for the hold, it takes new sessions again
    await wait_for_log(server, "no longer overloaded")
    assert (await server.aget("/readyz")) == (200, {"status": "ready"})
    status, _ = polling_handshake(server)
    assert status == 200
    await alice.disconnect()
    await bob.disconnect()
