"""Two daphne instances sharing Redis and PostgreSQL (SPEC section 5).

Clients are split across the instances: membership lists, relays both ways, the cap under
concurrent joins, cluster-wide stats and room detail, a DELETE on one instance closing the
room on the other, and the death (SIGKILL) of an instance. Skipped without Redis and
PostgreSQL on 127.0.0.1; each cluster uses its own ``REDIS_PREFIX`` (keys removed after).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from rooms.tests.fixtures import ANY_ISO_UTC, ANY_TEXT
from signaling.tests.fixtures import (
    CLUSTER_SKIP_REASON,
    PATIENT_HEARTBEAT,
    POSTGRES_URL,
    REDIS_URL,
    LiveServer,
    SioClient,
    cluster_backends_available,
)
from signaling.tests.schemas import assert_matches_schema

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not cluster_backends_available(), reason=CLUSTER_SKIP_REASON),
]


def cluster_env() -> dict[str, str]:
    return {
        **PATIENT_HEARTBEAT,
        "REDIS_URL": REDIS_URL,
        "REDIS_PREFIX": "e2e" + uuid.uuid4().hex[:16],
        "DATABASE_URL": POSTGRES_URL,
    }


@pytest.fixture(scope="module")
def cluster(live_servers_module: Any) -> tuple[LiveServer, LiveServer]:
    """Two instances shared by this module's non-destructive tests."""
    first, second = live_servers_module(count=2, env=cluster_env())
    return first, second


@pytest.fixture
def member(sio_client: Callable[[], SioClient]) -> Callable[..., Any]:
    """``await member(server, agent_id, room_id=None)``: a connected client, joined when given a room."""

    async def make(server: LiveServer, agent_id: str, room_id: str | None = None) -> SioClient:
        client = sio_client()
        await client.connect_as(server, agent_id)
        if room_id is not None:
            reply = await client.join(room_id)
            assert reply["ok"] is True, reply
        return client

    return make


def entry(client: SioClient) -> dict[str, Any]:
    return {"clientId": client.client_id, "agentId": client.agent_id, "joinedAt": ANY_ISO_UTC, "muted": False}


def listed(client: SioClient) -> dict[str, Any]:
    """The REST listing of a present member (SPEC section 7: ``connected``)."""
    return {**entry(client), "connected": True}


def announced(client: SioClient, room_id: str) -> dict[str, Any]:
    return {"roomId": room_id, "clientId": client.client_id, "agentId": client.agent_id, "muted": False}


def origin(client: SioClient, room_id: str) -> dict[str, Any]:
    return {"from": client.client_id, "agentId": client.agent_id, "roomId": room_id}


