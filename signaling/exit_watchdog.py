"""The last resort after the hand-over to the server's shutdown: exit 0 anyway, and say why.

:mod:`signaling.lifecycle` arms it when it hands over (drain done, or a second signal). A
server that ends by itself never hears from it: the thread is a daemon. If the process is
still there ``grace_s`` later, the watchdog logs one WARNING naming how many tasks of the
event loop are unfinished, one per such task (its repr and the chain of coroutines it is
suspended in) and one per thread (its stack: the main thread shows the phase, e.g.
``asyncio.run``'s final task cancellation, the executor shutdown, the interpreter's thread
joins), then ends the process with ``os._exit(0)`` (SPEC section 7: a drained instance
ends). Its first words are :data:`WATCHDOG_WARNING` (the shutdown tests look for them).
Imports only the standard library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
from typing import Any

logger = logging.getLogger(__name__)

# What the watchdog's warnings start with: its absence from a log means it never fired.
WATCHDOG_WARNING = "shutdown: the process did not end"
# When the watchdog fires, how long the loop may take to list its own tasks.
TASK_DUMP_WAIT_S = 1.0


def exit_after(grace_s: float, loop: asyncio.AbstractEventLoop) -> None:
    """Exit the process with status 0 in ``grace_s`` unless it has ended by then, logging
    what it still waited for (see the module docstring)."""

    def watchdog() -> None:
        time.sleep(grace_s)
        tasks = pending_tasks(loop)
        logger.warning(
            WATCHDOG_WARNING + " %.0f s after the hand-over; exiting 0 anyway; %d task(s) pending",
            grace_s,
            len(tasks),
        )
        for line in tasks:
            logger.warning(WATCHDOG_WARNING + ": pending task %s", line)
        for line in thread_stacks():
            logger.warning(WATCHDOG_WARNING + ": thread %s", line)
        logging.shutdown()
        os._exit(0)

    threading.Thread(target=watchdog, name="signaling-exit-watchdog", daemon=True).start()


def pending_tasks(loop: asyncio.AbstractEventLoop) -> list[str]:
    """One line per unfinished task of ``loop``: its repr and where it is suspended.

    Read in the loop's own thread while the loop still runs callbacks (it answers within
    :data:`TASK_DUMP_WAIT_S`); else from the calling thread (the loop is closed or blocked),
    a best effort: the tasks may change while they are read.
    """
    answered: list[list[str]] = []
    done = threading.Event()

    def in_loop() -> None:
        answered.append(_describe(asyncio.all_tasks(loop)))
        done.set()

    try:
        loop.call_soon_threadsafe(in_loop)
    except RuntimeError:  # the loop is closed
        pass
    else:
        if done.wait(TASK_DUMP_WAIT_S):
            return answered[0]
    where = "loop closed" if loop.is_closed() else "loop not answering"
    for _ in range(3):  # all_tasks raises when the set changes while it reads it
        try:
            return [f"({where}) {line}" for line in _describe(asyncio.all_tasks(loop))]
        except RuntimeError:
            continue
    return [f"({where}) the tasks could not be read"]


def _describe(tasks: set[asyncio.Task[Any]]) -> list[str]:
    lines = []
    for task in sorted(tasks, key=lambda t: t.get_name()):
        frames = []
        coro: Any = task.get_coro()
        while coro is not None:  # the await chain (a task's own stack has its outermost frame only)
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        lines.append(f"{task!r} at {' > '.join(frames) or '?'}")
    return lines


def thread_stacks() -> list[str]:
    """One line per thread: its name and its stack, outermost frame first."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    lines = []
    for ident, frame in sys._current_frames().items():
        stack = " > ".join(f"{entry.filename}:{entry.lineno} {entry.name}" for entry in traceback.extract_stack(frame))
        lines.append(f"{names.get(ident, ident)}: {stack}")
    return lines
