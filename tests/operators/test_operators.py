"""Tests of mnemo_events.operators on reactivex's virtual-time TestScheduler (no real sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.scheduler import ImmediateScheduler, TimeoutScheduler
from reactivex.scheduler.eventloop import AsyncIOScheduler
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded
from structlog.testing import capture_logs

from mnemo_events.event import Event
from mnemo_events.exceptions import ConfigError, InvalidPatternError
from mnemo_events.operators import (
    ElementErrors,
    Pair,
    Rates,
    backoff_notifier,
    debounce_by_key,
    element_errors,
    map_safe,
    match,
    pair,
    rate,
    resolve_scheduler,
    retry_when,
    where,
)
from tests.helpers.marbles import completed_at, emitted, marbles, next_at

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed
on_error = ReactiveTest.on_error


def at(seconds: float) -> datetime:
    """The TestScheduler's clock reading at ``seconds`` virtual seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def ev(event_type: str, **data: Any) -> Event:
    return Event.create(event_type, data)


def _identity(item: str) -> str:
    return item


def _boom(_: object) -> Any:
    raise RuntimeError("boom")


def _first(item: str) -> str:
    return item[0]


def _is_start(item: tuple[str, Any]) -> bool:
    return item[0] == "s"


def _is_end(item: tuple[str, Any]) -> bool:
    return item[0] == "e"


def _second(item: tuple[str, Any]) -> Any:
    return item[1]


class TestMatch:
    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            ("memory.*", ["memory.created", "memory.deleted"]),
            ("dream.>", ["dream.started"]),
            ("*", ["memory.created", "dream.started", "memory.deleted"]),
            ("memory.deleted", ["memory.deleted"]),
        ],
    )
    def test_keeps_matching_types(self, pattern: str, expected: list[str]) -> None:
        """match() keeps exactly the events whose type matches the pattern, in order."""
        source = [ev("memory.created"), ev("dream.started"), ev("memory.deleted")]
        seen: list[str] = []
        reactivex.from_iterable(source).pipe(match(pattern)).subscribe(
            lambda e: seen.append(e.type)
        )
        assert seen == expected

    def test_bad_pattern_fails_when_building(self) -> None:
        """A malformed pattern raises InvalidPatternError before anything is subscribed."""
        with pytest.raises(InvalidPatternError):
            match("memory..created")


class TestWhereAndMapSafe:
    def test_where_drops_events_its_predicate_fails_on(self) -> None:
        """A predicate that raises drops that event only; it is logged and counted."""
        errors = ElementErrors()
        source = [ev("memory.created", n=1), ev("memory.created"), ev("memory.created", n=3)]
        seen: list[int] = []
        with capture_logs() as logs:
            reactivex.from_iterable(source).pipe(
                where(lambda e: e.data["n"] > 0, errors=errors)
            ).subscribe(lambda e: seen.append(e.data["n"]))
        assert seen == [1, 3]
        assert errors.by_stage() == {"where": 1}
        assert logs[0]["event"] == "operators.element_failed"
        assert logs[0]["event_id"] == source[1].id
        assert logs[0]["stage"] == "where"

    def test_map_safe_drops_only_the_failing_element(self) -> None:
        """map_safe maps every element, drops the ones the mapper raises on, and completes."""
        errors = ElementErrors()

        def _upper_but_b(x: str) -> str:
            _ = 1 / (x != "b")  # 1 / False: ZeroDivisionError on "b"
            return x.upper()

        with marbles() as mb:
            source = mb.cold("-a-b-c-|")
            mapped = source.pipe(map_safe(_upper_but_b, errors=errors))
            assert mb.start(mapped) == mb.exp("-A---C-|")
        assert errors.total == 1
        assert errors.last_error is not None
        assert "ZeroDivisionError" in errors.last_error

    def test_repeated_failures_warn_on_the_first_and_every_100th(self) -> None:
        """A stage failing on every element warns once per 100 failures, not per element."""
        errors = ElementErrors()
        with capture_logs() as logs:
            reactivex.range(250).pipe(map_safe(_boom, stage="s", errors=errors)).subscribe()
        warned = [entry["failures"] for entry in logs if entry["log_level"] == "warning"]
        assert warned == [1, 100, 200]
        assert errors.total == 250

    def test_default_counter_is_process_wide(self) -> None:
        """Without errors=, drops are counted in element_errors()."""
        before = element_errors().by_stage().get("a_stage", 0)
        reactivex.of(1).pipe(map_safe(_boom, stage="a_stage")).subscribe()
        assert element_errors().by_stage()["a_stage"] == before + 1


