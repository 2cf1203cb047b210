"""Live data and actions for the REST layer (rooms/ views and admin), as sync calls.

DRF views run in worker threads; each function here runs its coroutine on the server's
event loop (``async_to_sync``), where the hub and presence live. Cluster-wide: presence
is shared through Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from signaling.service.hub import get_hub
from signaling.service.lifecycle import close_room


@async_to_sync
async def room_participants(room_id: str) -> list[dict[str, Any]]:
    """`[{clientId, agentId, joinedAt, muted}]` of everyone in the room, oldest first."""
    hub = get_hub()
    members = await hub.presence.members(room_id)
    return [m.to_wire() for m in sorted(members, key=lambda m: m.joined_at)]


@async_to_sync
async def participant_count(room_id: str) -> int:
    """How many sockets are in the room, cluster-wide."""
    hub = get_hub()
    return (await hub.presence.counts([room_id])).get(room_id, 0)


@async_to_sync
async def participant_counts(room_ids: list[str]) -> dict[str, int]:
    """Live counts for many rooms in one round trip."""
    hub = get_hub()
    return await hub.presence.counts(list(room_ids))


@async_to_sync
async def cluster_stats() -> dict[str, int]:
    """`{connections, participants, activeRooms, instances}` across the cluster."""
    hub = get_hub()
    stats = await hub.presence.stats()
    return {
        "connections": stats.connections,
        "participants": stats.participants,
        "activeRooms": stats.active_rooms,
        "instances": stats.instances,
    }


@async_to_sync
async def announce_room_closed(room_id: str, reason: str) -> None:
    """The row is closed already: tell every member (`room_closed`) and clear presence."""
    await close_room(room_id, reason, already_closed_in_db=True)


def remember_room(room: Any) -> None:
    """A room was just created here: cache its policy so the first join skips the database."""
    from signaling.service.sockets import remember_room as remember

    remember(get_hub(), room)


@async_to_sync
async def check_ready() -> None:
    """Raise when presence or the channel layer does not answer."""
    hub = get_hub()
    await hub.presence.ping()
    await hub.layer.group_send("readyz", {"type": "readyz.probe"})
