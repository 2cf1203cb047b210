"""Cancellation of the instance's forever-loops, when a library swallowed the CancelledError.

Python 3.11's ``asyncio.wait_for`` returns its result instead of raising when the cancel
reaches it after its inner future finished (CPython gh-86296, fixed in 3.12 by rebuilding
``wait_for`` on ``asyncio.timeout``). redis-py runs every command's write through it (with
its default ``socket_timeout``), so a loop that makes Redis calls loses, now and then, the
one ``cancel()`` it gets: ``asyncio.run``'s final cancellation under uvicorn then waits
for it forever (reproduced: the liveness task, "cancelling", still looping; the same
symptom as a drain test's stall in CI).
The task keeps the request, though (``Task.cancelling()``), so each loop checks it once per
pass. Imports only asyncio.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Raise ``CancelledError`` if the current task was cancelled and the error got lost.

    ``Task.cancelling()`` counts the cancel requests not taken back; only ``asyncio.timeout``
    and ``TaskGroup`` take theirs back (``uncancel``), so a count left over means a cancel
    that code below this loop swallowed.

    Raises:
        asyncio.CancelledError: the task was asked to stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
