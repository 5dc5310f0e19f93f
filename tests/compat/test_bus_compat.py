"""The bus as MnemoCore code uses it, and the ergonomics of pyee, blinker and faststream."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import reactivex
from pydantic import BaseModel
from reactivex.subject import Subject

from mnemo_events import Event, EventBus, EventValidationError, InvalidEventTypeError
from mnemo_events.schemas import MemoryCreated, MemoryDeleted
from tests.helpers.collector import Collector
from tests.helpers.payloads import VALID_PAYLOADS

CREATED = VALID_PAYLOADS["memory.created"]


class Loose(BaseModel):
    """A pydantic model no event type is registered with."""

    n: int


class TestSubscriptions:
    """``enabled=`` at subscribe, ``enabled_only``, and records read with MnemoCore's keys."""

    async def test_subscribe_disabled_then_enable(self, bus: EventBus) -> None:
        """A subscription made with ``enabled=False`` receives nothing until enabled."""
        seen = Collector()
        sub_id = bus.subscribe("memory.created", seen, enabled=False)
        await bus.publish("memory.created", CREATED)
        await bus.stop()
        assert seen.events == []
        assert bus.enable_subscription(sub_id)
        await bus.start()
        await bus.publish("memory.created", CREATED)
        await seen.wait_for(1)

    async def test_enabled_only(self, bus: EventBus) -> None:
        """``list_subscriptions(enabled_only=True)`` leaves disabled subscriptions out."""
        bus.subscribe("test.event", Collector())
        bus.subscribe("test.event", Collector())
        bus.subscribe("other.*", Collector(), enabled=False)
        assert len(bus.list_subscriptions()) == 3
        assert len(bus.list_subscriptions(enabled_only=True)) == 2
        assert len(bus.list_subscriptions("other.*", enabled_only=True)) == 0

    async def test_records_read_with_mnemocore_keys(self, bus: EventBus) -> None:
        """A subscription record answers MnemoCore's keys: counts, pattern, filter, dates."""

        def failing(event: Event) -> None:
            raise ValueError("handler broke")

        bus.subscribe("error.test", failing, event_filter=lambda e: True)
        for index in range(3):
            await bus.publish("error.test", {"index": index})
        await bus.stop()
        (record,) = bus.list_subscriptions()
        assert record["error_count"] == record.errors == 3
        assert record["delivery_count"] == 0
        assert record["event_pattern"] == "error.test"
        assert record["has_filter"] is True
        assert record["created_at"] is not None
        assert sum(s["error_count"] for s in bus.list_subscriptions()) == 3
        assert dict(record)["id"] == record.id
        with pytest.raises(KeyError, match="nope"):
            record["nope"]


class TestDecorators:
    """``@bus.on`` and ``@bus.once`` subscribe and hand the function back."""

    async def test_on_returns_the_handler(self, bus: EventBus) -> None:
        """``@bus.on(pattern)`` subscribes the function and returns it unchanged."""
        seen: list[str] = []

        @bus.on("memory.*")
        async def remember(event: Event) -> None:
            seen.append(event.type)

        assert remember.__name__ == "remember"
        await bus.publish("memory.created", CREATED)
        await bus.publish("memory.deleted", VALID_PAYLOADS["memory.deleted"])
        await bus.stop()
        assert seen == ["memory.created", "memory.deleted"]

    async def test_once_fires_once_and_unsubscribes(self, bus: EventBus) -> None:
        """``@bus.once(pattern)`` runs for the first matching event only, then is gone."""
        seen: list[Event] = []

        @bus.once("memory.created")
        def first(event: Event) -> None:
            seen.append(event)

        for _ in range(3):
            await bus.publish("memory.created", CREATED)
        await bus.stop()
        assert len(seen) == 1
        assert bus.list_subscriptions() == []
        assert callable(first)


