"""Connection state recovery across instances (SPEC section 7): hold, keep, resume, expire.

With ``RECOVERY_WINDOW`` > 0 a socket in a room whose transport is lost (a network cut, a
ping timeout, a transport closed by a draining server) is *held* instead of leaving:

- :func:`hold` (the instance that lost the transport): presence turns the member into a held
  one (``instance_id`` :data:`~signaling.presence.HELD`, out of its instance's memberships,
  so neither that instance's exit nor its reaping drops it) and stores the session: pid,
  agent, the ``user_left`` reason for the window's end, and the last events written to the
  socket (it may not have received them). The room's other instances learn it from one
  ``room.held`` message; nobody is told anything.
- while held, every view that knows the member hands what it delivers to it to the
  :class:`Keeper`, which keeps it in presence (deduplicated by offset, bounded); a relay
  that reaches an instance that no longer has the socket is kept the same way.
- :func:`resume` (any instance; the client came back with ``auth`` ``{token, pid, offset}``):
  presence hands the session over atomically with the events after ``offset``; the client
  gets the CONNECT reply with its old ``sid`` and ``pid``, ``connected`` ``{recovered: true}``,
  the missed events, then whatever reached it while it resumed. Peers hear nothing.
- :func:`expire` (every instance's sweeper, one claim per session): a window that ended
  without the client removes the member and tells the room ``user_left``.

Not recoverable (the member leaves as before): the client's own disconnect, ``leave_room``,
a kick, a closing room, a crashed instance (its sockets were never held), a socket in no room.

The drain (``signaling.lifecycle``) closes every local session with ``SERVER_SHUTTING_DOWN``,
which is recoverable: each socket in a room is held and resumes on another instance.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from redis.exceptions import RedisError

from rooms.ice import ice_servers_for
from rooms.tokens import Identity
from signaling.consumers.connection import Connection, new_sid
from signaling.presence import HeldEvent, Participant
from signaling.protocol import CloseReason
from signaling.service import events, metrics, offsets, payloads
from signaling.service.errors import LeaveReason
from signaling.service.membership import RoomView
from signaling.service.participation import drop_departed, release, subscribe, tell_unknown_members

if TYPE_CHECKING:
    from signaling.service.instance import Instance
    from signaling.service.sockets import SocketState

logger = logging.getLogger(__name__)

# Closes after which the client may come back (socket.io's RECOVERABLE_DISCONNECT_REASONS).
RECOVERABLE = frozenset(
    {
        CloseReason.TRANSPORT_CLOSE,
        CloseReason.TRANSPORT_ERROR,
        CloseReason.PING_TIMEOUT,
        CloseReason.FORCED_CLOSE,
        CloseReason.SERVER_SHUTTING_DOWN,  # a draining instance closed it (signaling.lifecycle)
    }
)
RECENT_PACKETS = 128  # packets remembered per socket (what the client may not have received)
HELD_MAX_EVENTS = 256  # events kept per held session; beyond, the oldest go first
HELD_MAX_BYTES = 1_000_000
# After a resume, late events for the session are forwarded to the resuming instance this long.
FORWARD_TTL_MS = 60_000
# Presence keys outlive the window by this much (the sweeper deletes them first).
KEY_GRACE_MS = 60_000
EXPIRE_BATCH = 100

RESULT_REFUSED = "refused"  # a pid that cannot resume: unknown, expired, foreign, unknown offset


def window_ms() -> int:
    """``RECOVERY_WINDOW`` (0: recovery off)."""
    return settings.SIGNALING.recovery_window_ms


def now_ms() -> int:
    return int(time.time() * 1000)


def new_pid() -> str | None:
    """The recovery session id of a new socket (None with recovery off)."""
    return new_sid() if window_ms() else None


def track(conn: Connection) -> None:
    """Remember the last packets written to ``conn`` (with recovery on)."""
    if window_ms() and conn.sent is None:
        conn.sent = deque(maxlen=RECENT_PACKETS)


def held_events(texts: list[str]) -> list[HeldEvent]:
    """The events (packets with an offset) among ``texts``, in order."""
    held = []
    for text in texts:
        offset = offsets.offset_of(text)
        if offset is not None:
            held.append(HeldEvent(offset, text))
    return held


class Keeper:
    """Keeps what a room view delivers to a held member in presence (the view's keeper)."""

    def __init__(self, instance: Instance) -> None:
        self._instance = instance

    async def _keep(self, client_id: str, text: str) -> str | None:
        if not window_ms():
            return None
        offset = offsets.offset_of(text)
        if offset is None:
            return ""
        try:
            return await self._instance.presence.keep(
                client_id, HeldEvent(offset, text), max_events=HELD_MAX_EVENTS, max_bytes=HELD_MAX_BYTES
            )
        except RedisError as exc:  # one held member's loss never breaks the delivery to others
            logger.warning("event for held %s not kept: presence did not answer (%s)", client_id, exc)
            return ""

    async def keep(self, client_id: str, text: str) -> None:
        """A room-wide packet: kept while held; once resumed, the resuming instance gets it
        from the room itself (it subscribed before resuming)."""
        await self._keep(client_id, text)

    async def keep_or_forward(self, client_id: str, text: str) -> bool:
        """A packet addressed to the member: kept while held, forwarded to the instance that
        resumed it; False when there is no such session."""
        where = await self._keep(client_id, text)
        if where is None:
            return False
        if where:
            await self._instance.delivery.to_instance(where, {"type": "peer.relay", "to": client_id, "text": text})
        return True


def leave_reason_for(reason: CloseReason) -> LeaveReason:
    """The ``user_left`` reason for a socket whose transport ended for ``reason``: ``timeout``
    for a missed pong, ``disconnected`` for anything else."""
    return LeaveReason.TIMEOUT if reason == CloseReason.PING_TIMEOUT else LeaveReason.DISCONNECTED


async def hold(instance: Instance, conn: Connection, state: SocketState, reason: CloseReason) -> bool:
    """Hold the session of a socket whose transport was lost; True when held (the member
    stays in its room), False when the caller takes it out of its room as before."""
    room_id, pid = state.room_id, state.pid
    if room_id is None or pid is None or reason not in RECOVERABLE or not window_ms():
        return False
    client_id = state.client_id
    leave = leave_reason_for(reason)
    async with instance.membership.room(room_id) as view:
        try:
            if view.remove_local(client_id) is None:
                return False
            view.add_pending(client_id, conn)  # what reaches it during the hold is buffered
            # What was written to it, and what reached it after its transport closed: the
            # hold takes them; anything later goes to the keeper (Instance.deliver_to_socket).
            sent, conn.sent = list(conn.sent or ()), None
            try:
                held = await instance.presence.hold(
                    room_id,
                    client_id,
                    pid=pid,
                    reason=str(leave),
                    events=held_events(sent),
                    deadline_ms=now_ms() + window_ms(),
                    ttl_ms=window_ms() + KEY_GRACE_MS,
                    max_events=HELD_MAX_EVENTS,
                    max_bytes=HELD_MAX_BYTES,
                )
            finally:
                joiner = view.pending.pop(client_id, None)
            if held is None:
                return False
            view.learn_moved(held)
            if view.keeper is not None and joiner is not None:
                for text, _, _ in joiner.buffered:
                    await view.keeper.keep_or_forward(client_id, text)
            await instance.delivery.to_room(room_id, {"type": "room.held", "participant": held.dumps()})
            logger.info(
                "%s held in room %s for %d ms (%s)",
                client_id,
                room_id,
                window_ms(),
                reason,
                extra={"client_id": client_id, "room_id": room_id},
            )
            return True
        finally:
            await release(instance, view)


# Builds the resumed socket's state: (client id, room id, its participant, pid) -> the app's state.
StateFactory = Callable[[str, str, Participant, str], "SocketState"]


async def resume(
    instance: Instance,
    conn: Connection,
    identity: Identity,
    auth: dict[str, Any] | None,
    *,
    namespace: str,
    make_state: StateFactory,
) -> bool:
    """Resume the held session that the CONNECT's ``auth`` names (``pid``, ``offset``); False
    when there is none to resume (the caller starts a fresh session: no error)."""
    pid = auth.get("pid") if auth else None
    offset = auth.get("offset") if auth else None
    if type(pid) is not str or type(offset) is not str or not window_ms():
        return False
    found = await instance.presence.find_held(pid)
    if found is None:
        metrics.record_recovery(RESULT_REFUSED)
        return False
    client_id, room_id = found
    async with instance.membership.room(room_id) as view:
        try:
            held = _Held(pid, offset, client_id)
            return await _resume_held(instance, view, conn, identity, held, namespace, make_state)
        finally:
            await release(instance, view)


@dataclass(frozen=True, slots=True)
class _Held:
    pid: str
    offset: str
    client_id: str


async def _resume_held(
    instance: Instance,
    view: RoomView,
    conn: Connection,
    identity: Identity,
    held: _Held,
    namespace: str,
    make_state: StateFactory,
) -> bool:
    room_id, pid, offset, client_id = view.room_id, held.pid, held.offset, held.client_id
    await subscribe(instance, view)  # before presence hands over: nothing sent to the room is missed
    view.add_pending(client_id, conn)
    read_at = time.monotonic()
    try:
        resumed = await instance.presence.resume(
            pid, identity.agent_id, offset, instance.instance_id, now_ms=now_ms(), forward_ttl_ms=FORWARD_TTL_MS
        )
        members = await instance.presence.members(room_id) if resumed is not None else []
    except BaseException:
        view.drop_pending(client_id)
        raise
    if resumed is None:
        view.drop_pending(client_id)
        metrics.record_recovery(RESULT_REFUSED)
        return False
    me = resumed.participant
    state = make_state(client_id, room_id, me, pid)
    conn.state = state
    track(conn)
    conn.accept(namespace, client_id, pid=pid)
    instance.sockets[client_id] = conn
    await tell_unknown_members(instance, view, members, me.client_id, read_at)
    if not view.learn_joined(me):
        view.learn_moved(me)
    connected = payloads.connected(client_id, identity.agent_id, ice_servers_for(identity.agent_id), recovered=True)
    missed = offsets.in_origin_order(resumed.missed)
    first = [offsets.encode(events.CONNECTED, connected), *missed]
    listed = {m.client_id for m in members if m.client_id != client_id}
    await view.settle(client_id, first, listed, skip=frozenset(missed))
    await instance.delivery.to_room(room_id, {"type": "room.resumed", "participant": me.dumps()})
    metrics.record_connect(metrics.OK)
    metrics.record_recovery(metrics.OK)
    await instance.presence.add_connection(instance.instance_id, client_id, identity.agent_id)
    if conn.state is not state:  # the new transport ended meanwhile
        await instance.presence.remove_connection(instance.instance_id, client_id)
    logger.info(
        "%s resumed in room %s (%d missed events)",
        client_id,
        room_id,
        len(missed),
        extra={"client_id": client_id, "room_id": room_id},
    )
    return True


async def expire(instance: Instance) -> int:
    """Claim the held sessions whose window ended; their rooms hear ``user_left``."""
    expired = await instance.presence.expire_held(now_ms(), limit=EXPIRE_BATCH)
    for item in expired:
        logger.info("held %s in room %s expired (%s)", item.outcome.participant.client_id, item.room_id, item.reason)
        await drop_departed(instance, item.room_id, item.outcome, item.reason)
    return len(expired)
