"""Marble testing with keyword defaults: reactivex's context types its helpers without them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from reactivex import Observable
from reactivex.notification import OnNext
from reactivex.testing.marbles import MarblesContext, marbles_testing
from reactivex.testing.recorded import Recorded

__all__ = ["Marbles", "emitted", "marbles"]

Lookup = dict[str | float, Any]


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
        return self._context.cold(marbles, lookup, error)

    def hot(
        self, marbles: str, lookup: Lookup | None = None, error: Exception | None = None
    ) -> Observable[Any]:
        """A hot observable from a marble string."""
        return self._context.hot(marbles, lookup, error)

    def exp(
        self, marbles: str, lookup: Lookup | None = None, error: Exception | None = None
    ) -> list[Recorded[Any]]:
        """The messages a marble string expects."""
        return self._context.exp(marbles, lookup, error)


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
