"""The emit_* helpers: signatures mirroring the schemas, round trips, hot-path guarantees."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from mnemo_events import integration
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import EventValidationError, InvalidEventTypeError
from mnemo_events.integration import (
    EmitStats,
    emit_event,
    emit_gap_filled,
    emit_memory_accessed,
    emit_memory_created,
    emit_memory_deleted,
    integration_stats,
    reset_integration_stats,
)
from mnemo_events.schemas import BUILTIN_MODELS, validate_event
from tests.helpers.payloads import VALID_PAYLOADS

Helper = Callable[..., Awaitable[Any]]

# Every helper with every argument it takes (metadata aside).
CALLS = VALID_PAYLOADS

TYPES = list(CALLS)


def _helper(event_type: str) -> Helper:
    helper: Helper = getattr(integration, "emit_" + event_type.replace(".", "_"))
    return helper


def _required(event_type: str) -> dict[str, Any]:
    fields = BUILTIN_MODELS[event_type].model_fields
    return {name: CALLS[event_type][name] for name, info in fields.items() if info.is_required()}


@pytest.fixture(autouse=True)
def _fresh_stats() -> Iterator[None]:
    """Each test starts with zeroed helper counters."""
    reset_integration_stats()
    yield
    reset_integration_stats()


class TestSignatures:
    def test_one_helper_per_event_type(self) -> None:
        """There is an exported ``emit_<type>`` for each of the 15 built-in types."""
        assert set(CALLS) == set(BUILTIN_MODELS)
        for event_type in BUILTIN_MODELS:
            name = "emit_" + event_type.replace(".", "_")
            assert name in integration.__all__
            assert inspect.iscoroutinefunction(getattr(integration, name))

    @pytest.mark.parametrize("event_type", TYPES)
    def test_arguments_mirror_the_model_fields(self, event_type: str) -> None:
        """Arguments are the bus, the model's fields (keyword-only), then ``metadata``."""
        parameters = list(inspect.signature(_helper(event_type)).parameters.values())
        fields = BUILTIN_MODELS[event_type].model_fields
        assert parameters[0].name == "event_bus"
        assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        assert [p.name for p in parameters[1:]] == [*fields, "metadata"]
        for parameter in parameters[1:]:
            assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
            info = fields.get(parameter.name)
            required = info is not None and info.is_required()
            assert (parameter.default is inspect.Parameter.empty) is required
            if not required:
                assert parameter.default is None

    @pytest.mark.parametrize("event_type", TYPES)
    def test_the_table_is_valid(self, event_type: str) -> None:
        """The test table itself is a valid payload per type (so round trips mean something)."""
        assert validate_event(event_type, CALLS[event_type]) == (True, [])


class TestRoundTrip:
    @pytest.mark.parametrize("event_type", TYPES)
    async def test_every_helper_through_a_real_bus(
        self, event_type: str, bus: EventBus, collector: Callable[[], Any]
    ) -> None:
        """Each helper publishes its type with the given fields and metadata, and returns it."""
        received = collector()
        bus.subscribe("*", received)
        event = await _helper(event_type)(bus, **CALLS[event_type], metadata={"trace": "t-1"})
        await bus.stop()
        assert received.events == [event]
        assert event.type == event_type
        assert event.data == CALLS[event_type]
        assert event.metadata == {"trace": "t-1"}
        assert integration_stats() == EmitStats(emitted=1, skipped=0, queue_full=0, bus_closed=0)

    @pytest.mark.parametrize("event_type", TYPES)
    async def test_optional_arguments_left_none_are_omitted(
        self, event_type: str, bus: EventBus
    ) -> None:
        """Only the required fields are sent when the optional ones are left as None."""
        event = await _helper(event_type)(bus, **_required(event_type))
        assert event.data == _required(event_type)
        assert event.metadata == {}
        explicit = dict.fromkeys(CALLS[event_type], None) | _required(event_type)
        event = await _helper(event_type)(event_bus=bus, **explicit)
        assert event.data == _required(event_type)

    async def test_reference_example(self, bus: EventBus, collector: Callable[[], Any]) -> None:
        """The reference's ``emit_memory_created`` call works as written there."""
        received = collector()
        bus.subscribe("memory.created", received)
        await emit_memory_created(
            event_bus=bus,
            memory_id="mem_123",
            content="New knowledge",
            tier="hot",
            ltp_strength=0.5,
            tags=["test"],
            agent_id="agent-01",
        )
        await bus.stop()
        assert received.events[0].data["agent_id"] == "agent-01"
        assert received.events[0].data["tags"] == ["test"]


