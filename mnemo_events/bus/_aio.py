"""Small asyncio helpers shared by the actors."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait", "wake"]


def wake(waiter: asyncio.Future[None] | None) -> None:
    """Resolve a waiter future unless it is done or its loop is gone (a stale waiter)."""
    if waiter is not None and not waiter.done() and not waiter.get_loop().is_closed():
        waiter.set_result(None)


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait for it to finish; a task of a dead loop is left alone.

    The caller's own cancellation still propagates.
    """
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
