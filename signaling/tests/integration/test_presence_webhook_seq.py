"""Webhook ``seq`` numbers reserved in presence (SPEC section 10): MemoryPresence and RedisPresence.

The numbers are taken in the same atomic operation as the membership change, so a room's
events are numbered in the order the changes happened, whichever instance made them: a
join answers ``SEQ_UNKNOWN`` until the room's last ``seq`` is loaded from the database; the
first join also takes ``room.started``'s number; a replacing join takes one per replaced
socket first; a leave and a ban take what they are asked for; concurrent joins never share
a number; without a counter nothing is reserved (0). The ``store`` fixture (both stores,
the Redis one skipped only without Redis) comes from ``test_presence_stores``.
"""

from __future__ import annotations

import asyncio

from signaling.presence import DUPLICATE_REPLACE, JoinStatus, Participant, PresenceStore
from signaling.tests.integration.test_presence_stores import INSTANCE, store  # noqa: F401

NOW_MS = 1_800_000_000_000
CAP = 100


def member(client_id: str, agent_id: str) -> Participant:
    return Participant(client_id, agent_id, "2026-12-02T01:00:00.000Z", False, INSTANCE)


async def test_a_join_with_events_waits_for_the_counter_then_numbers_started_and_joined(store: PresenceStore) -> None:  # noqa: F811
    # given room.created (seq 1) written, bans loaded
    await store.load_bans("r1", {})
    # when
    unknown = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS, with_events=True)
    nobody = await store.members("r1")
    await store.load_seq("r1", 1)
    first = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS, with_events=True)
    second = await store.join("r1", member("c2", "agent-b"), CAP, now_ms=NOW_MS, with_events=True)
    # then
    assert unknown.status is JoinStatus.SEQ_UNKNOWN and nobody == []
    assert (first.status, first.seq, first.is_room_start) == (JoinStatus.JOINED, 2, True)  # started 2, joined 3
    assert (second.status, second.seq, second.is_room_start) == (JoinStatus.JOINED, 4, False)


async def test_leaves_bans_and_the_close_take_the_next_numbers(store: PresenceStore) -> None:  # noqa: F811
    await store.load_bans("r1", {})
    await store.load_seq("r1", 1)
    for client_id, agent_id in (("c1", "agent-a"), ("c2", "agent-b"), ("c3", "agent-b")):
        await store.join("r1", member(client_id, agent_id), CAP, now_ms=NOW_MS, with_events=True)  # 2-3, 4, 5
    # when
    left = await store.leave("r1", "c1", events=1)
    banned = await store.ban("r1", "agent-b", NOW_MS + 60_000, events_each=2)
    await store.mark_closed("r1")
    closed = await store.reserve_seq("r1", 1)
    # then
    assert left is not None and left.seq == 6
    assert (len(banned.removed), banned.seq) == (2, 7)  # kicked+left 7-8, kicked+left 9-10
    assert closed == 11


async def test_a_replacing_join_numbers_the_replaced_sockets_left_first(store: PresenceStore) -> None:  # noqa: F811
    await store.load_bans("r1", {})
    await store.load_seq("r1", 1)
    await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS, with_events=True)  # 2-3
    outcome = await store.join(
        "r1", member("c2", "agent-a"), CAP, duplicate=DUPLICATE_REPLACE, now_ms=NOW_MS, with_events=True
    )
    assert [p.client_id for p in outcome.replaced] == ["c1"]
    assert (outcome.seq, outcome.is_room_start) == (4, False)  # c1 left 4, c2 joined 5
    assert await store.reserve_seq("r1", 1) == 6


async def test_concurrent_joins_never_share_a_number(store: PresenceStore) -> None:  # noqa: F811
    await store.load_bans("r1", {})
    await store.load_seq("r1", 1)
    outcomes = await asyncio.gather(
        *(store.join("r1", member(f"c{i}", f"agent-{i}"), CAP, now_ms=NOW_MS, with_events=True) for i in range(20))
    )
    taken = sorted(n for o in outcomes for n in range(o.seq, o.seq + 1 + o.is_room_start))
    assert taken == list(range(2, 23))  # 21 numbers: room.started and 20 joins, no gap, no repeat


async def test_nothing_is_reserved_without_a_counter_or_without_events(store: PresenceStore) -> None:  # noqa: F811
    await store.load_bans("r1", {})
    quiet = await store.join("r1", member("c1", "agent-a"), CAP, now_ms=NOW_MS)
    left = await store.leave("r1", "c1", events=1)  # the counter was never loaded (a Redis restart)
    assert (quiet.status, quiet.seq) == (JoinStatus.JOINED, 0)
    assert left is not None and left.seq == 0
    assert await store.reserve_seq("r1", 1) == 0
    # and a counter presence holds is not lowered by a late load
    await store.load_seq("r1", 7)
    await store.load_seq("r1", 3)
    assert await store.reserve_seq("r1", 1) == 8
