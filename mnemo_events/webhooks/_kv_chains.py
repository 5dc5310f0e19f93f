"""The background writes of the KV delivery store: one chain per key, retried while the
server is away, and the failures that :meth:`flush` reports.

Each write is a task that starts once the write queued before it on the same chain (the
same delivery, or the same webhook's counters) has finished, so the writes of one record
are applied in the order they were submitted, while writes of different records overlap
and their acknowledgements are pipelined on the one connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import nats.errors
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

__all__ = ["TRANSIENT", "WriteChains", "retrying"]

_T = TypeVar("_T")
TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    NoStreamResponseError,
    ServiceUnavailableError,
)
"""Failures of a server restarting or briefly away: the write is tried again."""


class WriteChains:
    """Ordered background writes per key (see the module docstring)."""

    def __init__(self, write_timeout: float) -> None:
        self.write_timeout = write_timeout
        """How long :meth:`retrying` tries a write again while the server is away."""
        self._tails: dict[str, asyncio.Task[Any]] = {}
        self._inflight: set[asyncio.Task[Any]] = set()
        self._unreported: list[BaseException] = []

    def enqueue(self, chain: str, work: Callable[[], Awaitable[_T]]) -> asyncio.Task[_T]:
        """Run ``work`` after the writes queued before on ``chain``; its task."""
        previous = self._tails.get(chain)

        async def _step() -> _T:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            return await work()

        task = asyncio.get_running_loop().create_task(_step())
        self._tails[chain] = task
        self._inflight.add(task)
        task.add_done_callback(lambda done: self._finished(chain, done))
        return task

    def _finished(self, chain: str, task: asyncio.Task[Any]) -> None:
        if self._tails.get(chain) is task:
            del self._tails[chain]
        self._inflight.discard(task)
        if not task.cancelled():
            error = task.exception()  # retrieved here, so asyncio does not report it again
            if error is not None:
                self._unreported.append(error)

    async def settled(self) -> None:
        """Wait (never raising) for every write submitted before the call."""
        pending = list(self._inflight)
        if pending:
            await asyncio.wait(pending)

    def take_failure(self) -> BaseException | None:
        """The first write failure since the last call, if any (the others were logged)."""
        failed, self._unreported = self._unreported, []
        return failed[0] if failed else None

    async def retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """:func:`retrying` with :attr:`write_timeout`."""
        return await retrying(call, self.write_timeout)


async def retrying(call: Callable[[], Awaitable[_T]], give_up_after: float) -> _T:
    """``call()``, tried again (50 ms, doubling to 1 s) while the server is away, up to
    ``give_up_after`` seconds; then its error. (Each try is bounded by the client's own
    request time-out.)"""
    deadline = time.monotonic() + give_up_after
    delay = 0.05
    while True:
        try:
            return await call()
        except TRANSIENT:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
