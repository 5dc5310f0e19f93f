"""The event bus: subscriptions, delivery, isolation, lifecycle, backpressure, history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from mnemo_events.event import Event
from mnemo_events.event_bus import BusState, EventBus, get_event_bus, reset_event_bus
from mnemo_events.exceptions import (
    BusClosedError,
    EventValidationError,
    InvalidEventTypeError,
    InvalidPatternError,
    QueueFullError,
)
from tests.helpers.collector import Collector

Collect = Callable[[], Collector]


class TestSubscribe:
    async def test_sync_and_async_handlers_receive_matching_events(
        self, bus: EventBus, collector: Collect
    ) -> None:
        """Plain and coroutine handlers both receive the events their pattern matches."""
        plain, received = collector(), []

        async def on_event(event: Event) -> None:
            received.append(event.type)

        plain_id = bus.subscribe("memory.*", plain)
        async_id = bus.subscribe("dream.>", on_event)
        assert plain_id.startswith("sub_")
        assert async_id.startswith("sub_")
        for event_type in ["memory.created", "dream.started", "gap.filled", "memory.deleted"]:
            await bus.publish(event_type, {})
        await bus.stop()
        assert plain.types == ["memory.created", "memory.deleted"]
        assert received == ["dream.started"]

    async def test_returned_event_is_what_subscribers_get(
        self, bus: EventBus, collector: Collect
    ) -> None:
        """publish returns the event every subscriber receives, with its data and metadata."""
        got = collector()
        bus.subscribe("memory.created", got)
        event = await bus.publish("memory.created", {"memory_id": "m1"}, {"agent_id": "a1"})
        await got.wait_for(1)
        assert got.events == [event]
        assert event.metadata == {"agent_id": "a1"}

    async def test_filter_selects_events(self, bus: EventBus, collector: Collect) -> None:
        """event_filter must also hold for an event to be delivered."""
        hot = collector()
        bus.subscribe("memory.created", hot, event_filter=lambda e: e.data.get("tier") == "hot")
        for tier in ["hot", "cold", "hot", "warm"]:
            await bus.publish("memory.created", {"tier": tier})
        await bus.stop()
        assert [e.data["tier"] for e in hot.events] == ["hot", "hot"]

    async def test_callable_objects_and_async_callables_are_handlers(self, bus: EventBus) -> None:
        """Any callable works, including an object whose __call__ is a coroutine function."""
        seen: list[str] = []

        class AsyncHandler:
            async def __call__(self, event: Event) -> None:
                await asyncio.sleep(0)
                seen.append(event.id)

        bus.subscribe("a.b", AsyncHandler())
        event = await bus.publish("a.b", {})
        await bus.stop()
        assert seen == [event.id]

    async def test_subscription_added_while_running_gets_later_events(
        self, bus: EventBus, collector: Collect
    ) -> None:
        """A subscription made while running receives the events dispatched after it."""
        early = collector()
        bus.subscribe("a.b", early)
        await bus.publish("a.b", {"n": 0})
        await early.wait_for(1)
        late = collector()
        bus.subscribe("a.*", late)
        await bus.publish("a.b", {"n": 1})
        await bus.publish("a.c", {"n": 2})
        await bus.stop()
        assert [e.data["n"] for e in late.events] == [1, 2]

    @pytest.mark.parametrize("pattern", ["", "mem*", "memory..x", "a.>.b", "memory created"])
    def test_malformed_pattern_is_refused_at_subscribe(self, pattern: str) -> None:
        """subscribe refuses a malformed pattern with a ValueError naming it."""
        bus = EventBus()
        with pytest.raises(InvalidPatternError) as info:
            bus.subscribe(pattern, print)
        assert isinstance(info.value, ValueError)
        assert bus.list_subscriptions() == []

    def test_non_callable_handler_or_filter_is_refused(self) -> None:
        """A handler or filter that cannot be called is refused at once."""
        bus = EventBus()
        with pytest.raises(TypeError, match=r"handler for 'a\.b' must be callable"):
            bus.subscribe("a.b", "not a function")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="event_filter"):
            bus.subscribe("a.b", print, event_filter=True)  # type: ignore[arg-type]


class TestManageSubscriptions:
    async def test_unsubscribe_stops_delivery(self, bus: EventBus, collector: Collect) -> None:
        """After unsubscribe a handler receives nothing more; unknown ids answer False."""
        got = collector()
        sub_id = bus.subscribe("a.b", got)
        await bus.publish("a.b", {"n": 1})
        await got.wait_for(1)
        assert bus.unsubscribe(sub_id) is True
        assert bus.unsubscribe(sub_id) is False
        await bus.publish("a.b", {"n": 2})
        await bus.stop()
        assert [e.data["n"] for e in got.events] == [1]

    async def test_unsubscribe_pattern_removes_exactly_that_pattern(self, bus: EventBus) -> None:
        """unsubscribe_pattern removes subscriptions registered with exactly that pattern."""
        for pattern in ["memory.*", "memory.*", "memory.created", "*"]:
            bus.subscribe(pattern, print)
        assert bus.unsubscribe_pattern("memory.*") == 2
        assert bus.unsubscribe_pattern("memory.*") == 0
        assert sorted(s.pattern for s in bus.list_subscriptions()) == ["*", "memory.created"]

    async def test_disable_and_enable(self, bus: EventBus, collector: Collect) -> None:
        """A disabled subscription skips events published meanwhile and resumes when enabled."""
        got = collector()
        sub_id = bus.subscribe("a.b", got)
        assert bus.disable_subscription(sub_id) is True
        await bus.publish("a.b", {"n": 1})
        await bus.stop()
        await bus.start()
        assert bus.enable_subscription(sub_id) is True
        await bus.publish("a.b", {"n": 2})
        await bus.stop()
        assert [e.data["n"] for e in got.events] == [2]
        assert bus.disable_subscription("sub_missing") is False
        assert bus.enable_subscription("sub_missing") is False

    async def test_list_subscriptions_reports_counters(self, bus: EventBus) -> None:
        """Each subscription lists its pattern, state and delivered/error counters."""

        def failing(event: Event) -> None:
            if event.data["n"] == 2:
                raise RuntimeError("boom")

        sub_id = bus.subscribe("a.*", failing)
        bus.subscribe("b.*", print)
        for n in range(3):
            await bus.publish("a.x", {"n": n})
        await bus.stop()
        [info] = bus.list_subscriptions("a.*")
        assert info.id == sub_id
        assert (info.delivered, info.errors, info.enabled) == (2, 1, True)
        assert info.last_delivery_at is not None
        assert info.last_error == "RuntimeError: boom"
        assert info.handler.endswith("failing")
        assert len(bus.list_subscriptions(enabled=True)) == 2
        assert bus.list_subscriptions(enabled=False) == []


class TestOrderAndIsolation:
    async def test_runs_of_types_in_one_batch_reach_their_subscribers_in_order(
        self, bus: EventBus
    ) -> None:
        """A batch mixing bursts of one type with interleaved types is routed in order."""
        seen: dict[str, list[int]] = {"x": [], "any": []}
        bus.subscribe("a.x", lambda e: seen["x"].append(e.data["n"]))
        bus.subscribe("a.*", lambda e: seen["any"].append(e.data["n"]))
        types = ["a.x"] * 5 + ["a.y", "a.x", "a.y", "a.y"] + ["a.x"] * 3
        await bus.publish_batch([(t, {"n": n}) for n, t in enumerate(types)])
        await bus.publish_batch([("a.x", {"n": 100 + n}) for n in range(4)])
        await bus.stop()
        assert seen["any"] == [*range(len(types)), 100, 101, 102, 103]
        assert seen["x"] == [n for n, t in enumerate(types) if t == "a.x"] + [100, 101, 102, 103]
        assert (await bus.get_stats())["events_by_type"] == {"a.x": 13, "a.y": 3}

    async def test_each_subscriber_sees_publish_order(self, bus: EventBus) -> None:
        """Every subscriber receives events in publish order, even with async pauses."""
        seen: dict[str, list[int]] = {"fast": [], "slow": []}

        def fast(event: Event) -> None:
            seen["fast"].append(event.data["n"])

        async def slow(event: Event) -> None:
            await asyncio.sleep(0.001 * (event.data["n"] % 3))
            seen["slow"].append(event.data["n"])

        bus.subscribe("*", fast)
        bus.subscribe("a.>", slow)
        for n in range(50):
            await bus.publish("a.b" if n % 2 else "a.c.d", {"n": n})
        await bus.stop()
        assert seen["fast"] == list(range(50))
        assert seen["slow"] == list(range(50))

    async def test_raising_handler_does_not_affect_others(
        self, bus: EventBus, collector: Collect
    ) -> None:
        """A handler that raises is counted; other subscribers and later events are unaffected."""

        def broken(event: Event) -> None:
            raise ValueError(f"cannot handle {event.id}")

        got = collector()
        bus.subscribe("a.b", broken)
        bus.subscribe("a.b", got)
        for n in range(3):
            await bus.publish("a.b", {"n": n})
        await bus.stop()
        assert len(got.events) == 3
        metrics = bus.get_metrics()
        assert metrics["total_errors"] == 3
        assert metrics["total_delivered"] == 3
        assert len(await bus.get_history()) == 3

    async def test_hanging_handler_times_out_and_others_flow(self, collector: Collect) -> None:
        """A handler that never returns is cancelled after delivery_timeout; others go on."""
        async with EventBus(delivery_timeout=0.05) as bus:
            calls: list[int] = []

            async def hangs(event: Event) -> None:
                calls.append(event.data["n"])
                await asyncio.Event().wait()

            got = collector()
            bus.subscribe("a.b", hangs)
            bus.subscribe("a.b", got)
            for n in range(2):
                await bus.publish("a.b", {"n": n})
            await got.wait_for(2)
            await bus.stop()
            [hung] = bus.list_subscriptions("a.b")[:1]
            assert calls == [0, 1]
            assert (hung.timeouts, hung.errors, hung.delivered) == (2, 2, 0)
            assert hung.last_error == "handler timed out"

    async def test_handler_that_swallows_cancellation_still_counts_as_timeout(self) -> None:
        """A handler that catches the time-out's cancellation is still recorded as timed out."""
        async with EventBus(delivery_timeout=0.05) as bus:
            finished: list[bool] = []

            async def stubborn(event: Event) -> None:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    finished.append(True)

            bus.subscribe("a.b", stubborn)
            await bus.publish("a.b", {})
            await bus.publish("a.b", {})
            await bus.stop()
            [info] = bus.list_subscriptions()
            assert finished == [True, True]
            assert info.timeouts == 2

    async def test_slow_handler_does_not_delay_a_fast_one(self, bus: EventBus) -> None:
        """A fast subscriber gets every event while a slow one is still on its first."""
        release = asyncio.Event()
        fast_done = asyncio.Event()
        fast: list[int] = []

        async def slow(event: Event) -> None:
            await release.wait()

        def quick(event: Event) -> None:
            fast.append(event.data["n"])
            if len(fast) == 20:
                fast_done.set()

        bus.subscribe("a.b", slow)
        bus.subscribe("a.b", quick)
        for n in range(20):
            await bus.publish("a.b", {"n": n})
        async with asyncio.timeout(5):
            await fast_done.wait()
        [slow_info] = [s for s in bus.list_subscriptions() if s.handler.endswith("slow")]
        assert slow_info.pending == 19
        release.set()
        await bus.stop()
        assert fast == list(range(20))

    async def test_raising_filter_is_counted_and_isolated(
        self, bus: EventBus, collector: Collect
    ) -> None:
        """A filter that raises counts an error for its subscription only."""
        got, other = collector(), collector()
        bus.subscribe("a.b", got, event_filter=lambda e: e.data["missing"] == 1)
        bus.subscribe("a.b", other)
        await bus.publish("a.b", {"n": 1})
        await bus.stop()
        assert got.events == []
        assert len(other.events) == 1
        [info] = bus.list_subscriptions()[:1]
        assert info.errors == 1
        assert info.last_error is not None
        assert "KeyError" in info.last_error

    async def test_mutating_handler_cannot_change_what_others_see(self, bus: EventBus) -> None:
        """A handler trying to mutate the event fails alone; others and history see it intact."""
        seen: list[dict[str, object]] = []

        def vandal(event: Event) -> None:
            event.data["memory_id"] = "changed"  # type: ignore[index]

        bus.subscribe("a.b", vandal)
        bus.subscribe("a.b", lambda e: seen.append(dict(e.data)))
        await bus.publish("a.b", {"memory_id": "m1"})
        await bus.stop()
        [stored] = await bus.get_history()
        assert seen == [{"memory_id": "m1"}]
        assert stored.data == {"memory_id": "m1"}
        assert bus.get_metrics()["total_errors"] == 1

    async def test_handler_may_publish_and_order_holds(self, bus: EventBus) -> None:
        """An event published by a handler queues behind the current ones, for everyone."""
        order: list[str] = []
        followed = asyncio.Event()

        async def chain(event: Event) -> None:
            if event.type == "a.start":
                await bus.publish("a.followup", {})
                followed.set()

        bus.subscribe("a.start", chain)
        bus.subscribe("a.*", lambda e: order.append(e.type))
        await bus.publish("a.start", {})
        await bus.publish("a.second", {})
        async with asyncio.timeout(5):
            await followed.wait()
        await bus.stop()
        assert order == ["a.start", "a.second", "a.followup"]


