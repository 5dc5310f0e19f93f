"""The bus side of dispatch: the lifecycle state, the deliver step and the time-out watchdog.

The transport calls :meth:`Dispatcher.deliver` with each batch. It pushes the batch through
the bus Subject (reducers and router), then waits while any subscriber it fed holds more
than its mailbox capacity: that wait is the backpressure a slow handler applies, through a
transport that stops taking events, to ``publish``.

The watchdog cancels handler calls that outlive ``delivery_timeout``: one periodic check for
all subscriptions instead of a timer per call, which would cost more than the call itself on
the hot path.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping

from mnemo_events._log import logger
from mnemo_events.bus._aio import cancel_and_wait
from mnemo_events.bus._subscription import SubscriptionActor
from mnemo_events.event import Event

__all__ = ["BusState", "Dispatcher", "Watchdog"]

_log = logger("bus")


class BusState(enum.Enum):
    """Where a bus is in its life."""

    NEW = "new"
    """Created; ``publish`` queues, nothing is dispatched until ``start()``."""
    RUNNING = "running"
    STOPPING = "stopping"
    """``stop()`` is draining what was published before it."""
    STOPPED = "stopped"
    """Stopped; ``start()`` resumes with what was queued meanwhile."""
    CLOSED = "closed"
    """Shut down: every call that needs the bus raises ``BusClosedError``."""


class Dispatcher:
    """Feeds each delivered batch to the Subject and applies subscriber backpressure."""

    def __init__(
        self, on_next: Callable[[list[Event]], None], congested: list[SubscriptionActor]
    ) -> None:
        self._on_next = on_next
        self._congested = congested
        self.internal_errors = 0
        """Exceptions from the bus's own observers: bugs, logged and counted, never fatal."""

    async def deliver(self, batch: list[Event]) -> None:
        """Dispatch one batch, then wait for room in every subscriber it filled up."""
        try:
            self._on_next(batch)
        except Exception as err:
            self.internal_errors += 1
            _log.exception(
                "bus.dispatch_failed", first_event_id=batch[0].id, size=len(batch), error=repr(err)
            )
        congested = self._congested
        while congested:
            await congested.pop().wait_for_room()


class Watchdog:
    """Owns the task that times out handler calls, on whichever loop runs the bus."""

    def __init__(self, actors: Mapping[str, SubscriptionActor], delivery_timeout: float) -> None:
        self._actors = actors
        self._timeout = delivery_timeout
        self._task: asyncio.Task[None] | None = None

    def launch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start watching on ``loop`` (a task on another, dead loop is forgotten)."""
        task = self._task
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        self._task = loop.create_task(self._run(), name="mnemo-events watchdog")

    async def halt(self) -> None:
        """Stop watching handler calls."""
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        timeout = self._timeout
        interval = min(max(timeout / 10, 0.005), 1.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for actor in self._actors.values():
                if actor.busy_since is not None:
                    actor.cancel_for_timeout(now, timeout)
