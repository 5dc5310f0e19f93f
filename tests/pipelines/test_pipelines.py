"""Tests of the ready-made pipelines: virtual time for the time-based ones, real files for audit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject
from reactivex.testing import ReactiveTest, TestScheduler
from structlog.testing import capture_logs

from mnemo_events._log import set_library_level
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import ConfigError
from mnemo_events.operators import ElementErrors
from pipelines import (
    AuditLog,
    ContradictionAlert,
    DreamSession,
    EventRates,
    GapReport,
    OpenGap,
    TierFlow,
    audit_log,
    contradiction_watch,
    dream_sessions,
    event_rates,
    knowledge_gaps,
    tier_flow,
)
from tests.helpers.marbles import emitted, marbles

on_next = ReactiveTest.on_next
on_completed = ReactiveTest.on_completed


def at(seconds: float) -> datetime:
    """The TestScheduler's clock reading at ``seconds`` virtual seconds."""
    return datetime.fromtimestamp(seconds, UTC)


def ev(event_type: str, **data: Any) -> Event:
    return Event.create(event_type, data)


def run_on_test_scheduler(
    build: Callable[[Observable[Event]], Observable[Any]], *records: Any
) -> list[Any]:
    """Feed hot ``records`` through ``build`` on a fresh TestScheduler; the recorded output."""
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(*records)
    return scheduler.start(lambda: build(source)).messages


class TestEventRates:
    def test_matches_the_marble_sketch(self) -> None:
        """event_rates samples per-type counts of the sliding window every `every` seconds."""
        m, d = "memory.created", "dream.started"
        lookup: dict[str | float, Any] = {"m": ev(m), "d": ev(d, session_id="s", trigger="idle")}
        with marbles() as mb:
            source = mb.cold("-m-m-d---m------|", lookup)
            result = mb.start(event_rates(source, window=4, every=2))
        lookup |= {
            "a": EventRates(at(202), 4.0, {m: 1}),
            "b": EventRates(at(204), 4.0, {m: 2}),
            "c": EventRates(at(206), 4.0, {m: 1, d: 1}),
            "d": EventRates(at(208), 4.0, {d: 1}),
            "f": EventRates(at(214), 4.0, {}),
        }
        expected = mb.exp("--a-b-c-d-e-e-f-|", lookup)
        expected[4:6] = [
            on_next(210, EventRates(at(210), 4.0, {m: 1})),
            on_next(212, EventRates(at(212), 4.0, {m: 1})),
        ]
        assert result == expected
        assert emitted(result[2]).rates == {m: 0.25, d: 0.25}
        assert emitted(result[2]).total_rate == 0.5

    def test_pattern_limits_the_types_counted(self) -> None:
        """Only events matching `pattern` are counted."""
        messages = run_on_test_scheduler(
            lambda s: event_rates(s, window=5, every=5, pattern="memory.*"),
            on_next(201, ev("memory.created")),
            on_next(202, ev("gap.detected", gap_id="g", query="q")),
            on_completed(206),
        )
        assert messages[0].value.value.counts == {"memory.created": 1}

    def test_rejects_a_zero_window(self) -> None:
        """A window of zero seconds is refused when the pipeline is built."""
        with pytest.raises(ConfigError, match="window"):
            event_rates(reactivex.empty(), window=0)


