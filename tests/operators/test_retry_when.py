"""retry_when and backoff_notifier on reactivex's virtual-time TestScheduler (no real sleeping).

One virtual tick is one second of delay. These pin the semantics the webhook retries rely on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import reactivex
from reactivex import Notification, Observable
from reactivex import operators as ops
from reactivex.testing import ReactiveTest, TestScheduler

from mnemo_events.config import RetryConfig
from mnemo_events.operators import backoff_notifier, retry_when
from mnemo_events.webhooks.backoff import retry_delay
from tests.helpers.marbles import emitted

on_next = ReactiveTest.on_next
on_error = ReactiveTest.on_error
on_completed = ReactiveTest.on_completed

_T = TypeVar("_T")


class Flaky:
    """A source that fails its first ``failures`` subscriptions, then emits ``ok``."""

    def __init__(self, scheduler: TestScheduler, failures: int, error: Exception | None = None):
        self.scheduler = scheduler
        self.failures = failures
        self.error = error or RuntimeError("flaky")
        self.subscribed_at: list[float] = []

    def observable(self) -> Observable[str]:
        def _factory(_: Any) -> Observable[str]:
            self.subscribed_at.append(self.scheduler.clock)
            if len(self.subscribed_at) <= self.failures:
                return reactivex.throw(self.error)
            return reactivex.of("ok")

        return reactivex.defer(_factory)


def _retried(
    source: Observable[_T], delay_for: Any, scheduler: TestScheduler
) -> Callable[[], Observable[_T]]:
    return lambda: source.pipe(retry_when(backoff_notifier(delay_for, scheduler=scheduler)))


class TestSchedules:
    def test_reference_schedule_then_give_up(self) -> None:
        """With the reference's RetryConfig the attempts land at 0, 1, 3, 7 and 15 s, then the
        last error comes out."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=99)
        config = RetryConfig(max_attempts=5)

        def _delay(number: int, _: Exception) -> float | None:
            return retry_delay(number, config) if number < config.max_attempts else None

        result = scheduler.start(_retried(flaky.observable(), _delay, scheduler))
        assert flaky.subscribed_at == [200.0, 201.0, 203.0, 207.0, 215.0]
        assert result.messages == [on_error(215, flaky.error)]

    def test_cap_applies(self) -> None:
        """Delays stop growing at max_delay_seconds."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=5)
        config = RetryConfig(base_delay_seconds=2.0, max_delay_seconds=5.0)
        result = scheduler.start(
            _retried(flaky.observable(), lambda n, e: retry_delay(n, config), scheduler)
        )
        assert flaky.subscribed_at == [200.0, 202.0, 206.0, 211.0, 216.0, 221.0]
        assert result.messages == [on_next(221, "ok"), on_completed(221)]

    def test_delay_can_come_from_the_error(self) -> None:
        """delay_for sees the error, so an answer's Retry-After can set the wait."""

        class Throttled(Exception):
            def __init__(self, retry_after: float) -> None:
                super().__init__(retry_after)
                self.retry_after = retry_after

        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=1, error=Throttled(30.0))
        result = scheduler.start(
            _retried(flaky.observable(), lambda n, e: e.retry_after, scheduler), disposed=1000
        )
        assert flaky.subscribed_at == [200.0, 230.0]
        assert result.messages == [on_next(230, "ok"), on_completed(230)]

    def test_zero_delay_retries_at_the_same_instant(self) -> None:
        """A zero delay resubscribes without advancing the clock."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=3)
        result = scheduler.start(_retried(flaky.observable(), lambda n, e: 0.0, scheduler))
        assert flaky.subscribed_at == [200.0] * 4
        assert result.messages == [on_next(200, "ok"), on_completed(200)]

    def test_many_retries_do_not_recurse(self) -> None:
        """Five hundred retries run one after the other, not nested in the call stack."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=500)
        result = scheduler.start(
            _retried(flaky.observable(), lambda n, e: 0.001, scheduler), disposed=10_000
        )
        assert len(flaky.subscribed_at) == 501
        last = result.messages[-1].value
        assert isinstance(last, Notification)
        assert last.kind == "C"


