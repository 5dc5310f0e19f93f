"""The time-based keyed operators behind :mod:`mnemo_events.operators`.

``rate`` (counts per key over a sliding window), ``pair`` (a start item with its end item by
key, with a timeout) and ``debounce_by_key``.

Each operator keeps its state behind a re-entrant lock and calls its observer while holding
it, so the observer sees one notification at a time even on a thread-based scheduler. A user
function (key, predicate) that raises drops that one element: it is logged as
``operators.element_failed`` and counted in an :class:`ElementErrors`, and the stream goes on.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Generic, Literal, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable

from mnemo_events.operators._support import (
    PROCESS_ERRORS,
    ElementErrors,
    positive_seconds,
    resolve_scheduler,
    tick_every,
)

__all__ = ["Pair", "PairStatus", "Rates", "debounce_by_key", "pair", "rate"]

_T = TypeVar("_T")
_K = TypeVar("_K", bound=Hashable)

PairStatus = Literal["completed", "timed_out", "unfinished"]


@dataclass(frozen=True, slots=True)
class Rates(Generic[_K]):
    """Items per key seen in the sliding window ``(at - window, at]``."""

    at: datetime
    """Scheduler time of this sample."""
    window: float
    """Width of the window in seconds."""
    counts: Mapping[_K, int]
    """Items per key in the window (read-only; keys with no item are absent)."""

    @property
    def total(self) -> int:
        """Items in the window, all keys together."""
        return sum(self.counts.values())

    def per_second(self) -> dict[_K, float]:
        """Counts divided by the window width."""
        return {key: count / self.window for key, count in self.counts.items()}


def rate(
    window: float,
    *,
    key: Callable[[_T], _K],
    every: float = 1.0,
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Callable[[Observable[_T]], Observable[Rates[_K]]]:
    """Every ``every`` seconds, count the items per ``key`` of the last ``window`` seconds.

    Times are the scheduler's clock at arrival, not timestamps inside the items. With
    ``every == window`` the samples are tumbling windows. The first sample comes ``every``
    seconds after subscription; the result completes or errors with the source.

    ::

        source: -a-a-b---a------|       window=4, every=2, key=identity
        [                rate                ]
        result: --w-x-y-z-v-v-u-|       w={a:1} x={a:2} y={a:1,b:1} z={b:1} v={a:1} u={}
    """
    window = positive_seconds("window", window, "rate()")
    every = positive_seconds("every", every, "rate()")
    counter = errors or PROCESS_ERRORS

    def _operator(source: Observable[_T]) -> Observable[Rates[_K]]:
        def _subscribe(
            observer: abc.ObserverBase[Rates[_K]], sub_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = resolve_scheduler(scheduler, sub_scheduler)
            lock = threading.RLock()
            seen: deque[tuple[datetime, _K]] = deque()
            counts: Counter[_K] = Counter()

            def _on_next(item: _T) -> None:
                try:
                    item_key = key(item)
                    hash(item_key)
                except Exception as err:
                    counter.record("rate", item, err)
                    return
                with lock:
                    seen.append((sched.now, item_key))
                    counts[item_key] += 1

            def _sample(now: datetime) -> None:
                horizon = now - timedelta(seconds=window)
                with lock:
                    while seen and seen[0][0] <= horizon:
                        _, old = seen.popleft()
                        counts[old] -= 1
                        if not counts[old]:
                            del counts[old]
                    observer.on_next(Rates(now, window, MappingProxyType(dict(counts))))

            def _on_error(err: Exception) -> None:
                with lock:
                    ticker.dispose()
                    observer.on_error(err)

            def _on_completed() -> None:
                with lock:
                    ticker.dispose()
                    observer.on_completed()

            ticker = tick_every(sched, every, _sample)
            upstream = source.subscribe(_on_next, _on_error, _on_completed, scheduler=sub_scheduler)
            return CompositeDisposable(upstream, ticker)

        return Observable(_subscribe)

    return _operator


@dataclass(frozen=True, slots=True)
class Pair(Generic[_T]):
    """A start item and how it ended: with its end item, by timeout, or with the stream."""

    key: Hashable
    start: _T
    end: _T | None
    """The matching end item; None when ``status`` is ``timed_out`` or ``unfinished``."""
    started_at: datetime
    """Scheduler time the start item arrived."""
    ended_at: datetime
    """Scheduler time of the end item, the timeout, or the source's completion."""
    status: PairStatus

    @property
    def duration(self) -> float:
        """Seconds from start to end (scheduler clock)."""
        return (self.ended_at - self.started_at).total_seconds()