class TestDreamSessions:
    def test_matches_the_marble_sketch(self) -> None:
        """A completed session reports its duration; one with no end times out."""
        s = ev("dream.started", session_id="1", trigger="idle")
        t = ev("dream.started", session_id="2", trigger="manual")
        c = ev("dream.completed", session_id="1", duration_seconds=4.5)
        lookup: dict[str | float, Any] = {"s": s, "t": t, "c": c}
        with marbles() as mb:
            source = mb.cold("-s--t-c------|", lookup)
            result = mb.start(dream_sessions(source, timeout=5))
        lookup["a"] = DreamSession(
            "1", "completed", at(201), at(206), 5.0, 4.5, "idle", None, s.id, c.id
        )
        lookup["b"] = DreamSession(
            "2", "timed_out", at(204), at(209), 5.0, None, "manual", None, t.id, None
        )
        assert result == mb.exp("------a--b---|", lookup)

    def test_failed_and_unfinished_sessions(self) -> None:
        """dream.failed gives a failed session with its error; open ones end as unfinished."""
        failed = ev("dream.failed", session_id="1", error="LLM timeout", duration_seconds=2.0)
        messages = run_on_test_scheduler(
            lambda src: dream_sessions(src, timeout=100),
            on_next(201, ev("dream.started", session_id="1", trigger="idle")),
            on_next(203, failed),
            on_next(204, ev("dream.started", session_id="2", trigger="idle")),
            on_completed(210),
        )
        sessions = [m.value.value for m in messages[:-1]]
        assert [(x.session_id, x.outcome, x.duration) for x in sessions] == [
            ("1", "failed", 2.0),
            ("2", "unfinished", 6.0),
        ]
        assert sessions[0].error == "LLM timeout"
        assert sessions[0].reported_duration == 2.0

    def test_bad_events_do_not_stop_the_pipeline(self) -> None:
        """Events without a string session_id are dropped and counted; the rest pair up."""
        errors = ElementErrors()
        messages = run_on_test_scheduler(
            lambda src: dream_sessions(src, timeout=100, errors=errors),
            on_next(201, ev("dream.started", trigger="idle")),
            on_next(202, ev("dream.started", session_id=7, trigger="idle")),
            on_next(203, ev("dream.started", session_id="ok", trigger="idle")),
            on_next(204, ev("dream.completed", session_id="ok", duration_seconds=1.0)),
        )
        assert [m.value.value.outcome for m in messages] == ["completed"]
        assert errors.by_stage() == {"pair": 2}

    def test_late_end_after_timeout_is_ignored(self) -> None:
        """An end arriving after its session timed out adds nothing."""
        messages = run_on_test_scheduler(
            lambda src: dream_sessions(src, timeout=2),
            on_next(201, ev("dream.started", session_id="1", trigger="idle")),
            on_next(205, ev("dream.completed", session_id="1", duration_seconds=4.0)),
        )
        assert [(m.time, m.value.value.outcome) for m in messages] == [(203, "timed_out")]


class TestContradictionWatch:
    def test_matches_the_marble_sketch(self) -> None:
        """Only the group left unresolved past the limit raises an alert."""
        d = ev("contradiction.detected", group_id="g1", memory_a_id="a", memory_b_id="b")
        e = ev("contradiction.detected", group_id="g2", memory_a_id="c", memory_b_id="d")
        r = ev("contradiction.resolved", group_id="g1")
        lookup: dict[str | float, Any] = {"d": d, "e": e, "r": r}
        with marbles() as mb:
            source = mb.cold("-d-e-r-------|", lookup)
            result = mb.start(contradiction_watch(source, limit=6))
        lookup["a"] = ContradictionAlert("g2", "c", "d", at(203), at(209), 6.0, e.id)
        assert result == mb.exp("---------a---|", lookup)

    def test_repeated_detection_does_not_reset_the_clock(self) -> None:
        """A second detection of an open group keeps the first detection's deadline."""
        detected = ev("contradiction.detected", group_id="g", memory_a_id="a", memory_b_id="b")
        messages = run_on_test_scheduler(
            lambda src: contradiction_watch(src, limit=5),
            on_next(201, detected),
            on_next(
                204, ev("contradiction.detected", group_id="g", memory_a_id="a", memory_b_id="b")
            ),
        )
        assert [(m.time, m.value.value.detected_event_id) for m in messages] == [(206, detected.id)]

    def test_open_groups_at_completion_raise_no_alert(self) -> None:
        """A group still within its limit when the stream ends is not an alert."""
        messages = run_on_test_scheduler(
            lambda src: contradiction_watch(src, limit=50),
            on_next(
                201, ev("contradiction.detected", group_id="g", memory_a_id="a", memory_b_id="b")
            ),
            on_completed(210),
        )
        assert messages == [on_completed(210)]


