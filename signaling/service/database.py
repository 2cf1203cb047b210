"""Database calls of the signaling service: ORM work off the event loop, on dedicated threads.

Owns the thread pool the service runs ORM calls on. The threads keep their database
connection (CONN_MAX_AGE): several for a server database, so room loads for different
sockets proceed side by side; one for SQLite, which serialises writers anyway (and whose
shared-cache test database refuses concurrent threads outright). Never called on the
relay path.
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
_executor: ThreadPoolExecutor | None = None


def db_threads() -> int:
    """How many database threads this process uses."""
    is_sqlite = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
    return 1 if is_sqlite else SERVER_DB_THREADS


def _run_with_connections(func: Callable[..., T], args: tuple[Any, ...]) -> T:
    close_old_connections()
    try:
        return func(*args)
    finally:
        close_old_connections()


async def run_db(func: Callable[..., T], *args: Any) -> T:
    """Run an ORM call off the event loop, on the database threads."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=db_threads(), thread_name_prefix="signaling-db")
    return await asyncio.get_running_loop().run_in_executor(_executor, _run_with_connections, func, args)


def close_db_threads() -> None:
    """Close every database thread's connection and stop the threads (test teardown, shutdown)."""
    global _executor
    executor, _executor = _executor, None
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
