"""Marble testing with keyword defaults: reactivex's context types its helpers without them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from reactivex import Observable
from reactivex.notification import OnNext
from reactivex.testing import ReactiveTest
from reactivex.testing.marbles import MarblesContext, marbles_testing
from reactivex.testing.recorded import Recorded

__all__ = ["Marbles", "completed_at", "emitted", "marbles", "next_at"]

_T = TypeVar("_T")

# reactivex wants ``dict[str | float, Any]``, which a ``dict[str, Pair]`` is not (dict is
# invariant); any mapping is accepted here and copied into a plain dict.
Lookup = Mapping[Any, Any]


def _as_dict(lookup: Lookup | None) -> dict[str | float, Any] | None:
    return None if lookup is None else dict(lookup)


@dataclass(frozen=True, slots=True)
class Marbles:
    """The four marble helpers of one virtual-time run, with optional lookup and error."""

    _context: MarblesContext

    def start(self, create: Observable[Any] | Callable[[], Observable[Any]]) -> list[Recorded[Any]]:
        """Subscribe to ``create`` and run the scheduler; returns what it emitted."""
        return self._context.start(create)

    def cold(
        self, marbles: str, lookup: Lookup | None = None, error: Exception | None = None
    ) -> Observable[Any]:
        """A cold observable from a marble string."""
        return self._context.cold(marbles, _as_dict(lookup), error)

    def hot(
        self, marbles: str, lookup: Lookup | None = None, error: Exception | None = None
    ) -> Observable[Any]:
        """A hot observable from a marble string."""
        return self._context.hot(marbles, _as_dict(lookup), error)

    def exp(
        self, marbles: str, lookup: Lookup | None = None, error: Exception | None = None
    ) -> list[Recorded[Any]]:
        """The messages a marble string expects."""
        return self._context.exp(marbles, _as_dict(lookup), error)


@contextlib.contextmanager
def marbles(timespan: float = 1.0) -> Iterator[Marbles]:
    """``marbles_testing`` with typed helpers (``with marbles() as m: m.cold("-a|")``)."""
    with marbles_testing(timespan) as context:
        yield Marbles(context)


def emitted(record: Recorded[Any]) -> Any:
    """The element of a recorded ``on_next`` (fails the test on any other notification)."""
    notification = record.value
    assert isinstance(notification, OnNext), f"expected on_next, got {notification!r}"
    return notification.value


def _ticks(time: float) -> Any:
    # reactivex annotates recorded times as ``ticks: int``, but TestScheduler's clock is a float
    # and fractional delays land on fractional times; only the annotation is narrower than the
    # runtime, so the float goes through unchanged, typed Any for that parameter.
    return time


def next_at(time: float, value: _T) -> Recorded[_T]:
    """``ReactiveTest.on_next`` at a virtual time that may be fractional (``200.5``)."""
    return ReactiveTest.on_next(_ticks(time), value)


def completed_at(time: float) -> Recorded[Any]:
    """``ReactiveTest.on_completed`` at a virtual time that may be fractional (``200.5``)."""
    return ReactiveTest.on_completed(_ticks(time))
