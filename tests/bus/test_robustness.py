"""Bounded subscriber mailboxes, handlers raising BaseExceptions, the Subject's contract,
and the lifecycle states of the bus and of subscription actors."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from structlog.testing import capture_logs

from mnemo_events.bus._router import Router
from mnemo_events.bus._subscription import SubscriptionActor, SubscriptionState
from mnemo_events.event import Event, fresh_event
from mnemo_events.event_bus import BusState, EventBus
from mnemo_events.exceptions import (
    BusNotRunningError,
    QueueFullError,
    SubscriptionClosedError,
)
from mnemo_events.patterns import parse_pattern


class TestBoundedSubscribers:
    async def test_slow_subscriber_makes_publish_raise_queue_full(self) -> None:
        """A stalled handler bounds its backlog and publish raises QueueFullError, no drop."""
        gate = asyncio.Event()
        handled: list[int] = []

        async def slow(event: Event) -> None:
            await gate.wait()
            handled.append(event.data["n"])

        bus = EventBus(
            validation="off",
            max_queue_size=1_000,
            subscriber_queue_size=1_000,
            publish_timeout=0.2,
            delivery_timeout=60,
        )
        await bus.start()
        sub_id = bus.subscribe("a.b", slow)
        published = 0

        async def flood() -> None:
            nonlocal published
            for n in range(20_000):  # bounded: the limit is hit long before
                await bus.publish("a.b", {"n": n})
                published += 1

        with pytest.raises(QueueFullError, match="1000 of 1000 events"):
            await flood()
        (info,) = bus.list_subscriptions()
        # Held: the mailbox (1,000), the subscriber (1,000 plus at most one batch of 512).
        assert info.pending <= 1_000 + 512
        assert bus.get_metrics()["queue_size"] == 1_000
        assert published <= 1_000 + 1_000 + 512 + 1
        gate.set()
        await asyncio.wait_for(bus.flush(subscription_ids=[sub_id]), 30)
        assert handled == list(range(published))  # every accepted event, in order
        await bus.shutdown()

    async def test_a_fast_subscriber_is_not_starved_by_a_bounded_one(self) -> None:
        """Backpressure waits on the full subscriber only; events still reach the others."""
        fast: list[int] = []

        async def slowish(event: Event) -> None:
            await asyncio.sleep(0)

        async with EventBus(validation="off", subscriber_queue_size=10) as bus:
            bus.subscribe("a.b", slowish)
            bus.subscribe("a.b", lambda e: fast.append(e.data["n"]))
            await bus.publish_batch([("a.b", {"n": n}) for n in range(200)])
            await asyncio.wait_for(bus.flush(), 10)
        assert fast == list(range(200))


class TestHandlerBaseExceptions:
    async def test_cancelled_error_from_a_handler_is_a_counted_error(self) -> None:
        """A handler awaiting a future another task cancelled is one error; the rest arrive."""
        seen: list[int] = []

        async def handler(event: Event) -> None:
            if event.data["n"] == 1:
                doomed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                doomed.cancel()
                await doomed
            seen.append(event.data["n"])

        with capture_logs() as logs:
            async with EventBus(validation="off") as bus:
                sub_id = bus.subscribe("a.b", handler)
                for n in range(4):
                    await bus.publish("a.b", {"n": n})
                await asyncio.wait_for(bus.flush(), 5)
                (info,) = bus.list_subscriptions()
                assert bus.get_metrics()["total_errors"] == 1
        assert seen == [0, 2, 3]
        assert (info.errors, info.delivered) == (1, 3)
        assert info.last_error is not None
        assert info.last_error.startswith("CancelledError")
        failed = [line for line in logs if line["event"] == "bus.handler_failed"]
        assert [line["subscription_id"] for line in failed] == [sub_id]

    @pytest.mark.parametrize("error", [GeneratorExit, asyncio.CancelledError, StopAsyncIteration])
    async def test_other_base_exceptions_keep_the_subscription_alive(
        self, error: type[BaseException]
    ) -> None:
        """GeneratorExit and kin raised by a plain or async handler are counted errors."""
        seen: list[int] = []

        def plain(event: Event) -> None:
            if event.data["n"] == 0:
                raise error("from the handler")
            seen.append(event.data["n"])

        async def coro(event: Event) -> None:
            plain(event)

        async with EventBus(validation="off") as bus:
            bus.subscribe("a.b", plain)
            bus.subscribe("a.b", coro)
            for n in range(3):
                await bus.publish("a.b", {"n": n})
            await bus.stop()
            infos = bus.list_subscriptions()
        assert sorted(seen) == [1, 1, 2, 2]
        assert [(i.errors, i.delivered, i.pending) for i in infos] == [(1, 2, 0), (1, 2, 0)]

    async def test_stop_reports_what_it_could_not_drain(self) -> None:
        """stop() with a stalled stream consumer logs bus.stopped_undrained with the count."""
        with capture_logs() as logs:
            bus = EventBus(validation="off", delivery_timeout=0.1)
            await bus.start()
            stream = bus.stream("a.b", buffer=1)
            for n in range(5):
                await bus.publish("a.b", {"n": n})
            await bus.stop()
            stream.close()
            await bus.shutdown()
        undrained = [line for line in logs if line["event"] == "bus.stopped_undrained"]
        assert len(undrained) == 1
        assert undrained[0]["undelivered"] >= 1


class RemovingActor(SubscriptionActor):
    """An actor whose offer removes another one from the router, as a finalizer might."""

    victim: SubscriptionActor | None = None
    router: Router | None = None

    def offer(self, run: list[Event]) -> None:
        super().offer(run)
        if self.victim is not None and self.router is not None:
            self.router.remove(self.victim)
            self.victim = None


class TestSubjectContract:
    def test_an_observer_removed_during_dispatch_never_makes_another_miss(self) -> None:
        """Removing a subscription mid-dispatch leaves the later observers their event."""
        router = Router()
        pattern = parse_pattern("a.b")
        first = RemovingActor("sub_1", pattern, lambda e: None, None)
        second = SubscriptionActor("sub_2", pattern, lambda e: None, None)
        third = SubscriptionActor("sub_3", pattern, lambda e: None, None)
        for actor in (first, second, third):
            router.add(actor)
        router.on_next([fresh_event("a.b", {})])  # creates the group and links all three
        first.victim, first.router = first, router  # removes itself: the list shifts
        router.on_next([fresh_event("a.b", {})])
        assert (first.pending, second.pending, third.pending) == (2, 2, 2)
        router.on_next([fresh_event("a.b", {})])
        assert (first.pending, second.pending, third.pending) == (2, 3, 3)


class TestLifecycle:
    async def test_a_removed_subscription_refuses_to_start(self) -> None:
        """An actor closed by unsubscribe is CLOSED and start() raises SubscriptionClosedError."""
        actor = SubscriptionActor("sub_x", parse_pattern("a.b"), lambda e: None, None)
        assert actor.state is SubscriptionState.IDLE
        actor.start()
        assert actor.state.value == "running"
        actor.close()
        assert actor.closed
        with pytest.raises(SubscriptionClosedError, match="sub_x"):
            actor.start()

    async def test_publish_threadsafe_needs_a_running_bus(self) -> None:
        """publish_threadsafe on a bus that is not running raises BusNotRunningError."""
        bus = EventBus(validation="off")
        assert bus.state is BusState.NEW
        with pytest.raises(BusNotRunningError, match="start"):
            bus.publish_threadsafe("a.b", {})
        with contextlib.suppress(BusNotRunningError):
            await bus.flush()
        await bus.shutdown()
        assert bus.state.value == BusState.CLOSED.value
