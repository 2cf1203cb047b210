"""The join policies of open rooms, cached per instance (SPEC section 4).

Owns the cache of each open room's wire representation (``participantCount`` 0) and join
policy, so that a join costs no database query once the room is known here. Filled when
REST creates a room on this instance or on the first join; dropped when the room closes
(locally, or on any instance through the room's close broadcast). A closed room is never
cached: a join of a room closed elsewhere is refused by presence's closed set. That set lives
in Redis: when Redis lost its data (this instance found itself unregistered), the whole cache
is dropped, so every room is read from the database again and a room closed before the loss
is refused from its row (issue 11).
"""

from __future__ import annotations

from typing import Any

from rooms import occupancy
from rooms.serializers import room_representation
from signaling.service.database import run_db
from signaling.service.errors import ErrorCode, SignalingError

PolicyEntry = tuple[dict[str, Any], occupancy.RoomPolicy]


class RoomPolicies:
    """Room id -> (representation, policy) of open rooms this instance has seen."""

    def __init__(self) -> None:
        self._entries: dict[str, PolicyEntry] = {}

    def remember(self, room: Any) -> PolicyEntry:
        """Cache a loaded room (if open) and return its entry."""
        entry = (room_representation(room, participant_count=0), occupancy.policy_of(room))
        if not room.is_closed:
            self._entries[room.id] = entry
        return entry

    def forget_all(self) -> None:
        """Presence may have lost its closed set: the next join of every room reads the database."""
        self._entries.clear()

    def forget(self, room_id: str) -> None:
        """The room closed or changed: the next join reads the database."""
        self._entries.pop(room_id, None)

    async def get(self, room_id: str) -> PolicyEntry:
        """The room's entry, from the cache or the database.

        Raises:
            SignalingError: `room_not_found` when no room has that id.
        """
        entry = self._entries.get(room_id)
        if entry is not None:
            return entry
        room = await run_db(occupancy.load_room, room_id)
        if room is None:
            raise SignalingError(ErrorCode.ROOM_NOT_FOUND, "no room has that id")
        return self.remember(room)
