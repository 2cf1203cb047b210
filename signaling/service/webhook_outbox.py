"""Participant webhook events on their way to the outbox, off the join and leave paths (SPEC 10).

Owns the writes of ``participant.*`` events, which follow presence changes (there is no
database transaction to share with them). Their ``seq`` numbers are reserved in presence
in the same atomic operation as the change (``signaling.presence``), so they follow the
order clients saw, across instances, before the change is acked. The rows themselves are
written afterwards: :class:`WebhookRecorder` methods are plain calls that queue the event
and return at once (a join or leave never waits for the database), and one task per
instance (:meth:`WebhookRecorder.run`) writes the queue in batches through ``run_db``, one
transaction per batch. Rows may reach the database in any order; the delivery worker
delivers a room's events in ``seq`` order (``rooms.webhooks.claim_due``). A database
outage keeps the queue (written once the database answers, with the original timestamps
and numbers); past ``MAX_QUEUED`` the newest are dropped and logged. What a crash costs:
the queue of that instance (at most a few milliseconds of events, or an outage's worth),
whose numbers the receiver then sees missing (``GAP_S`` later). Never on the relay path.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime

from django.utils import timezone

from rooms import webhooks
from rooms.webhooks import EventType, Pending
from signaling.presence import Participant
from signaling.service.cancellation import raise_if_cancelled
from signaling.service.database import run_db
from signaling.service.occupancy_marks import DATABASE_DOWN

logger = logging.getLogger(__name__)

MAX_QUEUED = 10_000
# Events written per transaction (a join storm is written in a few round trips).
BATCH_SIZE = 200
# While the database is unreachable, try the oldest queued events again this often.
RETRY_S = 1.0


def _next(seq: int, offset: int) -> int:
    """The ``offset``-th number after a reserved ``seq``; 0 (not reserved) stays 0."""
    return seq + offset if seq else 0


class WebhookRecorder:
    """This instance's writer of participant events (a no-op while webhooks are off)."""

    def __init__(self, on_written: Callable[[], None] | None = None) -> None:
        self._queue: deque[Pending] = deque()
        self._wake: asyncio.Event | None = None
        self._on_written = on_written

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def is_enabled(self) -> bool:
        """True when events are recorded (``WEBHOOK_URL`` is set): presence reserves numbers."""
        return webhooks.is_enabled()

    def joined(
        self, room_id: str, participant: Participant, participant_count: int, seq: int, *, is_room_start: bool
    ) -> None:
        """``participant.joined``, after ``room.started`` when this is the room's first join.

        Args:
            seq: the first number the join reserved (``room.started``'s when it starts the room).
        """
        now = timezone.now()
        if is_room_start:
            self._put(room_id, EventType.ROOM_STARTED, seq, participant_count, now, {})
            seq = _next(seq, 1)
        self._put(room_id, EventType.PARTICIPANT_JOINED, seq, participant_count, now, _who(participant))

    def left(self, room_id: str, participant: Participant, participant_count: int, reason: str, seq: int) -> None:
        """``participant.left`` with ``reason``, after presence removed the member."""
        fields = {**_who(participant), "reason": str(reason)}
        self._put(room_id, EventType.PARTICIPANT_LEFT, seq, participant_count, timezone.now(), fields)

    def kicked(
        self, room_id: str, participant: Participant, ban_seconds: int | None, participant_count: int, seq: int
    ) -> None:
        """``participant.kicked`` then ``participant.left`` (``kicked``): numbers ``seq``, ``seq + 1``."""
        fields = {**_who(participant), "banSeconds": ban_seconds}
        self._put(room_id, EventType.PARTICIPANT_KICKED, seq, participant_count, timezone.now(), fields)
        self.left(room_id, participant, participant_count, "kicked", _next(seq, 1))

    def _put(
        self,
        room_id: str,
        event_type: EventType,
        seq: int,
        participant_count: int,
        occurred_at: datetime,
        fields: dict[str, object],
    ) -> None:
        if not webhooks.is_enabled():
            return
        event = Pending(room_id, event_type, seq, participant_count, occurred_at, fields)
        if len(self._queue) >= MAX_QUEUED:
            logger.error("webhook event %s dropped: %d events wait for the database", event, MAX_QUEUED)
            return
        self._queue.append(event)
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Write queued events forever, oldest first (the instance's task)."""
        self._wake = asyncio.Event()
        while True:
            raise_if_cancelled()
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self.write_queued()

    async def flush(self, timeout_s: float) -> None:
        """Write what is queued, for at most ``timeout_s`` (a clean stop); what is left is lost (logged)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.write_queued()
        except TimeoutError:
            logger.error("webhooks: %d queued events not written at shutdown", len(self._queue))

    async def write_queued(self) -> None:
        """Write every queued event; while the database is unreachable, wait ``RETRY_S``."""
        while self._queue:
            batch = [self._queue[i] for i in range(min(BATCH_SIZE, len(self._queue)))]
            try:
                await run_db(webhooks.record_batch, batch)
            except DATABASE_DOWN as exc:
                logger.warning("database unreachable; %d webhook events kept for later (%s)", len(self._queue), exc)
                await asyncio.sleep(RETRY_S)
                continue
            for _ in batch:
                self._queue.popleft()
            if self._on_written is not None:
                self._on_written()


def _who(participant: Participant) -> dict[str, object]:
    return {"clientId": participant.client_id, "agentId": participant.agent_id}
