"""A subscription actor: its own mailbox and task, so one subscriber never holds up another.

The router offers each matching event; the actor's task applies the predicate and calls the
handler, one event at a time in publish order. Every failure (a raising filter, a raising
handler, a handler over ``delivery_timeout``) is logged and counted here, never raised into
the bus.
"""

from __future__ import annotations

import asyncio
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
from mnemo_events.patterns import Pattern

__all__ = ["Handler", "SubscriptionActor", "SubscriptionInfo", "halt_all"]

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


HANDLER_OBSERVERS: list[Callable[[SubscriptionActor, Event, float], None]] = []
"""Called with each handler call's seconds (the service's metrics); each must not raise."""


class SubscriptionActor:
    """One subscription: pattern, enabled flag, predicate, handler, mailbox and task."""

    def __init__(
        self,
        subscription_id: str,
        pattern: Pattern,
        handler: Handler,
        event_filter: EventFilter | None,
        *,
        timed: bool = True,
    ) -> None:
        self.id = subscription_id
        self.pattern = pattern
        self.handler = handler
        self.event_filter = event_filter
        self.enabled = True
        self.created_at = time.time()
        self.timed = timed
        """False exempts the handler from ``delivery_timeout`` (used by ``bus.stream``)."""
        self.delivered = 0
        self.errors = 0
        self.timeouts = 0
        self.last_delivery_at: float | None = None
        self.last_error: str | None = None
        self.busy_since: float | None = None
        self.links: dict[str, abc.DisposableBase] = {}
        """Disposables of this subscription's chains on each event-type group."""
        self.on_closed: Callable[[], None] | None = None
        self._is_coroutine = inspect.iscoroutinefunction(handler) or (
            not inspect.isfunction(handler)
            and inspect.iscoroutinefunction(getattr(handler, "__call__", None))  # noqa: B004
        )
        self._mailbox: Mailbox[Event] = Mailbox()
        self._task: asyncio.Task[None] | None = None
        self._timed_out = False
        self._closed = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._next_lag_warning = _LAG_WARNING_STEP
        self._log = _log.bind(subscription_id=subscription_id)

    # -- fed by the router ------------------------------------------------------------------

    def offer(self, run: list[Event]) -> None:
        """Queue a run of events for the handler, unless disabled (called on the bus task)."""
        if not self.enabled:
            return
        mailbox = self._mailbox
        mailbox.extend(run)
        if len(mailbox) >= self._next_lag_warning:
            self._log.warning(
                "bus.subscriber_lagging", pending=len(mailbox), pattern=self.pattern.text
            )
            self._next_lag_warning *= 10

    # -- lifecycle, driven by the bus --------------------------------------------------------

    @property
    def pending(self) -> int:
        """Events waiting in the mailbox."""
        return len(self._mailbox)

    def start(self) -> None:
        """Start (or restart, on the current loop) the task that feeds the handler."""
        if self._closed or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"mnemo-events subscription {self.id}"
        )

    def needs_restart(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True when the task is missing, finished or bound to another loop."""
        task = self._task
        return not self._closed and (task is None or task.done() or task.get_loop() is not loop)

    async def drain(self) -> None:
        """Wait until every queued event has been handled."""
        while (self._mailbox or self.busy_since is not None) and not self._closed:
            if self._task is None or self._task.done():
                return
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def _detach_task(self) -> asyncio.Task[None] | None:
        task, self._task = self._task, None
        self._release_drain_waiters()
        return task

    def close(self) -> int:
        """Stop for good; returns how many queued events were discarded.

        A handler call in progress is left to finish; :func:`halt_all` awaits it.
        """
        self._closed = True
        task = self._task
        if task is not None and not task.done() and self.busy_since is None:
            task.cancel()
        discarded = self._mailbox.clear()
        self._release_drain_waiters()
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

    def _release_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            wake(waiter)

    async def _run(self) -> None:
        mailbox = self._mailbox
        handler = self.handler
        event_filter = self.event_filter
        is_coroutine = self._is_coroutine
        batch_size = 1 if is_coroutine else _BATCH
        loop = asyncio.get_running_loop()
        while not self._closed:
            if not mailbox:
                self._next_lag_warning = _LAG_WARNING_STEP
                if self._drain_waiters:
                    self._release_drain_waiters()
                await mailbox.wait()
                continue
            # A plain handler runs without yielding, so its events are taken a batch at a
            # time; an async one yields per event, so it takes one at a time and `pending`
            # stays exact. If the task is stopped mid-batch, what it has not started on goes
            # back to the front of the mailbox.
            batch = mailbox.take(batch_size)
            started = 0
            try:
                for event in batch:
                    started += 1
                    if self._closed:
                        break
                    try:
                        if event_filter is not None and not event_filter(event):
                            continue
                    except Exception as err:
                        self._record_error(event, "bus.filter_failed", err)
                        continue
                    began = time.perf_counter() if HANDLER_OBSERVERS else 0.0
                    try:
                        if is_coroutine:
                            self.busy_since = loop.time()
                            await handler(event)
                        else:
                            result = handler(event)
                            if result is not None and inspect.isawaitable(result):
                                self.busy_since = loop.time()
                                await result
                    except asyncio.CancelledError:
                        if not self._timed_out:
                            raise
                        self._record_timeout(event)
                        continue
                    except Exception as err:
                        self._record_error(event, "bus.handler_failed", err)
                        continue
                    finally:
                        self.busy_since = None
                        for observe in HANDLER_OBSERVERS:
                            observe(self, event, time.perf_counter() - began)
                    if self._timed_out:  # the handler swallowed the cancellation: a time-out
                        self._record_timeout(event)
                        continue
                    self.delivered += 1
            finally:
                if started < len(batch) and not self._closed:
                    mailbox.put_back(batch[started:])
            self.last_delivery_at = time.time()

    def _record_error(self, event: Event, log_event: str, err: Exception) -> None:
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