class TestTierFlow:
    def test_matches_the_marble_sketch(self) -> None:
        """Moves are counted per (from_tier, to_tier) per tumbling window, empty ones included."""
        x = ev("memory.consolidated", memory_id="m1", from_tier="hot", to_tier="warm")
        y = ev("memory.consolidated", memory_id="m2", from_tier="warm", to_tier="cold")
        lookup: dict[str | float, Any] = {"x": x, "y": y}
        with marbles() as mb:
            source = mb.cold("-x---y-x-----|", lookup)
            result = mb.start(tier_flow(source, window=4))
        hw, wc = ("hot", "warm"), ("warm", "cold")
        lookup |= {
            "a": TierFlow(at(200), at(204), {hw: 1}),
            "b": TierFlow(at(204), at(208), {wc: 1, hw: 1}),
            "c": TierFlow(at(208), at(212), {}),
        }
        assert result == mb.exp("----a---b---c|", lookup)
        assert emitted(result[1]).moved("warm", "cold") == 1
        assert emitted(result[1]).total == 2

    def test_only_well_formed_consolidations_count(self) -> None:
        """Other types are ignored; a move without string tiers is dropped and counted."""
        errors = ElementErrors()
        messages = run_on_test_scheduler(
            lambda src: tier_flow(src, window=5, errors=errors),
            on_next(201, ev("memory.created", memory_id="m", content="c", tier="hot")),
            on_next(202, ev("memory.consolidated", memory_id="m", from_tier="hot")),
            on_next(203, ev("memory.consolidated", memory_id="m", from_tier="hot", to_tier=3)),
            on_next(204, ev("memory.consolidated", memory_id="m", from_tier="hot", to_tier="warm")),
            on_completed(206),
        )
        assert messages[0].value.value.counts == {("hot", "warm"): 1}
        assert errors.total == 2


class TestKnowledgeGaps:
    def test_matches_the_marble_sketch(self) -> None:
        """Each report lists the gaps still open with their age; a last one comes at the end."""
        a = ev("gap.detected", gap_id="1", query="q1", gap_type="missing_info")
        b = ev("gap.detected", gap_id="2", query="q2")
        filled = ev("gap.filled", gap_id="1", memory_id="m")
        lookup: dict[str | float, Any] = {"a": a, "b": b, "A": filled}
        with marbles() as mb:
            source = mb.cold("-a-b--A----|", lookup)
            result = mb.start(knowledge_gaps(source, every=4))

        def gap_2(age: float) -> OpenGap:
            return OpenGap("2", "q2", None, None, at(203), age, b.id)

        gap_1 = OpenGap("1", "q1", None, "missing_info", at(201), 3.0, a.id)
        lookup |= {
            "x": GapReport(at(204), (gap_1, gap_2(1.0))),
            "y": GapReport(at(208), (gap_2(5.0),)),
            "z": GapReport(at(211), (gap_2(8.0),)),
        }
        assert result == mb.exp("----x---y--(z,|)", lookup)

    def test_most_severe_first_then_oldest(self) -> None:
        """Reports order gaps by severity (highest first, none last), then by age."""
        messages = run_on_test_scheduler(
            lambda src: knowledge_gaps(src, every=10),
            on_next(201, ev("gap.detected", gap_id="old-none", query="q")),
            on_next(202, ev("gap.detected", gap_id="low", query="q", severity=0.2)),
            on_next(203, ev("gap.detected", gap_id="new-none", query="q")),
            on_next(204, ev("gap.detected", gap_id="high", query="q", severity=0.9)),
            on_next(205, ev("gap.filled", gap_id="never-detected", memory_id="m")),
        )
        report = messages[0].value.value
        assert [gap.gap_id for gap in report.gaps] == ["high", "low", "old-none", "new-none"]
        assert len(report) == 4

    def test_rejects_a_zero_period(self) -> None:
        """A reporting period of zero is refused when the pipeline is built."""
        with pytest.raises(ConfigError, match="every"):
            knowledge_gaps(reactivex.empty(), every=0)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def _read_rotated(path: Path) -> list[dict[str, Any]]:
    """The lines of path.N ... path.1 then path: oldest first."""
    backups = sorted(path.parent.glob(f"{path.name}.*"), key=lambda f: int(f.suffix[1:]))
    return [raw for f in [*reversed(backups), path] for raw in _read_lines(f)]


