"""Room persistence and lifecycle: create and close (SPEC sections 2 and 4).

Owns every lifecycle write to ``Room`` rows. Writes are single atomic statements or run in
``transaction.atomic()``; callers that must tell sockets about a change (``room_closed``)
do so from ``transaction.on_commit`` in their own layer.

Never imports ``signaling``: the signaling service imports this module, not the reverse.
The signaling service adds first-join / empty / expiry functions here. ``room.created`` and
``room.closed`` webhook events are written in the transaction of the change (``rooms.webhooks``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from rooms import webhooks
from rooms.enums import CloseReason, RoomType
from rooms.models import Room, RoomBan


def effective_max_participants(room: Room) -> int:
    """The room's cap: its own ``maxParticipants``, never above the current ``MAX_PARTICIPANTS``."""
    return min(room.max_participants, settings.SIGNALING.max_participants)


def empty_room_deadline(since: datetime) -> datetime:
    """When a room that has been empty since ``since`` closes (``ROOM_TIMEOUT``, SPEC section 4)."""
    return since + timedelta(milliseconds=settings.SIGNALING.room_timeout_ms)


def create_room(
    *,
    name: str,
    room_type: RoomType | str,
    created_by: str,
    mute_on_entry: bool = False,
    allow_recording: bool = False,
    max_duration_min: int | None = None,
    max_participants: int | None = None,
    duplicate_identity: str = "allow",
) -> Room:
    """Create an open room; nobody has joined it, so it expires ``ROOM_TIMEOUT`` after creation.

    Args:
        name: display name, already trimmed and validated.
        room_type: ``voice`` or ``video``.
        created_by: the creator's agent id.
        mute_on_entry: joiners start muted.
        allow_recording: stored for clients; the server does not record.
        max_duration_min: minutes after the first join at which the room closes; None: no limit.
        max_participants: per-room cap; None: ``MAX_PARTICIPANTS``.
        duplicate_identity: ``allow``, ``reject`` or ``replace`` (SPEC section 9).
    """
    now = timezone.now()
    with transaction.atomic():
        room = Room.objects.create(
            name=name,
            type=RoomType(room_type).value,
            created_by=created_by,
            mute_on_entry=mute_on_entry,
            allow_recording=allow_recording,
            max_duration_min=max_duration_min,
            max_participants=max_participants or settings.SIGNALING.max_participants,
            created_at=now,
            expires_at=empty_room_deadline(now),
            duplicate_identity=duplicate_identity,
        )
        webhooks.record_room_created(room)  # the outbox row commits with the room's (SPEC 10)
    return room


def close_room_row(room_id: str, reason: CloseReason | str) -> Room | None:
    """Close an open room, once, whoever else tries at the same time.

    One ``UPDATE ... WHERE closed_at IS NULL``: of concurrent callers exactly one wins.
    Callers announce the closure from ``transaction.on_commit``.

    Args:
        room_id: the room.
        reason: ``deleted``, ``max_duration`` or ``expired``.

    Returns:
        The closed room if this call closed it; None if it was already closed.

    Raises:
        Room.DoesNotExist: no room has that id.
    """
    close_reason = CloseReason(reason).value
    with transaction.atomic():
        closed = Room.objects.filter(pk=room_id, closed_at__isnull=True).update(
            closed_at=timezone.now(), close_reason=close_reason
        )
        if not closed:
            if not Room.objects.filter(pk=room_id).exists():
                raise Room.DoesNotExist(f"no room {room_id!r}")
            return None
        webhooks.record_room_closed(room_id, close_reason)  # commits with the close (SPEC 10)
        return Room.objects.get(pk=room_id)


# REST/admin setting keys -> Room fields (SPEC section 2 names; section 9 adds duplicateIdentity).
SETTING_FIELDS = {
    "muteOnEntry": "mute_on_entry",
    "allowRecording": "allow_recording",
    "maxDuration": "max_duration_min",
    "maxParticipants": "max_participants",
    "duplicateIdentity": "duplicate_identity",
}


def update_room(
    room_id: str, *, name: str | None = None, settings_changes: dict[str, Any] | None = None
) -> Room | None:
    """Change an open room's name and/or settings (already validated), in one transaction.

    Returns:
        The updated room; None when the room is closed (nothing changed).

    Raises:
        Room.DoesNotExist: no room has that id.
    """
    with transaction.atomic():
        room = Room.objects.select_for_update().get(pk=room_id)
        if room.is_closed:
            return None
        fields = []
        if name is not None:
            room.name = name
            fields.append("name")
        for key, value in (settings_changes or {}).items():
            setattr(room, SETTING_FIELDS[key], value)
            fields.append(SETTING_FIELDS[key])
        if fields:
            room.save(update_fields=fields)
        return room


def ban_agent(room_id: str, agent_id: str, seconds: int, reason: str = "") -> RoomBan:
    """Keep ``agent_id`` out of the room for ``seconds`` (replacing an earlier ban of it)."""
    until = timezone.now() + timedelta(seconds=seconds)
    ban, _ = RoomBan.objects.update_or_create(
        room_id=room_id, agent_id=agent_id, defaults={"until": until, "reason": reason}
    )
    return ban


def lift_ban(room_id: str, agent_id: str) -> bool:
    """Lift a ban that has not ended; False when there is none."""
    deleted, _ = RoomBan.objects.active().filter(room_id=room_id, agent_id=agent_id).delete()
    RoomBan.objects.filter(room_id=room_id, agent_id=agent_id, until__lte=timezone.now()).delete()
    return bool(deleted)


def active_bans(room_id: str) -> list[RoomBan]:
    """The room's bans that have not ended, soonest end first."""
    return list(RoomBan.objects.active().filter(room_id=room_id).order_by("until", "agent_id"))


def is_banned(room_id: str, agent_id: str) -> bool:
    """True while a ban keeps ``agent_id`` out of the room."""
    return RoomBan.objects.active().filter(room_id=room_id, agent_id=agent_id).exists()
