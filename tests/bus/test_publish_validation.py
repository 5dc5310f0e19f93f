"""Payload validation on publish: strict, warn and off, and unregistered types."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from structlog.testing import capture_logs

from mnemo_events._log import set_library_level
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import EventValidationError

VALID = {"memory_id": "mem_1", "content": "hello", "tier": "hot"}
INVALID = {"memory_id": "mem_1", "tier": "lukewarm", "ltp_strength": 3}


async def test_strict_mode_refuses_invalid_payloads_listing_every_problem() -> None:
    """In strict mode (the default) an invalid payload raises and nothing is published."""
    async with EventBus() as bus:
        with pytest.raises(EventValidationError) as info:
            await bus.publish("memory.created", INVALID)
        problems = " ".join(info.value.errors)
        assert "content" in problems
        assert "tier" in problems
        assert "ltp_strength" in problems
        assert info.value.event_type == "memory.created"
        await bus.publish("memory.created", VALID)
        await bus.stop()
        assert bus.get_metrics()["total_published"] == 1
        assert (await bus.get_stats())["validation"]["rejected"] == 1


async def test_strict_batch_is_all_or_nothing() -> None:
    """An invalid item refuses the whole batch in strict mode, naming its index."""
    async with EventBus() as bus:
        with pytest.raises(EventValidationError, match="item 1"):
            await bus.publish_batch([("memory.created", VALID), ("memory.created", INVALID)])
        assert bus.get_metrics()["total_published"] == 0


BATCH_PAYLOADS: list[dict[str, Any]] = [
    VALID,
    {"memory_id": "mem_2", "content": "nested", "tier": "warm", "tags": ["a", "b"]},
    {"memory_id": "mem_3", "content": "x" * 300, "tier": "cold", "ltp_strength": 0.5},
    INVALID,
]


async def _published_or_refused(publishing: Awaitable[list[Event]]) -> list[object]:
    """The published events' payloads, or the refusal's problems without their item prefix."""
    try:
        return [event.to_dict()["data"] for event in await publishing]
    except EventValidationError as err:
        return [[problem.removeprefix("item 0: ") for problem in err.errors]]


async def _listed(publishing: Awaitable[Event]) -> list[Event]:
    """The one event a ``publish`` returns, as a list."""
    return [await publishing]


@pytest.mark.parametrize("mode", ["strict", "warn", "off"])
async def test_a_batch_checks_each_item_as_publish_does(mode: str) -> None:
    """Each item of a batch is built and checked as ``publish`` builds and checks it: the
    same payloads, the same refusal (prefixed by the item's index) and the same counts."""
    async with EventBus(validation=mode) as one, EventBus(validation=mode) as batch:
        singly: list[object] = []
        together: list[object] = []
        for data in BATCH_PAYLOADS:
            single = one.publish("memory.created", data)
            singly += await _published_or_refused(_listed(single))
            together += await _published_or_refused(batch.publish_batch([("memory.created", data)]))
        assert together == singly
        assert (await batch.get_stats())["validation"] == (await one.get_stats())["validation"]
        last = singly[-1]
        if mode == "strict":  # refused, naming its problems
            assert isinstance(last, list)
            assert any("tier" in str(problem) for problem in last)
        else:
            assert last == INVALID
        together = await _published_or_refused(
            batch.publish_batch([("memory.created", data) for data in BATCH_PAYLOADS[:-1]])
        )
        assert together == singly[:-1]


async def test_warn_mode_publishes_logs_and_counts() -> None:
    """In warn mode an invalid payload is published, logged and counted."""
    set_library_level("warning")
    async with EventBus(validation="warn") as bus:
        with capture_logs() as logs:
            await bus.publish("memory.created", INVALID)
        await bus.stop()
        assert bus.get_metrics()["total_published"] == 1
        assert (await bus.get_stats())["validation"]["invalid_published"] == 1
    [line] = [entry for entry in logs if entry["event"] == "bus.validation_failed"]
    assert line["event_type"] == "memory.created"
    assert any("tier" in problem for problem in line["errors"])


async def test_off_mode_skips_checks() -> None:
    """With validation off, payloads are not checked."""
    async with EventBus(validation="off") as bus:
        await bus.publish("memory.created", INVALID)
        await bus.stop()
        assert bus.get_metrics()["total_published"] == 1


@pytest.mark.parametrize("mode", ["strict", "warn", "off"])
async def test_unregistered_types_publish_in_every_mode(mode: str) -> None:
    """A type with no schema is published whatever the mode."""
    async with EventBus(validation=mode) as bus:
        event = await bus.publish("consolidation.failed", {"cycle_id": "c1", "error": "x"})
        await bus.stop()
        assert [e.id for e in await bus.get_history()] == [event.id]


async def test_unregistered_type_warns_once_with_closest_names() -> None:
    """The first event of an unregistered type logs one warning naming the closest types."""
    set_library_level("warning")
    async with EventBus() as bus:
        with capture_logs() as logs:
            for _ in range(3):
                await bus.publish("memory.craeted", VALID)
    warnings = [entry for entry in logs if entry["event"] == "bus.unregistered_event_type"]
    assert len(warnings) == 1
    assert warnings[0]["event_type"] == "memory.craeted"
    assert "memory.created" in warnings[0]["closest"]
