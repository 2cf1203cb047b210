"""Room occupancy marks written by the signaling service (SPEC section 4).

Owns the writes that follow presence: a room becoming occupied (cancels the empty-room
expiry; the very first join starts ``maxDuration``) or empty (arms the expiry), the query
for rooms whose time is up, and the join policy the service caches. Never imports
``signaling``.

Marks from different instances can reach the database in any order. Each carries the
room's presence membership version (every join and leave increments it atomically in
presence) and applies only when newer than the last mark applied, so a late "empty" can
never overwrite a newer "occupied" (or the reverse).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from rooms.enums import CloseReason
from rooms.models import Room, RoomBan
from rooms.services import effective_max_participants, empty_room_deadline


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    """What the signaling service needs of a room to admit joiners."""

    room_id: str
    cap: int
    is_muted_on_entry: bool
    max_duration_min: int | None
    is_closed: bool
    close_reason: str
    duplicate_identity: str = "allow"


def policy_of(room: Room) -> RoomPolicy:
    """The join policy of a loaded room."""
    return RoomPolicy(
        room_id=room.id,
        cap=effective_max_participants(room),
        is_muted_on_entry=room.mute_on_entry,
        max_duration_min=room.max_duration_min,
        is_closed=room.is_closed,
        close_reason=room.close_reason,
        duplicate_identity=room.duplicate_identity,
    )


def active_bans_ms(room_id: str) -> dict[str, int]:
    """The room's bans that have not ended: agent id -> end (epoch ms), for presence."""
    return {
        agent_id: int(until.timestamp() * 1000)
        for agent_id, until in RoomBan.objects.active().filter(room_id=room_id).values_list("agent_id", "until")
    }


def load_room(room_id: str) -> Room | None:
    """The room, or None when no room has that id."""
    return Room.objects.filter(pk=room_id).first()


def mark_occupied(room_id: str, version: int, max_duration_min: int | None) -> None:
    """Someone is in the room (as of presence ``version``): no empty-room expiry; the first
    join ever starts maxDuration (that part holds whatever the order of marks)."""
    now = timezone.now()
    closes_at = None if max_duration_min is None else now + timedelta(minutes=max_duration_min)
    with transaction.atomic():
        Room.objects.filter(pk=room_id, closed_at__isnull=True, occupancy_version__lt=version).update(
            expires_at=None, occupancy_version=version
        )
        Room.objects.filter(pk=room_id, first_joined_at__isnull=True, closed_at__isnull=True).update(
            first_joined_at=now, closes_at=closes_at
        )


def mark_empty(room_id: str, version: int) -> None:
    """The room has nobody left (as of presence ``version``): it closes after ROOM_TIMEOUT."""
    Room.objects.filter(pk=room_id, closed_at__isnull=True, occupancy_version__lt=version).update(
        expires_at=empty_room_deadline(timezone.now()), occupancy_version=version
    )


def cancel_expiry(room_id: str, version: int) -> None:
    """An expiry found the room occupied at presence ``version``: cancel the expiry unless a
    newer mark (a later leave that emptied the room) was written meanwhile."""
    Room.objects.filter(pk=room_id, closed_at__isnull=True, occupancy_version__lte=version).update(
        expires_at=None, occupancy_version=version
    )


def due_rooms(now: datetime | None = None) -> list[tuple[str, CloseReason]]:
    """Open rooms whose maxDuration or empty-room timeout has passed, with the reason."""
    now = now or timezone.now()
    due = Room.objects.filter(closed_at__isnull=True).filter(Q(closes_at__lte=now) | Q(expires_at__lte=now))
    result = []
    for room_id, closes_at in due.values_list("id", "closes_at"):
        reason = CloseReason.MAX_DURATION if closes_at is not None and closes_at <= now else CloseReason.EXPIRED
        result.append((room_id, reason))
    return result


def room_presence_state(room_id: str) -> tuple[dict[str, int], int]:
    """What presence loads for a room: its active bans (:func:`active_bans_ms`) and the
    ``seq`` of its last webhook event written (0: none)."""
    last_seq = Room.objects.filter(pk=room_id).values_list("webhook_seq", flat=True).first()
    return active_bans_ms(room_id), int(last_seq or 0)
