"""This process as one instance of the cluster: its parts, its start and stop, its inbox.

Owns the wiring, nothing else: the presence store (the cluster's truth), the channel-layer
side (:class:`~signaling.service.delivery.Delivery`), the room views
(:class:`~signaling.service.membership.Membership`), the room policy cache, the live
sockets of this process (client id -> connection), the sweeper and, with ``WEBHOOK_URL``,
the webhook outbox writer and delivery worker. Starts lazily with the
first connection or request (daphne sends no lifespan events), once per event loop.

The inbox loop turns channel-layer messages from other instances into deliveries to local
sockets; a message never waits for a room's lock (a pending joiner buffers instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from django.conf import settings

from signaling.log_context import set_instance
from signaling.presence import MemoryPresence, Participant, PresenceStore, RedisPresence
from signaling.service import metrics, moderation
from signaling.service.cancellation import raise_if_cancelled
from signaling.service.closing import close_here
from signaling.service.delivery import Delivery
from signaling.service.membership import Membership, Notice
from signaling.service.occupancy_marks import OccupancyMarks
from signaling.service.policies import RoomPolicies
from signaling.service.recovery import Keeper
from signaling.service.sweepers import Sweeper
from signaling.service.webhook_delivery import WebhookDelivery
from signaling.service.webhook_outbox import WebhookRecorder

if TYPE_CHECKING:
    from signaling.consumers.connection import Connection

logger = logging.getLogger(__name__)


def _log_seed_failure(room_id: str, future: Any) -> None:
    error = None if future.cancelled() else future.exception()
    if error is not None:
        logger.warning("presence not told that room %s has no bans (%s): its first join reads them", room_id, error)


# After the channel layer fails to receive (Redis restarting), wait this long before retrying.
INBOX_RETRY_S = 0.5
# At a clean stop, how long queued webhook events may take to reach the database.
STOP_FLUSH_S = 5.0


class Instance:
    """One per process (see :func:`get_instance`)."""

    def __init__(self, presence: PresenceStore, *, is_clustered: bool) -> None:
        self.presence = presence
        self.delivery = Delivery(is_clustered=is_clustered)
        self.keeper = Keeper(self)
        self.membership = Membership(self.keeper)
        self.policies = RoomPolicies()
        self.occupancy = OccupancyMarks()
        self.sockets: dict[str, Connection] = {}
        self.sweeper = Sweeper(self)
        self.webhook_delivery = WebhookDelivery()
        self.webhooks = WebhookRecorder(on_written=self.webhook_delivery.wake)
        self.instance_id = ""
        self.started_at = time.time()
        self._start_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- rooms created here ---------------------------------------------------------------

    def room_created(self, room: Any) -> None:
        """A room was just created on this instance (callable from any thread): cache its join
        policy, and tell presence the room has no bans yet, so that its first join reads no
        bans from the database. Presence keeps any ban recorded meanwhile (its ``load_bans``
        never removes one). Before the instance has started there is no presence to tell: the
        first join then loads the bans from the database, as for a room created elsewhere.
        """
        self.policies.remember(room)
        loop = self._loop
        if loop is None or not loop.is_running():
            return
        done = asyncio.run_coroutine_threadsafe(self.presence.load_bans(room.id, {}), loop)
        done.add_done_callback(lambda future: _log_seed_failure(room.id, future))

    # -- start and stop ------------------------------------------------------------------

    async def ensure_started(self) -> None:
        """Open the inbox and start the sweeper, once per event loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        if self._start_lock is None or self._start_lock._loop is not loop:  # type: ignore[attr-defined]
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._loop is loop:
                return
            self.instance_id = await self.delivery.open_inbox()
            set_instance(self.instance_id)
            await self.presence.register_instance(self.instance_id, self.liveness_ttl_ms)
            self._loop = loop
            self._tasks = [
                loop.create_task(self._inbox(), name="signaling-inbox"),
                loop.create_task(self.sweeper.run_liveness(), name="signaling-liveness"),
                loop.create_task(self.sweeper.run_upkeep(), name="signaling-upkeep"),
            ]
            if settings.SIGNALING.webhook_url:
                self._tasks += [
                    loop.create_task(self.webhooks.run(), name="signaling-webhook-outbox"),
                    loop.create_task(self.webhook_delivery.run(), name="signaling-webhook-delivery"),
                ]
            logger.info(
                "signaling instance %s started (%s)",
                self.instance_id,
                "redis" if self.delivery.is_clustered else "single-instance, in-process layer",
            )

    async def stop(self) -> None:
        """Write the queued webhook events and release the webhook leases this instance holds
        (both bounded), cancel the inbox, sweeper and webhook tasks, and leave the cluster's
        instance list. The integration tests call it; a server process ends without it
        (uvicorn's ``asyncio.run`` cancels the tasks, daphne's exit drops them; peers reap
        its liveness key)."""
        if self._loop is not None and settings.SIGNALING.webhook_url:
            await self.webhooks.flush(STOP_FLUSH_S)
            await self.webhook_delivery.stop()
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
    def heartbeat_s(self) -> float:
        return float(settings.SIGNALING.heartbeat_interval_ms) / 1000

    @property
    def liveness_ttl_ms(self) -> int:
        # Refreshed every heartbeat/4; a peer reaps a dead instance within
        # ttl + heartbeat/4 = 1.75 x heartbeat < 2 x heartbeat (SPEC section 5).
        return max(settings.SIGNALING.heartbeat_interval_ms * 3 // 2, 300)

    # -- inbox ---------------------------------------------------------------------------

    async def _inbox(self) -> None:
        while True:
            raise_if_cancelled()  # a cancel a Redis call in dispatch swallowed (Python 3.11's wait_for)
            try:
                message = await self.delivery.receive()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("instance %s: channel layer receive failed; retrying", self.instance_id, exc_info=True)
                await asyncio.sleep(INBOX_RETRY_S)
                continue
            try:
                await self.dispatch(message)
            except Exception:
                logger.exception("instance inbox failed on %s", message.get("type"))

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Deliver one message from another instance to the local sockets it concerns."""
        kind = message.get("type")
        if kind in moderation.MESSAGE_TYPES:
            await moderation.dispatch(self, message)
            return
        if kind == "peer.relay":
            if not await self.deliver_to_socket(message["to"], message["text"]):
                # Not here (any more): held since the sender looked, or resumed elsewhere.
                await self.keeper.keep_or_forward(message["to"], message["text"])
            return
        if message.get("origin") == self.instance_id:
            return
        room_id = message["room"]
        if kind == "room.closed":
            await close_here(self, room_id, message["text"])
            return
        view = self.membership.view(room_id)
        if view is None:
            return
        if kind == "room.broadcast":
            await view.deliver(message["text"], exclude=message.get("exclude"))
        elif kind == "room.joined":
            participant = Participant.loads(message["participant"])
            if view.learn_joined(participant):
                await view.deliver(message["text"], notice=Notice.JOINED, subject=participant.client_id)
        elif kind in ("room.held", "room.resumed"):
            view.learn_moved(Participant.loads(message["participant"]))
        elif kind == "room.left":
            client_id = message["client"]
            if view.learn_left(client_id) is not None:
                await view.deliver(message["text"], notice=Notice.LEFT, subject=client_id)

    async def deliver_to_socket(self, client_id: str, text: str) -> bool:
        """Write a packet to a local socket (buffered while it joins); False if none here."""
        conn = self.sockets.get(client_id)
        if conn is None:
            return False
        state = conn.state
        view = self.membership.locate(client_id, state.room_id if state is not None else None)
        if view is not None:
            return await view.deliver_to(client_id, text)
        if conn.session.is_closed and conn.sent is None:
            return False  # closed, and held already (or recovery off): the caller's keeper decides
        await conn.send_sio_text(text)
        return True


_instance: Instance | None = None


def get_instance() -> Instance:
    """The process's instance, built from settings on first use."""
    global _instance
    if _instance is None:
        url = settings.SIGNALING.redis_url
        presence: PresenceStore = (
            RedisPresence(url, prefix=settings.SIGNALING.redis_prefix) if url else MemoryPresence()
        )
        _instance = Instance(presence, is_clustered=bool(url))
        metrics.register_instance_collector()
    return _instance


def reset_instance() -> None:
    """Forget the instance (tests that change settings between cases)."""
    global _instance
    _instance = None
