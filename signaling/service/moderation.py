"""Moderation: kicks, bans, mutes, room updates, the duplicate-identity hand-over (SPEC section 9).

Every change is decided by one atomic presence operation, then told:

- kick: presence removes the member (``leave``), or, with a ban, records the ban and removes
  every socket of that agent in the same operation (``ban``): a join racing the ban either
  came first (and is removed by it) or is refused by it. The database row of the ban is
  written first: it is the durable copy presence reloads when it lacks a room's bans.
- the instance holding a removed socket takes it out of its room view and sends it
  `kicked`; the room hears `user_left` (``kicked``). A kick through another instance waits
  for the holding instance's answer (``member.evict`` with ``reply_to``), so the REST call
  answers once the socket is out (or after :data:`EVICT_REPLY_TIMEOUT_S` if that instance
  does not answer: presence has removed the member already).
- ``duplicateIdentity``: the join script refuses (``reject``) or hands the seat over
  (``replace``) in the same operation that admits the joiner; the replaced sockets get
  `kicked` `{reason: "replaced"}` and the room `user_left` (``replaced``) before the
  joiner's `user_joined`.
- mute: presence changes the member; everyone in the room gets `participant_updated`.
- room update: every instance drops its cached policy (``room.updated`` to all instances)
  and the room's members get `room_updated`.

Changes membership only through presence and :mod:`signaling.service.participation`; calls the
channel layer only through :class:`~signaling.service.delivery.Delivery`. Messages from other
instances arrive through :func:`dispatch` (hooked into ``Instance.dispatch``); it never waits
for a room's lock except for a socket still joining (then in a task).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from rooms import occupancy
from rooms import services as room_services
from rooms.serializers import room_representation
from signaling.presence import JoinOutcome, JoinStatus, Participant
from signaling.protocol import encode_event
from signaling.service import events, participation, payloads
from signaling.service.database import run_db
from signaling.service.errors import ErrorCode, LeaveReason, SignalingError
from signaling.service.membership import RoomView

if TYPE_CHECKING:
    from signaling.service.instance import Instance

logger = logging.getLogger(__name__)

# How long a kick waits for the instance holding the socket to confirm it is out.
EVICT_REPLY_TIMEOUT_S = 5.0
# A join loads the room's bans at most this often (presence may lose them again meanwhile).
BAN_LOAD_ATTEMPTS = 3
DEFAULT_KICK_REASON = "kicked"

EVICT = "member.evict"
EVICTED = "member.evicted"
UPDATED = "member.updated"
ROOM_UPDATED = "room.updated"
MESSAGE_TYPES = frozenset({EVICT, EVICTED, UPDATED, ROOM_UPDATED})
# Webhook events of one kicked socket: participant.kicked, participant.left.
KICK_EVENTS = 2

_replies: dict[str, asyncio.Future[None]] = {}


def now_ms() -> int:
    """Wall-clock epoch milliseconds (ban ends are compared with it)."""
    return int(time.time() * 1000)


# -- joins -----------------------------------------------------------------------------


async def join_presence(
    instance: Instance, room_id: str, me: Participant, cap: int, duplicate_identity: str, *, with_events: bool = False
) -> JoinOutcome:
    """``presence.join`` with the room's bans and duplicate policy (and, ``with_events``, the
    webhook numbers it reserves), loading the bans and the room's last webhook ``seq`` from
    the database when presence does not hold them.

    Raises:
        SignalingError: `forbidden` for a banned agent, or an agent already in a
            ``reject`` room.
    """
    for _ in range(BAN_LOAD_ATTEMPTS):
        outcome = await instance.presence.join(
            room_id, me, cap, duplicate=duplicate_identity, now_ms=now_ms(), with_events=with_events
        )
        if outcome.status not in (JoinStatus.BANS_UNKNOWN, JoinStatus.SEQ_UNKNOWN):
            break
        bans, last_seq = await run_db(occupancy.room_presence_state, room_id)
        await instance.presence.load_bans(room_id, bans)
        await instance.presence.load_seq(room_id, last_seq)
    else:
        raise SignalingError(ErrorCode.FORBIDDEN, "the room's bans could not be read; try again")
    if outcome.status is JoinStatus.BANNED:
        raise SignalingError(ErrorCode.FORBIDDEN, "this agent is banned from the room")
    if outcome.status is JoinStatus.DUPLICATE:
        raise SignalingError(ErrorCode.FORBIDDEN, "this agent is already in the room")
    return outcome


async def hand_over(instance: Instance, view: RoomView, replaced: list[Participant], outcome: JoinOutcome) -> None:
    """A replacing join took these members' seats (presence removed them): each gets `kicked`
    (``replaced``), the room `user_left` (``replaced``), the webhook receiver
    ``participant.left`` (``replaced``) with the first numbers the join reserved. The caller
    holds the room."""
    text = encode_event(events.KICKED, payloads.kicked(view.room_id, LeaveReason.REPLACED, is_banned=False))
    before = len(outcome.members) - 1 + len(replaced)  # the room's count before the join
    for index, old in enumerate(replaced):
        seq = outcome.seq + index if outcome.seq else 0
        instance.webhooks.left(view.room_id, old, before - index - 1, LeaveReason.REPLACED, seq)
        await _evict(instance, view.room_id, old, text, LeaveReason.REPLACED, wait=False)
        await participation.tell_left(instance, view, old, LeaveReason.REPLACED)


# -- kicks and bans ----------------------------------------------------------------------


async def kick(
    instance: Instance, room_id: str, client_id: str, *, reason: str | None, ban_seconds: int | None
) -> bool:
    """Kick ``client_id`` out of the room, with a ban of its agent when ``ban_seconds`` is set.

    Returns:
        False when that client is not in the room (nothing changed).
    """
    target = await instance.presence.member(room_id, client_id)
    if target is None:
        return False
    is_banned = ban_seconds is not None
    # participant.kicked then participant.left (kicked) per removed socket (SPEC section 10)
    events_each = KICK_EVENTS if instance.webhooks.is_enabled else 0
    if ban_seconds is not None:
        ban = await run_db(room_services.ban_agent, room_id, target.agent_id, ban_seconds, reason or "")
        until_ms = int(ban.until.timestamp() * 1000)
        outcome = await instance.presence.ban(room_id, target.agent_id, until_ms, events_each=events_each)
        removed, remaining, version, seq = outcome.removed, outcome.remaining, outcome.version, outcome.seq
    else:
        left = await instance.presence.leave(room_id, client_id, events=events_each)
        if left is None:
            return False  # it left meanwhile
        removed, remaining, version, seq = [left.participant], left.remaining, left.version, left.seq
    for index, member in enumerate(removed):
        count = remaining + len(removed) - index - 1  # as if they went one by one
        instance.webhooks.kicked(room_id, member, ban_seconds, count, seq + KICK_EVENTS * index if seq else 0)
    text = encode_event(events.KICKED, payloads.kicked(room_id, reason or DEFAULT_KICK_REASON, is_banned=is_banned))
    for member in removed:
        await _evict(instance, room_id, member, text, LeaveReason.KICKED, wait=True)
    async with instance.membership.room(room_id) as view:
        try:
            for member in removed:
                await participation.tell_left(instance, view, member, LeaveReason.KICKED)
        finally:
            await participation.release(instance, view)
    if removed and remaining == 0:
        await participation.room_emptied(instance, room_id, version)
    logger.info("room %s: %d socket(s) of %s kicked (banned: %s)", room_id, len(removed), target.agent_id, is_banned)
    return True


async def ban_lifted(instance: Instance, room_id: str, agent_id: str) -> None:
    """The ban's row is gone: presence forgets it."""
    await instance.presence.lift_ban(room_id, agent_id)