class TestLifecycle:
    async def test_events_published_before_start_are_delivered_on_start(
        self, collector: Collect
    ) -> None:
        """Publishing before start() is allowed; those events arrive once the bus starts."""
        bus = EventBus()
        got = collector()
        bus.subscribe("a.b", got)
        await bus.publish("a.b", {"n": 1})
        assert bus.get_metrics()["queue_size"] == 1
        assert got.events == []
        await bus.start()
        await got.wait_for(1)
        await bus.shutdown()

    async def test_stop_drains_every_event_published_before_it(self, bus: EventBus) -> None:
        """stop() returns only when every earlier event reached every matching subscriber."""
        counts = {"sync": 0, "async": 0}

        def sync_handler(event: Event) -> None:
            counts["sync"] += 1

        async def async_handler(event: Event) -> None:
            await asyncio.sleep(0)
            counts["async"] += 1

        bus.subscribe("a.*", sync_handler)
        bus.subscribe("a.b", async_handler)
        await bus.publish_batch([("a.b", {"n": n}) for n in range(500)])
        await bus.stop()
        assert counts == {"sync": 500, "async": 500}
        assert bus.state is BusState.STOPPED
        assert bus.get_metrics()["queue_size"] == 0

    async def test_lifecycle_calls_are_idempotent_and_restart_works(
        self, collector: Collect
    ) -> None:
        """start, stop and shutdown may be repeated; a stopped bus starts again and delivers."""
        bus = EventBus()
        got = collector()
        bus.subscribe("a.b", got)
        await bus.start()
        await bus.start()
        await bus.publish("a.b", {"n": 1})
        await bus.stop()
        await bus.stop()
        await bus.publish("a.b", {"n": 2})  # queued while stopped
        await bus.start()
        await bus.publish("a.b", {"n": 3})
        await bus.stop()
        assert [e.data["n"] for e in got.events] == [1, 2, 3]
        await bus.shutdown()
        await bus.shutdown()
        assert bus.state is BusState.CLOSED

    async def test_shutdown_releases_subscriptions_and_refuses_work(self) -> None:
        """After shutdown there are no subscriptions and every call that works refuses."""
        bus = EventBus()
        bus.subscribe("a.b", print)
        await bus.start()
        await bus.shutdown()
        assert bus.list_subscriptions() == []
        with pytest.raises(BusClosedError):
            await bus.publish("a.b", {})
        with pytest.raises(BusClosedError):
            bus.subscribe("a.b", print)
        with pytest.raises(BusClosedError):
            await bus.start()

    async def test_async_context_manager(self, collector: Collect) -> None:
        """`async with EventBus()` starts the bus and shuts it down, draining first."""
        got = collector()
        async with EventBus() as bus:
            assert bus.is_running
            bus.subscribe("a.b", got)
            await bus.publish("a.b", {})
        assert bus.state is BusState.CLOSED
        assert len(got.events) == 1

    async def test_disabled_bus_returns_events_without_dispatching(
        self, collector: Collect
    ) -> None:
        """With events.enabled false, publish returns the event and dispatches nothing."""
        async with EventBus(enabled=False) as bus:
            got = collector()
            bus.subscribe("a.b", got)
            event = await bus.publish("a.b", {"n": 1})
            assert event.type == "a.b"
            assert bus.enabled is False
        assert got.events == []
        assert (await bus.get_stats())["skipped_disabled"] == 1