_STAMP = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def _events(count: int) -> list[Event]:
    """Events whose JSON lines all have the same length."""
    return [
        Event.create(
            "memory.accessed", {"memory_id": f"m{n:04d}", "query": "q"}, published_at=_STAMP
        )
        for n in range(count)
    ]


class TestAuditLog:
    def test_every_event_is_one_json_line_in_order(self, tmp_path: Path) -> None:
        """Each event becomes one line of Event.to_json(), in arrival order, by close()."""
        events = _events(300)
        path = tmp_path / "audit.jsonl"
        subject: Subject[Event] = Subject()
        sink = audit_log(subject, path, batch_size=7)
        for event in events:
            subject.on_next(event)
        sink.close()
        assert path.read_bytes() == b"".join(e.to_json() + b"\n" for e in events)
        assert [Event.from_dict(raw) for raw in _read_lines(path)] == events
        assert sink.stats().written == 300
        assert sink.stats().accepted == 300

    def test_rotates_by_size_and_keeps_backups(self, tmp_path: Path) -> None:
        """Files stay under max_bytes; the newest lines are in path, older in path.1, path.2."""
        events = _events(60)
        line = len(events[0].to_json()) + 1
        path = tmp_path / "audit.jsonl"
        with AuditLog(path, max_bytes=line * 10, backups=2) as sink:
            for event in events:
                sink.write(event)
        files = sorted(tmp_path.iterdir())
        assert [f.name for f in files] == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
        assert all(f.stat().st_size <= line * 10 for f in files)
        assert [raw["id"] for raw in _read_rotated(path)] == [e.id for e in events[-30:]]
        assert sink.stats().rotations == 5

    def test_a_line_longer_than_max_bytes_gets_its_own_file(self, tmp_path: Path) -> None:
        """An oversized line is written whole, alone in a fresh file."""
        path = tmp_path / "audit.jsonl"
        small, big = _events(1)[0], ev("memory.accessed", memory_id="m", query="x" * 500)
        with AuditLog(path, max_bytes=200, backups=1) as sink:
            sink.write(small)
            sink.write(big)
        assert _read_lines(tmp_path / "audit.jsonl.1") == [small.to_dict()]
        assert _read_lines(path) == [big.to_dict()]

    def test_appends_to_an_existing_file(self, tmp_path: Path) -> None:
        """Reopening the same path appends after the lines already there."""
        path = tmp_path / "audit.jsonl"
        first, second = _events(2)
        for event in (first, second):
            with AuditLog(path) as sink:
                sink.write(event)
        assert [raw["id"] for raw in _read_lines(path)] == [first.id, second.id]

    def test_write_after_close_is_refused(self, tmp_path: Path) -> None:
        """A closed sink raises on write instead of dropping the event silently."""
        sink = AuditLog(tmp_path / "audit.jsonl")
        sink.close()
        sink.close()  # idempotent
        with pytest.raises(ValueError, match="closed"):
            sink.write(_events(1)[0])

    def test_stream_completion_finishes_the_file(self, tmp_path: Path) -> None:
        """When the attached stream completes, the sink stops accepting and drains."""
        events = _events(5)
        path = tmp_path / "audit.jsonl"
        sink = audit_log(reactivex.from_iterable(events), path)
        assert sink.closed
        sink.close()
        assert len(_read_lines(path)) == 5

    def test_io_errors_are_counted_and_logged(self) -> None:
        """Lines the disk refuses are counted as failed and logged as audit.write_failed."""
        set_library_level("error")
        with capture_logs() as logs, AuditLog("/dev/full") as sink:
            for event in _events(3):
                sink.write(event)
        assert sink.stats().failed == 3
        assert sink.stats().written == 0
        failures = [entry for entry in logs if entry["event"] == "audit.write_failed"]
        assert sum(entry["lines"] for entry in failures) == 3
        assert "No space left" in failures[0]["error"]

    @pytest.mark.parametrize("options", [{"max_bytes": 0}, {"backups": 0}, {"batch_size": 0}])
    def test_rejects_bad_options(self, tmp_path: Path, options: dict[str, Any]) -> None:
        """Sizes below one are refused, naming the option."""
        with pytest.raises(ConfigError, match=next(iter(options))):
            AuditLog(tmp_path / "audit.jsonl", **options)

    def test_cannot_attach_twice(self, tmp_path: Path) -> None:
        """One sink follows one stream."""
        with AuditLog(tmp_path / "audit.jsonl") as sink:
            sink.attach(reactivex.never())
            with pytest.raises(ValueError, match="already attached"):
                sink.attach(reactivex.never())


