"""What the exit watchdog logs when it fires: the loop's pending tasks and every thread's stack.

An event loop runs in a thread of its own here, as the server's loop runs while the
watchdog's thread looks at it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from signaling.exit_watchdog import pending_tasks, thread_stacks

TIMEOUT_S = 10.0  # a bound against a hang, not a measure


async def waits_forever() -> None:
    await asyncio.Event().wait()


async def holds_on(started: threading.Event) -> None:
    started.set()
    await waits_forever()


async def cancel_the_others() -> None:
    others = asyncio.all_tasks() - {asyncio.current_task()}
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)


@pytest.fixture
def loop_in_a_thread() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="test-loop", daemon=True)
    thread.start()
    yield loop
    asyncio.run_coroutine_threadsafe(cancel_the_others(), loop).result(TIMEOUT_S)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(TIMEOUT_S)
    loop.close()


def test_pending_tasks_names_each_task_and_where_it_waits(loop_in_a_thread: asyncio.AbstractEventLoop) -> None:
    # given a running loop with a task suspended two coroutines deep
    started = threading.Event()
    loop_in_a_thread.call_soon_threadsafe(lambda: loop_in_a_thread.create_task(holds_on(started), name="stuck"))
    assert started.wait(TIMEOUT_S)
    # when the watchdog's thread lists the loop's tasks
    lines = pending_tasks(loop_in_a_thread)
    # then the task is there, read in the loop's thread, with its await chain
    assert len(lines) == 1, lines
    assert lines[0].startswith("<Task pending name='stuck'"), lines
    chain = lines[0].split(" at ", 1)[1].split(" > ")
    assert [entry.rsplit(" ", 1)[1] for entry in chain] == ["holds_on", "waits_forever", "wait"], chain


def test_pending_tasks_of_a_closed_loop_says_so() -> None:
    # given a loop that is closed (the process is past asyncio.run's end)
    loop = asyncio.new_event_loop()
    loop.close()
    # when the watchdog lists its tasks; then it lists none (and does not wait for the loop)
    assert pending_tasks(loop) == []


def test_thread_stacks_has_one_line_per_thread_with_its_frames() -> None:
    # given this thread and a named one waiting on an event
    release = threading.Event()
    other = threading.Thread(target=release.wait, name="test-waiter", daemon=True)
    other.start()
    try:
        # when the stacks are taken
        lines = thread_stacks()
    finally:
        release.set()
        other.join(TIMEOUT_S)
    # then each thread is one line: its name, then its frames to the innermost
    by_name = {line.split(": ", 1)[0]: line for line in lines}
    assert by_name["test-waiter"].endswith(" wait"), by_name["test-waiter"]
    assert " thread_stacks" in by_name[threading.current_thread().name]
