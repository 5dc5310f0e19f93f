"""What the operators share: the counter of dropped elements, scheduler choice, ticking."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from reactivex import abc
from reactivex.disposable import SerialDisposable
from reactivex.scheduler import TimeoutScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler

from mnemo_events.event import Event
from mnemo_events.exceptions import ConfigError

__all__ = [
    "PROCESS_ERRORS",
    "ElementErrors",
    "element_errors",
    "positive_seconds",
    "resolve_scheduler",
    "tick_every",
]


_WARN_EVERY = 100


def _describe(item: object) -> dict[str, Any]:
    """Log fields naming an element without dumping its payload."""
    if isinstance(item, Event):
        return {"event_id": item.id, "event_type": item.type}
    return {"element_type": type(item).__name__}


class ElementErrors:
    """Counts the elements operators dropped because a user function raised on them.

    Each drop is also logged as ``operators.element_failed`` with ``stage``, ``error``,
    ``failures`` (the stage's count so far) and the element's ``event_id``/``event_type``: at
    warning for a stage's first failure and every 100th, at debug otherwise. Thread-safe.
    Operators and pipelines count into :func:`element_errors` unless given their own instance.
    """

    __slots__ = ("_by_stage", "_last_error", "_lock")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_stage: Counter[str] = Counter()
        self._last_error: str | None = None

    def record(self, stage: str, item: object, error: BaseException) -> None:
        """Count one dropped element and log why."""
        from mnemo_events._log import logger  # deferred: only error paths need structlog

        with self._lock:
            self._by_stage[stage] += 1
            count = self._by_stage[stage]
            self._last_error = repr(error)
        # A malformed producer fails every element: warn on the first and every 100th only.
        logger("operators").warning_every(
            count,
            _WARN_EVERY,
            "operators.element_failed",
            stage=stage,
            error=repr(error),
            failures=count,
            **_describe(item),
        )

    @property
    def total(self) -> int:
        """How many elements were dropped, all stages together."""
        with self._lock:
            return sum(self._by_stage.values())

    @property
    def last_error(self) -> str | None:
        """``repr`` of the most recent error, or None."""
        return self._last_error

    def by_stage(self) -> dict[str, int]:
        """Dropped elements per stage name (``"where"``, ``"pair"``, a pipeline step...)."""
        with self._lock:
            return dict(self._by_stage)

    def __repr__(self) -> str:
        return f"ElementErrors(total={self.total}, by_stage={self.by_stage()})"


PROCESS_ERRORS = ElementErrors()


def element_errors() -> ElementErrors:
    """The process-wide counter used when an operator is given no ``errors=``."""
    return PROCESS_ERRORS


def resolve_scheduler(
    scheduler: abc.SchedulerBase | None, subscribe_scheduler: abc.SchedulerBase | None = None
) -> abc.SchedulerBase:
    """The scheduler a time-based operator runs its timers on.

    In order: the one given to the operator; the one given to ``subscribe(scheduler=...)``;
    an ``AsyncIOScheduler`` on the running event loop when subscribing inside one (the bus,
    a notebook); else reactivex's thread-based ``TimeoutScheduler``.
    """
    if scheduler is not None:
        return scheduler
    if subscribe_scheduler is not None:
        return subscribe_scheduler
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return TimeoutScheduler.singleton()
    return AsyncIOScheduler(loop)


def positive_seconds(name: str, value: float, where: str) -> float:
    if not value > 0:  # also refuses NaN
        raise ConfigError(f"{where}: {name} must be a positive number of seconds, got {value!r}")
    return float(value)


def tick_every(
    scheduler: abc.SchedulerBase, period: float, action: Callable[[datetime], None]
) -> abc.DisposableBase:
    """Call ``action(now)`` every ``period`` seconds, aiming at start + n * period (no drift)."""
    timer = SerialDisposable()
    start = scheduler.now
    ticks = [0]

    def _run(sched: abc.SchedulerBase, _: Any = None) -> None:
        ticks[0] += 1
        action(sched.now)
        due = start + timedelta(seconds=period * (ticks[0] + 1))
        timer.disposable = sched.schedule_relative(
            max((due - sched.now).total_seconds(), 0.0), _run
        )

    timer.disposable = scheduler.schedule_relative(period, _run)
    return timer
