"""Presence stores: the same behaviour from MemoryPresence and RedisPresence (SPEC sections 3-5).

Every test runs against both stores; the Redis case uses a prefix of its own (removed
afterwards) and is skipped only when nothing answers at 127.0.0.1:6379.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio

from signaling.presence import (
    JoinOutcome,
    JoinStatus,
    LeaveOutcome,
    MemoryPresence,
    Participant,
    PresenceStats,
    PresenceStore,
    RedisPresence,
)

REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SKIP_REASON = "needs Redis at 127.0.0.1:6379"
INSTANCE = "signaling.instance.test!one"
OTHER_INSTANCE = "signaling.instance.test!two"
TTL_MS = 60_000


def redis_answers() -> bool:
    """True when a Redis server answers PING at 127.0.0.1:6379."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[PresenceStore]:
    """A fresh, empty presence store of each kind."""
    if request.param == "memory":
        yield MemoryPresence()
        return
    if not redis_answers():
        pytest.skip(REDIS_SKIP_REASON)
    prefix = f"itest-{uuid.uuid4().hex}"
    presence = RedisPresence(REDIS_URL, prefix=prefix)
    try:
        yield presence
    finally:
        cleaner = redis.asyncio.Redis.from_url(REDIS_URL)
        keys = [key async for key in cleaner.scan_iter(match=f"{prefix}:*")]
        if keys:
            await cleaner.delete(*keys)
        await cleaner.aclose()
        await presence.aclose()


def member(name: str, *, instance: str = INSTANCE, is_muted: bool = False) -> Participant:
    """A participant whose client id is ``c-<name>`` and agent ``agent-<name>``."""
    return Participant(f"c-{name}", f"agent-{name}", "2026-11-26T15:00:00.000001Z", is_muted, instance)


def by_id(participants: list[Participant]) -> list[Participant]:
    return sorted(participants, key=lambda p: p.client_id)


async def test_join_admits_up_to_the_cap_then_answers_full(store: PresenceStore) -> None:
    # given
    alice, bob, carol = member("alice"), member("bob"), member("carol")
    # when
    first = await store.join("r_1", alice, 2)
    second = await store.join("r_1", bob, 2)
    third = await store.join("r_1", carol, 2)
    # then
    assert first == JoinOutcome(JoinStatus.JOINED, [alice], version=1)
    assert (second.status, by_id(second.members), second.version) == (JoinStatus.JOINED, [alice, bob], 2)
    assert (third.status, by_id(third.members), third.version) == (JoinStatus.FULL, [alice, bob], 0)
    assert by_id(await store.members("r_1")) == [alice, bob]


async def test_every_join_and_leave_gets_a_new_version_and_refusals_none(store: PresenceStore) -> None:
    # given
    alice, bob = member("alice"), member("bob")
    # when
    versions = [
        (await store.join("r_1", alice, 1)).version,
        (await store.join("r_1", bob, 1)).version,  # full: no change
        (await store.join("r_1", alice, 1)).version,  # already in: no change
        (await store.leave("r_1", alice.client_id)).version,  # type: ignore[union-attr]
        (await store.join("r_1", bob, 1)).version,
    ]
    # then
    assert versions == [1, 0, 0, 2, 3]


async def test_close_if_empty_closes_only_an_empty_room(store: PresenceStore) -> None:
    # given
    alice = member("alice")
    await store.join("r_busy", alice, 4)
    # when
    busy = await store.mark_closed_if_empty("r_busy")
    empty = await store.mark_closed_if_empty("r_empty")
    # then: the occupied room answers its version and stays open; the empty one is closed
    assert busy == 1
    assert empty == 0
    assert (await store.join("r_busy", member("bob"), 4)).status is JoinStatus.JOINED
    assert (await store.join("r_empty", member("bob"), 4)).status is JoinStatus.CLOSED


async def test_memberships_and_member_answer_from_presence(store: PresenceStore) -> None:
    # given
    alice, bob = member("alice"), member("bob", instance=OTHER_INSTANCE)
    await store.join("r_1", alice, 4)
    await store.join("r_2", bob, 4)
    # when / then
    assert await store.memberships(INSTANCE) == [("r_1", alice.client_id)]
    assert await store.member("r_2", bob.client_id) == bob
    assert await store.member("r_1", bob.client_id) is None


