"""``event_rates``: events per second per type over a sliding window."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from reactivex import Observable, abc
from reactivex import operators as ops

from mnemo_events.event import Event
from mnemo_events.operators import ElementErrors, Rates, match, rate

__all__ = ["EventRates", "event_rates"]


@dataclass(frozen=True, slots=True)
class EventRates:
    """How many events of each type arrived in the window ``(at - window, at]``."""

    at: datetime
    """Scheduler time of this sample."""
    window: float
    """Width of the window in seconds."""
    counts: Mapping[str, int]
    """Events per type in the window; types with none are absent."""

    @property
    def rates(self) -> dict[str, float]:
        """Events per second per type."""
        return {event_type: count / self.window for event_type, count in self.counts.items()}

    @property
    def total_rate(self) -> float:
        """Events per second, all types together."""
        return sum(self.counts.values()) / self.window


def _event_type(event: Event) -> str:
    return event.type


def _to_event_rates(sample: Rates[str]) -> EventRates:
    return EventRates(sample.at, sample.window, sample.counts)


def event_rates(
    events: Observable[Event],
    *,
    window: float = 10.0,
    every: float = 1.0,
    pattern: str = "*",
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Observable[EventRates]:
    """Every ``every`` seconds, the rate per event type over the last ``window`` seconds.

    Only events matching ``pattern`` count. Arrival times are the scheduler's clock (not
    ``published_at``); see :func:`mnemo_events.operators.resolve_scheduler` for the default
    scheduler. Completes or errors with ``events``.

    ::

        events: -m-m-d---m------|     m=memory.created d=dream.started, window=4, every=2
        [         event_rates          ]
        result: --a-b-c-d-e-e-f-|     a={m:1} b={m:2} c={m:1,d:1} d={d:1} e={m:1} f={}

    Raises:
        ConfigError: ``window`` or ``every`` is not a positive number.
        InvalidPatternError: ``pattern`` is malformed.
    """
    return events.pipe(
        match(pattern),
        rate(window, key=_event_type, every=every, scheduler=scheduler, errors=errors),
        ops.map(_to_event_rates),
    )