async def _evict(instance: Instance, room_id: str, member: Participant, text: str, reason: str, *, wait: bool) -> None:
    """Have the instance holding ``member`` take it out of its view and send it ``text``."""
    if member.instance_id == instance.instance_id:
        await detach(instance, room_id, member, text, reason)
        return
    message: dict[str, Any] = {
        "type": EVICT,
        "room": room_id,
        "participant": member.dumps(),
        "text": text,
        "reason": reason,
    }
    if not wait:
        await instance.delivery.to_instance(member.instance_id, message)
        return
    request_id = uuid.uuid4().hex
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _replies[request_id] = future
    try:
        await instance.delivery.to_instance(
            member.instance_id, {**message, "reply_to": instance.instance_id, "request": request_id}
        )
        await asyncio.wait_for(future, EVICT_REPLY_TIMEOUT_S)
    except TimeoutError:
        logger.warning(
            "room %s: instance %s did not confirm the kick of %s", room_id, member.instance_id, member.client_id
        )
    finally:
        _replies.pop(request_id, None)


async def detach(instance: Instance, room_id: str, member: Participant, text: str, reason: str) -> None:
    """On the instance holding the socket: presence removed it; take it out of the room view
    (it stays connected) and send it ``text`` (`kicked`)."""
    client_id = member.client_id
    view = instance.membership.view(room_id)
    if view is None or instance.sockets.get(client_id) is None:
        return
    if client_id in view.local:
        await _drop(instance, view, client_id, room_id, text)
        if view.users == 0:
            await participation.release(instance, view)
        return
    if client_id in view.pending:
        # Its join is finishing (presence admitted it just before removing it): once the join
        # is done, take it out and tell the room again (it may have heard `user_joined`).
        async with instance.membership.room(room_id) as held:
            try:
                if client_id in held.local:
                    await _drop(instance, held, client_id, room_id, text)
                    await participation.tell_left(instance, held, member, reason)
            finally:
                await participation.release(instance, held)


