"""The per-process hub: local sockets, room views, the instance inbox and the sweepers.

Owns what one process knows: which of its sockets are in which room, and, for those rooms,
every member cluster-wide (kept current by the room broadcasts it receives). Delivery to a
local socket is a direct write; delivery to a socket on another instance is one
channel-layer message to that instance's inbox (targeted) or to the room's group
(room-wide). The hub is the only caller of ``group_send``/``group_add`` (SPEC section 5).

Sweepers start lazily with the first connection or API call (daphne sends no lifespan
events): the liveness key, reaping of dead instances, and room expiry/max-duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connections

from signaling.presence import JoinStatus, LeaveOutcome, MemoryPresence, Participant, PresenceStore, RedisPresence
from signaling.protocol import encode_event
from signaling.service import events, payloads
from signaling.service.errors import LeaveReason

if TYPE_CHECKING:
    from signaling.consumers.connection import Connection

logger = logging.getLogger(__name__)

GROUP_PREFIX = "room."
ROOM_SWEEP_PERIOD_S = 1.0
# Members restored after a false reaping were admitted already: the cap is not checked again.
RESTORE_CAP = 1_000_000


def room_group(room_id: str) -> str:
    """The channel-layer group of a room (ASCII letters, digits, ``-_.``, < 100 chars)."""
    return GROUP_PREFIX + room_id


@dataclass
class RoomView:
    """One room as this process sees it: all members, and which of them are local."""

    members: dict[str, Participant] = field(default_factory=dict)
    local: dict[str, Connection] = field(default_factory=dict)

    def has_remote(self) -> bool:
        """True when some member lives on another instance."""
        return len(self.members) > len(self.local)


class Hub:
    """Process-wide signaling state; one per process (see :func:`get_hub`)."""

    def __init__(self, presence: PresenceStore) -> None:
        self.presence = presence
        self._layer: Any = None
        self.instance_id = ""
        self.peers: dict[str, Connection] = {}
        self.rooms: dict[str, RoomView] = {}
        self.policies: dict[str, Any] = {}  # room_id -> (Room, RoomPolicy) of open rooms
        self.started_at = time.time()
        self._start_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- start-up ---------------------------------------------------------------------

    async def ensure_started(self) -> None:
        """Open the instance inbox and start the sweepers, once per event loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._start_lock is None or self._start_lock._loop is not loop:  # type: ignore[attr-defined]
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._loop is loop:
                return
            self.instance_id = await self.layer.new_channel("signaling.instance.")
            await self.presence.register_instance(self.instance_id, self.liveness_ttl_ms)
            self._loop = loop
            self._tasks = [
                loop.create_task(self._inbox(), name="signaling-inbox"),
                loop.create_task(self._sweep(), name="signaling-sweeper"),
            ]
            logger.info(
                "signaling instance %s started (%s)",
                self.instance_id,
                "redis" if settings.SIGNALING.redis_url else "single-instance, in-process layer",
            )

    async def stop(self) -> None:
        """Cancel the inbox and sweepers and leave the cluster's instance list."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._loop is not None:
            await self.presence.unregister_instance(self.instance_id)
        self._loop = None

    @property
    def layer(self) -> Any:
        """The default channel layer (resolved on first use)."""
        if self._layer is None:
            self._layer = get_channel_layer()
        return self._layer

    @property
    def heartbeat_s(self) -> float:
        return settings.SIGNALING.heartbeat_interval_ms / 1000

    @property
    def liveness_ttl_ms(self) -> int:
        # Refreshed every heartbeat/4; a peer reaps a dead instance within
        # ttl + heartbeat/4 = 1.75 x heartbeat < 2 x heartbeat (SPEC section 5).
        return max(settings.SIGNALING.heartbeat_interval_ms * 3 // 2, 300)

    # -- delivery ---------------------------------------------------------------------

    async def deliver_room(self, room_id: str, text: str, *, exclude: str | None) -> None:
        """Send a pre-encoded packet to every member of a room but ``exclude``."""
        await self._broadcast(room_id, text, {"type": "room.broadcast", "exclude": exclude}, exclude=exclude)

    async def _broadcast(
        self, room_id: str, text: str, message: dict[str, Any], *, exclude: str | None = None, remote: bool = False
    ) -> None:
        """Write ``text`` to the room's local members but ``exclude``; then, when a member lives
        elsewhere (or ``remote``), one group message that every other instance delivers locally."""
        view = self.rooms.get(room_id)
        if view is not None:
            for client_id, conn in list(view.local.items()):
                if client_id != exclude:
                    await conn.send_sio_text(text)
            remote = remote or view.has_remote()
        if remote:
            await self.layer.group_send(
                room_group(room_id), {**message, "room": room_id, "text": text, "origin": self.instance_id}
            )

    async def deliver_to(self, view: RoomView, client_id: str, text: str) -> None:
        """Send a pre-encoded packet to one member, local or remote."""
        conn = view.local.get(client_id)
        if conn is not None:
            await conn.send_sio_text(text)
            return
        instance = view.members[client_id].instance_id
        await self.layer.send(instance, {"type": "peer.relay", "to": client_id, "text": text})

    # -- membership -------------------------------------------------------------------

    async def attach(self, room_id: str, conn: Connection, members: list[Participant]) -> RoomView:
        """Record a local socket as a member, subscribing the inbox to the room's group."""
        view = self.rooms.get(room_id)
        if view is None:
            view = self.rooms[room_id] = RoomView()
            await self.layer.group_add(room_group(room_id), self.instance_id)
        for member in members:
            view.members[member.client_id] = member
        view.local[conn.state.client_id] = conn
        return view

    async def detach(self, room_id: str, client_id: str) -> None:
        """Forget a member; unsubscribe from the group when no local member is left."""
        view = self.rooms.get(room_id)
        if view is None:
            return
        view.members.pop(client_id, None)
        view.local.pop(client_id, None)
        if not view.local:
            del self.rooms[room_id]
            self.policies.pop(room_id, None)
            await self.layer.group_discard(room_group(room_id), self.instance_id)

    async def announce_join(self, room_id: str, participant: Participant) -> None:
        """Tell the room (locally and on other instances) that someone joined."""
        text = encode_event(events.USER_JOINED, payloads.user_joined(room_id, participant))
        message = {"type": "room.joined", "participant": participant.dumps()}
        await self._broadcast(room_id, text, message, exclude=participant.client_id)

    async def announce_leave(self, room_id: str, outcome: LeaveOutcome, reason: str, *, remote: bool) -> None:
        """Tell the room that someone left; ``remote`` forces the group broadcast."""
        text = encode_event(events.USER_LEFT, payloads.user_left(room_id, outcome.participant, reason))
        client_id = outcome.participant.client_id
        view = self.rooms.get(room_id)
        if view is not None:
            view.members.pop(client_id, None)
        await self._broadcast(room_id, text, {"type": "room.left", "client": client_id}, remote=remote)

    async def announce_closed(self, room_id: str, reason: str, *, had_remote: bool) -> None:
        """Every member, here and elsewhere, gets `room_closed` and is out of the room."""
        await self._close_local(room_id, reason)
        if had_remote:
            await self.layer.group_send(
                room_group(room_id),
                {"type": "room.closed", "room": room_id, "reason": reason, "origin": self.instance_id},
            )

    async def _close_local(self, room_id: str, reason: str) -> None:
        view = self.rooms.pop(room_id, None)
        if view is None:
            return
        await self.layer.group_discard(room_group(room_id), self.instance_id)
        text = encode_event(events.ROOM_CLOSED, payloads.room_closed(room_id, reason))
        for conn in view.local.values():
            if conn.state is not None and conn.state.room_id == room_id:
                conn.state.room_id = None
                conn.state.participant = None
            await conn.send_sio_text(text)

    # -- inbox ------------------------------------------------------------------------

    async def _inbox(self) -> None:
        while True:
            message = await self.layer.receive(self.instance_id)
            try:
                await self._dispatch(message)
            except Exception:
                logger.exception("instance inbox failed on %s", message.get("type"))

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "peer.relay":
            conn = self.peers.get(message["to"])
            if conn is not None:
                await conn.send_sio_text(message["text"])
            return
        if message.get("origin") == self.instance_id:
            return
        room_id = message["room"]
        view = self.rooms.get(room_id)
        if kind == "room.closed":
            await self._close_local(room_id, message["reason"])
            return
        if view is None:
            return
        if kind == "room.joined":
            participant = Participant.loads(message["participant"])
            view.members[participant.client_id] = participant
        elif kind == "room.left":
            view.members.pop(message["client"], None)
        exclude = message.get("exclude")
        for client_id, conn in list(view.local.items()):
            if client_id != exclude:
                await conn.send_sio_text(message["text"])

    # -- sweepers ---------------------------------------------------------------------

    async def _sweep(self) -> None:
        period = min(ROOM_SWEEP_PERIOD_S, self.heartbeat_s / 4)
        next_room_sweep = 0.0
        while True:
            await asyncio.sleep(period)
            try:
                is_room_sweep_due = time.monotonic() >= next_room_sweep
                if is_room_sweep_due:
                    next_room_sweep = time.monotonic() + ROOM_SWEEP_PERIOD_S
                await self.sweep_once(rooms=is_room_sweep_due)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("sweeper of instance %s failed; retrying", self.instance_id)

    async def sweep_once(self, *, rooms: bool = True) -> None:
        """One sweeper pass: liveness (restoring a false reaping), dead instances, due rooms."""
        if await self.presence.register_instance(self.instance_id, self.liveness_ttl_ms):
            await self._restore_presence()
        for instance_id in await self.presence.dead_instances():
            await self._reap(instance_id)
        if rooms:
            from signaling.service.lifecycle import close_due_rooms

            await close_due_rooms(self)

    async def _restore_presence(self) -> None:
        """A peer took this instance for dead (a stalled loop) and reaped it: register again."""
        logger.warning("instance %s was reaped while alive; restoring its presence", self.instance_id)
        for client_id, conn in list(self.peers.items()):
            await self.presence.add_connection(self.instance_id, client_id, conn.state.agent_id)
        for room_id, view in list(self.rooms.items()):
            for conn in list(view.local.values()):
                participant = conn.state.participant if conn.state is not None else None
                if participant is None:
                    continue
                outcome = await self.presence.join(room_id, participant, cap=RESTORE_CAP)
                if outcome.status is JoinStatus.JOINED:
                    await self.announce_join(room_id, participant)

    async def _reap(self, instance_id: str) -> None:
        if instance_id == self.instance_id:
            return
        left = await self.presence.reap_instance(instance_id)
        if left:
            logger.warning("instance %s is gone; %d participants dropped", instance_id, len(left))
        from signaling.service.lifecycle import room_emptied

        for room_id, outcome in left:
            await self.announce_leave(room_id, outcome, LeaveReason.DISCONNECTED, remote=True)
            if outcome.remaining == 0:
                await room_emptied(room_id)


