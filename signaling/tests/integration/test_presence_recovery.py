"""Held sessions in presence (SPEC section 7): hold, keep, resume, expire; both stores.

The same ``store`` fixture as ``test_presence_stores.py``: MemoryPresence and RedisPresence
(a prefix of its own, skipped only when no Redis answers at 127.0.0.1:6379).
"""

from __future__ import annotations

from signaling.presence import HELD, HeldEvent, PresenceStore
from signaling.tests.integration.test_presence_stores import INSTANCE, OTHER_INSTANCE, TTL_MS, member, store

__all__ = ["store"]  # the fixture, shared with test_presence_stores

NOW_MS = 1_800_000_000_000
WINDOW_MS = 10_000
LIMITS = {"max_events": 4, "max_bytes": 10_000}


def event(n: int, size: int = 10) -> HeldEvent:
    offset = f"off{n}"
    return HeldEvent(offset, f'2["offer",{{"n":"{"x" * size}"}},"{offset}"]')


async def hold(store: PresenceStore, name: str, events: list[HeldEvent], *, reason: str = "disconnected") -> None:
    held = await store.hold(
        "r_1",
        f"c-{name}",
        pid=f"pid-{name}",
        reason=reason,
        events=events,
        deadline_ms=NOW_MS + WINDOW_MS,
        ttl_ms=TTL_MS,
        **LIMITS,
    )
    assert held is not None and held.instance_id == HELD


async def test_a_held_member_stays_in_its_room_and_out_of_its_instance(store: PresenceStore) -> None:
    # given
    await store.register_instance(INSTANCE, TTL_MS)
    await store.join("r_1", member("alice"), 10)
    await store.join("r_1", member("bob"), 10)
    # when
    await hold(store, "alice", [event(1)])
    # then
    members = {m.client_id: m.instance_id for m in await store.members("r_1")}
    assert members == {"c-alice": HELD, "c-bob": INSTANCE}
    assert await store.memberships(INSTANCE) == [("r_1", "c-bob")]
    assert await store.find_held("pid-alice") == ("c-alice", "r_1")
    assert (await store.stats()).participants == 2


async def test_hold_refuses_a_socket_that_is_not_a_live_member(store: PresenceStore) -> None:
    # given
    await store.join("r_1", member("alice"), 10)
    await hold(store, "alice", [])
    # when
    again = await store.hold(
        "r_1", "c-alice", pid="p2", reason="timeout", events=[], deadline_ms=NOW_MS, ttl_ms=TTL_MS, **LIMITS
    )
    stranger = await store.hold(
        "r_1", "c-zed", pid="p3", reason="timeout", events=[], deadline_ms=NOW_MS, ttl_ms=TTL_MS, **LIMITS
    )
    # then
    assert again is None and stranger is None


async def test_resume_hands_over_the_events_after_the_offset_in_order(store: PresenceStore) -> None:
    # given
    await store.join("r_1", member("alice"), 10)
    await hold(store, "alice", [event(1), event(2)])
    assert await store.keep("c-alice", event(3), **LIMITS) == ""
    assert await store.keep("c-alice", event(3), **LIMITS) == ""  # a duplicate (two paths) is kept once
    # when
    resumed = await store.resume(
        "pid-alice", "agent-alice", "off1", OTHER_INSTANCE, now_ms=NOW_MS + 1, forward_ttl_ms=TTL_MS
    )
    # then
    assert resumed is not None
    assert resumed.room_id == "r_1"
    assert resumed.participant.instance_id == OTHER_INSTANCE
    assert resumed.participant.joined_at == member("alice").joined_at
    assert resumed.missed == [event(2).text, event(3).text]
    assert await store.memberships(OTHER_INSTANCE) == [("r_1", "c-alice")]
    assert await store.member("r_1", "c-alice") == resumed.participant
    # a late event is for the resuming instance now, and the pid does not resume twice
    assert await store.keep("c-alice", event(4), **LIMITS) == OTHER_INSTANCE
    again = await store.resume("pid-alice", "agent-alice", "off3", INSTANCE, now_ms=NOW_MS + 2, forward_ttl_ms=TTL_MS)
    assert again is None


