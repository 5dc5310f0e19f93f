"""A subscription actor: its own mailbox and task, so one subscriber never holds up another.

The router offers each matching event; the actor's task applies the predicate and calls the
handler, one event at a time in publish order. Every failure (a raising filter, a raising
handler, a handler over ``delivery_timeout``) is logged and counted here, never raised into
the bus.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from reactivex import abc

from mnemo_events._compat import MnemoCoreKeys
from mnemo_events._log import logger
from mnemo_events.bus._aio import wake
from mnemo_events.bus._mailbox import Mailbox
from mnemo_events.event import Event
from mnemo_events.exceptions import SubscriptionClosedError
from mnemo_events.patterns import Pattern

__all__ = [
    "Handler",
    "SubscriptionActor",
    "SubscriptionInfo",
    "SubscriptionState",
    "halt_all",
]

Handler = Callable[[Event], Awaitable[Any] | Any]
EventFilter = Callable[[Event], bool]

_log = logger("bus")
_LAG_WARNING_STEP = 10_000
_BATCH = 256


@dataclass(frozen=True, slots=True)
class SubscriptionInfo(MnemoCoreKeys):
    """A snapshot of one subscription and its counters.

    Also readable as a mapping with MnemoCore's keys (``info["error_count"]``,
    ``"event_pattern"``, ``"delivery_count"``, ``"has_filter"``, ...) and those of
    :meth:`to_dict`.
    """

    id: str
    pattern: str
    handler: str
    """The handler's qualified name."""
    enabled: bool
    delivered: int
    """Handler calls that completed."""
    errors: int
    """Handler or filter failures and time-outs."""
    timeouts: int
    """Handler calls cancelled after ``delivery_timeout`` (also counted in ``errors``)."""
    pending: int
    """Events waiting in this subscription's mailbox."""
    last_delivery_at: datetime | None
    last_error: str | None
    created_at: datetime | None = None
    has_filter: bool = False

    def _mnemocore_items(self) -> dict[str, Any]:
        shown = self.to_dict()
        return shown | {
            "event_pattern": self.pattern,
            "delivery_count": self.delivered,
            "error_count": self.errors,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "has_filter": self.has_filter,
        }

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "pattern": self.pattern,
            "handler": self.handler,
            "enabled": self.enabled,
            "delivered": self.delivered,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "pending": self.pending,
            "last_delivery_at": (
                self.last_delivery_at.isoformat() if self.last_delivery_at else None
            ),
            "last_error": self.last_error,
        }


def _name_of(handler: Callable[..., Any]) -> str:
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    module = getattr(handler, "__module__", None)
    return f"{module}.{name}" if module else str(name)


class SubscriptionState(enum.Enum):
    """Where a subscription actor is in its life."""

    IDLE = "idle"
    """Registered; its task is not running (bus not started, or stopped)."""
    RUNNING = "running"
    """Its task feeds the handler."""
    CLOSED = "closed"
    """Unsubscribed for good: refuses to start again."""


_PASSTHROUGH = (KeyboardInterrupt, SystemExit)
"""BaseExceptions that end the process, not a handler call: never swallowed."""


HANDLER_OBSERVERS: list[Callable[[SubscriptionActor, Event, float], None]] = []
"""Called with each handler call's seconds (the service's metrics); each must not raise."""