_hub: Hub | None = None


def get_hub() -> Hub:
    """The process's hub, built from settings on first use."""
    global _hub
    if _hub is None:
        url = settings.SIGNALING.redis_url
        presence: PresenceStore = (
            RedisPresence(url, prefix=settings.SIGNALING.redis_prefix) if url else MemoryPresence()
        )
        _hub = Hub(presence)
    return _hub


def reset_hub() -> None:
    """Forget the hub (tests that change settings between cases)."""
    global _hub
    _hub = None


# ORM calls run on dedicated threads that keep their database connection (CONN_MAX_AGE):
# several for a server database, so room loads for different sockets proceed side by side;
# one for SQLite, which serialises writers anyway (and whose shared-cache test database
# refuses concurrent threads outright).
SERVER_DB_THREADS = 4
_db_executor: ThreadPoolExecutor | None = None


def db_threads() -> int:
    """How many database threads this process uses."""
    is_sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    return 1 if is_sqlite else SERVER_DB_THREADS


def _run_with_connections(func: Any, args: tuple[Any, ...]) -> Any:
    close_old_connections()
    try:
        return func(*args)
    finally:
        close_old_connections()


async def run_db(func: Any, *args: Any) -> Any:
    """Run an ORM call off the event loop, on the database threads."""
    global _db_executor
    if _db_executor is None:
        _db_executor = ThreadPoolExecutor(max_workers=db_threads(), thread_name_prefix="signaling-db")
    return await asyncio.get_running_loop().run_in_executor(_db_executor, _run_with_connections, func, args)


def close_db_threads() -> None:
    """Close every database thread's connection and stop the threads (test teardown, shutdown)."""
    global _db_executor
    executor, _db_executor = _db_executor, None
    if executor is None:
        return
    count = executor._max_workers
    barrier = threading.Barrier(count)

    def close_here() -> None:
        barrier.wait(timeout=10)  # one task per thread: every worker closes its own connections
        connections.close_all()

    for future in [executor.submit(close_here) for _ in range(count)]:
        future.result(timeout=20)
    executor.shutdown(wait=True)
