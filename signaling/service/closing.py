"""Closing a room: the one path, whatever the reason (SPEC sections 2 and 4).

The row is closed by ``rooms.services.close_room_row`` (the only writer of ``closed_at``); then
:func:`room_closed` makes presence and every socket follow. REST DELETE and the admin close
the row in their own transaction and call :func:`room_closed` on commit; the sweeper calls
:func:`close_room`, which does both. The order makes every step atomic where instances race:

1. ``expired`` only: presence closes the room *if it is empty*, in one operation that
   joins also go through, so an expiry and a join cannot both win. An occupied room gets
   its expiry cancelled instead (an occupancy mark with presence's version).
2. The database row closes once (``UPDATE ... WHERE closed_at IS NULL``): exactly one
   caller in the cluster wins and goes on.
3. Presence marks the room closed (joins refused from now on) and drops its members.
4. Every member, on every instance, gets `room_closed` and is out of the room.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rooms import occupancy, webhooks
from rooms import services as room_services
from rooms.enums import CloseReason
from rooms.models import Room
from signaling.protocol import encode_event
from signaling.service import events, payloads
from signaling.service.database import run_db
from signaling.service.occupancy_marks import DATABASE_DOWN

if TYPE_CHECKING:
    from signaling.service.instance import Instance

logger = logging.getLogger(__name__)


class RoomNotFound(Exception):
    """No room has that id."""


async def close_room(instance: Instance, room_id: str, reason: CloseReason | str) -> bool:
    """Close a room everywhere; True when this call closed it.

    Raises:
        RoomNotFound: no room has that id.
        ValueError: ``reason`` is not a close reason.
    """
    reason = CloseReason(reason)
    if reason is CloseReason.EXPIRED:
        version = await instance.presence.mark_closed_if_empty(room_id)
        if version:
            await instance.occupancy.write(occupancy.cancel_expiry, room_id, version)
            return False
    try:
        room = await run_db(room_services.close_room_row, room_id, reason)
    except Room.DoesNotExist as exc:
        raise RoomNotFound(room_id) from exc
    if room is None:
        return False
    await room_closed(instance, room_id, reason)
    return True


async def room_closed(instance: Instance, room_id: str, reason: str) -> None:
    """The row is closed: presence refuses joins, every member everywhere gets `room_closed`."""
    members = await instance.presence.mark_closed(room_id)
    logger.info("room %s closed (%s), %d participants out", room_id, reason, len(members))
    if instance.webhooks.is_enabled:
        await number_room_closed(instance, room_id)
    text = encode_event(events.ROOM_CLOSED, payloads.room_closed(room_id, reason))
    await close_here(instance, room_id, text)
    await instance.delivery.to_room(room_id, {"type": "room.closed", "text": text})


async def number_room_closed(instance: Instance, room_id: str) -> None:
    """Give the room's ``room.closed`` event (written unnumbered with the close) the last
    number: presence closed the room, no change can take a later one. Lost (an outage, a
    crash): the delivery worker numbers it after ``rooms.webhooks.GAP_S``."""
    seq = await instance.presence.reserve_seq(room_id, 1)
    try:
        await run_db(webhooks.number_room_closed, room_id, seq)
    except DATABASE_DOWN as exc:
        logger.warning("room %s: room.closed not numbered (%s); numbered later", room_id, exc)


async def close_here(instance: Instance, room_id: str, text: str) -> None:
    """The room closed (here or on another instance): its local sockets get ``text``
    (`room_closed`) and are out of it; the instance unsubscribes."""
    instance.policies.forget(room_id)
    view = instance.membership.close(room_id)
    if view is None:
        return
    if view.is_subscribed:
        view.is_subscribed = False
        await instance.delivery.unsubscribe(room_id)
    for conn in list(view.local.values()):
        state = conn.state
        if state is not None and state.room_id == room_id:
            state.room_id, state.participant = None, None
        await conn.send_sio_text(text)


async def close_due_rooms(instance: Instance) -> None:
    """Close every room whose maxDuration or empty timeout has passed (sweeper)."""
    for room_id, reason in await run_db(occupancy.due_rooms):
        try:
            await close_room(instance, room_id, reason)
        except RoomNotFound:
            continue
