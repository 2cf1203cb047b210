"""Moderation calls for the REST layer and the admin (SPEC section 9), as sync calls.

Like :mod:`signaling.service.api`: DRF views and admin views run in worker threads; each
function here runs its coroutine on the server's event loop (``async_to_sync``), where the
instance and presence live. REST and the admin make exactly these calls.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync

from signaling.service import moderation
from signaling.service.instance import get_instance


@async_to_sync
async def kick(room_id: str, client_id: str, *, reason: str | None = None, ban_seconds: int | None = None) -> bool:
    """Kick a participant (and ban its agent for ``ban_seconds``); False when it is not in the room.

    Answers once the socket is out of the room on the instance holding it.
    """
    return await moderation.kick(get_instance(), room_id, client_id, reason=reason, ban_seconds=ban_seconds)


@async_to_sync
async def ban_lifted(room_id: str, agent_id: str) -> None:
    """The ban's row was deleted: presence lets the agent in again."""
    await moderation.ban_lifted(get_instance(), room_id, agent_id)


@async_to_sync
async def set_muted(room_id: str, client_id: str, *, is_muted: bool) -> dict[str, Any] | None:
    """Mute or unmute a participant: its `{clientId, agentId, joinedAt, muted}`, or None when absent."""
    updated = await moderation.set_muted(get_instance(), room_id, client_id, is_muted=is_muted)
    return None if updated is None else updated.to_wire()


@async_to_sync
async def room_updated(room_id: str) -> None:
    """The room's row changed: caches everywhere forget it, its members get `room_updated`."""
    await moderation.room_updated(get_instance(), room_id)
