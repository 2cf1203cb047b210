"""The drain's close (``lifecycle.close_for_drain``, ``SERVER_SHUTTING_DOWN``) and the end of a
recovery window, in process (the real ASGI application, the memory presence store)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from rooms.tokens import mint_agent_token
from signaling.consumers.connection import Connection
from signaling.lifecycle import close_for_drain
from signaling.presence import HELD
from signaling.protocol import CloseReason
from signaling.service import offsets, recovery
from signaling.service.instance import get_instance
from signaling.tests.integration.fixtures import Harness

pytestmark = pytest.mark.django_db(transaction=True)


async def joined_raw(signaling: Harness, agent_id: str, room_id: str) -> str:
    """A websocket session in ``room_id`` (frames read by hand: events carry offsets); its id."""
    client = await signaling.ws()
    await client.send("40" + json.dumps({"token": mint_agent_token(agent_id)}))
    accepted = json.loads(str(await client.frame())[2:])
    await client.send("421" + json.dumps(["join_room", {"roomId": room_id}]))
    while not str(await client.frame()).startswith("431"):
        pass
    return str(accepted["sid"])


async def drain_every_session() -> int:
    """What a drain does to each live session; returns how many were closed."""
    conns = [conn for conn in Connection.registry.values() if not conn.is_finished]
    for conn in conns:
        await close_for_drain(conn)
    return len(conns)


async def test_drain_close_holds_every_member_and_the_window_end_removes_them(
    signaling: Harness, open_room: Any, signaling_config: Any
) -> None:
    # given
    signaling_config(recovery_window_ms=300)
    room = await open_room()
    ids = {await joined_raw(signaling, agent, room.id) for agent in ("agent-alice", "agent-bob")}
    instance = get_instance()
    # when
    closed = await drain_every_session()
    # then: both held, in the room, no connection left
    assert closed == 2
    members = await instance.presence.members(room.id)
    assert {m.client_id: m.instance_id for m in members} == dict.fromkeys(ids, HELD)
    stats = await instance.presence.stats()
    assert (stats.connections, stats.participants) == (0, 2)
    assert instance.sockets == {}
    # and when the window has ended, the sweep removes them
    await asyncio.sleep(0.4)
    assert await recovery.expire(instance) == 2
    assert await instance.presence.members(room.id) == []


async def test_drain_close_without_recovery_takes_members_out(
    signaling: Harness, open_room: Any, signaling_config: Any
) -> None:
    # given
    signaling_config(recovery_window_ms=0)
    room = await open_room()
    await joined_raw(signaling, "agent-alice", room.id)
    instance = get_instance()
    # when
    closed = await drain_every_session()
    # then
    assert closed == 1
    assert await instance.presence.members(room.id) == []


async def test_a_packet_that_reaches_a_closed_session_before_its_hold_is_kept_for_the_resume(
    signaling: Harness, open_room: Any, signaling_config: Any
) -> None:
    # given a member with recovery on whose transport is lost, the hold not yet run
    signaling_config(recovery_window_ms=30000)
    room = await open_room()
    client_id = await joined_raw(signaling, "agent-alice", room.id)
    conn = next(c for c in Connection.registry.values() if c.state is not None and c.state.client_id == client_id)
    instance = get_instance()
    closing = conn.session.close(CloseReason.TRANSPORT_CLOSE)
    # when a relay reaches it in between (a drain found a peer's relay on its way: issue 13)
    late = offsets.encode("offer", {"from": "peer", "sdp": "late"})
    assert await instance.deliver_to_socket(client_id, late) is True
    await conn.handle(closing)
    # then the hold took it, for the resume to hand over; nothing more goes to the closed socket
    assert instance.presence._held[client_id].events[-1].text == late  # type: ignore[attr-defined]
    later = offsets.encode("offer", {"from": "peer", "sdp": "later"})
    assert await instance.deliver_to_socket(client_id, later) is False
