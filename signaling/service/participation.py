"""Joins and leaves: the only code that changes room membership (SPEC sections 3-5).

Every change follows one order, so that presence stays the truth and every member, on
every instance, ends with the same view:

- join: hold the room (one change of a room at a time on this instance), subscribe the
  instance to the room's broadcasts, register the joiner as pending, join presence
  atomically (cap, closed rooms), then send `joined` and its ack, then flush what reached the
  joiner meanwhile, then announce `user_joined`. Members the joiner's presence read shows
  that this instance had not heard of are told to the room's local sockets first.
- leave: hold the room, take the socket out of the view, leave presence, announce
  `user_left`; the last one out arms the empty-room expiry.

Each presence change reserves its webhook events' ``seq`` numbers in the same atomic step
(so they follow the order clients saw) and queues the events (``instance.webhooks``,
written after the ack, never waited for).
Every await is safe against the socket ending meanwhile: a join whose socket is gone when
presence answers leaves presence again. Occupancy marks carry presence's membership version.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rooms import occupancy
from signaling.presence import JoinStatus, LeaveOutcome, Participant
from signaling.protocol import encode_event
from signaling.service import events, moderation, payloads
from signaling.service.errors import ErrorCode, LeaveReason, SignalingError
from signaling.service.membership import Notice, RoomView

if TYPE_CHECKING:
    from signaling.consumers.connection import Connection
    from signaling.service.instance import Instance
    from signaling.service.sockets import SocketState

logger = logging.getLogger(__name__)

# Members re-asserted by reconciliation were admitted already: the cap is not checked again.
RESTORE_CAP = 1_000_000


def utc_now_text() -> str:
    """ISO 8601 UTC with milliseconds and Z, as JS ``toISOString()`` writes it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def subscribe(instance: Instance, view: RoomView) -> None:
    """Subscribe the instance to the room's broadcasts, once per view, before any read."""
    if not view.is_subscribed:
        await instance.delivery.subscribe(view.room_id)
        view.is_subscribed = True


async def release(instance: Instance, view: RoomView) -> None:
    """Drop the view if nobody here uses it, unsubscribing from the room."""
    if instance.membership.release_if_empty(view):
        await instance.delivery.unsubscribe(view.room_id)


async def tell_joined(instance: Instance, view: RoomView, participant: Participant) -> None:
    """Tell the room, here and on every other instance, that ``participant`` joined."""
    text = encode_event(events.USER_JOINED, payloads.user_joined(view.room_id, participant))
    view.learn_joined(participant)
    await view.deliver(text, exclude=participant.client_id, notice=Notice.JOINED, subject=participant.client_id)
    await instance.delivery.to_room(
        view.room_id, {"type": "room.joined", "participant": participant.dumps(), "text": text}
    )


async def tell_left(instance: Instance, view: RoomView, participant: Participant, reason: str) -> None:
    """Tell the room, here and on every other instance, that ``participant`` left."""
    client_id = participant.client_id
    text = encode_event(events.USER_LEFT, payloads.user_left(view.room_id, participant, reason))
    view.learn_left(client_id)
    await view.deliver(text, notice=Notice.LEFT, subject=client_id)
    await instance.delivery.to_room(view.room_id, {"type": "room.left", "client": client_id, "text": text})


def record_left(instance: Instance, room_id: str, outcome: LeaveOutcome, reason: str) -> None:
    """Queue ``participant.left`` with the number presence reserved for the leave."""
    instance.webhooks.left(room_id, outcome.participant, outcome.remaining, reason, outcome.seq)


async def room_emptied(instance: Instance, room_id: str, version: int) -> None:
    """The last participant left: arm the ROOM_TIMEOUT expiry (unless a newer mark won)."""
    await instance.occupancy.write(occupancy.mark_empty, room_id, version)


async def join(
    instance: Instance, conn: Connection, state: SocketState, room_id: str, ack_id: int | None
) -> str | None:
    """Join ``room_id``; the joiner gets `joined` and its ack before anyone else hears of it.

    Returns:
        The room the socket was in before, which the caller leaves (None: none, or the same).

    Raises:
        SignalingError: `room_not_found`, `room_closed`, `room_full`.
    """
    room, policy = await instance.policies.get(room_id)
    if policy.is_closed:
        raise SignalingError(ErrorCode.ROOM_CLOSED, "the room is closed")
    async with instance.membership.room(room_id) as view:
        try:
            if state.room_id == room_id and state.participant is not None:
                members = await instance.presence.members(room_id)
                await _send_joined(conn, room, state.participant, members, ack_id, view=None)
                return None
            return await _join_held(instance, view, conn, state, room, policy, ack_id)
        finally:
            await release(instance, view)