class SubscriptionActor:
    """One subscription: pattern, enabled flag, predicate, handler, mailbox and task.

    Its mailbox holds up to ``capacity`` events; beyond that :meth:`wait_for_room` makes the
    bus task wait, so a slow handler slows ``publish`` (backpressure) instead of growing
    memory without bound.
    """

    def __init__(
        self,
        subscription_id: str,
        pattern: Pattern,
        handler: Handler,
        event_filter: EventFilter | None,
        *,
        timed: bool = True,
        capacity: int = 10_000,
    ) -> None:
        self.id = subscription_id
        self.pattern = pattern
        self.handler = handler
        self.event_filter = event_filter
        self.enabled = True
        self.created_at = time.time()
        self.timed = timed
        """False exempts the handler from ``delivery_timeout`` (used by ``bus.stream``)."""
        self.capacity = capacity
        self.delivered = 0
        self.errors = 0
        self.timeouts = 0
        self.received = 0
        """Events queued for this subscription so far (a position for ``flush``)."""
        self.finished = 0
        """Events taken from the mailbox and done with: handled, filtered out or failed."""
        self.last_delivery_at: float | None = None
        self.last_error: str | None = None
        self.busy_since: float | None = None
        self.links: dict[str, abc.DisposableBase] = {}
        """Disposables of this subscription's chains on each event-type group."""
        self.on_closed: Callable[[], None] | None = None
        self.congestion: list[SubscriptionActor] | None = None
        """Where :meth:`offer` reports a full mailbox, for the bus task to wait on."""
        self.on_crash: Callable[[SubscriptionActor, BaseException], None] | None = None
        """Called if the task dies of something other than the bus's own cancellation."""
        self._is_coroutine = inspect.iscoroutinefunction(handler) or (
            not inspect.isfunction(handler)
            and inspect.iscoroutinefunction(getattr(handler, "__call__", None))  # noqa: B004
        )
        self._mailbox: Mailbox[Event] = Mailbox()
        self._task: asyncio.Task[None] | None = None
        self._state = SubscriptionState.IDLE
        self._timed_out = False
        self._progress_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._room_waiters: list[asyncio.Future[None]] = []
        self._next_lag_warning = _LAG_WARNING_STEP
        self._log = _log.bind(subscription_id=subscription_id)

    @property
    def state(self) -> SubscriptionState:
        """The lifecycle state."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once unsubscribed."""
        return self._state is SubscriptionState.CLOSED

    # -- fed by the router ------------------------------------------------------------------

    def offer(self, run: list[Event]) -> None:
        """Queue a run of events for the handler, unless disabled (called on the bus task).

        The run is always queued whole (the bus task must not lose events); the bus then
        waits in :meth:`wait_for_room` while the mailbox is over capacity.
        """
        if not self.enabled or self._state is SubscriptionState.CLOSED:
            return
        mailbox = self._mailbox
        mailbox.extend(run)
        self.received += len(run)
        depth = len(mailbox)
        if depth >= self.capacity and self.congestion is not None:
            self.congestion.append(self)
        if depth >= self._next_lag_warning:
            self._log.warning("bus.subscriber_lagging", pending=depth, pattern=self.pattern.text)
            self._next_lag_warning *= 10

    @property
    def congested(self) -> bool:
        """True when the mailbox holds ``capacity`` events or more."""
        return len(self._mailbox) >= self.capacity and self._state is not SubscriptionState.CLOSED

    async def wait_for_room(self) -> None:
        """Wait until the mailbox is below capacity, or the subscription is closed or halted."""
        while self.congested and self._state is SubscriptionState.RUNNING:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            await waiter

    # -- lifecycle, driven by the bus --------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events waiting in the mailbox."""
        return len(self._mailbox)

    def start(self) -> None:
        """Start (or restart, on the current loop) the task that feeds the handler.

        Raises:
            SubscriptionClosedError: the subscription was removed.
        """
        if self._state is SubscriptionState.CLOSED:
            raise SubscriptionClosedError(
                f"subscription {self.id} ({self.pattern.text!r}) was removed; subscribe again"
            )
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        self._state = SubscriptionState.RUNNING
        self._task = task = loop.create_task(
            self._run(), name=f"mnemo-events subscription {self.id}"
        )
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task is not self._task:
            return  # detached by halt_all or close: an intended end
        self._task = None
        closed = self._state is SubscriptionState.CLOSED
        if not closed:
            self._state = SubscriptionState.IDLE
        self._release_all()
        if closed:
            return
        if task.cancelled():
            # Cancelled from outside (the loop shutting down, asyncio.run's clean-up): the
            # queue stays, and the next start() resumes it.
            return
        error = task.exception()
        if error is not None:  # a bug in the actor: handler failures never get here
            self._log.error(
                "bus.subscription_crashed", pending=len(self._mailbox), error=repr(error)
            )
            if self.on_crash is not None:
                self.on_crash(self, error)

    def needs_restart(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True when the task is missing, finished or bound to another loop."""
        task = self._task
        return self._state is not SubscriptionState.CLOSED and (
            task is None or task.done() or task.get_loop() is not loop
        )

    async def wait_handled(self, target: int) -> bool:
        """Wait until ``target`` events (a :attr:`received` position) are done with.

        Returns False if the subscription closed, or its task stopped, before that.
        """
        while self.finished < target:
            if self._state is not SubscriptionState.RUNNING or self._task is None:
                return False
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._progress_waiters.append((target, waiter))
            await waiter
        return True

    async def drain(self) -> bool:
        """Wait until every event queued so far has been handled; False if it could not be."""
        return await self.wait_handled(self.received)

    def _detach_task(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        if self._state is SubscriptionState.RUNNING:
            self._state = SubscriptionState.IDLE
        self._release_all()
        return task

    def close(self) -> int:
        """Stop for good; returns how many queued events were discarded.

        A handler call in progress is left to finish; :func:`halt_all` awaits it.
        """
        self._state = SubscriptionState.CLOSED
        task = self._task
        if task is not None and not task.done() and self.busy_since is None:
            task.cancel()
        discarded = self._mailbox.clear()
        self._release_all()
        if self.on_closed is not None:
            self.on_closed()
        return discarded

    def cancel_for_timeout(self, now: float, timeout: float) -> None:
        """Cancel a handler call that has run for more than ``timeout`` seconds."""
        started = self.busy_since
        if (
            started is not None
            and self.timed
            and not self._timed_out
            and now - started > timeout
            and self._task is not None
        ):
            self._timed_out = True
            self._task.cancel(msg="delivery_timeout")

    def info(self) -> SubscriptionInfo:
        """A snapshot of this subscription."""
        last = self.last_delivery_at
        return SubscriptionInfo(
            id=self.id,
            pattern=self.pattern.text,
            handler=_name_of(self.handler),
            enabled=self.enabled,
            delivered=self.delivered,
            errors=self.errors,
            timeouts=self.timeouts,
            pending=len(self._mailbox),
            last_delivery_at=datetime.fromtimestamp(last, UTC) if last is not None else None,
            last_error=self.last_error,
            created_at=datetime.fromtimestamp(self.created_at, UTC),
            has_filter=self.event_filter is not None,
        )

    # -- the task ----------------------------------------------------------------------------

    def _release_all(self) -> None:
        waiters, self._progress_waiters = self._progress_waiters, []
        for _, waiter in waiters:
            wake(waiter)
        self._release_room()

    def _release_room(self) -> None:
        rooms, self._room_waiters = self._room_waiters, []
        for waiter in rooms:
            wake(waiter)

    def _release_progress(self) -> None:
        done = self.finished
        kept = []
        for target, waiter in self._progress_waiters:
            if target <= done:
                wake(waiter)
            else:
                kept.append((target, waiter))
        self._progress_waiters = kept

    async def _run(self) -> None:
        mailbox = self._mailbox
        handler = self.handler
        event_filter = self.event_filter
        is_coroutine = self._is_coroutine
        batch_size = 1 if is_coroutine else _BATCH
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        closed: SubscriptionState = SubscriptionState.CLOSED
        running: SubscriptionState = SubscriptionState.RUNNING
        observers = HANDLER_OBSERVERS  # the same list, looked up once
        clock = time.perf_counter
        loop_time = loop.time
        while self._state is running:
            if not mailbox:
                self._next_lag_warning = _LAG_WARNING_STEP
                if self._progress_waiters:
                    self._release_progress()
                if self._room_waiters:
                    self._release_room()
                await mailbox.wait()
                continue
            # A plain handler runs without yielding, so its events are taken a batch at a
            # time; an async one yields per event, so it takes one at a time and `pending`
            # stays exact. If the task is stopped mid-batch, what it has not started on goes
            # back to the front of the mailbox.
            batch = mailbox.take(batch_size)
            if self._room_waiters and len(mailbox) < self.capacity:
                self._release_room()
            started = 0
            try:
                for event in batch:
                    if self._state is closed:  # a local: the property showed in profiles
                        break
                    started += 1
                    try:
                        if event_filter is not None and not event_filter(event):
                            continue
                    except Exception as err:
                        self._record_error(event, "bus.filter_failed", err)
                        continue
                    began = clock() if observers else 0.0
                    try:
                        # busy_since is set only around an await (the watchdog's cue), so a
                        # plain handler's call does not pay for resetting it.
                        if is_coroutine:
                            self.busy_since = loop_time()
                            try:
                                await handler(event)
                            finally:
                                self.busy_since = None
                        else:
                            result = handler(event)
                            if result is not None and inspect.isawaitable(result):
                                self.busy_since = loop_time()
                                try:
                                    await result
                                finally:
                                    self.busy_since = None
                    except asyncio.CancelledError as err:
                        if self._timed_out:
                            self._record_timeout(event)
                        elif task is not None and task.cancelling():
                            raise  # the bus's own cancellation: stop, or close
                        else:  # the handler awaited something another task cancelled
                            self._record_error(event, "bus.handler_failed", err)
                        continue
                    except _PASSTHROUGH:
                        raise
                    except BaseException as err:  # GeneratorExit and kin: the handler's fault
                        self._record_error(event, "bus.handler_failed", err)
                        continue
                    finally:
                        if observers:
                            for observe in observers:
                                observe(self, event, clock() - began)
                    if self._timed_out:  # the handler swallowed the cancellation: a time-out
                        self._record_timeout(event)
                        continue
                    self.delivered += 1
            finally:
                self.finished += started  # the batch runs without yielding but for handlers
                if started < len(batch) and not self.closed:
                    mailbox.put_back(batch[started:])
                if self._progress_waiters:
                    self._release_progress()
            self.last_delivery_at = time.time()

    def _record_error(self, event: Event, log_event: str, err: BaseException) -> None:
        self.errors += 1
        self.last_error = f"{type(err).__name__}: {err}"
        self._log.error(
            log_event,
            event_id=event.id,
            event_type=event.type,
            error=self.last_error,
            exc_info=err,
        )

    def _record_timeout(self, event: Event) -> None:
        self._timed_out = False
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        self.errors += 1
        self.timeouts += 1
        self.last_error = "handler timed out"
        self._log.error("bus.handler_timeout", event_id=event.id, event_type=event.type)


async def halt_all(actors: Iterable[SubscriptionActor]) -> None:
    """Stop the actors' tasks together; queued events stay for the next start.

    Cancelling first and then waiting once keeps ``stop()`` cheap with thousands of
    subscriptions.
    """
    loop = asyncio.get_running_loop()
    tasks = [task for actor in actors if (task := actor._detach_task()) is not None]
    live = [task for task in tasks if not task.done() and task.get_loop() is loop]
    for task in live:
        task.cancel()
    if live:
        await asyncio.wait(live)
