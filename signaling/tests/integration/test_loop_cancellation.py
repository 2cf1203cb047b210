"""The instance's forever-loops stop when cancelled, even when a call inside swallowed the cancel.

Python 3.11's ``asyncio.wait_for`` returns normally when the cancel reaches it after its inner
future finished (CPython gh-86296); redis-py writes every command through it. Here the
inner coroutine itself cancels the loop's task just before it finishes, which makes the real
``wait_for`` lose the cancel every time (on 3.12 it raises instead, and the loop stops too).
Under uvicorn a loop that went on after that kept ``asyncio.run``'s final cancellation
waiting forever (the e2e counterpart: ``signaling/tests/e2e/test_shutdown.py``).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from signaling.service.cancellation import raise_if_cancelled
from signaling.service.instance import get_instance

TIMEOUT_S = 10.0  # a bound against a hang, not a measure


class SwallowingStep:
    """A sweeper step whose one call meets the cancel as Python 3.11's ``wait_for`` does."""

    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.calls = 0
        self.cancelling_after_call: list[int] = []
        self.called_again = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.calls > 1:
            self.called_again.set()
            return

        async def write() -> None:  # the command's write finishing as the cancel comes
            assert self.task is not None
            self.task.cancel()

        await asyncio.wait_for(write(), 5)
        self.cancelling_after_call.append(asyncio.current_task().cancelling())  # type: ignore[union-attr]


async def ended_or_called_again(task: asyncio.Task[Any], step: SwallowingStep) -> None:
    again = asyncio.create_task(step.called_again.wait())
    try:
        await asyncio.wait({task, again}, timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        again.cancel()


async def test_a_sweeper_loop_stops_when_a_call_in_it_swallowed_the_cancel(fresh_instance: None) -> None:
    # given the sweeper's loop running a step whose wait_for loses the task's cancel
    step = SwallowingStep()
    task = asyncio.create_task(get_instance().sweeper._forever("test", step))
    step.task = task
    # when the step has run once (and its call cancelled the task)
    await ended_or_called_again(task, step)
    # then the loop ended as cancelled instead of going on with another pass
    if sys.version_info < (3, 12):
        assert step.cancelling_after_call == [1]  # the call did swallow it: the case under test
    assert task.cancelled()
    assert step.calls == 1


async def test_raise_if_cancelled_passes_in_a_task_nobody_cancelled() -> None:
    # given a task that was never cancelled; when it checks; then it goes on
    async def check() -> str:
        raise_if_cancelled()
        return "went on"

    assert await asyncio.wait_for(asyncio.create_task(check()), TIMEOUT_S) == "went on"