class TestRate:
    def test_sliding_window_matches_the_marble_sketch(self) -> None:
        """rate() samples every `every` seconds the counts per key of the last `window`."""
        lookup = {
            "w": Rates(at(202), 4.0, {"a": 1}),
            "x": Rates(at(204), 4.0, {"a": 2}),
            "y": Rates(at(206), 4.0, {"a": 1, "b": 1}),
            "z": Rates(at(208), 4.0, {"b": 1}),
            "v": Rates(at(210), 4.0, {"a": 1}),
            "u": Rates(at(214), 4.0, {}),
        }
        with marbles() as mb:
            source = mb.cold("-a-a-b---a------|")
            result = mb.start(source.pipe(rate(4, every=2, key=_identity)))
        expected = mb.exp("--w-x-y-z-v-v-u-|", lookup)
        expected[5] = on_next(212, Rates(at(212), 4.0, {"a": 1}))
        assert result == expected

    def test_items_leave_the_window_exactly_after_window_seconds(self) -> None:
        """An item that arrived at t counts in samples up to t + window excluded."""
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(on_next(201, "a"), on_completed(206))
        result = scheduler.start(lambda: source.pipe(rate(3, every=1, key=_identity)))
        counts = [dict(emitted(m).counts) for m in result.messages[:-1]]
        assert counts == [{"a": 1}, {"a": 1}, {"a": 1}, {}, {}]

    def test_per_second_and_total(self) -> None:
        """Rates.per_second divides counts by the window; total sums them."""
        sample = Rates(at(0), 4.0, {"a": 2, "b": 6})
        assert sample.per_second() == {"a": 0.5, "b": 1.5}
        assert sample.total == 8

    def test_bad_key_drops_the_item(self) -> None:
        """An item whose key function raises is not counted, and the sampling goes on."""
        errors = ElementErrors()
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(
            on_next(201, "a"), on_next(202, ""), on_completed(205)
        )
        result = scheduler.start(lambda: source.pipe(rate(4, every=4, key=_first, errors=errors)))
        assert result.messages == [on_next(204, Rates(at(204), 4.0, {"a": 1})), on_completed(205)]
        assert errors.by_stage() == {"rate": 1}

    def test_error_is_forwarded_and_stops_sampling(self) -> None:
        """A source error reaches the observer and no sample follows it."""
        failure = RuntimeError("source failed")
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(on_next(201, "a"), on_error(203, failure))
        result = scheduler.start(lambda: source.pipe(rate(5, every=2, key=_identity)))
        assert result.messages == [
            on_next(202, Rates(at(202), 5.0, {"a": 1})),
            on_error(203, failure),
        ]

    @pytest.mark.parametrize(("window", "every"), [(0, 1), (-1, 1), (1, 0), (float("nan"), 1)])
    def test_rejects_non_positive_durations(self, window: float, every: float) -> None:
        """window and every must be positive numbers of seconds."""
        with pytest.raises(ConfigError, match="rate"):
            rate(window, every=every, key=_identity)