class TestBackpressure:
    async def test_full_mailbox_raises_queue_full_after_publish_timeout(self) -> None:
        """A mailbox that stays full makes publish wait publish_timeout, then raise."""
        bus = EventBus(max_queue_size=2, publish_timeout=0.05)
        await bus.publish("a.b", {})
        await bus.publish("a.b", {})
        with pytest.raises(QueueFullError, match="2 of 2 events") as info:
            await bus.publish("a.b", {})
        assert isinstance(info.value, RuntimeError)
        assert bus.get_metrics()["total_published"] == 2

    async def test_publish_waits_for_room_instead_of_dropping(self, collector: Collect) -> None:
        """While the bus drains, a producer beyond capacity waits and nothing is lost."""
        got = collector()
        async with EventBus(max_queue_size=4, publish_timeout=5) as bus:
            bus.subscribe("a.b", got)
            for n in range(200):
                await bus.publish("a.b", {"n": n})
        assert [e.data["n"] for e in got.events] == list(range(200))

    async def test_batch_larger_than_the_mailbox_is_delivered_in_full(
        self, collector: Collect
    ) -> None:
        """publish_batch waits for room as the bus drains, keeping order."""
        got = collector()
        async with EventBus(max_queue_size=8) as bus:
            bus.subscribe("*", got)
            events = await bus.publish_batch(
                [{"type": "a.b", "data": {"n": n}} for n in range(100)]
            )
        assert got.events == events


