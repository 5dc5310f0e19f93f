"""``tier_flow``: memories moved between tiers per window, from ``memory.consolidated``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from reactivex import Observable, abc
from reactivex import operators as ops

from mnemo_events.event import Event
from mnemo_events.operators import ElementErrors, Rates, match, rate

__all__ = ["TierFlow", "tier_flow"]


@dataclass(frozen=True, slots=True)
class TierFlow:
    """Memories moved between tiers during ``(start, end]``, per ``(from_tier, to_tier)``."""

    start: datetime
    end: datetime
    counts: Mapping[tuple[str, str], int]
    """Moves per ``(from_tier, to_tier)``; pairs with no move are absent."""

    @property
    def total(self) -> int:
        """Memories moved in the window, all directions together."""
        return sum(self.counts.values())

    def moved(self, from_tier: str, to_tier: str) -> int:
        """How many memories went from ``from_tier`` to ``to_tier`` in the window."""
        return self.counts.get((from_tier, to_tier), 0)


def _direction(event: Event) -> tuple[str, str]:
    from_tier, to_tier = event.data["from_tier"], event.data["to_tier"]
    if not isinstance(from_tier, str) or not isinstance(to_tier, str):
        raise TypeError(f"from_tier/to_tier must be strings, got {from_tier!r}/{to_tier!r}")
    return from_tier, to_tier


def _to_flow(sample: Rates[tuple[str, str]]) -> TierFlow:
    return TierFlow(sample.at - timedelta(seconds=sample.window), sample.at, sample.counts)


def tier_flow(
    events: Observable[Event],
    *,
    window: float = 60.0,
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Observable[TierFlow]:
    """Every ``window`` seconds, how many memories moved between which tiers (tumbling).

    Reads ``from_tier``/``to_tier`` of ``memory.consolidated`` events; every other event is
    ignored. One :class:`TierFlow` per window, empty windows included. An event without
    string tiers is dropped, logged and counted in ``errors``.

    ::

        events: -x---y-x-----|      x=hot->warm y=warm->cold, window=4
        [       tier_flow       ]
        result: ----a---b---c|      a={hw:1} b={wc:1,hw:1} c={}

    Raises:
        ConfigError: ``window`` is not a positive number.
    """
    return events.pipe(
        match("memory.consolidated"),
        rate(window, key=_direction, every=window, scheduler=scheduler, errors=errors),
        ops.map(_to_flow),
    )
