"""Room lifecycle marks written by the signaling service (SPEC section 4).

Owns the writes that follow presence: the first join (starts ``maxDuration``), a room
becoming occupied (cancels the empty-room expiry) or empty (arms it), and the query for
rooms whose time is up. Each write is one UPDATE. Never imports ``signaling``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from rooms.enums import CloseReason
from rooms.models import Room
from rooms.services import effective_max_participants, empty_room_deadline


@dataclass(frozen=True, slots=True)
class RoomPolicy:
    """What the signaling service needs of a room to admit joiners."""

    room_id: str
    cap: int
    is_muted_on_entry: bool
    is_closed: bool
    close_reason: str


def load_policy(room_id: str) -> tuple[Room, RoomPolicy] | None:
    """The room and its join policy, or None when no room has that id."""
    room = Room.objects.filter(pk=room_id).first()
    if room is None:
        return None
    policy = RoomPolicy(
        room_id=room.id,
        cap=effective_max_participants(room),
        is_muted_on_entry=room.mute_on_entry,
        is_closed=room.is_closed,
        close_reason=room.close_reason,
    )
    return room, policy


def mark_occupied(room_id: str) -> None:
    """Someone is in the room: no empty-room expiry; the first join starts maxDuration."""
    now = timezone.now()
    Room.objects.filter(pk=room_id, closed_at__isnull=True).update(expires_at=None)
    for room in Room.objects.filter(pk=room_id, first_joined_at__isnull=True, closed_at__isnull=True):
        closes_at = None
        if room.max_duration_min is not None:
            closes_at = now + timedelta(minutes=room.max_duration_min)
        Room.objects.filter(pk=room.pk, first_joined_at__isnull=True).update(
            first_joined_at=now, closes_at=closes_at
        )


def mark_empty(room_id: str) -> None:
    """The room has nobody left: it closes after ROOM_TIMEOUT unless someone joins."""
    Room.objects.filter(pk=room_id, closed_at__isnull=True).update(
        expires_at=empty_room_deadline(timezone.now())
    )


def clear_expiry(room_id: str) -> None:
    """An expiry found a room that is occupied after all: cancel it."""
    Room.objects.filter(pk=room_id, closed_at__isnull=True).update(expires_at=None)


def due_rooms(now: datetime | None = None) -> list[tuple[str, CloseReason]]:
    """Open rooms whose maxDuration or empty-room timeout has passed, with the reason."""
    now = now or timezone.now()
    due = Room.objects.filter(closed_at__isnull=True).filter(Q(closes_at__lte=now) | Q(expires_at__lte=now))
    result = []
    for room_id, closes_at in due.values_list("id", "closes_at"):
        reason = CloseReason.MAX_DURATION if closes_at is not None and closes_at <= now else CloseReason.EXPIRED
        result.append((room_id, reason))
    return result