class TestPublishInput:
    @pytest.mark.parametrize("event_type", ["", "memory.*", "a..b", "bad type", "x.>"])
    async def test_bad_event_type_is_refused(self, bus: EventBus, event_type: str) -> None:
        """A malformed event type is refused with a clear error and nothing is published."""
        with pytest.raises(InvalidEventTypeError):
            await bus.publish(event_type, {})
        assert bus.get_metrics()["total_published"] == 0

    @pytest.mark.parametrize("data", [None, ["a"], "text", 42])
    async def test_non_dict_data_is_refused(self, bus: EventBus, data: object) -> None:
        """data must be a dict."""
        with pytest.raises(EventValidationError, match="data: expected a dict"):
            await bus.publish("a.b", data)  # type: ignore[arg-type]

    async def test_batch_accepts_dicts_and_tuples(self, bus: EventBus, collector: Collect) -> None:
        """Batch items may be the reference's dicts or (type, data[, metadata]) tuples."""
        got = collector()
        bus.subscribe("*", got)
        events = await bus.publish_batch(
            [
                {"type": "a.one", "data": {"n": 1}, "metadata": {"agent_id": "x"}},
                {"type": "a.two", "data": {"n": 2}},
                ("a.three", {"n": 3}),
                ("a.four", {"n": 4}, {"agent_id": "y"}),
            ]
        )
        await bus.stop()
        assert got.types == ["a.one", "a.two", "a.three", "a.four"]
        assert [e.metadata for e in events] == [{"agent_id": "x"}, {}, {}, {"agent_id": "y"}]

    @pytest.mark.parametrize(
        ("item", "message"),
        [
            ({"data": {}}, "item 1: missing 'type'"),
            ({"type": "a.b", "payload": {}}, "unknown keys"),
            (("a.b",), "item 1: expected a dict"),
            (("a.b", {}, {}, {}), "item 1: expected a dict"),
            (["a.b", {"n": 1}, {}, "extra"], "item 1: expected a dict"),
            ("a.b", "item 1: expected a dict"),
            (("a.b", "not a dict"), "item 1: data: expected a dict"),
        ],
    )
    async def test_bad_batch_item_refuses_the_whole_batch(
        self, bus: EventBus, item: object, message: str
    ) -> None:
        """A malformed item is named by index and nothing from the batch is published."""
        with pytest.raises(EventValidationError, match=message):
            await bus.publish_batch([("a.b", {}), item])  # type: ignore[list-item]
        assert bus.get_metrics()["total_published"] == 0

    async def test_bad_type_in_batch_names_the_item(self, bus: EventBus) -> None:
        """A malformed type inside a batch is refused naming its index."""
        with pytest.raises(InvalidEventTypeError, match="item 0"):
            await bus.publish_batch([("bad type", {})])


