"""Room lifecycle in-process: close, ROOM_TIMEOUT expiry, maxDuration (SPEC section 4).

Deadlines are moved by writing the row (``expires_at`` / ``closes_at`` in the past) and the
sweep is run by hand (``closing.close_due_rooms``): no sleeping.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from rooms.tests.fixtures import ANY_TEXT
from signaling.service import closing
from signaling.service.instance import get_instance
from signaling.tests.integration.fixtures import Harness

pytestmark = pytest.mark.django_db(transaction=True)

AN_HOUR_AGO = timedelta(hours=1)


def refused(code: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": ANY_TEXT}}


async def test_close_room_tells_members_room_closed_and_puts_them_out(
    signaling: Harness, open_room: Any, room_row: Any
) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert (await alice.event())[0] == "user_joined"
    # when
    is_closed = await closing.close_room(get_instance(), room.id, "deleted")
    # then
    assert is_closed is True
    assert await alice.event() == ("room_closed", {"roomId": room.id, "reason": "deleted"})
    assert await bob.event() == ("room_closed", {"roomId": room.id, "reason": "deleted"})
    assert await alice.call("offer", {"to": bob.client_id, "sdp": "v=0"}) == refused("not_in_room")
    assert await bob.call("leave_room", {}) == refused("not_in_room")
    assert await bob.receive_nothing()
    row = await room_row(room.id)
    assert row.closed_at is not None
    assert row.close_reason == "deleted"


async def test_closed_room_refuses_rejoin(signaling: Harness, open_room: Any) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    await closing.close_room(get_instance(), room.id, "deleted")
    assert await alice.event() == ("room_closed", {"roomId": room.id, "reason": "deleted"})
    # when
    reply = await alice.call("join_room", {"roomId": room.id})
    # then
    assert reply == refused("room_closed")


async def test_closing_a_closed_room_again_does_nothing(signaling: Harness, open_room: Any, room_row: Any) -> None:
    # given
    room = await open_room()
    alice = await signaling.connect("agent-alice")
    assert await closing.close_room(get_instance(), room.id, "deleted") is True
    closed_at = (await room_row(room.id)).closed_at
    # when
    is_closed = await closing.close_room(get_instance(), room.id, "expired")
    # then
    assert is_closed is False
    row = await room_row(room.id)
    assert (row.closed_at, row.close_reason) == (closed_at, "deleted")
    assert await alice.receive_nothing()


async def test_room_empty_past_room_timeout_closes_as_expired(
    signaling: Harness, open_room: Any, room_row: Any, update_room: Any, signaling_config: Callable[..., None]
) -> None:
    # given a room someone joined and left: it expires ROOM_TIMEOUT after the last leave
    signaling_config(room_timeout_ms=60_000)
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    assert await alice.call("leave_room", {}) == {"ok": True, "roomId": room.id}
    left = await room_row(room.id)
    assert left.expires_at is not None and left.closed_at is None
    await update_room(room.id, expires_at=timezone.now() - AN_HOUR_AGO)
    # when
    await closing.close_due_rooms(get_instance())
    # then
    row = await room_row(room.id)
    assert row.closed_at is not None
    assert row.close_reason == "expired"
    assert await alice.receive_nothing()
    assert await alice.call("join_room", {"roomId": room.id}) == refused("room_closed")


async def test_room_nobody_joined_expires_counting_from_creation(
    signaling: Harness, open_room: Any, room_row: Any, update_room: Any, signaling_config: Callable[..., None]
) -> None:
    # given
    signaling_config(room_timeout_ms=60_000)
    room = await open_room()
    created = await room_row(room.id)
    assert created.expires_at == created.created_at + timedelta(milliseconds=60_000)
    await update_room(room.id, expires_at=timezone.now() - AN_HOUR_AGO)
    await signaling.connect("agent-alice")  # starts the instance
    # when
    await closing.close_due_rooms(get_instance())
    # then
    row = await room_row(room.id)
    assert (row.closed_at is not None, row.close_reason) == (True, "expired")


async def test_expired_but_occupied_room_stays_open_and_expiry_is_cleared(
    signaling: Harness, open_room: Any, room_row: Any, update_room: Any
) -> None:
    # given
    room = await open_room()
    alice = await signaling.in_room("agent-alice", room.id)
    await update_room(room.id, expires_at=timezone.now() - AN_HOUR_AGO)
    # when
    await closing.close_due_rooms(get_instance())
    # then
    row = await room_row(room.id)
    assert (row.closed_at, row.expires_at) == (None, None)
    assert await alice.receive_nothing()
    bob = await signaling.in_room("agent-bob", room.id)
    assert await alice.event() == (
        "user_joined",
        {"roomId": room.id, "clientId": bob.client_id, "agentId": "agent-bob", "muted": False},
    )


async def test_first_join_starts_max_duration(signaling: Harness, open_room: Any, room_row: Any) -> None:
    # given
    room = await open_room(max_duration_min=5)
    # when
    await signaling.in_room("agent-alice", room.id)
    # then
    row = await room_row(room.id)
    assert row.first_joined_at is not None
    assert row.closes_at == row.first_joined_at + timedelta(minutes=5)
    assert row.expires_at is None


async def test_room_past_max_duration_closes_with_reason_max_duration(
    signaling: Harness, open_room: Any, room_row: Any, update_room: Any
) -> None:
    # given
    room = await open_room(max_duration_min=5)
    alice = await signaling.in_room("agent-alice", room.id)
    bob = await signaling.in_room("agent-bob", room.id)
    assert (await alice.event())[0] == "user_joined"
    await update_room(room.id, closes_at=timezone.now() - AN_HOUR_AGO)
    # when
    await closing.close_due_rooms(get_instance())
    # then
    assert await alice.event() == ("room_closed", {"roomId": room.id, "reason": "max_duration"})
    assert await bob.event() == ("room_closed", {"roomId": room.id, "reason": "max_duration"})
    row = await room_row(room.id)
    assert (row.closed_at is not None, row.close_reason) == (True, "max_duration")
    assert await alice.call("offer", {"sdp": "v=0"}) == refused("not_in_room")
    assert await bob.receive_nothing()


async def test_rooms_not_yet_due_are_left_alone(signaling: Harness, open_room: Any, room_row: Any) -> None:
    # given
    room = await open_room(max_duration_min=5)
    alice = await signaling.in_room("agent-alice", room.id)
    # when
    await closing.close_due_rooms(get_instance())
    # then
    assert (await room_row(room.id)).closed_at is None
    assert await alice.receive_nothing()
