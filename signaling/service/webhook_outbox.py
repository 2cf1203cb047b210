"""Participant webhook events on their way to the outbox, off the join and leave paths (SPEC 10).

Owns the writes of ``participant.*`` events, which follow presence changes (there is no
database transaction to share with them). :class:`WebhookRecorder` methods are plain calls
that queue the write and return at once: a join or leave never waits for the database, and
the relay path never comes here. One task per instance (:meth:`WebhookRecorder.run`) writes
the queue in order through ``run_db``, so one instance's events of a room get their ``seq``
in the order the changes happened. A database outage keeps the queue (written once the
database answers, with the original timestamps); past ``MAX_QUEUED`` the newest are dropped
and logged. Never imports the channel layer or presence beyond its result types.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

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
    """This instance's queue of participant events (a no-op while webhooks are off)."""

    def __init__(self, on_written: Callable[[], None] | None = None) -> None:
        self._queue: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._wake: asyncio.Event | None = None
        self._on_written = on_written

    def __len__(self) -> int:
        return len(self._queue)

    def joined(self, room_id: str, participant: Participant, participant_count: int) -> None:
        """``participant.joined`` (and ``room.started`` on the room's first join)."""
        self._put(
            webhooks.record_participant_joined,
            room_id,
            participant.client_id,
            participant.agent_id,
            participant_count,
            timezone.now(),
        )

    def left(self, room_id: str, outcome: LeaveOutcome, reason: str) -> None:
        """``participant.left`` with ``reason``, after presence removed the member."""
        participant = outcome.participant
        self._put(
            webhooks.record_participant_left,
            room_id,
            participant.client_id,
            participant.agent_id,
            str(reason),
            outcome.remaining,
            timezone.now(),
        )

    def kicked(self, room_id: str, participant: Participant, ban_seconds: int | None, participant_count: int) -> None:
        """``participant.kicked``: call before the kick's leave (which records ``participant.left``)."""
        self._put(
            webhooks.record_participant_kicked,
            room_id,
            participant.client_id,
            participant.agent_id,
            ban_seconds,
            participant_count,
            timezone.now(),
        )

    def _put(self, func: Callable[..., None], *args: Any) -> None:
        if not webhooks.is_enabled():
            return
        if len(self._queue) >= MAX_QUEUED:
            logger.error("webhook event %s%s dropped: %d events wait for the database", func.__name__, args, MAX_QUEUED)
            return
        self._queue.append((func, args))
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Write queued events forever, oldest first (the instance's task)."""
        self._wake = asyncio.Event()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self.write_queued()

    async def write_queued(self) -> None:
        """Write every queued event; on a database outage keep them and wait ``RETRY_S``."""
        while self._queue:
            func, args = self._queue[0]
            try:
                await run_db(func, *args)
            except DATABASE_DOWN as exc:
                logger.warning("database unreachable; %d webhook events kept for later (%s)", len(self._queue), exc)
                await asyncio.sleep(RETRY_S)
                continue
            except Exception:
                # A bug or a constraint error: this event cannot be written; the others can.
                logger.exception("webhook event %s%s could not be written; dropped", func.__name__, args)
            self._queue.popleft()
            if self._on_written is not None:
                self._on_written()