class TestHotPath:
    @pytest.mark.parametrize("event_type", TYPES)
    async def test_no_bus_returns_none(self, event_type: str) -> None:
        """With no bus a helper returns None at once and counts the skip."""
        assert await _helper(event_type)(None, **CALLS[event_type]) is None
        assert integration_stats().skipped == 1

    async def test_disabled_bus_returns_none_and_publishes_nothing(
        self, collector: Callable[[], Any]
    ) -> None:
        """With ``events.enabled`` off a helper returns None without publishing."""
        async with EventBus(enabled=False) as bus:
            received = collector()
            bus.subscribe("*", received)
            for event_type in TYPES:
                assert await _helper(event_type)(bus, **CALLS[event_type]) is None
            await bus.stop()
            assert received.events == []
            assert bus.get_metrics()["total_published"] == 0
        assert integration_stats() == EmitStats(emitted=0, skipped=15, queue_full=0, bus_closed=0)

    @pytest.mark.parametrize("mode", ["strict", "warn", "off"])
    @pytest.mark.parametrize(
        ("helper", "arguments", "problem"),
        [
            (emit_memory_created, {"memory_id": "m", "content": "c", "tier": "lukewarm"},
             "data.tier: expected one of 'hot', 'warm', 'cold', got 'lukewarm'"),
            (emit_memory_accessed, {"memory_id": "m", "query": "q", "similarity_score": 3},
             "data.similarity_score: expected a value <= 1, got 3"),
            (emit_gap_filled, {"gap_id": "g", "memory_id": "m", "confidence": True},
             "data.confidence: expected a finite number (not a boolean), got True"),
            (emit_memory_deleted, {"memory_id": 7}, "data.memory_id: expected a string, got 7"),
        ],
    )  # fmt: skip
    async def test_bad_arguments_raise_whatever_the_mode(
        self,
        mode: str,
        helper: Helper,
        arguments: dict[str, Any],
        problem: str,
        collector: Callable[[], Any],
    ) -> None:
        """Bad arguments raise EventValidationError at once in every validation mode."""
        async with EventBus(validation=mode) as bus:
            received = collector()
            bus.subscribe("*", received)
            with pytest.raises(EventValidationError) as caught:
                await helper(bus, **arguments)
            await bus.stop()
            assert received.events == []
        assert len(caught.value.errors) == 1
        assert caught.value.errors[0].startswith(problem)

    async def test_several_bad_arguments_are_listed_together(self, bus: EventBus) -> None:
        """Every problem of a helper call is in the one exception."""
        with pytest.raises(EventValidationError) as caught:
            await emit_memory_accessed(bus, memory_id="m", query="q", rank=0, tier="tepid")  # type: ignore[arg-type]
        assert [e.split(":")[0] for e in caught.value.errors] == ["data.rank", "data.tier"]

    async def test_a_full_mailbox_is_counted_not_raised(self) -> None:
        """A QueueFullError from publish is logged and counted; the helper returns None."""
        bus = EventBus(max_queue_size=1, publish_timeout=0)
        try:
            assert await emit_memory_deleted(bus, memory_id="m1") is not None
            with capture_logs() as logs:
                assert await emit_memory_deleted(bus, memory_id="m2") is None
        finally:
            await bus.shutdown()
        assert integration_stats() == EmitStats(emitted=1, skipped=0, queue_full=1, bus_closed=0)
        assert integration_stats().failed == 1
        failures = [log for log in logs if log["event"] == "integration.emit_failed"]
        assert failures[0]["error"] == "QueueFullError"
        assert failures[0]["event_type"] == "memory.deleted"
        assert failures[0]["log_level"] == "warning"

    async def test_a_shut_down_bus_is_counted_not_raised(self) -> None:
        """A BusClosedError is absorbed; only the first of a streak is logged as a warning."""
        bus = EventBus()
        await bus.shutdown()
        with capture_logs() as logs:
            for index in range(3):
                assert await emit_memory_deleted(bus, memory_id=f"m{index}") is None
        assert integration_stats() == EmitStats(emitted=0, skipped=0, queue_full=0, bus_closed=3)
        warnings = [log for log in logs if log["event"] == "integration.emit_failed"]
        assert [(w["error"], w["failures"]) for w in warnings] == [("BusClosedError", 1)]

    async def test_reset_zeroes_the_counters(self) -> None:
        """``reset_integration_stats`` brings every counter back to zero."""
        await emit_memory_deleted(None, memory_id="m")
        assert integration_stats().skipped == 1
        reset_integration_stats()
        assert integration_stats() == EmitStats(0, 0, 0, 0)


class TestEmitEvent:
    async def test_unregistered_types_are_published_as_given(
        self, bus: EventBus, collector: Callable[[], Any]
    ) -> None:
        """``emit_event`` publishes an unregistered type's data unchanged, None values kept."""
        received = collector()
        bus.subscribe("consolidation.*", received)
        event = await emit_event(bus, "consolidation.failed", {"cycle_id": "c", "error": None})
        await bus.stop()
        assert received.events == [event]
        assert event is not None
        assert event.data == {"cycle_id": "c", "error": None}

    async def test_registered_types_are_validated(self, bus: EventBus) -> None:
        """``emit_event`` refuses a bad payload of a registered type before publishing."""
        with pytest.raises(EventValidationError, match=r"data\.tier"):
            await emit_event(bus, "memory.deleted", {"memory_id": "m", "tier": "x"})
        assert bus.get_metrics()["total_published"] == 0

    async def test_malformed_type_names_raise(self, bus: EventBus) -> None:
        """A malformed event type is a bad argument, raised to the caller."""
        with pytest.raises(InvalidEventTypeError):
            await emit_event(bus, "memory..created", {})

    async def test_no_bus_short_circuits_before_validation(self) -> None:
        """Without a bus nothing is checked: the hot path costs one comparison."""
        assert await emit_event(None, "memory.created", {"tier": "lukewarm"}) is None
        assert integration_stats().skipped == 1