class TestHistoryAndMetrics:
    async def test_history_is_bounded_and_oldest_first(self) -> None:
        """History keeps the newest history_size events, oldest first."""
        async with EventBus(history_size=5) as bus:
            for n in range(12):
                await bus.publish("a.b", {"n": n})
            await bus.stop()
            history = await bus.get_history(limit=50)
            assert [e.data["n"] for e in history] == [7, 8, 9, 10, 11]
            assert [e.data["n"] for e in await bus.get_history(limit=2)] == [10, 11]

    async def test_history_filters_by_type_or_pattern(self, bus: EventBus) -> None:
        """get_history takes an exact type or a pattern."""
        for event_type in ["memory.created", "dream.started", "memory.deleted", "memory.created"]:
            await bus.publish(event_type, {})
        await bus.stop()
        assert len(await bus.get_history("memory.created")) == 2
        assert [e.type for e in await bus.get_history("memory.*", limit=2)] == [
            "memory.deleted",
            "memory.created",
        ]
        assert await bus.get_history("gap.*") == []
        with pytest.raises(InvalidPatternError):
            await bus.get_history("memory..x")
        with pytest.raises(ValueError, match="limit"):
            await bus.get_history(limit=-1)

    async def test_metrics_have_exactly_the_reference_keys(self, bus: EventBus) -> None:
        """get_metrics returns the reference's five counters and nothing else."""
        bus.subscribe("a.*", print)
        other = bus.subscribe("b.*", print)
        bus.disable_subscription(other)
        await bus.publish("a.x", {})
        await bus.stop()
        assert bus.get_metrics() == {
            "total_published": 1,
            "total_delivered": 1,
            "total_errors": 0,
            "subscriptions_active": 1,
            "queue_size": 0,
        }

    async def test_stats_add_types_subscriptions_state_and_uptime(self, bus: EventBus) -> None:
        """get_stats adds per-type counts, per-subscription figures, state and uptime."""
        bus.subscribe("a.*", print)
        await bus.publish("a.x", {})
        await bus.publish("a.x", {})
        await bus.publish("a.y", {})
        await asyncio.sleep(0.01)
        stats = await bus.get_stats()
        assert stats["events_by_type"] == {"a.x": 2, "a.y": 1}
        assert stats["running"] is True
        assert stats["state"] == "running"
        assert stats["uptime_seconds"] > 0
        assert stats["subscriptions"][0]["delivered"] == 3
        assert set(bus.get_metrics()) <= set(stats)

    async def test_counters_survive_unsubscribe(self, bus: EventBus) -> None:
        """Deliveries of a removed subscription still count in the totals."""
        sub_id = bus.subscribe("a.b", print)
        await bus.publish("a.b", {})
        await bus.stop()
        bus.unsubscribe(sub_id)
        assert bus.get_metrics()["total_delivered"] == 1


