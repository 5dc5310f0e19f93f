"""Tests of the asyncio helpers the actors share: ``cancel_and_wait`` ends a task even when
its first cancellation is lost, and passes on the task's error and the caller's cancellation."""

from __future__ import annotations

import asyncio

import pytest

from mnemo_events.bus._aio import cancel_and_wait


async def test_a_task_that_drops_a_cancellation_is_still_ended() -> None:
    """A loop whose first cancellation is swallowed (as ``asyncio.wait_for`` can on Python
    3.11) is cancelled again and ends, instead of stopping its owner for ever."""
    dropped = 0

    async def fetch_loop() -> None:
        nonlocal dropped
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if dropped:
                    raise
                dropped += 1
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(fetch_loop())
    await asyncio.sleep(0.02)
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled()
    assert dropped == 1


async def test_the_tasks_own_error_is_raised() -> None:
    """A task that fails while being cancelled hands its error to the caller."""

    async def failing() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(task)


async def test_the_callers_cancellation_propagates() -> None:
    """Cancelling the caller while it waits for a stubborn task cancels the caller."""

    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    released.set()  # let it end: it swallowed every cancellation so far
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done()
