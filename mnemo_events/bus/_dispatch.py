"""The bus's own tasks: the pump and the time-out watchdog.

The pump moves events from the bus mailbox into the Subject in batches of up to a few
hundred (what has queued up since its last turn), then yields to the loop. The watchdog
cancels handler calls that outlive ``delivery_timeout``: one periodic check for all
subscriptions instead of a timer per call, which would cost more than the call itself on
the hot path.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Mapping

from mnemo_events._log import logger
from mnemo_events.bus._aio import cancel_and_wait, wake
from mnemo_events.bus._mailbox import Mailbox
from mnemo_events.bus._subscription import SubscriptionActor
from mnemo_events.event import Event

__all__ = ["BusState", "BusTasks"]

_log = logger("bus")
_DISPATCH_BATCH = 512


class BusState(enum.Enum):
    """Where a bus is in its life."""

    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CLOSED = "closed"


class BusTasks:
    """Owns the pump and watchdog tasks of one bus, on whichever loop runs it."""

    def __init__(
        self,
        mailbox: Mailbox[Event],
        on_next: Callable[[list[Event]], None],
        dispatched: Callable[[], int],
        actors: Mapping[str, SubscriptionActor],
        delivery_timeout: float,
    ) -> None:
        self._mailbox = mailbox
        self._on_next = on_next
        self._dispatched = dispatched
        self._actors = actors
        self._timeout = delivery_timeout
        self._pump: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.live_loop: asyncio.AbstractEventLoop | None = None
        """The loop the pump runs on, None once it has stopped (a cheap check for publish)."""
        self.internal_errors = 0
        """Exceptions from the bus's own observers: bugs, logged and counted, never fatal."""

    def alive_on(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True when the pump runs on ``loop``."""
        task = self._pump
        return task is not None and not task.done() and task.get_loop() is loop

    def launch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the pump, the watchdog and every subscription actor on ``loop``."""
        self.loop = self.live_loop = loop
        self._pump = loop.create_task(self._run_pump(), name="mnemo-events bus")
        self._pump.add_done_callback(self._pump_done)
        self._watchdog = loop.create_task(self._run_watchdog(), name="mnemo-events watchdog")
        for actor in self._actors.values():
            if actor.needs_restart(loop):
                actor.start()

    def _pump_done(self, task: asyncio.Task[None]) -> None:
        if task is self._pump or self._pump is None:
            self.live_loop = None

    async def dispatched_up_to(self, target: int) -> None:
        """Wait until ``target`` events in all have gone through the Subject."""
        while self._dispatched() < target and self._pump is not None and not self._pump.done():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((target, waiter))
            await waiter

    async def halt_pump(self) -> None:
        """Stop moving events; those still in the mailbox wait for the next launch."""
        await cancel_and_wait(self._pump)
        self._pump = None
        self.live_loop = None

    async def halt_watchdog(self) -> None:
        """Stop watching handler calls."""
        await cancel_and_wait(self._watchdog)
        self._watchdog = None

    def _release_waiters(self) -> None:
        done = self._dispatched()
        pending = []
        for target, waiter in self._waiters:
            if target <= done:
                wake(waiter)
            else:
                pending.append((target, waiter))
        self._waiters = pending

    async def _run_pump(self) -> None:
        mailbox = self._mailbox
        on_next = self._on_next
        while True:
            if not mailbox:
                self._release_waiters()
                await mailbox.wait()
                continue
            batch = mailbox.take(_DISPATCH_BATCH)
            try:
                on_next(batch)
            except Exception as err:
                self.internal_errors += 1
                _log.exception(
                    "bus.dispatch_failed",
                    first_event_id=batch[0].id,
                    size=len(batch),
                    error=repr(err),
                )
            if self._waiters:
                self._release_waiters()
            await asyncio.sleep(0)

    async def _run_watchdog(self) -> None:
        timeout = self._timeout
        interval = min(max(timeout / 10, 0.005), 1.0)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for actor in self._actors.values():
                if actor.busy_since is not None:
                    actor.cancel_for_timeout(now, timeout)