def refusal(code: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": ANY_TEXT}}


async def poll_until(check: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Call async ``check`` until it returns a truthy value or ``timeout`` passes; returns the last value."""
    deadline = time.monotonic() + timeout
    value = await check()
    while not value and time.monotonic() < deadline:
        await asyncio.sleep(interval)
        value = await check()
    return value


def counts(stats: dict[str, Any]) -> dict[str, Any]:
    """The live part of /api/stats (rooms.total counts every room in the shared database)."""
    return {
        "active": stats["rooms"]["active"],
        "connections": stats["connections"],
        "participants": stats["participants"],
        "instances": stats["instances"],
    }


async def test_members_on_two_instances_see_each_other_in_joined_and_user_joined(
    cluster: tuple[LiveServer, LiveServer], sio_client: Any, member: Any
) -> None:
    # given
    a, b = cluster
    room = await a.acreate_room(name="split room")
    alice = await member(a, "agent-alice", room["id"])
    bob, carol = sio_client(), sio_client()
    await bob.connect_as(b, "agent-bob")
    await carol.connect_as(a, "agent-carol")
    # when
    bob_ack = await bob.call("join_room", {"roomId": room["id"]})
    bob_joined = await bob.next("joined")
    alice_sees_bob = await alice.next("user_joined")
    carol_ack = await carol.call("join_room", {"roomId": room["id"]})
    # then
    assert bob_joined == {
        "roomId": room["id"],
        "clientId": bob.client_id,
        "agentId": "agent-bob",
        "muted": False,
        "room": {**room, "participantCount": 2},
        "participants": [entry(alice)],
    }
    assert bob_ack == {"ok": True, **bob_joined}
    assert_matches_schema("joined", bob_joined)
    assert alice_sees_bob == announced(bob, room["id"])
    assert carol_ack == {
        "ok": True,
        "roomId": room["id"],
        "clientId": carol.client_id,
        "agentId": "agent-carol",
        "muted": False,
        "room": {**room, "participantCount": 3},
        "participants": [entry(alice), entry(bob)],
    }
    assert await alice.next("user_joined") == announced(carol, room["id"])
    assert await bob.next("user_joined") == announced(carol, room["id"])


async def test_relays_cross_instances_targeted_and_room_wide(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given: alice and carol on A, bob on B
    a, b = cluster
    room = await a.acreate_room(name="relay room")
    room_id = room["id"]
    alice = await member(a, "agent-alice", room_id)
    bob = await member(b, "agent-bob", room_id)
    carol = await member(a, "agent-carol", room_id)
    for client, count in ((alice, 2), (bob, 1)):
        for _ in range(count):
            await client.next("user_joined")
    offer = {"type": "offer", "sdp": "v=0\r\n"}
    # when / then: targeted A -> B
    assert await alice.call("offer", {"to": bob.client_id, "sdp": offer}) == {"ok": True}
    assert await bob.next("offer") == {"sdp": offer, **origin(alice, room_id)}
    # targeted B -> A
    assert await bob.call("answer", {"to": alice.client_id, "sdp": "v=0 answer"}) == {"ok": True}
    assert await alice.next("answer") == {"sdp": "v=0 answer", **origin(bob, room_id)}
    # room-wide from A reaches A and B
    assert await carol.call("candidate", {"candidate": "candidate:1"}) == {"ok": True}
    assert await alice.next("candidate") == {"candidate": "candidate:1", **origin(carol, room_id)}
    assert await bob.next("candidate") == {"candidate": "candidate:1", **origin(carol, room_id)}
    # room-wide candidate-end from B reaches both on A
    assert await bob.call("candidate-end", {}) == {"ok": True}
    assert await alice.next("candidate") == {"candidate": None, **origin(bob, room_id)}
    assert await carol.next("candidate") == {"candidate": None, **origin(bob, room_id)}
    # a target on the other instance but outside the room reaches nobody
    outsider = await member(b, "agent-outsider")
    assert await alice.call("offer", {"to": outsider.client_id, "sdp": "v=0"}) == refusal("target_not_found")
    assert await outsider.receive_nothing()
    for client in (alice, bob, carol):
        assert await client.receive_nothing(timeout=0.1), {e: client.drain(e) for e in client.pending()}


async def test_cap_holds_under_concurrent_joins_across_instances(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given: cap 3, eight connected clients, four per instance
    a, b = cluster
    room = await a.acreate_room(name="crowded", settings={"maxParticipants": 3})
    clients = [await member(a if i % 2 else b, f"agent-{i}") for i in range(8)]
    # when
    replies = await asyncio.gather(*(c.call("join_room", {"roomId": room["id"]}, timeout=5) for c in clients))
    # then
    admitted = [c for c, r in zip(clients, replies, strict=True) if r.get("ok")]
    assert len(admitted) == 3
    assert sorted(r["error"]["code"] for r in replies if not r.get("ok")) == ["room_full"] * 5
    assert [r for r in replies if not r.get("ok")] == [refusal("room_full")] * 5
    status, detail = await b.aget(f"/api/rooms/{room['id']}")
    assert (status, detail["participantCount"]) == (200, 3)
    assert sorted(p["clientId"] for p in detail["participants"]) == sorted(c.client_id for c in admitted)


async def test_stats_count_each_connection_and_participant_once_on_either_instance(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given: the module's earlier clients are gone (counts settle), then 3 connect, 2 join
    a, b = cluster

    async def settled() -> Any:
        stats = [(await s.aget("/api/stats"))[1] for s in (a, b)]
        return all(counts(x) == {"active": 0, "connections": 0, "participants": 0, "instances": 2} for x in stats)

    assert await poll_until(settled), [(await s.aget("/api/stats"))[1] for s in (a, b)]
    room = await a.acreate_room(name="counted")
    await member(a, "agent-alice", room["id"])
    await member(b, "agent-bob", room["id"])
    await member(b, "agent-lurker")
    expected = {"active": 1, "connections": 3, "participants": 2, "instances": 2}

    # when
    async def both_count() -> Any:
        stats = [(await s.aget("/api/stats"))[1] for s in (a, b)]
        return stats if all(counts(x) == expected for x in stats) else None

    stats = await poll_until(both_count)
    # then
    assert stats is not None, "stats never counted 3 connections and 2 participants on both instances"
    total = stats[0]["rooms"]["total"]
    for one in stats:
        assert one == {
            "rooms": {"total": total, "active": 1},
            "connections": 3,
            "participants": 2,
            "uptimeSeconds": one["uptimeSeconds"],
            "instances": 2,
        }


async def test_room_detail_lists_participants_cluster_wide(cluster: tuple[LiveServer, LiveServer], member: Any) -> None:
    # given
    a, b = cluster
    room = await b.acreate_room(name="detail")
    alice = await member(a, "agent-alice", room["id"])
    bob = await member(b, "agent-bob", room["id"])
    # when
    on_a, on_b = await a.aget(f"/api/rooms/{room['id']}"), await b.aget(f"/api/rooms/{room['id']}")
    # then
    expected = (200, {**room, "participantCount": 2, "participants": [listed(alice), listed(bob)]})
    assert on_a == expected
    assert on_b == expected


async def test_delete_on_one_instance_closes_the_room_for_members_on_the_other(
    cluster: tuple[LiveServer, LiveServer], member: Any
) -> None:
    # given
    a, b = cluster
    token = a.mint("agent-alice")
    room = await a.acreate_room(token, name="doomed")
    alice = await member(a, "agent-alice", room["id"])
    bob = await member(b, "agent-bob", room["id"])
    carol = await member(b, "agent-carol", room["id"])
    # when
    assert await a.arequest("DELETE", f"/api/rooms/{room['id']}", token=token) == (204, None)
    # then
    for client in (alice, bob, carol):
        assert await client.next("room_closed") == {"roomId": room["id"], "reason": "deleted"}
    assert await bob.call("offer", {"sdp": "v=0"}) == refusal("not_in_room")
    assert await bob.call("join_room", {"roomId": room["id"]}) == refusal("room_closed")
    assert await alice.receive_nothing("offer")
    assert await carol.receive_nothing("offer")
    assert (await b.aget(f"/api/rooms/{room['id']}"))[1]["participants"] == []


async def test_killed_instance_participants_are_reported_left_and_dropped_from_stats(
    live_servers: Any, member: Any
) -> None:
    # given: alice on A; bob and carol on B, all in one room
    a, b = live_servers(count=2, env=cluster_env())
    room = await a.acreate_room(name="survivors")
    alice = await member(a, "agent-alice", room["id"])
    bob = await member(b, "agent-bob", room["id"])
    carol = await member(b, "agent-carol", room["id"])
    await alice.next("user_joined"), await alice.next("user_joined")
    bob_id, carol_id = bob.client_id, carol.client_id
    # when
    b.kill()
    # then: within a bounded wait (SPEC: within 2 x HEARTBEAT_INTERVAL; not a speed check)
    gone = [await alice.next("user_left", timeout=5), await alice.next("user_left", timeout=5)]
    assert sorted(gone, key=lambda e: e["agentId"]) == [
        {"roomId": room["id"], "clientId": bob_id, "agentId": "agent-bob", "reason": "disconnected"},
        {"roomId": room["id"], "clientId": carol_id, "agentId": "agent-carol", "reason": "disconnected"},
    ]

    async def dropped() -> Any:
        stats = (await a.aget("/api/stats"))[1]
        return stats if counts(stats) == {"active": 1, "connections": 1, "participants": 1, "instances": 1} else None

    assert await poll_until(dropped) is not None
    assert await a.aget(f"/api/rooms/{room['id']}") == (
        200,
        {**room, "participantCount": 1, "participants": [listed(alice)]},
    )
    assert await alice.call("offer", {"sdp": "v=0"}) == {"ok": True}
