"""Live data and actions for the REST layer (rooms/ views and admin), as sync calls.

DRF views run in worker threads; each function here runs its coroutine on the server's
event loop (``async_to_sync``), where the instance and presence live. Cluster-wide: presence
is shared through Redis when ``REDIS_URL`` is set.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from signaling.presence import HELD
from signaling.service import closing
from signaling.service.instance import get_instance


@async_to_sync
async def room_participants(room_id: str) -> list[dict[str, Any]]:
    """`[{clientId, agentId, joinedAt, muted, connected}]` of everyone in the room, oldest
    first; ``connected`` is false for a member held for recovery (its transport is lost)."""
    members = await get_instance().presence.members(room_id)
    return [{**m.to_wire(), "connected": m.instance_id != HELD} for m in sorted(members, key=lambda m: m.joined_at)]


@async_to_sync
async def participant_count(room_id: str) -> int:
    """How many sockets are in the room, cluster-wide."""
    return (await get_instance().presence.counts([room_id])).get(room_id, 0)


@async_to_sync
async def participant_counts(room_ids: list[str]) -> dict[str, int]:
    """Live counts for many rooms in one round trip."""
    return await get_instance().presence.counts(list(room_ids))


@async_to_sync
async def cluster_stats() -> dict[str, int]:
    """`{connections, participants, activeRooms, instances}` across the cluster."""
    stats = await get_instance().presence.stats()
    return {
        "connections": stats.connections,
        "participants": stats.participants,
        "activeRooms": stats.active_rooms,
        "instances": stats.instances,
    }


@async_to_sync
async def room_closed(room_id: str, reason: str) -> None:
    """The row is closed already: presence and every member follow (`room_closed`)."""
    await closing.room_closed(get_instance(), room_id, reason)


def remember_room(room: Any) -> None:
    """A room was just created here: its first join needs no database read (policy cached,
    presence told it has no bans)."""
    get_instance().room_created(room)


@async_to_sync
async def check_ready() -> None:
    """Raise when presence or the channel layer does not answer."""
    instance = get_instance()
    await instance.presence.ping()
    await instance.delivery.probe()