async def test_sync_connections_makes_the_list_exact(store: PresenceStore) -> None:
    # given
    await store.register_instance(INSTANCE, TTL_MS)
    await store.add_connection(INSTANCE, "c-gone", "agent-gone")
    # when
    await store.sync_connections(INSTANCE, {"c-a": "agent-a", "c-b": "agent-b"})
    # then
    assert (await store.stats()).connections == 2


async def test_concurrent_joins_never_exceed_the_cap(store: PresenceStore) -> None:
    # given
    joiners = [member(f"p{i}") for i in range(8)]
    # when all join at once
    outcomes = await asyncio.gather(*(store.join("r_1", p, 3) for p in joiners))
    # then
    statuses = sorted(o.status for o in outcomes)
    assert statuses == [JoinStatus.FULL] * 5 + [JoinStatus.JOINED] * 3
    admitted = [p for p, o in zip(joiners, outcomes, strict=True) if o.status is JoinStatus.JOINED]
    assert by_id(await store.members("r_1")) == by_id(admitted)
    assert await store.counts(["r_1"]) == {"r_1": 3}


async def test_join_of_a_member_already_present_answers_already(store: PresenceStore) -> None:
    # given
    alice = member("alice")
    await store.join("r_1", alice, 1)
    # when
    again = await store.join("r_1", alice, 1)
    # then
    assert again == JoinOutcome(JoinStatus.ALREADY, [alice])
    assert await store.members("r_1") == [alice]


async def test_leave_removes_the_member_and_reports_who_remains(store: PresenceStore) -> None:
    # given
    alice, bob = member("alice"), member("bob", is_muted=True)
    await store.join("r_1", alice, 10)
    await store.join("r_1", bob, 10)
    # when
    first = await store.leave("r_1", bob.client_id)
    again = await store.leave("r_1", bob.client_id)
    last = await store.leave("r_1", alice.client_id)
    # then
    assert first == LeaveOutcome(bob, 1, version=3)
    assert again is None
    assert last == LeaveOutcome(alice, 0, version=4)
    assert await store.members("r_1") == []
    assert await store.leave("r_unknown", "c-nobody") is None


async def test_close_returns_members_and_refuses_later_joins(store: PresenceStore) -> None:
    # given
    alice, bob = member("alice"), member("bob")
    await store.join("r_1", alice, 10)
    await store.join("r_1", bob, 10)
    # when
    members = await store.mark_closed("r_1")
    # then
    assert by_id(members) == [alice, bob]
    assert await store.join("r_1", member("carol"), 10) == JoinOutcome(JoinStatus.CLOSED, [])
    assert await store.members("r_1") == []
    assert await store.counts(["r_1"]) == {"r_1": 0}
    assert await store.join("r_2", member("carol"), 10) == JoinOutcome(JoinStatus.JOINED, [member("carol")], 1)


async def test_counts_are_per_room_and_zero_for_unknown_rooms(store: PresenceStore) -> None:
    # given
    await store.join("r_1", member("alice"), 10)
    await store.join("r_1", member("bob"), 10)
    await store.join("r_2", member("carol"), 10)
    # when
    counts = await store.counts(["r_1", "r_2", "r_3"])
    # then
    assert counts == {"r_1": 2, "r_2": 1, "r_3": 0}
    assert await store.counts([]) == {}


async def test_stats_count_connections_participants_active_rooms_and_instances(store: PresenceStore) -> None:
    # given two instances, three connections, two of them in one room and one in another
    await store.register_instance(INSTANCE, TTL_MS)
    await store.register_instance(OTHER_INSTANCE, TTL_MS)
    for name, instance in (("alice", INSTANCE), ("bob", INSTANCE), ("carol", OTHER_INSTANCE), ("dave", OTHER_INSTANCE)):
        await store.add_connection(instance, f"c-{name}", f"agent-{name}")
    await store.join("r_1", member("alice"), 10)
    await store.join("r_1", member("carol", instance=OTHER_INSTANCE), 10)
    await store.join("r_2", member("bob"), 10)
    # when
    before = await store.stats()
    await store.leave("r_2", "c-bob")
    await store.remove_connection(INSTANCE, "c-bob")
    after = await store.stats()
    # then
    assert before == PresenceStats(connections=4, participants=3, active_rooms=2, instances=2)
    assert after == PresenceStats(connections=3, participants=2, active_rooms=1, instances=2)


