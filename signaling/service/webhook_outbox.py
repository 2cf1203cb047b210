"""Participant webhook events on their way to the outbox, from the join and leave paths (SPEC 10).

Owns the writes of ``participant.*`` events, which follow presence changes (there is no
database transaction to share with them). The service awaits each write right after the
presence change, before the change's ack: whatever a client can observe (its ack, then its
next action) is in the outbox already, so ``seq`` follows the order clients saw, across
instances too. Writes go through ``run_db`` (never the relay path). A database outage never
breaks the join or leave: the event is kept, and every later event queues behind it (order
kept), and one task per instance (:meth:`WebhookRecorder.run`) writes the queue once the
database answers, with the original timestamps. Past ``MAX_QUEUED`` the newest are dropped
and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from rooms import webhooks
from signaling.presence import LeaveOutcome, Participant
from signaling.service.database import run_db
from signaling.service.occupancy_marks import DATABASE_DOWN

logger = logging.getLogger(__name__)

MAX_QUEUED = 10_000
# While the database is unreachable, try the oldest queued event again this often.
RETRY_S = 1.0


class WebhookRecorder:
    """This instance's writer of participant events (a no-op while webhooks are off)."""

    def __init__(self, on_written: Callable[[], None] | None = None) -> None:
        self._queue: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._wake: asyncio.Event | None = None
        self._on_written = on_written

    def __len__(self) -> int:
        return len(self._queue)

    async def joined(self, room_id: str, participant: Participant, participant_count: int) -> None:
        """``participant.joined`` (and ``room.started`` on the room's first join)."""
        await self._write(
            webhooks.record_participant_joined,
            room_id,
            participant.client_id,
            participant.agent_id,
            participant_count,
            timezone.now(),
        )

    async def left(self, room_id: str, outcome: LeaveOutcome, reason: str) -> None:
        """``participant.left`` with ``reason``, after presence removed the member."""
        participant = outcome.participant
        await self._write(
            webhooks.record_participant_left,
            room_id,
            participant.client_id,
            participant.agent_id,
            str(reason),
            outcome.remaining,
            timezone.now(),
        )

    async def kicked(
        self, room_id: str, participant: Participant, ban_seconds: int | None, participant_count: int
    ) -> None:
        """``participant.kicked``: await it before the kick's leave (which records ``participant.left``)."""
        await self._write(
            webhooks.record_participant_kicked,
            room_id,
            participant.client_id,
            participant.agent_id,
            ban_seconds,
            participant_count,
            timezone.now(),
        )

    async def _write(self, func: Callable[..., None], *args: Any) -> None:
        """Write the event now; keep it (behind any kept ones) when the database is unreachable."""
        if not webhooks.is_enabled():
            return
        if not self._queue:
            try:
                await run_db(func, *args)
            except DATABASE_DOWN as exc:
                logger.warning("database unreachable; webhook event %s kept for later (%s)", func.__name__, exc)
            except DatabaseError:
                # Not an outage (a bug, a constraint): this event is lost, the join or leave is not.
                logger.exception("webhook event %s%s could not be written; dropped", func.__name__, args)
                return
            else:
                if self._on_written is not None:
                    self._on_written()
                return
        self._put(func, args)

    def _put(self, func: Callable[..., None], args: tuple[Any, ...]) -> None:
        if len(self._queue) >= MAX_QUEUED:
            logger.error("webhook event %s%s dropped: %d events wait for the database", func.__name__, args, MAX_QUEUED)
            return
        self._queue.append((func, args))
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Write kept events forever, oldest first (the instance's task)."""
        self._wake = asyncio.Event()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self.write_queued()

    async def write_queued(self) -> None:
        """Write every kept event; while the database is still unreachable, wait ``RETRY_S``."""
        while self._queue:
            func, args = self._queue[0]
            try:
                await run_db(func, *args)
            except DATABASE_DOWN as exc:
                logger.warning("database unreachable; %d webhook events kept for later (%s)", len(self._queue), exc)
                await asyncio.sleep(RETRY_S)
                continue
            except DatabaseError:
                # A bug or a constraint error: this event cannot be written; the others can.
                logger.exception("webhook event %s%s could not be written; dropped", func.__name__, args)
            self._queue.popleft()
            if self._on_written is not None:
                self._on_written()