class TestSharedInstance:
    async def test_get_event_bus_returns_one_instance_until_reset(self) -> None:
        """get_event_bus is a singleton; reset_event_bus drops it."""
        first = get_event_bus()
        assert get_event_bus() is first
        reset_event_bus()
        assert get_event_bus() is not first

    async def test_shared_bus_reads_config_file(self, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        """The shared bus is configured from the file MNEMO_EVENTS_CONFIG names."""
        path = tmp_path / "events.yaml"
        path.write_text("events:\n  max_queue_size: 7\n  history_size: 3\n")
        monkeypatch.setenv("MNEMO_EVENTS_CONFIG", str(path))
        bus = get_event_bus()
        assert bus.config.max_queue_size == 7
        assert bus.config.history_size == 3

    async def test_shut_down_shared_bus_is_replaced(self) -> None:
        """After the shared bus is shut down, get_event_bus hands out a fresh one."""
        first = get_event_bus()
        await first.start()
        await first.shutdown()
        assert get_event_bus() is not first


def test_shared_bus_keeps_working_across_event_loops() -> None:
    """The shared bus, started in one event loop, delivers when used from a new one."""
    received: list[int] = []
    bus = get_event_bus()
    bus.subscribe("a.b", lambda e: received.append(e.data["n"]))

    async def first_loop() -> None:
        await bus.start()
        await bus.publish("a.b", {"n": 1})
        await asyncio.sleep(0.01)

    async def second_loop() -> None:
        await get_event_bus().publish("a.b", {"n": 2})
        await get_event_bus().stop()

    asyncio.run(first_loop())
    asyncio.run(second_loop())
    assert received == [1, 2]
    asyncio.run(bus.shutdown())


class TestThreads:
    async def test_publish_threadsafe_from_a_worker_thread(self, bus: EventBus) -> None:
        """Engine code in another thread publishes through the bus's loop, in order."""
        seen: list[int] = []
        bus.subscribe("a.b", lambda e: seen.append(e.data["n"]))

        def engine() -> list[str]:
            return [bus.publish_threadsafe("a.b", {"n": n}).result(5).id for n in range(20)]

        ids = await asyncio.to_thread(engine)
        await bus.stop()
        assert seen == list(range(20))
        assert [e.id for e in await bus.get_history()] == ids

    async def test_publish_threadsafe_reports_bad_input_through_the_future(
        self, bus: EventBus
    ) -> None:
        """What publish would raise comes out of the future's result()."""

        def engine() -> None:
            bus.publish_threadsafe("bad type", {}).result(5)

        with pytest.raises(InvalidEventTypeError):
            await asyncio.to_thread(engine)

    def test_publish_threadsafe_needs_a_running_bus(self) -> None:
        """Without a running bus there is no loop to hand the event to: a clear error."""
        with pytest.raises(RuntimeError, match="needs a bus running"):
            EventBus().publish_threadsafe("a.b", {})


async def test_concurrent_stops_all_wait_for_the_drain(collector: Callable[[], Collector]) -> None:
    """Two stop() calls at once both return only after every earlier event was handled."""
    got = collector()

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.01)
        got(event)

    bus = EventBus()
    bus.subscribe("a.b", slow)
    await bus.start()
    for n in range(5):
        await bus.publish("a.b", {"n": n})
    first = asyncio.create_task(bus.stop())
    await asyncio.sleep(0)
    await bus.stop()
    assert len(got.events) == 5
    await first
    await bus.shutdown()
