"""Reusable Rx operators over streams of events.

Each operator is a function returning ``Observable[A] -> Observable[B]`` for ``.pipe(...)``.
Time-based operators (``rate``, ``pair``, ``debounce_by_key``, ``backoff_notifier``) take a
``scheduler`` so they run on the asyncio loop in production and on a virtual-time
``TestScheduler`` in tests; see :func:`resolve_scheduler` for the one used when none is given.

A user function that raises inside ``where``, ``map_safe``, ``rate``, ``pair`` or
``debounce_by_key`` drops that one element (logged as ``operators.element_failed``, counted in
an :class:`ElementErrors`); the stream goes on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.subject import Subject

from mnemo_events.event import Event
from mnemo_events.operators._support import ElementErrors, element_errors, resolve_scheduler
from mnemo_events.operators._timed import Pair, PairStatus, Rates, debounce_by_key, pair, rate
from mnemo_events.patterns import TypeCache, parse_pattern

__all__ = [
    "ElementErrors",
    "Pair",
    "PairStatus",
    "Rates",
    "backoff_notifier",
    "debounce_by_key",
    "element_errors",
    "map_safe",
    "match",
    "pair",
    "rate",
    "resolve_scheduler",
    "retry_when",
    "where",
]

_T = TypeVar("_T")
_R = TypeVar("_R")


def match(pattern: str) -> Callable[[Observable[Event]], Observable[Event]]:
    """Keep the events whose type matches ``pattern`` (``memory.*``, ``dream.>``, ``*``).

    ::

        memory.created --- dream.started --- memory.deleted --|
        [       match("memory.*")                             ]
        memory.created --------------------- memory.deleted --|

    Raises:
        InvalidPatternError: at pipe-building time, for a malformed pattern.
    """
    compiled = parse_pattern(pattern)
    if compiled.catch_all:
        return lambda source: source
    matches = TypeCache(compiled.matches)
    return ops.filter(lambda event: matches(event.type))


def where(
    predicate: Callable[[Event], bool], *, errors: ElementErrors | None = None
) -> Callable[[Observable[Event]], Observable[Event]]:
    """Keep the events for which ``predicate`` is true.

    Unlike ``ops.filter``, a predicate that raises drops that one event and lets the stream go
    on: the error is logged as ``operators.element_failed`` (``stage="where"``) and counted in
    ``errors`` (default: :func:`element_errors`).
    """
    counter = errors or element_errors()

    def _safe(event: Event) -> bool:
        try:
            return bool(predicate(event))
        except Exception as err:
            counter.record("where", event, err)
            return False

    return ops.filter(_safe)


def map_safe(
    mapper: Callable[[_T], _R], *, stage: str | None = None, errors: ElementErrors | None = None
) -> Callable[[Observable[_T]], Observable[_R]]:
    """Map each element with ``mapper``; an element on which it raises is dropped, not fatal.

    The drop is logged as ``operators.element_failed`` with ``stage`` (default: the mapper's
    name) and counted in ``errors`` (default: :func:`element_errors`).

    ::

        source: -a-b-c-|       mapper raises on b
        [   map_safe(f)   ]
        result: -A---C-|
    """
    counter = errors or element_errors()
    name = stage or str(getattr(mapper, "__name__", "map_safe"))

    def _operator(source: Observable[_T]) -> Observable[_R]:
        def _subscribe(
            observer: abc.ObserverBase[_R], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def _on_next(item: _T) -> None:
                try:
                    mapped = mapper(item)
                except Exception as err:
                    counter.record(name, item, err)
                    return
                observer.on_next(mapped)

            return source.subscribe(
                _on_next, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(_subscribe)

    return _operator


def retry_when(
    notifier: Callable[[Observable[Exception]], Observable[Any]],
) -> Callable[[abc.ObservableBase[_T]], Observable[_T]]:
    """Resubscribe to the source each time ``notifier``'s stream emits after an error.

    ``notifier`` receives the stream of the source's errors and returns a stream whose items
    trigger a resubscription. When that stream completes, the result completes; when it
    errors, the result errors with that error (typically the last source error re-thrown).
    This is RxJS's ``retryWhen``, which reactivex lacks; as there, the notifier is built at
    the source's first error. See :func:`backoff_notifier`.

    ::

        source:  -a-#          (each subscription emits a, then fails)
        notifier emits after 2 time units, twice, then re-throws
        result:  -a---a---a-#

    The operator is a class, not closures: each webhook delivery is one such chain, and one
    object per subscription (observer of the source and its disposable at once) costs a
    third of the closures and serial disposables it replaces.
    """

    def _operator(source: abc.ObservableBase[_T]) -> Observable[_T]:
        return _RetryWhen(source, notifier)

    return _operator


class _RetryWhen(Observable[_T]):
    """``source.pipe(retry_when(notifier))``: each subscription is a :class:`_Retrying`."""

    def __init__(
        self,
        source: abc.ObservableBase[_T],
        notifier: Callable[[Observable[Exception]], Observable[Any]],
    ) -> None:
        # What Observable.__init__ sets, set here: its super().__init__() walks a 14-class
        # chain of mixins to reach object.__init__, 2 of the 2.5 µs of building one (a webhook
        # delivery builds one). A test checks that the attributes stay those of Observable's.
        self.lock = threading.RLock()
        self._subscribe = None
        self._source = source
        self._notifier = notifier

    def _subscribe_core(
        self, observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        retrying = _Retrying(self._source, self._notifier, observer, scheduler)
        retrying.subscribe_source()
        return retrying


class _Retrying(abc.DisposableBase):
    """One subscription of :class:`_RetryWhen`: the source's current subscription, the
    notifier's (built at the first error) and the stream of errors fed to it."""

    __slots__ = (
        "_current",
        "_disposed",
        "_errors",
        "_lock",
        "_notifier",
        "_observer",
        "_scheduler",
        "_source",
        "_stopped",
        "_triggers",
    )

    def __init__(
        self,
        source: abc.ObservableBase[_T],
        notifier: Callable[[Observable[Exception]], Observable[Any]],
        observer: abc.ObserverBase[_T],
        scheduler: abc.SchedulerBase | None,
    ) -> None:
        self._source = source
        self._notifier = notifier
        self._observer = observer
        self._scheduler = scheduler
        self._current: abc.DisposableBase | None = None
        self._triggers: abc.DisposableBase | None = None
        self._errors: Subject[Exception] | None = None
        self._stopped = False
        self._disposed = False
        self._lock = threading.Lock()

    def subscribe_source(self, _: Any = None) -> None:
        """Subscribe to the source (again), replacing the previous subscription."""
        if self._stopped:
            return
        observer = self._observer
        subscription = self._source.subscribe(
            observer.on_next,
            self._on_source_error,
            observer.on_completed,
            scheduler=self._scheduler,
        )
        with self._lock:
            previous, self._current = self._current, subscription
            disposed = self._disposed
        if previous is not None:
            previous.dispose()
        if disposed:
            subscription.dispose()

    def _on_source_error(self, error: Exception) -> None:
        # As in RxJS, the notifier is built at the first error: a source that succeeds the
        # first time (most webhook attempts) pays for no retry chain.
        errors = self._errors
        if errors is None:
            errors = self._errors = Subject()
            triggers = self._notifier(errors).subscribe(
                self.subscribe_source,
                self._finish_error,
                self._finish_completed,
                scheduler=self._scheduler,
            )
            with self._lock:
                self._triggers = triggers
                disposed = self._disposed
            if disposed:
                triggers.dispose()
        errors.on_next(error)

    def _finish_error(self, error: Exception) -> None:
        self._stopped = True
        self._observer.on_error(error)

    def _finish_completed(self) -> None:
        self._stopped = True
        self._observer.on_completed()

    def dispose(self) -> None:
        """Dispose the source's subscription and the notifier's."""
        with self._lock:
            if self._disposed:
                return
            self._disposed = True
            current, triggers = self._current, self._triggers
            self._current = self._triggers = None
        if current is not None:
            current.dispose()
        if triggers is not None:
            triggers.dispose()


def backoff_notifier(
    delay_for: Callable[[int, Exception], float | None],
    *,
    scheduler: abc.SchedulerBase | None = None,
) -> Callable[[Observable[Exception]], Observable[Any]]:
    """A ``retry_when`` notifier that waits ``delay_for(retry_number, error)`` seconds.

    ``retry_number`` starts at 1 for the first retry. When ``delay_for`` returns ``None`` the
    error is re-thrown and retrying ends. A ``delay_for`` that raises ends retrying with its
    own error, so a bug there is never swallowed.
    """

    def _notifier(errors: Observable[Exception]) -> Observable[Any]:
        def _schedule(numbered: tuple[int, Exception]) -> Observable[Any]:
            number, error = numbered
            delay = delay_for(number, error)
            if delay is None:
                return reactivex.throw(error)
            return reactivex.timer(max(delay, 0.0), scheduler=scheduler)

        return errors.pipe(
            ops.map_indexed(lambda error, index: (index + 1, error)),
            ops.concat_map(_schedule),
        )

    return _notifier
