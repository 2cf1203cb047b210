"""Background upkeep of one instance: liveness, dead instances, due rooms, reconciliation.

Two tasks per instance (started lazily with the first connection or request: daphne sends
no lifespan events) run every heartbeat/4, liveness and reaping in one, the rest in the other
(so that slow upkeep never delays the liveness key):

- liveness: refresh this instance's key (TTL 1.5 x heartbeat), so a peer reaps a dead
  instance within 1.75 x heartbeat < 2 x heartbeat (SPEC section 5);
- reaping: the members of instances whose key expired are dropped, and their rooms told;
- rooms (every second): end held sessions whose recovery window passed (their rooms hear
  `user_left`), close rooms whose maxDuration or empty timeout passed;
- reconciliation (every heartbeat, at least 1 s apart, and at once when this instance finds
  itself unregistered: reaped while alive, or Redis restarted): presence is made to hold
  exactly this instance's live sockets and memberships, the room subscriptions are renewed,
  and each room view is compared with presence; whatever the local sockets were not told is
  told now. A member missing from presence is told gone only when it is still missing on
  the next pass (after a Redis restart every instance re-asserts its own first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from signaling.presence import JoinStatus
from signaling.service import events, offsets, payloads, recovery
from signaling.service.cancellation import raise_if_cancelled
from signaling.service.closing import close_due_rooms
from signaling.service.errors import LeaveReason
from signaling.service.membership import Notice
from signaling.service.occupancy_marks import DATABASE_DOWN
from signaling.service.participation import RESTORE_CAP, drop_departed, forget_ghost, subscribe

if TYPE_CHECKING:
    from signaling.service.instance import Instance

logger = logging.getLogger(__name__)

BACKEND_FAILURES = (RedisError, *DATABASE_DOWN)
ROOM_SWEEP_PERIOD_S = 1.0
MIN_RECONCILE_PERIOD_S = 1.0


class Sweeper:
    """The periodic upkeep of one instance."""

    def __init__(self, instance: Instance) -> None:
        self._instance = instance
        self._next_room_sweep = 0.0
        self._next_reconcile = 0.0
        self._is_reassert_due = False

    @property
    def period_s(self) -> float:
        return min(ROOM_SWEEP_PERIOD_S, self._instance.heartbeat_s / 4)

    async def run_liveness(self) -> None:
        """Refresh liveness and reap dead instances forever; nothing else runs in this task,
        so slow upkeep (many rooms, a slow database) never delays the liveness key."""
        await self._forever("liveness", self.liveness_once)

    async def run_upkeep(self) -> None:
        """Close due rooms and reconcile forever."""
        await self._forever("upkeep", self.upkeep_once)

    async def _forever(self, name: str, step: Any) -> None:
        while True:
            raise_if_cancelled()  # a cancel a Redis call swallowed (Python 3.11's wait_for)
            await asyncio.sleep(self.period_s)
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except BACKEND_FAILURES as exc:
                if isinstance(exc, RedisError):
                    self._instance.delivery.suspect_layer()
                logger.warning(
                    "%s of instance %s: a backend did not answer (%s); retrying", name, self._instance.instance_id, exc
                )
            except Exception:
                logger.exception("%s of instance %s failed; retrying", name, self._instance.instance_id)

    async def sweep_once(self, *, force: bool = False) -> None:
        """One pass of both (tests); ``force`` runs every part now."""
        await self.liveness_once()
        await self.upkeep_once(force=force)

    async def liveness_once(self) -> None:
        """Refresh this instance's key; reap instances whose key expired."""
        instance = self._instance
        was_unregistered = await instance.presence.register_instance(instance.instance_id, instance.liveness_ttl_ms)
        if was_unregistered:
            self._is_reassert_due = True
            # Redis may have restarted empty: its closed-rooms set is gone, so no cached
            # room may be trusted as open any more.
            instance.policies.forget_all()
            self._instance.delivery.suspect_layer()
            if instance.sockets:
                logger.warning(
                    "instance %s was not registered (reaped, or Redis lost its data); re-asserting",
                    instance.instance_id,
                )
        for instance_id in await instance.presence.dead_instances():
            if instance_id != instance.instance_id:
                await self.reap(instance_id)

    async def upkeep_once(self, *, force: bool = False) -> None:
        """Close due rooms (every second); reconcile when due, or at once after a re-registration."""
        instance = self._instance
        now = time.monotonic()
        if force or now >= self._next_room_sweep:
            self._next_room_sweep = now + ROOM_SWEEP_PERIOD_S
            await instance.occupancy.retry()
            await recovery.expire(instance)
            await close_due_rooms(instance)
        if force or self._is_reassert_due or now >= self._next_reconcile:
            self._is_reassert_due = False
            self._next_reconcile = now + max(MIN_RECONCILE_PERIOD_S, instance.heartbeat_s)
            await self.reconcile()

    async def reap(self, instance_id: str) -> None:
        """Drop a dead instance's members; only the instance that wins the claim reaps."""
        instance = self._instance
        left = await instance.presence.reap_instance(instance_id, events=int(instance.webhooks.is_enabled))
        if left:
            logger.warning("instance %s is gone; %d participants dropped", instance_id, len(left))
        for room_id, outcome in left:
            await drop_departed(instance, room_id, outcome, LeaveReason.DISCONNECTED)

    async def reconcile(self) -> None:
        """Make presence and the room views agree with this instance's live sockets."""
        instance = self._instance
        presence = instance.presence
        await instance.delivery.repair()
        await instance.delivery.join_instances_group()
        await presence.sync_connections(
            instance.instance_id,
            {client_id: conn.state.agent_id for client_id, conn in instance.sockets.items() if conn.state is not None},
        )
        for room_id in instance.membership.room_ids():
            try:
                await self._reconcile_room(room_id)
            except RedisError:
                # One room's failure (Redis still restarting) does not stop the others.
                logger.warning("reconciliation of room %s failed; retried next pass", room_id, exc_info=True)
        for room_id, client_id in await presence.memberships(instance.instance_id):
            await forget_ghost(instance, room_id, client_id)

    async def _reconcile_room(self, room_id: str) -> None:
        instance = self._instance
        async with instance.membership.room(room_id) as view:
            if view.is_closed or view.is_empty():
                return
            view.is_subscribed = False
            await subscribe(instance, view)  # renew: the layer may have lost the group (Redis restart)
            read_at = time.monotonic()
            present = {m.client_id: m for m in await instance.presence.members(room_id)}
            for client_id, conn in list(view.local.items()):
                participant = conn.state.participant if conn.state is not None else None
                if client_id in present or participant is None:
                    continue
                outcome = await instance.presence.join(room_id, participant, RESTORE_CAP)
                if outcome.status in (JoinStatus.JOINED, JoinStatus.ALREADY):
                    present[client_id] = participant
                    text = offsets.encode(events.USER_JOINED, payloads.user_joined(room_id, participant))
                    await instance.delivery.to_room(
                        room_id, {"type": "room.joined", "participant": participant.dumps(), "text": text}
                    )
            for client_id, member in present.items():
                known = view.members.get(client_id)
                if known is not None and known.instance_id != member.instance_id:
                    view.learn_moved(member)  # held, or resumed elsewhere (its message was missed)
                if known is not None or view.departed_since(client_id, read_at):
                    continue
                if member.instance_id == instance.instance_id and client_id not in view.local:
                    continue  # a ghost of this instance: removed below, never announced
                view.learn_joined(member)
                text = offsets.encode(events.USER_JOINED, payloads.user_joined(room_id, member))
                await view.deliver(text, notice=Notice.JOINED, subject=client_id, to_held=False)
            for client_id, member in list(view.members.items()):
                if client_id in present or not view.known_before(client_id, read_at):
                    view.unsuspect(client_id)
                    continue
                if not view.suspect(client_id):
                    # Missing once: its instance may be re-asserting it (Redis restarted);
                    # told only when still missing on the next pass.
                    continue
                view.learn_left(client_id)
                text = offsets.encode(events.USER_LEFT, payloads.user_left(room_id, member, LeaveReason.DISCONNECTED))
                await view.deliver(text, notice=Notice.LEFT, subject=client_id, to_held=False)