class TestOnTheBus:
    async def test_dream_sessions_on_bus_observe(self) -> None:
        """dream_sessions composed on bus.observe() reports a session published on the bus."""
        async with EventBus() as bus:
            done: asyncio.Future[DreamSession] = asyncio.get_running_loop().create_future()
            subscription = dream_sessions(bus.observe("dream.*"), timeout=60).subscribe(
                done.set_result
            )
            await bus.publish("dream.started", {"session_id": "s1", "trigger": "manual"})
            await bus.publish("dream.completed", {"session_id": "s1", "duration_seconds": 0.1})
            session = await asyncio.wait_for(done, 5)
            subscription.dispose()
        assert (session.session_id, session.outcome, session.trigger) == (
            "s1",
            "completed",
            "manual",
        )
        assert session.duration >= 0

    async def test_timeouts_run_on_the_event_loop(self) -> None:
        """With no scheduler given, a pipeline's timeout fires on the running loop."""
        async with EventBus() as bus:
            done: asyncio.Future[DreamSession] = asyncio.get_running_loop().create_future()
            dream_sessions(bus.observe(), timeout=0.01).subscribe(done.set_result)
            await bus.publish("dream.started", {"session_id": "s1", "trigger": "idle"})
            session = await asyncio.wait_for(done, 5)
        assert session.outcome == "timed_out"

    async def test_audit_log_of_bus_observe_keeps_every_event(self, tmp_path: Path) -> None:
        """Every event published before bus.stop() is in the audit file after aclose()."""
        path = tmp_path / "audit.jsonl"
        bus = EventBus()
        await bus.start()
        async with audit_log(bus.observe(), path, max_bytes=4096, backups=50) as sink:
            published = [
                await bus.publish("memory.accessed", {"memory_id": f"m{n}", "query": "q"})
                for n in range(200)
            ]
            await bus.stop()
        await bus.shutdown()
        assert [raw["id"] for raw in _read_rotated(path)] == [e.id for e in published]
        assert sink.stats().rotations > 0

    async def test_pipelines_compose_on_one_stream(self) -> None:
        """Several pipelines can share bus.observe(); each gets every event it needs."""
        async with EventBus() as bus:
            stream = bus.observe()
            flows: list[TierFlow] = []
            gaps: list[GapReport] = []
            tier_flow(stream, window=60).subscribe(flows.append)
            knowledge_gaps(stream, every=60).subscribe(gaps.append)
            await bus.publish(
                "memory.consolidated", {"memory_id": "m", "from_tier": "hot", "to_tier": "warm"}
            )
            await bus.publish("gap.detected", {"gap_id": "g", "query": "q", "severity": 0.5})
            await bus.stop()
        assert [report.gaps[0].gap_id for report in gaps] == ["g"]
        assert flows == []  # the window had not closed yet


def test_results_are_frozen() -> None:
    """Pipeline records cannot be changed after the fact."""
    record = EventRates(at(0), 1.0, {})
    with pytest.raises(AttributeError):
        record.window = 2.0  # type: ignore[misc]
    assert not hasattr(record, "__dict__")


def test_ops_interplay_keeps_types() -> None:
    """A pipeline's output composes with ordinary reactivex operators."""
    scheduler = TestScheduler()
    source = scheduler.create_hot_observable(
        on_next(201, ev("dream.started", session_id="1", trigger="idle")),
        on_next(202, ev("dream.completed", session_id="1", duration_seconds=1.0)),
    )

    def duration(session: DreamSession) -> float:
        return session.duration

    result = scheduler.start(lambda: dream_sessions(source, timeout=9).pipe(ops.map(duration)))
    assert result.messages == [on_next(202, 1.0)]