class TestPair:
    @staticmethod
    def _pairs(
        *records: Any, timeout: float | None = 5, errors: ElementErrors | None = None
    ) -> list[Any]:
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(*records)
        result = scheduler.start(
            lambda: source.pipe(
                pair(
                    _is_start,
                    _is_end,
                    key=_second,
                    timeout=timeout,
                    errors=errors,
                )
            )
        )
        return result.messages

    def test_matches_the_marble_sketch(self) -> None:
        """A start with its end in time completes; one without an end times out."""
        a, b, end_a = ("s", 1), ("s", 2), ("e", 1)
        lookup = {
            "a": a,
            "b": b,
            "A": end_a,
            "x": Pair(1, a, end_a, at(201), at(206), "completed"),
            "y": Pair(2, b, None, at(204), at(209), "timed_out"),
        }
        with marbles() as mb:
            source = mb.cold("-a--b-A------|", lookup)
            result = mb.start(source.pipe(pair(_is_start, _is_end, key=_second, timeout=5)))
            assert result == mb.exp("------x--y---|", lookup)
        assert emitted(result[0]).duration == 5.0

    def test_open_starts_are_unfinished_at_completion(self) -> None:
        """Starts still open when the source completes are emitted as unfinished, then done."""
        messages = self._pairs(on_next(201, ("s", 1)), on_completed(203), timeout=None)
        assert messages == [
            on_next(203, Pair(1, ("s", 1), None, at(201), at(203), "unfinished")),
            on_completed(203),
        ]

    def test_duplicate_start_keeps_the_first_clock(self) -> None:
        """A repeated start of an open key is ignored: the pair starts at the first one."""
        messages = self._pairs(
            on_next(201, ("s", 1)), on_next(203, ("s", 1)), on_next(204, ("e", 1))
        )
        assert messages == [
            on_next(204, Pair(1, ("s", 1), ("e", 1), at(201), at(204), "completed"))
        ]

    @pytest.mark.parametrize(
        ("records", "statuses"),
        [
            ([on_next(201, ("e", 1))], []),  # an end with no start
            ([on_next(201, ("s", 1)), on_next(207, ("e", 1))], ["timed_out"]),  # end too late
            ([on_next(201, ("x", 1))], []),  # neither start nor end
        ],
    )
    def test_stray_items_emit_nothing_extra(self, records: list[Any], statuses: list[str]) -> None:
        """Ends without an open start and unrelated items produce no pair of their own."""
        messages = self._pairs(*records)
        assert [emitted(m).status for m in messages] == statuses

    def test_bad_key_is_dropped_and_counted(self) -> None:
        """An item whose key cannot be read is dropped; the other pairs still form."""
        errors = ElementErrors()
        scheduler = TestScheduler()
        records: list[Recorded[dict[str, Any]]] = [
            on_next(201, {"kind": "s"}),
            on_next(202, {"kind": "s", "id": 1}),
            on_next(203, {"kind": "e", "id": 1}),
        ]
        source = scheduler.create_hot_observable(*records)

        def _kind_is(kind: str) -> Callable[[dict[str, Any]], bool]:
            def _check(item: dict[str, Any]) -> bool:
                return bool(item["kind"] == kind)

            return _check

        def _id(item: dict[str, Any]) -> Any:
            return item["id"]

        result = scheduler.start(
            lambda: source.pipe(
                pair(
                    _kind_is("s"),
                    _kind_is("e"),
                    key=_id,
                    timeout=10,
                    errors=errors,
                )
            )
        )
        assert [emitted(m).key for m in result.messages] == [1]
        assert errors.by_stage() == {"pair": 1}

    def test_unhashable_key_is_dropped(self) -> None:
        """A key that cannot be hashed drops the item instead of killing the stream."""
        errors = ElementErrors()
        messages = self._pairs(on_next(201, ("s", [1])), on_next(202, ("s", 2)), errors=errors)
        assert [emitted(m).key for m in messages] == [2]
        assert errors.total == 1

    def test_dispose_cancels_pending_timeouts(self) -> None:
        """Disposing the subscription cancels the timers of the open starts."""
        timers: list[Any] = []

        class RecordingScheduler(TestScheduler):
            def schedule_relative(self, duetime: Any, action: Any, state: Any = None) -> Any:
                timer = super().schedule_relative(duetime, action, state)
                timers.append(timer)
                return timer

        scheduler = RecordingScheduler()
        source = scheduler.create_hot_observable(on_next(201, ("s", 1)), on_next(202, ("s", 2)))
        result = scheduler.start(
            lambda: source.pipe(pair(_is_start, _is_end, key=_second, timeout=50)),
            disposed=220,
        )
        assert result.messages == []
        assert len(timers) == 2
        assert all(timer.is_disposed for timer in timers)


