"""Connection state recovery across two daphne instances over Redis (SPEC section 7).

A client held on one instance resumes through the other, with the relays sent to it in the
gap; the instance that held it may exit meanwhile (its held sessions are the cluster's, not
reaped with it); a crashed instance's sockets, never held, are reaped as before. Skipped
without Redis and PostgreSQL on 127.0.0.1; each cluster has its own ``REDIS_PREFIX``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from signaling.tests.e2e.recovery_client import RecoveringClient
from signaling.tests.e2e.test_cluster import cluster_env
from signaling.tests.e2e.test_recovery import wait_listed
from signaling.tests.fixtures import CLUSTER_SKIP_REASON, LiveServer, cluster_backends_available

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not cluster_backends_available(), reason=CLUSTER_SKIP_REASON),
]


def recovery_cluster_env() -> dict[str, str]:
    return {**cluster_env(), "RECOVERY_WINDOW": "20000"}


async def in_room(server: LiveServer, agent_id: str, room_id: str) -> RecoveringClient:
    client = RecoveringClient(server, agent_id)
    await client.connect()
    await client.until("connected")
    assert (await client.call("join_room", {"roomId": room_id}, 1))["ok"] is True
    return client


async def relays_while_away(bob: RecoveringClient, alice_id: str) -> None:
    acks = [
        await bob.call("offer", {"to": alice_id, "sdp": "sdp-1"}, 2),
        await bob.call("candidate", {"candidate": "cand-2"}, 3),
        await bob.call("candidate", {"to": alice_id, "candidate": "cand-3"}, 4),
    ]
    assert acks == [{"ok": True}] * 3


async def missed_after_resume(alice: RecoveringClient) -> list[tuple[str, Any]]:
    first = await alice.event()
    assert first[0] == "connected" and first[1]["recovered"] is True, first
    got = []
    for _ in range(3):
        name, payload, offset = await alice.event()
        assert offset is not None
        got.append((name, payload.get("sdp", payload.get("candidate"))))
    return got


EXPECTED_MISSED = [("offer", "sdp-1"), ("candidate", "cand-2"), ("candidate", "cand-3")]


async def test_a_client_held_on_one_instance_resumes_through_the_other(live_servers: Any) -> None:
    # given: alice on the first instance, bob on the second
    first, second = live_servers(count=2, env=recovery_cluster_env())
    room = await first.acreate_room()
    alice = await in_room(first, "agent-alice", room["id"])
    bob = await in_room(second, "agent-bob", room["id"])
    await alice.until("user_joined")
    held_sid, held_pid = alice.sid, alice.pid
    # when: alice's transport is cut, bob relays to her, she comes back through the second
    alice.cut()
    away = await wait_listed(second, room["id"], held_sid, False)
    await relays_while_away(bob, held_sid)
    reply = await alice.connect(second)
    missed = await missed_after_resume(alice)
    # then
    assert {p["clientId"]: p["connected"] for p in away} == {held_sid: False, bob.sid: True}
    assert reply == {"sid": held_sid, "pid": held_pid}
    assert missed == EXPECTED_MISSED
    await wait_listed(first, room["id"], held_sid, True)
    # relays both ways after the resume, and bob heard of no departure
    await bob.call("answer", {"to": held_sid, "sdp": "sdp-4"}, 5)
    assert await alice.until("answer") == {
        "from": bob.sid,
        "agentId": "agent-bob",
        "roomId": room["id"],
        "sdp": "sdp-4",
    }
    await alice.call("offer", {"to": bob.sid, "sdp": "sdp-5"}, 6)
    names = []
    while True:
        name, payload, _ = await bob.event()
        names.append(name)
        if name == "offer":
            assert payload["sdp"] == "sdp-5"
            break
    assert "user_left" not in names and "user_joined" not in names
    for client in (alice, bob):
        await client.close()


async def test_held_sessions_outlive_the_instance_that_held_them(live_servers: Any) -> None:
    # given: alice held on the first instance
    first, second = live_servers(count=2, env=recovery_cluster_env())
    room = await first.acreate_room()
    alice = await in_room(first, "agent-alice", room["id"])
    bob = await in_room(second, "agent-bob", room["id"])
    await alice.until("user_joined")
    held_sid = alice.sid
    alice.cut()
    await wait_listed(second, room["id"], held_sid, False)
    # when: that instance exits, and is reaped (liveness: 1.75 x the 300 ms heartbeat)
    first.stop()
    await asyncio.sleep(2.0)
    await relays_while_away(bob, held_sid)
    reply = await alice.connect(second)
    missed = await missed_after_resume(alice)
    # then
    assert reply["sid"] == held_sid
    assert missed == EXPECTED_MISSED
    assert "user_left" not in await bob.events_within(0.5)
    for client in (alice, bob):
        await client.close()


async def test_a_crashed_instances_sockets_are_not_held(live_servers: Any) -> None:
    # given
    first, second = live_servers(count=2, env=recovery_cluster_env())
    room = await first.acreate_room()
    alice = await in_room(first, "agent-alice", room["id"])
    bob = await in_room(second, "agent-bob", room["id"])
    await alice.until("user_joined")
    # when
    first.kill()
    left = await bob.until("user_left", timeout=10)
    # then
    assert left["clientId"] == alice.sid and left["reason"] == "disconnected"
    status, detail = await second.aget(f"/api/rooms/{room['id']}")
    assert status == 200
    assert [p["clientId"] for p in detail["participants"]] == [bob.sid]
    for client in (alice, bob):
        await client.close()
