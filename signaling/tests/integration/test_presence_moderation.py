"""Presence moderation operations: the same behaviour from MemoryPresence and RedisPresence (SPEC section 9).

Bans checked inside the join, a ban removing every socket of its agent in one operation,
bans unknown to presence until loaded (the database is their durable copy), the
``duplicateIdentity`` policies, and mutes. The ``store`` fixture (both stores, the Redis
one skipped only without Redis) comes from ``test_presence_stores``.
"""

from __future__ import annotations

import asyncio

from signaling.presence import (
    DUPLICATE_REJECT,
    DUPLICATE_REPLACE,
    BanOutcome,
    JoinStatus,
    Participant,
    PresenceStore,
)
from signaling.tests.integration.test_presence_stores import INSTANCE, OTHER_INSTANCE, store  # noqa: F401

NOW_MS = 1_800_000_000_000
CAP = 10


def member(client_id: str, agent_id: str, instance_id: str = INSTANCE) -> Participant:
    return Participant(client_id, agent_id, "2026-11-26T15:00:00.000Z", False, instance_id)


async def loaded(store: PresenceStore, room_id: str = "r1", bans: dict[str, int] | None = None) -> None:  # noqa: F811
    await store.load_bans(room_id, bans or {})


async def test_join_with_a_clock_answers_bans_unknown_until_the_bans_are_loaded(store: PresenceStore) -> None:  # noqa: F811
    # when
    first = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS)
    await loaded(store)
    second = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS)
    # then
    assert first.status is JoinStatus.BANS_UNKNOWN and first.members == []
    assert second.status is JoinStatus.JOINED
    assert await store.members("r1") == [member("c1", "agent-a")]


async def test_a_loaded_ban_refuses_the_agent_until_it_ends(store: PresenceStore) -> None:  # noqa: F811
    await loaded(store, bans={"agent-a": NOW_MS + 1000})
    refused = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS)
    other = await store.join("r1", member("c2", "agent-b"), CAP, now_ms=NOW_MS)
    after_end = await store.join("r1", member("c3", "agent-a"), CAP, now_ms=NOW_MS + 1000)
    assert (refused.status, other.status, after_end.status) == (JoinStatus.BANNED, JoinStatus.JOINED, JoinStatus.JOINED)


async def test_ban_removes_every_socket_of_the_agent_atomically(store: PresenceStore) -> None:  # noqa: F811
    # given
    await loaded(store)
    for participant in (member("c1", "agent-a"), member("c2", "agent-b"), member("c3", "agent-a", OTHER_INSTANCE)):
        await store.join("r1", participant, CAP, now_ms=NOW_MS)
    # when
    outcome = await store.ban("r1", "agent-a", NOW_MS + 60_000)
    # then
    assert isinstance(outcome, BanOutcome)
    assert sorted(p.client_id for p in outcome.removed) == ["c1", "c3"]
    assert outcome.remaining == 1 and outcome.version > 0
    assert await store.members("r1") == [member("c2", "agent-b")]
    assert await store.memberships(OTHER_INSTANCE) == []
    assert (await store.join("r1", member("c4", "agent-a"), CAP, now_ms=NOW_MS)).status is JoinStatus.BANNED


async def test_a_ban_recorded_before_the_load_survives_it(store: PresenceStore) -> None:  # noqa: F811
    # given: presence lost the room's bans; a new ban is recorded, then an older read is loaded
    await store.ban("r1", "agent-a", NOW_MS + 60_000)
    await loaded(store, bans={"agent-a": NOW_MS + 10, "agent-b": NOW_MS + 60_000})
    # when
    a = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS + 100)
    b = await store.join("r1", member("c2", "agent-b"), CAP, now_ms=NOW_MS + 100)
    # then
    assert (a.status, b.status) == (JoinStatus.BANNED, JoinStatus.BANNED)


async def test_lifting_a_ban_lets_the_agent_in(store: PresenceStore) -> None:  # noqa: F811
    await loaded(store, bans={"agent-a": NOW_MS + 60_000, "agent-b": NOW_MS + 60_000})
    await store.lift_ban("r1", "agent-a")
    a = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS)
    b = await store.join("r1", member("c2", "agent-b"), CAP, now_ms=NOW_MS)
    assert (a.status, b.status) == (JoinStatus.JOINED, JoinStatus.BANNED)


async def test_reject_refuses_a_second_socket_of_the_agent(store: PresenceStore) -> None:  # noqa: F811
    await loaded(store)
    await store.join("r1", member("c1", "agent-a"), CAP, duplicate=DUPLICATE_REJECT, now_ms=NOW_MS)
    second = await store.join("r1", member("c2", "agent-a"), CAP, duplicate=DUPLICATE_REJECT, now_ms=NOW_MS)
    assert second.status is JoinStatus.DUPLICATE
    assert await store.members("r1") == [member("c1", "agent-a")]


async def test_replace_hands_the_seat_over_in_one_operation_even_in_a_full_room(store: PresenceStore) -> None:  # noqa: F811
    # given a room at its cap of 2
    await loaded(store)
    await store.join("r1", member("c1", "agent-a", OTHER_INSTANCE), 2, duplicate=DUPLICATE_REPLACE, now_ms=NOW_MS)
    await store.join("r1", member("c2", "agent-b"), 2, duplicate=DUPLICATE_REPLACE, now_ms=NOW_MS)
    # when
    outcome = await store.join("r1", member("c3", "agent-a"), 2, duplicate=DUPLICATE_REPLACE, now_ms=NOW_MS)
    # then
    assert outcome.status is JoinStatus.JOINED
    assert outcome.replaced == [member("c1", "agent-a", OTHER_INSTANCE)]
    assert sorted(p.client_id for p in outcome.members) == ["c2", "c3"]
    assert await store.memberships(OTHER_INSTANCE) == []


async def test_concurrent_replacing_joins_leave_exactly_one_socket(store: PresenceStore) -> None:  # noqa: F811
    await loaded(store)
    outcomes = await asyncio.gather(
        *(
            store.join("r1", member(f"c{i}", "agent-a"), CAP, duplicate=DUPLICATE_REPLACE, now_ms=NOW_MS)
            for i in range(20)
        )
    )
    assert all(o.status is JoinStatus.JOINED for o in outcomes)
    assert len(await store.members("r1")) == 1
    assert sum(len(o.replaced) for o in outcomes) == 19


async def test_set_muted_changes_the_member_only(store: PresenceStore) -> None:  # noqa: F811
    await loaded(store)
    await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS)
    updated = await store.set_muted("r1", "c1", True)
    absent = await store.set_muted("r1", "nobody", True)
    assert updated is not None and updated.is_muted is True and absent is None
    assert await store.member("r1", "c1") == updated


async def test_a_join_without_a_clock_skips_bans_as_reconciliation_does(store: PresenceStore) -> None:  # noqa: F811
    await store.ban("r1", "agent-a", NOW_MS + 60_000)
    restored = await store.join("r1", member("c1", "agent-a"), CAP)
    assert restored.status is JoinStatus.JOINED
