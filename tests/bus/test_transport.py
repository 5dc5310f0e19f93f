"""The transport seam (in-memory transport, pluggable transports) and ``EventBus.flush``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from mnemo_events.bus._transport import Deliver, MemoryTransport, Transport, TransportState
from mnemo_events.event import Event, fresh_event
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import (
    BusClosedError,
    BusNotRunningError,
    ConfigError,
    QueueFullError,
)


def _events(count: int) -> list[Event]:
    return [fresh_event("a.b", {"n": n}) for n in range(count)]


class TestMemoryTransport:
    async def test_delivers_accepted_events_in_order_once_started(self) -> None:
        """Events accepted before start are delivered, in order, in batches, after start."""
        transport = MemoryTransport(100, 0.1)
        assert isinstance(transport, Transport)
        assert transport.stats()["state"] == TransportState.NEW.value
        delivered: list[int] = []

        async def deliver(batch: list[Event]) -> None:
            delivered.extend(e.data["n"] for e in batch)

        events = _events(10)
        await transport.accept(events[0])
        await transport.accept_batch(events[1:])
        assert (transport.pending, transport.mark()) == (10, 10)
        assert not await transport.wait_delivered(10)  # not started: it cannot get there
        await transport.start(deliver)
        assert transport.state is TransportState.CONNECTED
        assert await transport.wait_delivered(transport.mark())
        assert delivered == list(range(10))
        await transport.stop()
        assert transport.stats() == {
            "name": "memory",
            "state": "stopped",
            "pending": 0,
            "capacity": 100,
            "accepted": 10,
            "delivered": 10,
        }

    async def test_full_mailbox_raises_queue_full_after_the_timeout(self) -> None:
        """accept waits publish_timeout for room, then raises QueueFullError naming the size."""
        transport = MemoryTransport(2, 0.05)
        await transport.accept_batch(_events(2))
        with pytest.raises(QueueFullError, match="2 of 2 events"):
            await transport.accept(_events(1)[0])
        assert transport.mark() == 2

    async def test_mark_counts_every_accepted_event_wherever_it_is(self) -> None:
        """mark() counts accepted events queued, taken by a busy pump, or let in after a wait."""
        transport = MemoryTransport(3, 1.0)
        gate = asyncio.Event()

        async def deliver(batch: list[Event]) -> None:
            await gate.wait()

        events = _events(6)
        assert transport.try_accept(events[0])
        assert transport.try_accept(events[1])
        await transport.start(deliver)
        await asyncio.sleep(0.01)  # the pump took both and waits inside deliver
        assert (transport.pending, transport.mark()) == (0, 2)
        await transport.accept_batch(events[2:5])
        assert not transport.try_accept(events[5])  # full: refused, not counted
        assert (transport.pending, transport.mark()) == (3, 5)
        waiting = asyncio.ensure_future(transport.accept(events[5]))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        assert transport.mark() == 5
        gate.set()
        await waiting
        assert await transport.wait_delivered(transport.mark())
        stats = transport.stats()
        assert (transport.mark(), stats["accepted"], stats["delivered"]) == (6, 6, 6)
        await transport.stop()

    async def test_deliver_is_awaited_before_the_next_batch(self) -> None:
        """The pump waits for deliver, so a slow bus side slows the transport (backpressure)."""
        transport = MemoryTransport(1_000, 0.1)
        gate = asyncio.Event()
        seen: list[int] = []

        async def deliver(batch: list[Event]) -> None:
            seen.append(len(batch))
            await gate.wait()

        await transport.start(deliver)
        await transport.accept(_events(1)[0])
        await asyncio.sleep(0.01)
        await transport.accept_batch(_events(5))
        await asyncio.sleep(0.01)
        assert seen == [1]
        assert transport.pending == 5
        gate.set()
        assert await transport.wait_delivered(6)
        assert seen == [1, 5]
        await transport.stop()


class RecordingTransport:
    """A transport of our own: a MemoryTransport that remembers every accepted event id."""

    def __init__(self) -> None:
        self.inner = MemoryTransport(1_000, 0.1)
        self.accepted: list[str] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def state(self) -> TransportState:
        return self.inner.state

    @property
    def pending(self) -> int:
        return self.inner.pending

    async def start(self, deliver: Deliver) -> None:
        await self.inner.start(deliver)

    async def stop(self) -> None:
        await self.inner.stop()

    async def accept(self, event: Event) -> None:
        await self.inner.accept(event)
        self.accepted.append(event.id)

    async def accept_batch(self, events: Sequence[Event]) -> None:
        await self.inner.accept_batch(events)
        self.accepted.extend(e.id for e in events)

    def mark(self) -> int:
        return self.inner.mark()

    async def wait_delivered(self, mark: int) -> bool:
        return await self.inner.wait_delivered(mark)

    def stats(self) -> dict[str, Any]:
        return {**self.inner.stats(), "name": self.name}


class TestBusTransport:
    async def test_default_transport_is_in_memory(self) -> None:
        """Without a transport the bus runs on the memory transport, shown in get_stats."""
        async with EventBus(validation="off") as bus:
            await bus.publish("a.b", {})
            stats = await bus.get_stats()
        assert stats["transport"]["name"] == "memory"
        assert stats["transport"]["state"] == "connected"
        assert stats["transport"]["accepted"] == 1

    async def test_a_transport_object_carries_every_publish(self) -> None:
        """A Transport given to the bus receives every published event and feeds subscribers."""
        transport = RecordingTransport()
        seen: list[str] = []
        async with EventBus(validation="off", transport=transport) as bus:
            bus.subscribe("a.*", lambda e: seen.append(e.id))
            one = await bus.publish("a.b", {})
            batch = await bus.publish_batch([("a.c", {}), ("a.d", {})])
            await bus.flush()
            stats = await bus.get_stats()
        assert transport.accepted == [one.id, *(e.id for e in batch)]
        assert seen == transport.accepted
        assert stats["transport"]["name"] == "recording"
        assert stats["total_published"] == 3

    def test_anything_else_is_refused(self) -> None:
        """A transport that is neither a Transport, a URL nor settings is a ConfigError."""
        with pytest.raises(ConfigError, match="got 42"):
            EventBus(transport=42)  # type: ignore[arg-type]


class TestFlush:
    async def test_returns_once_every_handler_returned(self) -> None:
        """flush returns only after the async handler has finished every earlier event."""
        done: list[int] = []

        async def slow(event: Event) -> None:
            await asyncio.sleep(0.002)
            done.append(event.data["n"])

        async with EventBus(validation="off") as bus:
            bus.subscribe("a.b", slow)
            for n in range(20):
                await bus.publish("a.b", {"n": n})
            await bus.flush()
            assert done == list(range(20))

    async def test_waits_only_for_the_given_subscriptions(self) -> None:
        """flush(subscription_ids=[a]) returns while another subscription is still blocked."""
        gate = asyncio.Event()
        fast: list[int] = []

        async def blocked(event: Event) -> None:
            await gate.wait()

        async with EventBus(validation="off") as bus:
            fast_id = bus.subscribe("a.b", lambda e: fast.append(e.data["n"]))
            blocked_id = bus.subscribe("a.b", blocked)
            for n in range(5):
                await bus.publish("a.b", {"n": n})
            await asyncio.wait_for(bus.flush(subscription_ids=[fast_id]), 2)
            assert fast == list(range(5))
            waiting = asyncio.ensure_future(bus.flush(subscription_ids=iter([blocked_id])))
            await asyncio.sleep(0.02)
            assert not waiting.done()
            gate.set()
            await asyncio.wait_for(waiting, 2)
            info = {i.id: i for i in bus.list_subscriptions()}
            assert info[blocked_id].delivered == 5

    async def test_failed_and_filtered_events_count_as_handled(self) -> None:
        """Events a filter drops or a handler fails on do not keep flush waiting."""

        def boom(event: Event) -> None:
            raise RuntimeError("boom")

        async with EventBus(validation="off") as bus:
            bus.subscribe("a.b", boom)
            bus.subscribe("a.b", lambda e: None, event_filter=lambda e: False)
            for n in range(3):
                await bus.publish("a.b", {"n": n})
            await asyncio.wait_for(bus.flush(), 2)
            assert bus.get_metrics()["total_errors"] == 3

    async def test_not_started_bus_with_queued_events_refuses(self) -> None:
        """flush on a bus that was never started raises BusNotRunningError if events wait."""
        bus = EventBus(validation="off")
        await bus.flush()  # nothing queued: nothing to wait for
        await bus.publish("a.b", {})
        with pytest.raises(BusNotRunningError, match="1 events undelivered"):
            await bus.flush()
        await bus.start()
        await bus.flush()
        await bus.shutdown()
        with pytest.raises(BusClosedError):
            await bus.flush()