class TestSemantics:
    def test_values_before_each_error_pass_through(self) -> None:
        """Each subscription's values reach the observer (the docstring's marble)."""
        scheduler = TestScheduler()
        failure = RuntimeError("boom")
        source = reactivex.concat(reactivex.of("a"), reactivex.throw(failure))

        def _delay(number: int, _: Exception) -> float | None:
            return 2.0 if number <= 2 else None

        result = scheduler.start(_retried(source, _delay, scheduler))
        assert result.messages == [
            on_next(200, "a"),
            on_next(202, "a"),
            on_next(204, "a"),
            on_error(204, failure),
        ]

    def test_a_completing_source_never_consults_the_notifier(self) -> None:
        """Without an error, delay_for is never called."""
        scheduler = TestScheduler()
        calls: list[int] = []

        def _delay(number: int, _: Exception) -> float | None:
            calls.append(number)
            return 1.0

        result = scheduler.start(_retried(reactivex.of(1, 2), _delay, scheduler))
        assert [emitted(m) for m in result.messages[:2]] == [1, 2]
        assert calls == []

    def test_retry_numbers_count_from_one(self) -> None:
        """delay_for receives 1, 2, 3 ... and the matching error."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=3)
        seen: list[tuple[int, Exception]] = []

        def _delay(number: int, error: Exception) -> float:
            seen.append((number, error))
            return 1.0

        scheduler.start(_retried(flaky.observable(), _delay, scheduler))
        assert seen == [(1, flaky.error), (2, flaky.error), (3, flaky.error)]

    def test_a_failing_delay_function_ends_with_its_own_error(self) -> None:
        """A bug in delay_for surfaces as the result's error instead of being swallowed."""
        scheduler = TestScheduler()
        bug = ZeroDivisionError("bad schedule")

        def _delay(number: int, _: Exception) -> float:
            raise bug

        result = scheduler.start(
            _retried(Flaky(scheduler, failures=9).observable(), _delay, scheduler)
        )
        assert result.messages == [on_error(200, bug)]

    def test_notifier_completion_completes_the_result(self) -> None:
        """When the notifier's stream completes, the result completes (RxJS retryWhen)."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=9)
        result = scheduler.start(
            lambda: flaky.observable().pipe(retry_when(lambda errors: errors.pipe(ops.take(1))))
        )
        assert len(flaky.subscribed_at) == 2
        assert result.messages == [on_completed(200)]

    def test_notifier_error_ends_the_result(self) -> None:
        """When the notifier's stream errors, the result errors with that error."""
        scheduler = TestScheduler()
        stop = ValueError("no more")
        result = scheduler.start(
            lambda: (
                Flaky(scheduler, failures=9)
                .observable()
                .pipe(
                    retry_when(
                        lambda errors: errors.pipe(ops.flat_map(lambda _: reactivex.throw(stop)))
                    )
                )
            )
        )
        assert result.messages == [on_error(200, stop)]

    def test_disposing_cancels_a_pending_retry(self) -> None:
        """Disposing while a retry waits cancels it: no further subscription happens."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=9)
        result = scheduler.start(
            _retried(flaky.observable(), lambda n, e: 10.0, scheduler), disposed=215
        )
        assert flaky.subscribed_at == [200.0, 210.0]
        assert result.messages == []

    def test_each_subscription_has_its_own_count(self) -> None:
        """Two subscribers to one retried observable count their retries independently: each
        gets retry number 1 (a shared count would give the second one 2 and no retry)."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=2)
        retried = flaky.observable().pipe(
            retry_when(backoff_notifier(lambda n, e: 5.0 if n == 1 else None, scheduler=scheduler))
        )
        first: list[Any] = []
        second: list[Any] = []
        scheduler.schedule_absolute(100, lambda *_: retried.subscribe(first.append, first.append))
        scheduler.schedule_absolute(102, lambda *_: retried.subscribe(second.append, second.append))
        scheduler.start()
        assert first == ["ok"]
        assert second == ["ok"]
        assert flaky.subscribed_at == [100.0, 102.0, 105.0, 107.0]

    @pytest.mark.parametrize("failures", [0, 1, 4])
    def test_starting_from_an_already_failed_attempt(self, failures: int) -> None:
        """The webhook actor's shape: a deferred source whose first subscription replays the
        attempt that already failed waits the decided delay before the next real attempt."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=failures)
        replayed = [False]

        def _source(_: Any) -> Observable[str]:
            if not replayed[0]:
                replayed[0] = True
                return reactivex.throw(RuntimeError("the first attempt failed"))
            return flaky.observable()

        result = scheduler.start(
            _retried(reactivex.defer(_source), lambda n, e: 3.0, scheduler), disposed=1000
        )
        assert flaky.subscribed_at == [203.0 + 3.0 * n for n in range(failures + 1)]
        assert result.messages[-1] == on_completed(203 + 3 * failures)


class TestObservable:
    def test_result_is_a_whole_observable(self) -> None:
        """The operator's result has every attribute a reactivex Observable sets up (so other
        operators, such as take_while or delay, that use them work after it)."""
        result = reactivex.of(1).pipe(retry_when(backoff_notifier(lambda n, e: None)))
        assert isinstance(result, Observable)
        assert set(vars(Observable())) <= set(vars(result))

    def test_operators_that_lock_the_source_work_after_it(self) -> None:
        """take_while (which locks its source) runs on the operator's result."""
        scheduler = TestScheduler()
        flaky = Flaky(scheduler, failures=2)
        result = scheduler.start(
            lambda: flaky.observable().pipe(
                retry_when(backoff_notifier(lambda n, e: 1.0, scheduler=scheduler)),
                ops.take_while(lambda value: value == "ok"),
            )
        )
        assert result.messages == [on_next(202, "ok"), on_completed(202)]
