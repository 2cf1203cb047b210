"""Delivery between instances: the channel layer, and nothing else (SPEC section 5).

Owns this instance's inbox (one channel-layer channel per process) and the room groups it
is subscribed to. The only caller of ``group_send``/``group_add``/``group_discard`` and of
the layer's ``send``. Messages are high-level dicts (``{"type": "room.broadcast", ...}``)
carrying the packet's pre-encoded Socket.IO text, so a packet is encoded once however many
instances deliver it. Without ``REDIS_URL`` there is one instance: room-wide messages never
leave the process (there is nobody to receive them).

Never touches sockets or presence: :mod:`signaling.service.membership` decides who gets what.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GROUP_PREFIX = "room."
INBOX_PREFIX = "signaling.instance."
# Every instance's inbox is in this group: cluster-wide notices (a room's settings changed).
INSTANCES_GROUP = "signaling.instances"


def room_group(room_id: str) -> str:
    """The channel-layer group of a room (ASCII letters, digits, ``-_.``, < 100 chars)."""
    return GROUP_PREFIX + room_id


class Delivery:
    """This instance's side of the channel layer."""

    def __init__(self, *, is_clustered: bool) -> None:
        self.is_clustered = is_clustered
        self.inbox = ""
        self._layer: Any = None
        self._is_repair_due = False

    @property
    def layer(self) -> Any:
        """The default channel layer (resolved on first use)."""
        if self._layer is None:
            self._layer = get_channel_layer()
        return self._layer

    async def open_inbox(self) -> str:
        """Create this instance's inbox channel; its name is the instance id."""
        self.inbox = await self.layer.new_channel(INBOX_PREFIX)
        await self.join_instances_group()
        return self.inbox

    async def join_instances_group(self) -> None:
        """Be in the all-instances group (idempotent; renewed by reconciliation: groups expire)."""
        if self.is_clustered:
            await self.layer.group_add(INSTANCES_GROUP, self.inbox)

    async def to_instances(self, message: dict[str, Any]) -> None:
        """One message to every other instance of the cluster."""
        if self.is_clustered:
            await self.layer.group_send(INSTANCES_GROUP, {**message, "origin": self.inbox})

    async def receive(self) -> dict[str, Any]:
        """The next message for this instance."""
        message: dict[str, Any] = await self.layer.receive(self.inbox)
        return message

    async def subscribe(self, room_id: str) -> None:
        """Receive the room's group messages from now on (idempotent; refreshes expiry)."""
        if self.is_clustered:
            await self.layer.group_add(room_group(room_id), self.inbox)

    async def unsubscribe(self, room_id: str) -> None:
        """Stop receiving the room's group messages."""
        if self.is_clustered:
            await self.layer.group_discard(room_group(room_id), self.inbox)

    async def to_room(self, room_id: str, message: dict[str, Any]) -> None:
        """One message to every other instance subscribed to the room."""
        if self.is_clustered:
            await self.layer.group_send(room_group(room_id), {**message, "room": room_id, "origin": self.inbox})

    async def to_instance(self, instance_id: str, message: dict[str, Any]) -> None:
        """One message to one instance's inbox."""
        await self.layer.send(instance_id, message)

    def suspect_layer(self) -> None:
        """Redis failed or lost its data: re-subscribe on the next :meth:`repair`."""
        self._is_repair_due = True

    async def repair(self) -> int:
        """After Redis trouble, subscribe the pub/sub layer's channels again; returns how many.

        channels_redis's ``RedisPubSubChannelLayer`` (4.3) does not recover from a Redis outage
        longer than the connection retries: redis-py reconnects the PubSub connection but the
        server no longer has its subscriptions, while the client still believes it has, so
        this instance would receive nothing again (seen in ``test_outages.py``). SUBSCRIBE is
        idempotent, so every channel the shard tracks is subscribed again. Relies on the
        shard attributes ``_pubsub``, ``_subscribed_to`` and ``_lock``, checked by
        ``signaling/tests/integration/test_layer_internals.py``.
        """
        if not self._is_repair_due:
            return 0
        self._is_repair_due = False
        repaired = 0
        for shard in getattr(self.layer, "_shards", ()):
            pubsub = shard._pubsub
            channels = sorted(shard._subscribed_to)
            if pubsub is None or not channels:
                continue
            try:
                async with shard._lock:
                    await pubsub.subscribe(*channels)
            except BaseException:
                self._is_repair_due = True  # Redis still away: next pass
                raise
            repaired += len(channels)
        if repaired:
            logger.warning("channel layer subscriptions renewed after Redis trouble (%d channels)", repaired)
        return repaired

    async def probe(self) -> None:
        """Raise when the channel layer does not answer (readiness)."""
        await self.layer.group_send("readyz", {"type": "readyz.probe"})
