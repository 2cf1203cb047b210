"""Occupancy marks on their way to the database, kept through a database outage (SPEC 4).

Owns the writes of ``rooms/occupancy`` that follow presence changes (occupied, empty, expiry
cancelled). A mark that the database refuses because it is unreachable is kept and written
again by the sweeper once the database answers: a room emptied during an outage still
expires afterwards. Marks carry presence's membership version, so writing them late or out
of order is safe. Bounded: past ``MAX_KEPT`` the oldest are dropped (logged).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from django.db import InterfaceError, OperationalError

from signaling.service.database import run_db

logger = logging.getLogger(__name__)

MAX_KEPT = 10_000
DATABASE_DOWN = (OperationalError, InterfaceError)


class OccupancyMarks:
    """This instance's writer of occupancy marks."""

    def __init__(self) -> None:
        self._kept: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque(maxlen=MAX_KEPT)

    def __len__(self) -> int:
        return len(self._kept)

    async def write(self, func: Callable[..., None], *args: Any) -> None:
        """Write a mark now, or keep it for :meth:`retry` when the database is unreachable."""
        try:
            await run_db(func, *args)
        except DATABASE_DOWN as exc:
            if len(self._kept) == MAX_KEPT:
                logger.error("occupancy mark dropped: %d marks wait for the database already", MAX_KEPT)
            self._kept.append((func, args))
            logger.warning("database unreachable; occupancy mark %s%s kept for later (%s)", func.__name__, args, exc)

    async def retry(self) -> None:
        """Write the kept marks, oldest first; stop at the first that fails again."""
        while self._kept:
            func, args = self._kept[0]
            try:
                await run_db(func, *args)
            except DATABASE_DOWN:
                return
            self._kept.popleft()