async def test_unregistered_instance_drops_out_of_stats(store: PresenceStore) -> None:
    # given
    await store.register_instance(INSTANCE, TTL_MS)
    await store.register_instance(OTHER_INSTANCE, TTL_MS)
    await store.add_connection(OTHER_INSTANCE, "c-carol", "agent-carol")
    # when
    await store.unregister_instance(OTHER_INSTANCE)
    # then
    assert await store.stats() == PresenceStats(connections=0, participants=0, active_rooms=0, instances=1)


async def test_participant_round_trips_through_storage_form() -> None:
    # given
    alice = member("alice", is_muted=True)
    # when
    loaded = Participant.loads(alice.dumps())
    # then
    assert loaded == alice
    assert loaded.to_wire() == {
        "clientId": "c-alice",
        "agentId": "agent-alice",
        "joinedAt": "2026-11-26T15:00:00.000001Z",
        "muted": True,
    }


async def test_ping_answers(store: PresenceStore) -> None:
    # when
    await store.ping()
    # then it returned: the store answers


async def test_register_instance_tells_whether_it_was_registered(store: PresenceStore) -> None:
    # given / when
    first = await store.register_instance(INSTANCE, TTL_MS)
    again = await store.register_instance(INSTANCE, TTL_MS)
    await store.unregister_instance(INSTANCE)
    after_removal = await store.register_instance(INSTANCE, TTL_MS)
    # then
    assert (first, again, after_removal) == (True, False, True)


async def test_instance_reaped_while_alive_restores_its_members_and_connections() -> None:
    # given: an instance on Redis presence with one local member in a room, wrongly reaped by a peer
    if not redis_answers():
        pytest.skip(REDIS_SKIP_REASON)
    from types import SimpleNamespace

    from signaling.service.instance import Instance

    prefix = f"itest-{uuid.uuid4().hex}"
    presence = RedisPresence(REDIS_URL, prefix=prefix)
    instance = Instance(presence, is_clustered=True)
    instance.instance_id = instance.delivery.inbox = INSTANCE
    alice = member("alice")
    sent: list[str] = []

    async def send_sio_text(text: str) -> None:
        sent.append(text)

    conn = SimpleNamespace(
        state=SimpleNamespace(client_id=alice.client_id, agent_id=alice.agent_id, participant=alice),
        send_sio_text=send_sio_text,
    )
    instance.sockets[alice.client_id] = conn  # type: ignore[assignment]
    try:
        await presence.register_instance(INSTANCE, TTL_MS)
        await presence.add_connection(INSTANCE, alice.client_id, alice.agent_id)
        await presence.join("r_1", alice, 4)
        async with instance.membership.room("r_1") as view:
            view.local[alice.client_id] = conn  # type: ignore[assignment]
            view.learn_joined(alice)
        reaped = await presence.reap_instance(INSTANCE)
        assert [room_id for room_id, _ in reaped] == ["r_1"]
        assert await presence.members("r_1") == []
        # when: the instance's next sweeper pass finds itself unregistered
        assert await presence.register_instance(INSTANCE, TTL_MS) is True
        await instance.sweeper.reconcile()
        # then: its member and connection are back, and alice was told nothing about herself
        assert await presence.members("r_1") == [alice]
        assert await presence.stats() == PresenceStats(connections=1, participants=1, active_rooms=1, instances=1)
        assert sent == []
    finally:
        cleaner = redis.asyncio.Redis.from_url(REDIS_URL)
        keys = [key async for key in cleaner.scan_iter(match=f"{prefix}:*")]
        if keys:
            await cleaner.delete(*keys)
        await cleaner.aclose()
        await presence.aclose()