async def _drop(instance: Instance, view: RoomView, client_id: str, room_id: str, text: str) -> None:
    conn = view.remove_local(client_id)
    if conn is None:
        return
    state = conn.state
    if state is not None and state.room_id == room_id:
        state.room_id, state.participant = None, None
    await conn.send_sio_text(text)


# -- mute and room updates ---------------------------------------------------------------


async def set_muted(instance: Instance, room_id: str, client_id: str, *, is_muted: bool) -> Participant | None:
    """Mute or unmute a member; everyone in the room (it included) gets `participant_updated`.

    Returns:
        The updated member; None when that client is not in the room.
    """
    updated = await instance.presence.set_muted(room_id, client_id, is_muted)
    if updated is None:
        return None
    text = encode_event(events.PARTICIPANT_UPDATED, payloads.participant_updated(room_id, updated))
    await _updated_here(instance, room_id, updated, text)
    await instance.delivery.to_room(room_id, {"type": UPDATED, "participant": updated.dumps(), "text": text})
    return updated


async def _updated_here(instance: Instance, room_id: str, updated: Participant, text: str) -> None:
    view = instance.membership.view(room_id)
    if view is None:
        return
    if updated.client_id in view.members:
        view.members[updated.client_id] = updated
    conn = view.local.get(updated.client_id)
    if conn is not None and conn.state is not None and conn.state.room_id == room_id:
        conn.state.participant = updated
    await view.deliver(text)


async def room_updated(instance: Instance, room_id: str) -> None:
    """The row changed: every instance drops its cached policy, the members get `room_updated`."""
    instance.policies.forget(room_id)
    room = await run_db(occupancy.load_room, room_id)
    if room is None:
        return
    count = (await instance.presence.counts([room_id])).get(room_id, 0)
    text = encode_event(
        events.ROOM_UPDATED, payloads.room_updated(room_id, room_representation(room, participant_count=count))
    )
    await _room_updated_here(instance, room_id, text)
    await instance.delivery.to_instances({"type": ROOM_UPDATED, "room": room_id, "text": text})


async def _room_updated_here(instance: Instance, room_id: str, text: str) -> None:
    instance.policies.forget(room_id)
    view = instance.membership.view(room_id)
    if view is not None:
        await view.deliver(text)


# -- messages from other instances -------------------------------------------------------


async def dispatch(instance: Instance, message: dict[str, Any]) -> None:
    """Handle a moderation message from another instance (``Instance.dispatch``)."""
    kind = message["type"]
    if kind == EVICTED:
        future = _replies.get(message["request"])
        if future is not None and not future.done():
            future.set_result(None)
        return
    if message.get("origin") == instance.instance_id:
        return
    room_id = message["room"]
    if kind == EVICT:
        member = Participant.loads(message["participant"])
        if member.client_id in (instance.membership.view(room_id) or RoomView(room_id)).pending:
            # Waits for the room's lock: never in the inbox loop.
            asyncio.get_running_loop().create_task(_evict_and_reply(instance, room_id, member, message))
        else:
            await _evict_and_reply(instance, room_id, member, message)
    elif kind == UPDATED:
        await _updated_here(instance, room_id, Participant.loads(message["participant"]), message["text"])
    elif kind == ROOM_UPDATED:
        await _room_updated_here(instance, room_id, message["text"])


async def _evict_and_reply(instance: Instance, room_id: str, member: Participant, message: dict[str, Any]) -> None:
    try:
        await detach(instance, room_id, member, message["text"], message["reason"])
    finally:
        reply_to = message.get("reply_to")
        if reply_to:
            await instance.delivery.to_instance(reply_to, {"type": EVICTED, "request": message["request"]})
