"""``knowledge_gaps``: the gaps detected and not yet filled, with their age and severity."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from mnemo_events.event import Event
from mnemo_events.exceptions import ConfigError
from mnemo_events.operators import ElementErrors, element_errors, match, resolve_scheduler

__all__ = ["GapReport", "OpenGap", "knowledge_gaps"]


@dataclass(frozen=True, slots=True)
class OpenGap:
    """A ``gap.detected`` with no ``gap.filled`` yet."""

    gap_id: str
    query: str | None
    severity: float | None
    """The detector's 0..1 severity, when it sent one."""
    gap_type: str | None
    detected_at: datetime
    """Scheduler time the ``gap.detected`` arrived."""
    age: float
    """Seconds open at the time of the report."""
    event_id: str


@dataclass(frozen=True, slots=True)
class GapReport:
    """The open gaps at ``at``: most severe first (no severity last), then oldest first."""

    at: datetime
    gaps: tuple[OpenGap, ...]

    def __len__(self) -> int:
        return len(self.gaps)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _severity(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _gap_id(event: Event) -> str:
    gap_id = event.data["gap_id"]
    if not isinstance(gap_id, str):
        raise TypeError(f"gap_id must be a string, got {gap_id!r}")
    return gap_id


def _report(now: datetime, opened: dict[str, tuple[Event, datetime]]) -> GapReport:
    gaps = [
        OpenGap(
            gap_id=gap_id,
            query=_text(event.data.get("query")),
            severity=_severity(event.data.get("severity")),
            gap_type=_text(event.data.get("gap_type")),
            detected_at=since,
            age=(now - since).total_seconds(),
            event_id=event.id,
        )
        for gap_id, (event, since) in opened.items()
    ]
    gaps.sort(key=lambda gap: (gap.severity is None, -(gap.severity or 0.0), -gap.age))
    return GapReport(now, tuple(gaps))


def knowledge_gaps(
    events: Observable[Event],
    *,
    every: float = 10.0,
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Observable[GapReport]:
    """Every ``every`` seconds, a :class:`GapReport` of the gaps detected and not yet filled.

    Matches ``gap.detected`` and ``gap.filled`` by ``gap_id``; a repeated detection of an
    open gap keeps its first time; a fill with no open gap is ignored. Ages use the
    scheduler's clock. When ``events`` completes, one last report is emitted, then
    completion. An event without a string ``gap_id`` is dropped, logged and counted in
    ``errors``. Open gaps are kept until filled.

    ::

        events: -a-b--A----|        a, b detect gaps 1, 2; A fills 1; every=4
        [   knowledge_gaps   ]
        result: ----x---y--(z,|)     x=[1 (age 3), 2 (age 1)]  y=[2 (age 5)]  z=[2 (age 8)]

    Raises:
        ConfigError: ``every`` is not a positive number.
    """
    if not every > 0:
        raise ConfigError(f"knowledge_gaps(): every must be a positive number, got {every!r}")
    counter = errors or element_errors()

    def _subscribe(
        observer: abc.ObserverBase[GapReport], sub_scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        sched = resolve_scheduler(scheduler, sub_scheduler)
        lock = threading.RLock()
        opened: dict[str, tuple[Event, datetime]] = {}

        def _on_next(event: Event) -> None:
            try:
                gap_id = _gap_id(event)
            except Exception as err:
                counter.record("knowledge_gaps", event, err)
                return
            with lock:
                if event.type == "gap.detected":
                    opened.setdefault(gap_id, (event, sched.now))
                elif event.type == "gap.filled":
                    opened.pop(gap_id, None)

        def _tick(_: int) -> None:
            with lock:
                observer.on_next(_report(sched.now, opened))

        def _on_error(err: Exception) -> None:
            with lock:
                ticks.dispose()
                observer.on_error(err)

        def _on_completed() -> None:
            with lock:
                ticks.dispose()
                observer.on_next(_report(sched.now, opened))
                observer.on_completed()

        ticks = reactivex.interval(every, scheduler=sched).subscribe(_tick, scheduler=sched)
        upstream = events.pipe(match("gap.*")).subscribe(
            _on_next, _on_error, _on_completed, scheduler=sub_scheduler
        )
        return CompositeDisposable(upstream, ticks)

    return Observable(_subscribe)
