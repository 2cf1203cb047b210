"""Room lifecycle decisions: close (deleted, max_duration, expired), empty and occupied rooms.

SPEC section 4. The database row records when and why a room closed; presence marks it
closed (joins refused atomically); every member, on every instance, gets `room_closed`.
Expiry is driven by each instance's sweeper reading the database, so a timer survives the
instance that started it.
"""

from __future__ import annotations

import logging

from rooms import lifecycle as room_rows
from rooms import services as room_services
from rooms.models import Room
from signaling.service.hub import Hub, get_hub, run_db

logger = logging.getLogger(__name__)


async def close_room(room_id: str, reason: str, *, hub: Hub | None = None, already_closed_in_db: bool = False) -> bool:
    """Close a room everywhere; True when this call closed it.

    Args:
        room_id: the room.
        reason: a RoomCloseReason value.
        hub: the process hub (default: this process's).
        already_closed_in_db: the caller (REST DELETE, admin) already wrote the row.
    """
    hub = hub or get_hub()
    if not already_closed_in_db:
        try:
            room = await run_db(room_services.close_room, room_id, reason)
        except Room.DoesNotExist:
            return False
        if room is None:
            return False
    hub.policies.pop(room_id, None)
    members = await hub.presence.close_room(room_id)
    had_remote = any(m.instance_id != hub.instance_id for m in members)
    logger.info("room %s closed (%s), %d participants out", room_id, reason, len(members))
    await hub.announce_closed(room_id, reason, had_remote=had_remote)
    return True


async def close_due_rooms(hub: Hub) -> None:
    """Close every room whose maxDuration or empty timeout has passed (sweeper)."""
    for room_id, reason in await run_db(room_rows.due_rooms):
        if reason == "expired" and (await hub.presence.counts([room_id])).get(room_id, 0) > 0:
            await run_db(room_rows.clear_expiry, room_id)
            continue
        await close_room(room_id, reason, hub=hub)


async def room_emptied(room_id: str) -> None:
    """The last participant left: arm the ROOM_TIMEOUT expiry."""
    await run_db(room_rows.mark_empty, room_id)


async def room_occupied(room_id: str, max_duration_min: int | None) -> None:
    """The first participant arrived: cancel expiry; the very first join starts maxDuration."""
    await run_db(room_rows.mark_occupied, room_id, max_duration_min)