class TestDebounceByKey:
    def test_matches_the_marble_sketch(self) -> None:
        """Each key emits its last item after duetime of quiet; pending ones flush at the end."""
        with marbles() as mb:
            source = mb.cold("-a-A-b-A-------B|")
            result = mb.start(source.pipe(debounce_by_key(5, key=str.lower)))
            assert result == mb.exp("----------b-A---(B,|)")

    def test_keys_do_not_delay_each_other(self) -> None:
        """A steady stream of one key does not hold back another key's item."""
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(
            on_next(201, "b1"),
            *(on_next(202 + n, f"a{n}") for n in range(10)),
            on_completed(230),
        )
        result = scheduler.start(lambda: source.pipe(debounce_by_key(2, key=_first)))
        assert result.messages == [on_next(203, "b1"), on_next(213, "a9"), on_completed(230)]

    def test_error_drops_pending_items(self) -> None:
        """On a source error the pending items are dropped and the error is forwarded."""
        failure = RuntimeError("source failed")
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(on_next(201, "a"), on_error(202, failure))
        result = scheduler.start(lambda: source.pipe(debounce_by_key(5, key=_identity)))
        assert result.messages == [on_error(202, failure)]

    def test_bad_key_is_dropped(self) -> None:
        """An item whose key function raises is dropped and counted."""
        errors = ElementErrors()
        scheduler = TestScheduler()
        source = scheduler.create_hot_observable(on_next(201, ""), on_next(202, "a"))
        result = scheduler.start(lambda: source.pipe(debounce_by_key(1, key=_first, errors=errors)))
        assert result.messages == [on_next(203, "a")]
        assert errors.by_stage() == {"debounce_by_key": 1}


class TestRetryWhen:
    def test_resubscribes_after_each_delay_then_rethrows(self) -> None:
        """retry_when with backoff_notifier retries after 1 s then 2 s, then gives up."""
        failure = RuntimeError("flaky")
        scheduler = TestScheduler()
        attempts: list[float] = []

        def _attempt() -> Observable[str]:
            attempts.append(scheduler.clock)
            return reactivex.throw(failure)

        def _delay(number: int, _: Exception) -> float | None:
            return float(number) if number <= 2 else None

        result = scheduler.start(
            lambda: reactivex.defer(lambda _: _attempt()).pipe(
                retry_when(backoff_notifier(_delay, scheduler=scheduler))
            )
        )
        assert attempts == [200.0, 201.0, 203.0]
        assert result.messages == [on_error(203, failure)]

    def test_success_after_a_retry_completes(self) -> None:
        """A source that succeeds on its second subscription delivers and completes."""
        scheduler = TestScheduler()
        calls = [0]

        def _attempt() -> Observable[str]:
            calls[0] += 1
            return reactivex.throw(RuntimeError()) if calls[0] == 1 else reactivex.of("ok")

        result = scheduler.start(
            lambda: reactivex.defer(lambda _: _attempt()).pipe(
                retry_when(backoff_notifier(lambda n, e: 0.5, scheduler=scheduler))
            )
        )
        assert result.messages == [next_at(200.5, "ok"), completed_at(200.5)]


class TestResolveScheduler:
    def test_order_of_preference(self) -> None:
        """The operator's scheduler wins, then subscribe's, then the thread-based default."""
        given, subscribed = TestScheduler(), ImmediateScheduler()
        assert resolve_scheduler(given, subscribed) is given
        assert resolve_scheduler(None, subscribed) is subscribed
        assert isinstance(resolve_scheduler(None, None), TimeoutScheduler)

    async def test_inside_a_running_loop_uses_asyncio(self) -> None:
        """Subscribing inside a running event loop with no scheduler uses that loop."""
        chosen = resolve_scheduler(None, None)
        assert isinstance(chosen, AsyncIOScheduler)

    async def test_operators_run_on_the_event_loop(self) -> None:
        """With no scheduler given, timers run as loop callbacks in real time."""
        subject: reactivex.subject.Subject[str] = reactivex.subject.Subject()
        done: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        subject.pipe(debounce_by_key(0.01, key=_identity), ops.to_list()).subscribe(done.set_result)
        subject.on_next("a")
        subject.on_next("a")
        subject.on_next("b")
        await asyncio.sleep(0.05)
        subject.on_completed()
        assert await asyncio.wait_for(done, 5) == ["a", "b"]


@pytest.mark.parametrize(
    "build",
    [
        lambda: rate(1, key=_identity),
        lambda: pair(bool, bool, key=_identity, timeout=1),
        lambda: debounce_by_key(1, key=_identity),
    ],
)
def test_time_operators_complete_with_an_empty_source(build: Callable[[], Any]) -> None:
    """Each time-based operator completes when an empty source completes, emitting nothing."""
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(completed_at(200.5))
    result = scheduler.start(lambda: source.pipe(build()))
    assert result.messages == [completed_at(200.5)]