async def test_resume_refuses_a_foreign_agent_an_unknown_offset_or_an_ended_window(store: PresenceStore) -> None:
    # given
    await store.join("r_1", member("alice"), 10)
    await hold(store, "alice", [event(1)])
    # when
    foreign = await store.resume("pid-alice", "agent-eve", "off1", INSTANCE, now_ms=NOW_MS, forward_ttl_ms=TTL_MS)
    unknown = await store.resume("pid-alice", "agent-alice", "nope", INSTANCE, now_ms=NOW_MS, forward_ttl_ms=TTL_MS)
    late = await store.resume(
        "pid-alice", "agent-alice", "off1", INSTANCE, now_ms=NOW_MS + WINDOW_MS, forward_ttl_ms=TTL_MS
    )
    no_pid = await store.resume("pid-bob", "agent-alice", "off1", INSTANCE, now_ms=NOW_MS, forward_ttl_ms=TTL_MS)
    # then: none resumed, and the session is still held
    assert foreign is None and unknown is None and late is None and no_pid is None
    assert (await store.member("r_1", "c-alice")).instance_id == HELD  # type: ignore[union-attr]


async def test_the_log_is_bounded_oldest_first(store: PresenceStore) -> None:
    # given: four events at most
    await store.join("r_1", member("alice"), 10)
    await hold(store, "alice", [event(1), event(2), event(3)])
    # when
    for n in (4, 5):
        await store.keep("c-alice", event(n), **LIMITS)
    # then: off1 went first, so a client that saw only off1 cannot resume; off2 can
    lost = await store.resume("pid-alice", "agent-alice", "off1", INSTANCE, now_ms=NOW_MS, forward_ttl_ms=TTL_MS)
    assert lost is None
    resumed = await store.resume("pid-alice", "agent-alice", "off2", INSTANCE, now_ms=NOW_MS, forward_ttl_ms=TTL_MS)
    assert resumed is not None and resumed.missed == [event(n).text for n in (3, 4, 5)]


async def test_the_log_is_bounded_in_bytes(store: PresenceStore) -> None:
    # given
    await store.join("r_1", member("alice"), 10)
    await hold(store, "alice", [event(1, size=4000), event(2, size=4000)])
    # when: a third of 4000 bytes passes the 10000-byte bound
    await store.keep("c-alice", event(3, size=4000), **LIMITS)
    # then
    resumed = await store.resume("pid-alice", "agent-alice", "off2", INSTANCE, now_ms=NOW_MS, forward_ttl_ms=TTL_MS)
    assert resumed is not None and resumed.missed == [event(3, size=4000).text]


async def test_expiry_removes_the_member_once_with_the_recorded_reason(store: PresenceStore) -> None:
    # given
    await store.join("r_1", member("alice"), 10)
    await store.join("r_1", member("bob"), 10)
    await hold(store, "alice", [event(1)], reason="timeout")
    # when
    early = await store.expire_held(NOW_MS + WINDOW_MS - 1)
    expired = await store.expire_held(NOW_MS + WINDOW_MS)
    again = await store.expire_held(NOW_MS + WINDOW_MS + 1)
    # then
    assert early == [] and again == []
    assert [(e.room_id, e.outcome.participant.client_id, e.outcome.remaining, e.reason) for e in expired] == [
        ("r_1", "c-alice", 1, "timeout")
    ]
    assert [m.client_id for m in await store.members("r_1")] == ["c-bob"]
    assert await store.find_held("pid-alice") is None
    assert await store.keep("c-alice", event(2), **LIMITS) is None


async def test_a_held_member_removed_meanwhile_neither_resumes_nor_expires_into_a_leave(store: PresenceStore) -> None:
    # given: held, then kicked (presence leave)
    await store.join("r_1", member("alice"), 10)
    await hold(store, "alice", [event(1)])
    left = await store.leave("r_1", "c-alice")
    assert left is not None
    # when
    resumed = await store.resume("pid-alice", "agent-alice", "off1", INSTANCE, now_ms=NOW_MS, forward_ttl_ms=TTL_MS)
    expired = await store.expire_held(NOW_MS + WINDOW_MS)
    # then
    assert resumed is None and expired == []


async def test_reaping_the_instance_that_held_it_leaves_the_held_member_alone(store: PresenceStore) -> None:
    # given
    await store.register_instance(INSTANCE, TTL_MS)
    await store.join("r_1", member("alice"), 10)
    await store.join("r_1", member("bob"), 10)
    await hold(store, "alice", [event(1)])
    # when
    await store.register_instance(INSTANCE, TTL_MS)
    await store.sync_connections(INSTANCE, {})
    reaped = await store.reap_instance(INSTANCE)
    # then: memory never reaps; Redis reaps bob only
    assert all(outcome.participant.client_id == "c-bob" for _, outcome in reaped)
    assert await store.member("r_1", "c-alice") is not None
