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

    The cancellation is sent again every ``_CANCEL_AGAIN_AFTER`` seconds until the task ends:
    on Python 3.11 ``asyncio.wait_for`` (inside nats-py's ``fetch`` and ``next_msg``) drops a
    cancellation that arrives just as its result does (gh-86296), and a fetch loop would go
    on for ever. The task's own exception is raised here, as awaiting it would; the caller's
    own cancellation still propagates.
    """
    if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
        return
    task.cancel()
    while not (await asyncio.wait({task}, timeout=_CANCEL_AGAIN_AFTER))[0]:
        task.cancel()
    if not task.cancelled():
        task.result()


_CANCEL_AGAIN_AFTER = 0.25
"""How long a cancelled task gets to end before its cancellation is sent again."""
