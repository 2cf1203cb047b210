"""Database calls of the signaling service: ORM work off the event loop, on dedicated threads.

Owns the thread pools ORM calls run on. The threads keep their database connection
(CONN_MAX_AGE). Two pools, so that neither waits behind the other:

- the service's (:func:`run_db`): room loads, lifecycle writes, occupancy marks, participant
  events; several threads for a server database, so room loads for different sockets
  proceed side by side; one for SQLite, which serialises writers anyway (and whose
  shared-cache in-memory test database refuses concurrent threads outright);
- the webhook delivery worker's (:func:`run_delivery_db`): one thread of its own, so that
  claims and delivery outcomes never queue behind the service's calls (and a slow claim
  never holds a join). On an in-memory SQLite database (tests) it is the service's pool.

Never called on the relay path.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import close_old_connections, connections

T = TypeVar("T")

SERVER_DB_THREADS = 4
DELIVERY_DB_THREADS = 1


def _is_sqlite() -> bool:
    return str(settings.DATABASES["default"]["ENGINE"]).endswith("sqlite3")


def _is_memory_sqlite() -> bool:
    from django.db import connection

    return _is_sqlite() and connection.is_in_memory_db()


def db_threads() -> int:
    """How many threads the service's pool uses."""
    return 1 if _is_sqlite() else SERVER_DB_THREADS


def _run_with_connections(func: Callable[..., T], args: tuple[Any, ...]) -> T:
    close_old_connections()
    try:
        return func(*args)
    finally:
        close_old_connections()


class DatabaseThreads:
    """A named pool of database threads, started on first use."""

    def __init__(self, name: str, threads: Callable[[], int]) -> None:
        self._name = name
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """Run an ORM call off the event loop, on this pool's threads."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self._threads(), thread_name_prefix=self._name)
        return await asyncio.get_running_loop().run_in_executor(self._executor, _run_with_connections, func, args)

    def close(self) -> None:
        """Close every thread's connection and stop the threads."""
        executor, self._executor = self._executor, None
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


_service = DatabaseThreads("signaling-db", db_threads)
_delivery = DatabaseThreads("signaling-webhook-db", lambda: DELIVERY_DB_THREADS)


async def run_db(func: Callable[..., T], *args: Any) -> T:
    """Run an ORM call of the service off the event loop."""
    return await _service.run(func, *args)


async def run_delivery_db(func: Callable[..., T], *args: Any) -> T:
    """Run an ORM call of the webhook delivery worker on its own thread."""
    if _is_memory_sqlite():
        return await _service.run(func, *args)
    return await _delivery.run(func, *args)


def close_db_threads() -> None:
    """Close every database thread's connection and stop the threads (test teardown, shutdown)."""
    _service.close()
    _delivery.close()