async def _join_held(
    instance: Instance,
    view: RoomView,
    conn: Connection,
    state: SocketState,
    room: dict[str, Any],
    policy: occupancy.RoomPolicy,
    ack_id: int | None,
) -> str | None:
    room_id = view.room_id
    if view.is_closed:
        raise SignalingError(ErrorCode.ROOM_CLOSED, "the room is closed")
    await subscribe(instance, view)  # before presence is read: no announcement is missed
    me = Participant(
        client_id=state.client_id,
        agent_id=state.agent_id,
        joined_at=utc_now_text(),
        is_muted=policy.is_muted_on_entry,
        instance_id=instance.instance_id,
    )
    view.add_pending(me.client_id, conn)
    read_at = time.monotonic()
    try:
        outcome = await moderation.join_presence(
            instance, room_id, me, policy.cap, policy.duplicate_identity, with_events=instance.webhooks.is_enabled
        )
    except BaseException:
        view.drop_pending(me.client_id)
        raise
    if outcome.status is JoinStatus.FULL:
        view.drop_pending(me.client_id)
        raise SignalingError(ErrorCode.ROOM_FULL, f"the room is full ({policy.cap} participants)")
    if outcome.status is JoinStatus.CLOSED:
        view.drop_pending(me.client_id)
        instance.policies.forget(room_id)
        raise SignalingError(ErrorCode.ROOM_CLOSED, "the room is closed")
    if outcome.replaced:  # duplicateIdentity "replace": told before anyone hears of the joiner
        await moderation.hand_over(instance, view, outcome.replaced, outcome)
    joined_seq = outcome.seq + len(outcome.replaced) if outcome.seq else 0
    instance.webhooks.joined(room_id, me, len(outcome.members), joined_seq, is_room_start=outcome.is_room_start)
    if conn.state is not state or view.is_closed:
        # The socket ended (or the room closed) while presence answered: undo, tell no socket
        # (the webhook receiver hears both: the join's numbers are taken).
        view.drop_pending(me.client_id)
        left = await instance.presence.leave(room_id, me.client_id, events=int(instance.webhooks.is_enabled))
        if left is not None:
            instance.webhooks.left(room_id, me, left.remaining, LeaveReason.DISCONNECTED, left.seq)
        if left is not None and left.remaining == 0:
            await room_emptied(instance, room_id, left.version)
        if view.is_closed:
            raise SignalingError(ErrorCode.ROOM_CLOSED, "the room is closed")
        return None
    # Members presence shows that the room's sockets here never heard of: tell them now.
    # (A departure learnt since the read is newer than the read: that member stays out.)
    for member in outcome.members:
        client_id = member.client_id
        if client_id == me.client_id or client_id in view.members or view.departed_since(client_id, read_at):
            continue
        text = encode_event(events.USER_JOINED, payloads.user_joined(room_id, member))
        view.learn_joined(member)
        await view.deliver(text, exclude=me.client_id, notice=Notice.JOINED, subject=client_id)
    previous = state.room_id
    state.room_id, state.participant = room_id, me
    if len(outcome.members) == 1:
        # The first joiner: the row is marked before anyone hears of the join.
        await instance.occupancy.write(occupancy.mark_occupied, room_id, outcome.version, policy.max_duration_min)
    await _send_joined(conn, room, me, outcome.members, ack_id, view=view)
    await tell_joined(instance, view, me)
    logger.info(
        "%s (%s) joined room %s (%d present)",
        me.client_id,
        me.agent_id,
        room_id,
        len(outcome.members),
        extra={"client_id": me.client_id, "room_id": room_id},
    )
    return previous


async def _send_joined(
    conn: Connection,
    room: dict[str, Any],
    me: Participant,
    members: list[Participant],
    ack_id: int | None,
    *,
    view: RoomView | None,
) -> None:
    """`joined`, then the ack `{ok: true, ...joined}` built from the same JSON text; with a
    ``view``, the joiner settles there (then gets what was buffered for it)."""
    others = sorted((m for m in members if m.client_id != me.client_id), key=lambda m: m.joined_at)
    reply = payloads.joined(room["id"], me, {**room, "participantCount": len(members)}, others)
    first = payloads.joined_packets(reply, ack_id)
    if view is None:
        for text in first:
            await conn.send_sio_text(text)
        return
    await view.settle(me.client_id, first, {m.client_id for m in others})


async def leave(instance: Instance, state: SocketState, room_id: str, reason: LeaveReason) -> None:
    """Take the socket out of ``room_id``: presence first, then the room hears `user_left`."""
    if state.room_id == room_id:
        state.room_id, state.participant = None, None
    async with instance.membership.room(room_id) as view:
        try:
            view.remove_local(state.client_id)
            outcome = await instance.presence.leave(room_id, state.client_id, events=int(instance.webhooks.is_enabled))
            if outcome is None:
                view.learn_left(state.client_id)
                return
            record_left(instance, room_id, outcome, reason)
            await tell_left(instance, view, outcome.participant, reason)
            if outcome.remaining == 0:
                await room_emptied(instance, room_id, outcome.version)
        finally:
            await release(instance, view)


async def drop_departed(instance: Instance, room_id: str, outcome: LeaveOutcome, reason: str) -> None:
    """Presence already removed a member (its instance died, or it was a ghost): tell the room."""
    async with instance.membership.room(room_id) as view:
        try:
            record_left(instance, room_id, outcome, reason)
            await tell_left(instance, view, outcome.participant, reason)
        finally:
            await release(instance, view)
    if outcome.remaining == 0:
        await room_emptied(instance, room_id, outcome.version)


async def forget_ghost(instance: Instance, room_id: str, client_id: str) -> None:
    """If presence lists ``client_id`` in the room for this instance but no local socket is
    that member (nor joining), remove it and tell the room."""
    async with instance.membership.room(room_id) as view:
        try:
            if client_id in view.local or client_id in view.pending:
                return
            outcome = await instance.presence.leave(room_id, client_id, events=int(instance.webhooks.is_enabled))
            if outcome is None:
                return
            logger.warning("room %s: removed %s, which presence held for a socket no longer here", room_id, client_id)
            record_left(instance, room_id, outcome, LeaveReason.DISCONNECTED)
            await tell_left(instance, view, outcome.participant, LeaveReason.DISCONNECTED)
        finally:
            await release(instance, view)
    if outcome.remaining == 0:
        await room_emptied(instance, room_id, outcome.version)
