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

from collections.abc import Callable
from typing import Any, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable, SerialDisposable
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
) -> Callable[[Observable[_T]], Observable[_T]]:
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
    """

    def _operator(source: Observable[_T]) -> Observable[_T]:
        def _subscribe(
            observer: abc.ObserverBase[_T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            current = SerialDisposable()
            triggers = SerialDisposable()
            errors: list[Subject[Exception]] = []
            stopped = [False]

            def _on_source_error(err: Exception) -> None:
                # As in RxJS, the notifier is built at the first error: a source that
                # succeeds the first time (most webhook attempts) pays for no retry chain.
                if not errors:
                    errors.append(Subject())
                    triggers.disposable = notifier(errors[0]).subscribe(
                        lambda _: _subscribe_source(),
                        _finish_error,
                        _finish_completed,
                        scheduler=scheduler,
                    )
                errors[0].on_next(err)

            def _subscribe_source() -> None:
                if stopped[0]:
                    return
                current.disposable = source.subscribe(
                    observer.on_next, _on_source_error, observer.on_completed, scheduler=scheduler
                )

            def _finish_error(err: Exception) -> None:
                stopped[0] = True
                observer.on_error(err)

            def _finish_completed() -> None:
                stopped[0] = True
                observer.on_completed()

            _subscribe_source()
            return CompositeDisposable(current, triggers)

        return Observable(_subscribe)

    return _operator


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