def pair(
    is_start: Callable[[_T], bool],
    is_end: Callable[[_T], bool],
    *,
    key: Callable[[_T], Hashable],
    timeout: float | None,
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Callable[[Observable[_T]], Observable[Pair[_T]]]:
    """Pair each start item with the next end item of the same key.

    Emits a ``completed`` :class:`Pair` when the end arrives, a ``timed_out`` one (``end`` is
    None) when none arrived within ``timeout`` seconds (None: wait forever), and on the
    source's completion an ``unfinished`` one for each start still open. A repeated start for
    an open key is a duplicate and ignored (the first keeps its clock); an end with no open
    start is ignored. Items that are neither start nor end pass by unseen.

    ::

        source: -a--b-A------|      a, b start keys 1, 2; A ends key 1; timeout=5
        [            pair             ]
        result: ------x--y---|      x=Pair(a, A, completed)  y=Pair(b, None, timed_out)
    """
    if timeout is not None:
        timeout = positive_seconds("timeout", timeout, "pair()")
    counter = errors or PROCESS_ERRORS

    def _operator(source: Observable[_T]) -> Observable[Pair[_T]]:
        def _subscribe(
            observer: abc.ObserverBase[Pair[_T]], sub_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = resolve_scheduler(scheduler, sub_scheduler)
            lock = threading.RLock()
            opened: dict[Hashable, tuple[_T, datetime, SerialDisposable]] = {}

            def _expire(item_key: Hashable, start: _T) -> None:
                with lock:
                    entry = opened.get(item_key)
                    if entry is None or entry[0] is not start:
                        return
                    del opened[item_key]
                    observer.on_next(Pair(item_key, start, None, entry[1], sched.now, "timed_out"))

            def _open(item_key: Hashable, item: _T) -> None:
                if item_key in opened:
                    return
                timer = SerialDisposable()
                opened[item_key] = (item, sched.now, timer)
                if timeout is not None:

                    def _on_timeout(_: abc.SchedulerBase, __: Any = None) -> None:
                        _expire(item_key, item)

                    timer.disposable = sched.schedule_relative(timeout, _on_timeout)

            def _on_next(item: _T) -> None:
                try:
                    starting = bool(is_start(item))
                    ending = not starting and bool(is_end(item))
                    item_key = key(item) if starting or ending else None
                    hash(item_key)
                except Exception as err:
                    counter.record("pair", item, err)
                    return
                with lock:
                    if starting:
                        _open(item_key, item)
                        return
                    if not ending:
                        return
                    entry = opened.pop(item_key, None)
                    if entry is None:
                        return
                    entry[2].dispose()
                    observer.on_next(
                        Pair(item_key, entry[0], item, entry[1], sched.now, "completed")
                    )

            def _close_all() -> list[tuple[Hashable, tuple[_T, datetime, SerialDisposable]]]:
                entries = list(opened.items())
                opened.clear()
                for _, (_, _, timer) in entries:
                    timer.dispose()
                return entries

            def _on_error(err: Exception) -> None:
                with lock:
                    _close_all()
                    observer.on_error(err)

            def _on_completed() -> None:
                with lock:
                    now = sched.now
                    for item_key, (start, since, _) in _close_all():
                        observer.on_next(Pair(item_key, start, None, since, now, "unfinished"))
                    observer.on_completed()

            upstream = source.subscribe(_on_next, _on_error, _on_completed, scheduler=sub_scheduler)

            def _dispose() -> None:
                with lock:
                    _close_all()

            return CompositeDisposable(upstream, Disposable(_dispose))

        return Observable(_subscribe)

    return _operator


def debounce_by_key(
    duetime: float,
    *,
    key: Callable[[_T], Hashable],
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Callable[[Observable[_T]], Observable[_T]]:
    """Emit an item once its key has been quiet for ``duetime`` seconds; keys are independent.

    Each new item of a key replaces the pending one and restarts that key's timer, so a burst
    per key yields its last item. On completion the pending items are emitted (oldest
    deadline first), then completion; on error they are dropped with the error.

    ::

        source: -a-A-b-A-------B|           duetime=5, key=str.lower
        [          debounce_by_key          ]
        result: ----------b-A---(B,|)
    """
    duetime = positive_seconds("duetime", duetime, "debounce_by_key()")
    counter = errors or PROCESS_ERRORS

    def _operator(source: Observable[_T]) -> Observable[_T]:
        def _subscribe(
            observer: abc.ObserverBase[_T], sub_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            sched = resolve_scheduler(scheduler, sub_scheduler)
            lock = threading.RLock()
            pending: dict[Hashable, tuple[_T, SerialDisposable]] = {}

            def _fire(item_key: Hashable, item: _T) -> None:
                with lock:
                    entry = pending.get(item_key)
                    if entry is None or entry[0] is not item:
                        return
                    del pending[item_key]
                    observer.on_next(item)

            def _on_next(item: _T) -> None:
                try:
                    item_key = key(item)
                    hash(item_key)
                except Exception as err:
                    counter.record("debounce_by_key", item, err)
                    return
                with lock:
                    previous = pending.pop(item_key, None)
                    if previous is not None:
                        previous[1].dispose()
                    timer = SerialDisposable()
                    pending[item_key] = (item, timer)  # re-inserted: dict order = deadline order

                    def _on_quiet(_: abc.SchedulerBase, __: Any = None) -> None:
                        _fire(item_key, item)

                    timer.disposable = sched.schedule_relative(duetime, _on_quiet)

            def _drain() -> list[_T]:
                entries = list(pending.values())
                pending.clear()
                for _, timer in entries:
                    timer.dispose()
                return [item for item, _ in entries]

            def _on_error(err: Exception) -> None:
                with lock:
                    _drain()
                    observer.on_error(err)

            def _on_completed() -> None:
                with lock:
                    for item in _drain():
                        observer.on_next(item)
                    observer.on_completed()

            upstream = source.subscribe(_on_next, _on_error, _on_completed, scheduler=sub_scheduler)

            def _dispose() -> None:
                with lock:
                    _drain()

            return CompositeDisposable(upstream, Disposable(_dispose))

        return Observable(_subscribe)

    return _operator
