"""The bus as a stream: `observe()` for Rx operator chains, `stream()` for async iteration."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest
from reactivex import operators as ops

from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import InvalidPatternError


class TestObserve:
    async def test_observer_receives_matching_events_in_order(self, bus: EventBus) -> None:
        """observe(pattern) emits every matching event, in publish order."""
        seen: list[int] = []
        numbers: Callable[[Event], int] = lambda e: e.data["n"]  # noqa: E731
        bus.observe("memory.*").pipe(ops.map(numbers)).subscribe(seen.append)
        for n in range(5):
            await bus.publish("memory.created" if n % 2 else "dream.started", {"n": n})
            await bus.publish("memory.deleted", {"n": 10 + n})
        await bus.stop()
        assert seen == [10, 1, 11, 12, 3, 13, 14]

    async def test_observer_filter_applies(self, bus: EventBus) -> None:
        """An event_filter given to observe() selects events before the observer."""
        seen: list[str] = []
        bus.observe("*", event_filter=lambda e: e.data.get("tier") == "hot").subscribe(
            lambda e: seen.append(e.data["tier"])
        )
        for tier in ["hot", "cold", "hot"]:
            await bus.publish("memory.created", {"tier": tier})
        await bus.stop()
        assert seen == ["hot", "hot"]

    async def test_raising_observer_is_isolated_and_counted(self, bus: EventBus) -> None:
        """An on_next that raises is logged and counted; the stream and others go on."""
        fine: list[int] = []

        def explode(event: Event) -> None:
            if event.data["n"] == 1:
                raise RuntimeError("observer bug")

        bus.observe("a.b").subscribe(explode)
        bus.observe("a.b").subscribe(lambda e: fine.append(e.data["n"]))
        for n in range(3):
            await bus.publish("a.b", {"n": n})
        await bus.stop()
        assert fine == [0, 1, 2]
        assert bus.get_metrics()["total_errors"] == 1
        assert bus.get_metrics()["total_delivered"] == 5

    async def test_disposing_unsubscribes(self, bus: EventBus) -> None:
        """Disposing the Rx subscription removes the bus subscription."""
        seen: list[int] = []
        disposable = bus.observe("a.b").subscribe(lambda e: seen.append(e.data["n"]))
        assert len(bus.list_subscriptions()) == 1
        await bus.publish("a.b", {"n": 1})
        await bus.stop()
        disposable.dispose()
        assert bus.list_subscriptions() == []
        await bus.start()
        await bus.publish("a.b", {"n": 2})
        await bus.stop()
        assert seen == [1]

    async def test_shutdown_completes_observers(self) -> None:
        """Shutting the bus down completes every observe() stream."""
        completed: list[bool] = []
        bus = EventBus()
        bus.observe().subscribe(on_completed=lambda: completed.append(True))
        await bus.start()
        await bus.shutdown()
        assert completed == [True]

    async def test_operator_error_in_user_chain_detaches_only_that_chain(
        self, bus: EventBus
    ) -> None:
        """A user's operator that raises ends that chain (Rx rules) and frees its subscription."""
        errors: list[Exception] = []
        bus.observe("a.b").pipe(ops.map(lambda e: 1 / 0)).subscribe(on_error=errors.append)
        survivors: list[int] = []
        bus.observe("a.b").subscribe(lambda e: survivors.append(e.data["n"]))
        await bus.publish("a.b", {"n": 1})
        await bus.publish("a.b", {"n": 2})
        await bus.stop()
        assert len(errors) == 1
        assert isinstance(errors[0], ZeroDivisionError)
        assert survivors == [1, 2]
        assert len(bus.list_subscriptions()) == 1

    def test_malformed_pattern_is_refused_at_once(self) -> None:
        """observe() checks its pattern when called, not when subscribed."""
        with pytest.raises(InvalidPatternError):
            EventBus().observe("mem*")


class TestStream:
    async def test_async_iteration_yields_matching_events(self, bus: EventBus) -> None:
        """`async for` over stream(pattern) yields matching events until the loop breaks."""
        received: list[int] = []

        async def consume() -> None:
            async for event in bus.stream("a.*"):
                received.append(event.data["n"])
                if len(received) == 3:
                    break

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)
        for n in range(5):
            await bus.publish("a.x" if n != 1 else "b.x", {"n": n})
        async with asyncio.timeout(5):
            await consumer
        assert received == [0, 2, 3]
        assert bus.list_subscriptions() == []  # the abandoned stream was collected

    async def test_aclosing_unsubscribes_at_once(self, bus: EventBus) -> None:
        """Closing the iterator (contextlib.aclosing) removes its subscription immediately."""
        async with contextlib.aclosing(bus.stream("a.b")) as events:
            await bus.publish("a.b", {"n": 1})
            async for event in events:
                assert event.data["n"] == 1
                break
        assert bus.list_subscriptions() == []

    async def test_stream_ends_when_the_bus_stops(self, bus: EventBus) -> None:
        """A stream ends cleanly on stop, after yielding what was published before."""
        received: list[int] = []
        started = asyncio.Event()

        async def consume() -> None:
            iterator = bus.stream("a.b")
            started.set()
            async for event in iterator:
                received.append(event.data["n"])

        consumer = asyncio.create_task(consume())
        async with asyncio.timeout(5):
            await started.wait()
        for n in range(3):
            await bus.publish("a.b", {"n": n})
        await bus.stop()
        async with asyncio.timeout(5):
            await consumer
        assert received == [0, 1, 2]

    async def test_slow_consumer_waits_in_its_own_buffer(self, bus: EventBus) -> None:
        """A consumer slower than the producer loses nothing and never blocks other subscribers."""
        others: list[int] = []
        bus.subscribe("a.b", lambda e: others.append(e.data["n"]))
        iterator = bus.stream("a.b", buffer=2)
        for n in range(20):
            await bus.publish("a.b", {"n": n})
        await asyncio.sleep(0.01)
        [info] = [s for s in bus.list_subscriptions() if s.handler.endswith("_deliver")]
        assert info.pending > 0  # the rest waits in the subscription's own mailbox
        got: list[int] = []
        while len(got) < 20:
            got.append((await anext(iterator)).data["n"])
        await iterator.aclose()
        await bus.stop()
        assert got == list(range(20))
        assert others == list(range(20))

    async def test_buffer_must_be_positive(self, bus: EventBus) -> None:
        """A buffer below 1 is refused."""
        with pytest.raises(ValueError, match="buffer"):
            bus.stream("a.b", buffer=0)

    async def test_stream_subscribes_when_called(self, bus: EventBus) -> None:
        """Events published between stream() and the first iteration are not missed."""
        events = bus.stream("a.b")
        await bus.publish("a.b", {"n": 1})
        await asyncio.sleep(0.01)
        async with events:
            first = await anext(events)
        assert first.data["n"] == 1
        assert bus.list_subscriptions() == []