class TestObserver:
    """A reactive source pushes into ``bus.as_observer()``."""

    async def test_elements_are_published_in_order(self, bus: EventBus) -> None:
        """Every element of an observable is published, in order, whatever its form."""
        seen = Collector()
        bus.subscribe(">", seen)
        model = MemoryDeleted(memory_id="m9")
        reactivex.from_iterable(
            [
                {"type": "memory.created", "data": CREATED},
                ("memory.deleted", {"memory_id": "m2"}),
                model,
                Event(type="gap.filled", data=VALID_PAYLOADS["gap.filled"]),
            ]
        ).subscribe(bus.as_observer())
        await bus.stop()
        assert seen.types == ["memory.created", "memory.deleted", "memory.deleted", "gap.filled"]
        assert seen.events[2].data == {"memory_id": "m9"}

    async def test_failures_are_counted_and_the_stream_goes_on(self, bus: EventBus) -> None:
        """A bad element or a source error is counted; the elements around it still go out."""
        strict = EventBus(validation="strict")
        await strict.start()
        seen = Collector()
        strict.subscribe(">", seen)
        source: Subject[Any] = Subject()
        observer = strict.as_observer("memory.deleted")
        source.subscribe(observer)
        source.on_next({"memory_id": "m1"})
        source.on_next({"tier": "lukewarm"})  # invalid for memory.deleted
        source.on_next(object())  # not a payload at all
        source.on_next({"memory_id": "m2"})
        source.on_error(RuntimeError("engine broke"))
        await strict.shutdown()
        stats = observer.statistics()
        assert (stats.published, stats.failed, stats.source_errors) == (2, 2, 1)
        assert [e.data["memory_id"] for e in seen.events] == ["m1", "m2"]

    async def test_elements_from_another_thread(self, bus: EventBus) -> None:
        """``on_next`` from an engine thread publishes on the bus's loop, in order."""
        seen = Collector()
        bus.subscribe("memory.deleted", seen)
        observer = bus.as_observer("memory.deleted")

        def engine() -> None:
            for index in range(50):
                observer.on_next({"memory_id": f"m{index}"})

        thread = threading.Thread(target=engine)
        thread.start()
        await asyncio.to_thread(thread.join, 5)
        await seen.wait_for(50)
        assert [e.data["memory_id"] for e in seen.events] == [f"m{i}" for i in range(50)]


class TestTypedEvents:
    """Payload models in, payload models out."""

    async def test_publish_a_model(self, bus: EventBus) -> None:
        """``publish(model)`` and ``publish(type, model)`` publish the model's data."""
        seen = Collector()
        bus.subscribe("memory.created", seen)
        model = MemoryCreated(memory_id="m1", content="c", tier="hot")
        first = await bus.publish(model)
        second = await bus.publish("memory.created", model)
        await bus.stop()
        assert first.type == second.type == "memory.created"
        assert seen.events[0].data == {"memory_id": "m1", "content": "c", "tier": "hot"}

    async def test_a_model_of_another_type_is_refused(self, bus: EventBus) -> None:
        """A model that is not the type's own, or is registered with no type, is refused."""
        with pytest.raises(EventValidationError, match="MemoryCreated"):
            await bus.publish("memory.created", MemoryDeleted(memory_id="m1"))
        with pytest.raises(InvalidEventTypeError, match="not registered"):
            await bus.publish(Loose(n=1))

    async def test_annotated_handler_receives_the_model(self, bus: EventBus) -> None:
        """A handler annotated with a registered model receives that model, sync or async."""
        received: list[MemoryCreated] = []

        @bus.on("memory.created")
        async def on_created(payload: MemoryCreated) -> None:
            received.append(payload)

        def on_created_sync(payload: MemoryCreated) -> None:
            received.append(payload)

        bus.subscribe("memory.created", on_created_sync)
        await bus.publish("memory.created", CREATED)
        await bus.stop()
        assert len(received) == 2
        assert all(isinstance(p, MemoryCreated) and p.tags == ["geo"] for p in received)

    async def test_unregistered_model_annotation_is_refused(self, bus: EventBus) -> None:
        """Subscribing a handler annotated with a model no type uses raises TypeError."""

        def handler(payload: Loose) -> None:
            pass

        with pytest.raises(TypeError, match="Loose"):
            bus.subscribe("memory.created", handler)
