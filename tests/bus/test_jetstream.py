"""The bus on JetStream in one process: publish/ack/dedupe, feeds, durables, history, faults."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import api
from structlog.testing import capture_logs

from mnemo_events._log import set_library_level
from mnemo_events.bus._jetstream import JetStreamTransport
from mnemo_events.bus._transport import MemoryTransport
from mnemo_events.config import EventsConfig, RetryConfig, load_config
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import (
    ConfigError,
    EventValidationError,
    QueueFullError,
    TransportError,
    TransportTimeoutError,
)
from tests.helpers.nats import NatsServer, free_port
from tests.helpers.receiver import eventually

FAST_RETRY = RetryConfig(max_attempts=3, base_delay_seconds=0.05, max_delay_seconds=0.1)
STREAM = "MNEMO_EVENTS"


@pytest.fixture
async def bus(server: NatsServer) -> AsyncIterator[EventBus]:
    """A started bus on the server's stream, shut down after the test."""
    async with EventBus(
        transport=server.url, validation="off", delivery_timeout=1.0, publish_timeout=2.0
    ) as started:
        yield started


async def _stream_messages(url: str) -> list[api.RawStreamMsg]:
    """Every message stored in the stream, read with raw nats-py."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        state = (await js.stream_info(STREAM)).state
        return (
            [await js.get_msg(STREAM, seq) for seq in range(state.first_seq, state.last_seq + 1)]
            if state.messages
            else []
        )
    finally:
        await nc.close()


async def _stored_ids(url: str) -> list[str]:
    """The Nats-Msg-Id of every message in the stream, in stream order (ordered consumer)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        count = (await js.stream_info(STREAM)).state.messages
        sub = await js.subscribe(
            "mnemo.>", ordered_consumer=True, deliver_policy=api.DeliverPolicy.ALL
        )
        ids = []
        for _ in range(count):
            msg = await sub.next_msg(timeout=10)
            ids.append((msg.headers or {}).get("Nats-Msg-Id", ""))
        await sub.unsubscribe()
        return ids
    finally:
        await nc.close()


def _in_order_once(stored: list[str], batch: list[str]) -> bool:
    """Each id of ``batch`` is stored exactly once, and in the batch's order."""
    positions = {event_id: index for index, event_id in enumerate(stored)}
    if len(positions) != len(stored) or not set(batch) <= positions.keys():
        return False
    order = [positions[event_id] for event_id in batch]
    return order == sorted(order)


def _transport(bus: EventBus) -> JetStreamTransport:
    transport = bus._transport
    assert isinstance(transport, JetStreamTransport)
    return transport


class TestSettings:
    def test_url_string_config_and_environment_select_jetstream(self) -> None:
        """A nats:// URL (argument, events.transport, or the environment) gives a JetStream
        transport; None and "memory" keep the in-process one."""
        url = "nats://127.0.0.1:4222"
        assert isinstance(EventBus(transport=url)._transport, JetStreamTransport)
        assert isinstance(EventBus(EventsConfig(transport=url))._transport, JetStreamTransport)
        settings = load_config(environ={"MNEMO_EVENTS_EVENTS_TRANSPORT": url})
        assert isinstance(EventBus(settings.events)._transport, JetStreamTransport)
        assert isinstance(EventBus()._transport, MemoryTransport)
        assert isinstance(EventBus(transport="memory")._transport, MemoryTransport)

    def test_mapping_form_sets_stream_prefix_and_limits(self) -> None:
        """events.transport as a mapping names the stream, the subject prefix and limits."""
        config = EventsConfig.model_validate(
            {
                "transport": {
                    "servers": ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"],
                    "stream": "ENGINE",
                    "subject_prefix": "eng.events",
                    "max_msgs": 1000,
                }
            }
        )
        transport = _transport(EventBus(config))
        assert transport.config.stream == "ENGINE"
        assert transport.subject_of("memory.created") == "eng.events.memory.created"
        assert transport.config.max_msgs == 1000

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("redis://localhost", "neither 'memory' nor a NATS URL"),
            ({"stream": "bad name"}, "stream name 'bad name'"),
            ({"subject_prefix": "a.*"}, "subject_prefix 'a.*'"),
        ],
    )
    def test_bad_transport_values_are_refused(self, value: Any, message: str) -> None:
        """A transport that is neither memory nor valid JetStream settings is a ConfigError
        naming the value."""
        with pytest.raises(ConfigError, match=message):
            EventBus(transport=value)

    def test_durable_needs_jetstream(self) -> None:
        """A durable subscription on the in-process bus is refused, not silently volatile."""
        with pytest.raises(ConfigError, match="needs a JetStream transport"):
            EventBus().subscribe("memory.*", lambda event: None, durable="workers")


class TestPublish:
    async def test_publish_returns_once_stored_with_the_event_id(
        self, bus: EventBus, server: NatsServer
    ) -> None:
        """When publish returns, the stream holds the event under <prefix>.<type> with its id
        as Nats-Msg-Id."""
        event = await bus.publish("memory.created", {"n": 1})
        (stored,) = await _stream_messages(server.url)
        assert stored.subject == "mnemo.memory.created"
        assert stored.headers is not None
        assert stored.headers["Nats-Msg-Id"] == event.id
        assert stored.data == event.to_json()

    async def test_a_retried_publish_is_stored_once(
        self, bus: EventBus, server: NatsServer
    ) -> None:
        """Publishing the same event twice (a retry after a lost ack) stores it once."""
        event = Event.create("memory.created", {"n": 1})
        transport = _transport(bus)
        await transport.accept(event)
        await transport.accept(event)
        assert len(await _stream_messages(server.url)) == 1
        assert transport.stats()["duplicates"] == 1

    async def test_invalid_payload_never_leaves_the_process(self, server: NatsServer) -> None:
        """In strict mode an invalid payload raises before anything reaches the stream."""
        async with EventBus(transport=server.url) as strict:
            with pytest.raises(EventValidationError, match="memory_id"):
                await strict.publish("memory.created", {"content": "no id"})
            await strict.publish("custom.thing", {"n": 1})
        assert [m.subject for m in await _stream_messages(server.url)] == ["mnemo.custom.thing"]

    async def test_publish_batch_stores_every_event_in_order(
        self, bus: EventBus, server: NatsServer
    ) -> None:
        """publish_batch pipelines its acks and the stream holds the batch in order."""
        events = await bus.publish_batch([("memory.created", {"n": n}) for n in range(300)])
        stored = await _stream_messages(server.url)
        assert [m.headers["Nats-Msg-Id"] for m in stored if m.headers] == [e.id for e in events]


class TestBatchOrder:
    @pytest.mark.parametrize("atomic", [True, False])
    async def test_a_batch_is_stored_in_order(self, server: NatsServer, atomic: bool) -> None:
        """publish_batch stores its events in the list's order over several windows, as
        atomic batches (the default) and pipelined."""
        transport = JetStreamTransport(server.url, atomic_batches=atomic)
        async with EventBus(transport=transport, validation="off") as bus:
            events = await bus.publish_batch([("memory.created", {"n": n}) for n in range(2_500)])
            assert transport.stats()["published"] == 2_500
        assert await _stored_ids(server.url) == [e.id for e in events]

    async def test_more_concurrent_batches_than_the_server_takes_are_all_stored(
        self, server: NatsServer
    ) -> None:
        """120 batches at once, beyond the server's 50 atomic batches in flight per stream:
        the ones it turns away are sent again, and each batch is stored once, in order."""
        async with EventBus(transport=server.url, validation="off", publish_timeout=30) as bus:
            batches = await asyncio.gather(
                *(
                    bus.publish_batch([("memory.created", {"n": n, "batch": b}) for n in range(50)])
                    for b in range(120)
                )
            )
        stored = await _stored_ids(server.url)
        assert len(stored) == 120 * 50
        assert all(_in_order_once(stored, [e.id for e in batch]) for batch in batches)

    async def test_a_batch_partly_stored_already_stores_each_event_once(
        self, bus: EventBus, server: NatsServer
    ) -> None:
        """A batch holding events stored before (a retried batch) stores each event once:
        the rest follow in the batch's order."""
        events = [Event.create("memory.created", {"n": n}) for n in range(10)]
        transport = _transport(bus)
        await transport.accept(events[3])
        await transport.accept(events[7])
        await transport.accept_batch(events)
        rest = [e.id for e in events if e not in (events[3], events[7])]
        assert await _stored_ids(server.url) == [events[3].id, events[7].id, *rest]
        assert transport.stats()["duplicates"] == 2

    async def test_a_stream_made_without_atomic_batches_gets_them(self, server: NatsServer) -> None:
        """A stream that exists without allow_atomic (made by another tool or an older
        version) is switched to atomic batches, and batches go on storing in order."""
        nc = await nats.connect(server.url)
        try:
            await nc.jetstream().add_stream(name=STREAM, subjects=["mnemo.>"])
        finally:
            await nc.close()
        async with EventBus(transport=server.url, validation="off") as bus:
            events = await bus.publish_batch([("memory.created", {"n": n}) for n in range(50)])
        nc = await nats.connect(server.url)
        try:
            info = await nc.jetstream().stream_info(STREAM)
        finally:
            await nc.close()
        assert info.config.allow_atomic is True
        assert await _stored_ids(server.url) == [e.id for e in events]


class TestLiveFeed:
    async def test_every_bus_on_the_stream_delivers_every_event_in_order(
        self, server: NatsServer
    ) -> None:
        """Two buses on one stream: each one's subscriber gets the events of both, in stream
        order, with the usual handler isolation."""
        seen: dict[str, list[int]] = {"a": [], "b": []}
        async with (
            EventBus(transport=server.url, validation="off") as a,
            EventBus(transport=server.url, validation="off") as b,
        ):
            a.subscribe("memory.*", lambda e: seen["a"].append(e.data["n"]))
            b.subscribe("memory.*", lambda e: seen["b"].append(e.data["n"]))
            b.subscribe("memory.*", lambda e: 1 / 0)  # isolated: counted, the others go on
            for n in range(50):
                await (a if n % 2 else b).publish("memory.created", {"n": n})
            await a.flush()
            await b.flush()
            await eventually(lambda: len(seen["a"]) == len(seen["b"]) == 50)
            assert seen["a"] == seen["b"] == list(range(50))
            assert b.get_metrics()["total_errors"] == 50

    async def test_plain_subscriptions_start_from_now(self, server: NatsServer) -> None:
        """A bus started after events were stored does not replay them to plain
        subscribers; it delivers what comes next."""
        async with EventBus(transport=server.url, validation="off") as earlier:
            await earlier.publish("memory.created", {"n": 0})
        got: list[int] = []
        async with EventBus(transport=server.url, validation="off") as later:
            later.subscribe("memory.*", lambda e: got.append(e.data["n"]))
            await later.publish("memory.created", {"n": 1})
            await later.flush()
        assert got == [1]

    async def test_a_bus_without_local_subscriptions_reads_nothing_back(
        self, server: NatsServer
    ) -> None:
        """A publisher-only bus runs no live feed, yet its own stored events are in its
        history and counters, and flush and stop return."""
        async with EventBus(transport=server.url, validation="off") as bus:
            await bus.publish_batch(
                [{"type": "memory.created", "data": {"n": n}} for n in range(30)]
            )
            await bus.publish("memory.deleted", {"n": 30})
            await bus.flush()
            stats = await bus.get_stats()
            assert stats["transport"]["feed"] == "off (no local subscription)"
            assert stats["transport"]["feed_delivered"] == 0
            assert stats["total_published"] == 31
            assert stats["events_by_type"] == {"memory.created": 30, "memory.deleted": 1}
            assert stats["history_size"] == 31
        assert len(await _stored_ids(server.url)) == 31

    async def test_a_first_subscription_while_running_gets_every_later_event_in_order(
        self, server: NatsServer
    ) -> None:
        """Subscribing on a running publisher-only bus starts the feed after what it stored:
        the subscriber gets every event published later (its own and another bus's), once
        each, in stream order, and none from before."""
        got: list[int] = []
        async with (
            EventBus(transport=server.url, validation="off") as bus,
            EventBus(transport=server.url, validation="off") as other,
        ):
            await bus.publish_batch([{"type": "memory.created", "data": {"n": -1}}] * 20)
            await bus.publish("memory.created", {"n": -1})
            bus.subscribe("memory.*", lambda e: got.append(e.data["n"]))
            for n in range(0, 40, 2):
                await bus.publish("memory.created", {"n": n})
                await other.publish("memory.created", {"n": n + 1})
            await bus.publish_batch(
                [{"type": "memory.created", "data": {"n": n}} for n in range(40, 60)]
            )
            await bus.flush()
            assert got == list(range(60))
            stats = await bus.get_stats()
            assert stats["transport"]["feed"] == "live"
            assert stats["total_published"] == 21 + 60  # its own before, then the feed's

    async def test_a_first_subscription_on_a_bus_that_never_published_misses_nothing(
        self, server: NatsServer
    ) -> None:
        """A running bus that has stored nothing: an event another bus stores right after
        the subscribe call (no await between) reaches the subscriber, then every later one;
        one stored just before may come too, never twice."""
        got: list[int] = []
        async with (
            EventBus(transport=server.url, validation="off") as bus,
            EventBus(transport=server.url, validation="off") as other,
        ):
            await other.publish("memory.created", {"n": -1})
            bus.subscribe("memory.*", lambda e: got.append(e.data["n"]))
            await other.publish("memory.created", {"n": 0})
            await bus.publish("memory.created", {"n": 1})
            await other.publish("memory.created", {"n": 2})
            await bus.publish("memory.created", {"n": 3})
            await bus.flush()
            await eventually(lambda: len(got) >= 4 and got[-1] == 3)
            assert got in ([0, 1, 2, 3], [-1, 0, 1, 2, 3])

    async def test_a_first_subscription_much_later_starts_near_now(
        self, server: NatsServer
    ) -> None:
        """A bus that ran seconds without subscriptions starts its feed near the stream's
        end (read each second), not at what was stored when it started."""
        got: list[int] = []
        async with (
            EventBus(transport=server.url, validation="off") as bus,
            EventBus(transport=server.url, validation="off") as other,
        ):
            await other.publish_batch([{"type": "memory.created", "data": {"n": -1}}] * 50)
            await asyncio.sleep(2.5)
            bus.subscribe("memory.*", lambda e: got.append(e.data["n"]))
            await other.publish("memory.created", {"n": 0})
            await eventually(lambda: got[-1:] == [0])
            assert got == [0]


class TestDurable:
    async def test_poison_event_is_terminated_after_max_attempts(
        self, bus: EventBus, server: NatsServer
    ) -> None:
        """A handler that always raises sees the event max_attempts times, then the event is
        terminated: counted, logged, never redelivered."""
        calls: list[str] = []

        def poison(event: Event) -> None:
            calls.append(event.id)
            raise RuntimeError("cannot handle")

        with capture_logs() as logs:
            sub_id = bus.subscribe("memory.*", poison, durable="poison", retry=FAST_RETRY)
            await asyncio.sleep(0.3)
            await bus.publish("memory.created", {"n": 1})
            durable = _transport(bus).durables[sub_id]
            await eventually(lambda: durable.terminated == 1, within=10)
            await asyncio.sleep(0.5)
        assert len(calls) == 3
        assert durable.redelivered == 2
        assert [line["event"] for line in logs].count("bus.durable_terminated") == 1
        assert bus.get_metrics()["total_errors"] == 3

    async def test_timed_out_handler_is_redelivered(self, bus: EventBus) -> None:
        """A handler over delivery_timeout is cancelled, counted, and gets the event again."""
        attempts: list[int] = []

        async def slow_once(event: Event) -> None:
            attempts.append(1)
            if len(attempts) == 1:
                await asyncio.sleep(5)

        sub_id = bus.subscribe("memory.*", slow_once, durable="slow", retry=FAST_RETRY)
        await asyncio.sleep(0.3)
        await bus.publish("memory.created", {"n": 1})
        durable = _transport(bus).durables[sub_id]
        await eventually(lambda: durable.delivered == 1, within=10)
        assert (durable.timeouts, durable.redelivered, len(attempts)) == (1, 1, 2)

    async def test_a_cancelled_error_from_a_handler_is_redelivered(self, bus: EventBus) -> None:
        """A durable handler that meets a CancelledError it did not cause (a future someone
        else cancelled) fails that delivery, which is counted and redelivered; the durable
        subscription goes on."""
        attempts: list[int] = []

        async def cancelled_once(event: Event) -> None:
            attempts.append(event.data["n"])
            if len(attempts) == 1:
                cancelled: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                cancelled.cancel()
                await cancelled

        sub_id = bus.subscribe("memory.*", cancelled_once, durable="cancel", retry=FAST_RETRY)
        await asyncio.sleep(0.3)
        await bus.publish("memory.created", {"n": 1})
        durable = _transport(bus).durables[sub_id]
        await eventually(lambda: durable.delivered == 1, within=10)
        await bus.publish("memory.created", {"n": 2})
        await eventually(lambda: durable.delivered == 2, within=10)
        assert attempts == [1, 1, 2]
        assert durable.redelivered == 1

    async def test_durable_resumes_where_it_left_off(self, server: NatsServer) -> None:
        """Events stored while no process reads a durable subscription are handled, once
        each, by the next process that subscribes with its name."""
        first: list[int] = []
        async with EventBus(transport=server.url, validation="off") as one:
            one.subscribe("memory.*", lambda e: first.append(e.data["n"]), durable="resume")
            await asyncio.sleep(0.3)
            for n in range(3):
                await one.publish("memory.created", {"n": n})
            await eventually(lambda: len(first) == 3, within=10)
        async with EventBus(transport=server.url, validation="off") as producer:
            for n in range(3, 6):
                await producer.publish("memory.created", {"n": n})
        second: list[int] = []
        async with EventBus(transport=server.url, validation="off") as two:
            two.subscribe("memory.*", lambda e: second.append(e.data["n"]), durable="resume")
            await eventually(lambda: len(second) == 3, within=10)
            assert any(info.id for info in two.list_subscriptions("memory.*"))
        assert (first, second) == ([0, 1, 2], [3, 4, 5])


class TestDurableStart:
    @staticmethod
    async def _stored(server: NatsServer, count: int) -> datetime:
        """Store ``count`` events, n = 0.., from another bus; the time after the first half."""
        async with EventBus(transport=server.url, validation="off") as writer:
            for n in range(count // 2):
                await writer.publish("memory.created", {"n": n})
            middle = datetime.now(UTC)
            for n in range(count // 2, count):
                await writer.publish("memory.created", {"n": n})
        return middle

    @pytest.mark.parametrize(
        ("start", "expected"),
        [
            (None, [6, 7]),
            ("new", [6, 7]),
            ("all", [0, 1, 2, 3, 4, 5, 6, 7]),
            (3, [2, 3, 4, 5, 6, 7]),
            ("middle", [3, 4, 5, 6, 7]),
        ],
    )
    async def test_a_new_durable_begins_where_start_says(
        self, server: NatsServer, start: Any, expected: list[int]
    ) -> None:
        """A new durable begins with the events stored from now on (default "new"), the
        whole stream ("all"), a stream sequence or a time, then goes on in stream order."""
        middle = await self._stored(server, 6)
        got: list[int] = []
        async with EventBus(transport=server.url, validation="off") as bus:
            bus.subscribe(
                "memory.*",
                lambda e: got.append(e.data["n"]),
                durable="starter",
                start=middle if start == "middle" else start,
            )
            await asyncio.sleep(0.5)  # the consumer exists: "new" starts here
            for n in (6, 7):
                await bus.publish("memory.created", {"n": n})
            await eventually(lambda: len(got) >= len(expected), within=10)
            await asyncio.sleep(0.2)
        assert got == expected

    async def test_an_existing_durable_keeps_its_position(self, server: NatsServer) -> None:
        """start= only shapes a durable that does not exist yet: one that exists resumes
        where it left off, and the ignored start is logged once."""
        first: list[int] = []
        async with EventBus(transport=server.url, validation="off") as one:
            one.subscribe("memory.*", lambda e: first.append(e.data["n"]), durable="kept")
            await asyncio.sleep(0.5)
            for n in range(2):
                await one.publish("memory.created", {"n": n})
            await eventually(lambda: len(first) == 2, within=10)
        await self._stored(server, 0)
        async with EventBus(transport=server.url, validation="off") as writer:
            for n in (2, 3):
                await writer.publish("memory.created", {"n": n})
        second: list[int] = []
        set_library_level("info")  # reset after the test by the autouse fixture
        with capture_logs() as logs:
            async with EventBus(transport=server.url, validation="off") as two:
                two.subscribe(
                    "memory.*", lambda e: second.append(e.data["n"]), durable="kept", start="all"
                )
                await eventually(lambda: len(second) >= 2, within=10)
                await asyncio.sleep(0.3)
        assert (first, second) == ([0, 1], [2, 3])
        kept = [line for line in logs if line["event"] == "bus.durable_start_kept"]
        assert len(kept) == 1
        assert kept[0]["requested"] == "all"

    @pytest.mark.parametrize(
        "start",
        ["old", "ALL", 0, -1, True, 1.5, datetime(2026, 1, 1)],  # noqa: DTZ001 - naive on purpose
    )
    def test_a_bad_start_is_refused(self, start: Any) -> None:
        """A start that is neither "new", "all", an aware time nor a sequence >= 1 is a
        ValueError naming it, before anything reaches the server."""
        bus = EventBus(transport="nats://127.0.0.1:4222")
        with pytest.raises(ValueError, match=r"durable start=.* must be 'new', 'all'"):
            bus.subscribe("memory.*", lambda event: None, durable="d", start=start)

    def test_start_without_durable_is_refused(self) -> None:
        """start= on a plain (live) subscription is a ConfigError pointing at durable= and
        at replay, not silently ignored."""
        bus = EventBus(transport="nats://127.0.0.1:4222")
        with pytest.raises(ConfigError, match=r"needs durable='name'.*bus\.replay"):
            bus.subscribe("memory.*", lambda event: None, start="all")


class TestHistoryAndReplay:
    async def test_history_is_read_from_the_stream(self, server: NatsServer) -> None:
        """get_history on a fresh bus returns what another bus stored, newest last."""
        async with EventBus(transport=server.url, validation="off") as writer:
            for n in range(10):
                await writer.publish("memory.created" if n % 2 else "memory.updated", {"n": n})
        async with EventBus(transport=server.url, validation="off") as reader:
            created = await reader.get_history("memory.created", limit=3)
            everything = await reader.get_history(limit=50)
        assert [e.data["n"] for e in created] == [5, 7, 9]
        assert [e.data["n"] for e in everything] == list(range(10))

    async def test_replay_since_a_sequence_or_a_time(self, bus: EventBus) -> None:
        """replay gives stored events from a stream sequence or a time, as an async iterator
        and as an observable that completes."""
        for n in range(3):
            await bus.publish("memory.created", {"n": n})
        middle = datetime.now(UTC)
        for n in range(3, 6):
            await bus.publish("memory.created", {"n": n})
        await bus.publish("other.thing", {"n": 99})
        by_seq = [e.data["n"] async for e in bus.replay("memory.*", since=2)]
        by_time = [e.data["n"] async for e in bus.replay("memory.*", since=middle)]
        observed: list[int] = []
        done = asyncio.get_running_loop().create_future()
        bus.replay(">", since=1).subscribe(
            lambda e: observed.append(e.data["n"]), on_completed=lambda: done.set_result(None)
        )
        await asyncio.wait_for(done, 10)
        assert by_seq == [1, 2, 3, 4, 5]
        assert by_time == [3, 4, 5]
        assert observed == [0, 1, 2, 3, 4, 5, 99]

    async def test_replay_in_memory_uses_the_history(self) -> None:
        """The in-process bus replays its history by time and refuses stream sequences."""
        async with EventBus(validation="off") as local:
            start = datetime.now(UTC)
            await local.publish("memory.created", {"n": 1})
            await local.flush()
            assert [e.data["n"] async for e in local.replay("memory.*", since=start)] == [1]
            with pytest.raises(ValueError, match="JetStream transport only"):
                local.replay("memory.*", since=1)


class TestFaults:
    async def test_server_that_never_comes_back_fails_publish_in_bounded_time(
        self, server: NatsServer
    ) -> None:
        """With the server gone for good, publish retries for publish_timeout, then raises a
        TransportTimeoutError (also a QueueFullError) naming the server; stats say so."""
        async with EventBus(transport=server.url, validation="off", publish_timeout=1.0) as bus:
            await bus.publish("memory.created", {"n": 0})
            server.stop()
            await eventually(lambda: _transport(bus).state.value == "disconnected", within=5)
            started = time.monotonic()
            with pytest.raises(TransportTimeoutError, match=server.url) as caught:
                await bus.publish("memory.created", {"n": 1})
            assert time.monotonic() - started < 6.0  # publish_timeout (1 s), never unbounded
            assert isinstance(caught.value, QueueFullError)
            assert (await bus.get_stats())["transport"]["state"] == "disconnected"

    async def test_a_server_restart_mid_batch_stores_the_batch_once_in_order(
        self, server: NatsServer
    ) -> None:
        """nats-server restarted while publish_batch stores 20,000 events: it returns, and
        the stream holds every event once, in the batch's order."""
        async with EventBus(transport=server.url, validation="off", publish_timeout=30) as bus:
            await bus.publish("warm.up", {})
            transport = _transport(bus)

            def restart_mid_batch() -> None:
                deadline = time.monotonic() + 30
                while transport.stats()["published"] < 3_000 and time.monotonic() < deadline:
                    time.sleep(0.001)
                server.restart()

            restarter = threading.Thread(target=restart_mid_batch)
            restarter.start()
            try:
                events = await bus.publish_batch(
                    [("memory.created", {"n": n}) for n in range(20_000)]
                )
            finally:
                await asyncio.to_thread(restarter.join, 60)
            stats = transport.stats()
        assert stats["disconnects"] >= 1
        assert stats["publish_retries"] >= 1  # the restart came mid-batch
        assert stats["published"] + stats["duplicates"] >= 20_001
        stored = await _stored_ids(server.url)
        assert len(stored) == 20_001
        assert _in_order_once(stored, [e.id for e in events])

    async def test_stop_does_not_wait_for_a_server_that_is_gone(self, server: NatsServer) -> None:
        """With events stored but not yet read back when the server goes away, stop() gives
        up on them after connect_timeout (they stay in the stream) and says so, instead of
        waiting for the server forever."""
        transport = JetStreamTransport(server.url, connect_timeout=1.0)
        bus = EventBus(transport=transport, validation="off")
        await bus.start()
        await bus.publish("memory.created", {"n": 0})
        server.stop()
        await eventually(lambda: transport.state.value == "disconnected", within=5)
        # A stream position the feed never reaches: what stop() waits for before it drains.
        async with asyncio.timeout(10):
            assert await transport.wait_delivered(transport.mark() + 1) is False
        async with asyncio.timeout(15):
            await bus.stop()
        assert bus.state.value == "stopped"
        await bus.shutdown()

    async def test_no_server_at_start_is_a_clear_error(self) -> None:
        """Starting on a port where no server listens raises TransportError naming the
        server (without its password) within connect_timeout."""
        url = f"nats://user:s3cret@127.0.0.1:{free_port()}"
        transport = JetStreamTransport(url, connect_timeout=1.0)
        bus = EventBus(transport=transport)
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"nats://127\.0\.0\.1:\d+") as caught:
            await bus.start()
        assert time.monotonic() - started < 3.0
        assert "s3cret" not in str(caught.value)
        await bus.shutdown()

    async def test_live_subscriber_resumes_after_a_server_restart(
        self, bus: EventBus, server: NatsServer
    ) -> None:
        """A server restart between publishes loses none of them for a live subscriber."""
        got: list[int] = []
        bus.subscribe("memory.*", lambda e: got.append(e.data["n"]))
        for n in range(5):
            await bus.publish("memory.created", {"n": n})
        await asyncio.to_thread(server.restart)
        for n in range(5, 10):
            await bus.publish("memory.created", {"n": n})
        await eventually(lambda: len(got) >= 10, within=15)
        assert got == list(range(10))
        assert (await bus.get_stats())["transport"]["state"] == "connected"


class TestService:
    async def test_healthz_reports_the_jetstream_connection(
        self, server: NatsServer, tmp_path: Path
    ) -> None:
        """The service's /healthz names the transport and turns 503 while the server is gone."""
        import aiohttp
        from aiohttp import web

        from mnemo_events.config import Settings
        from mnemo_events.server import create_app

        settings = Settings.model_validate(
            {
                "events": {"transport": server.url, "validation": "off"},
                "webhooks": {"persistence_path": None, "delivery_store_path": None},
                "server": {"api_key": None},
            }
        )
        runner = web.AppRunner(create_app(settings, environ={}))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/healthz"
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url) as up:
                    assert up.status == 200
                    assert (await up.json())["transport"] == {
                        "name": "jetstream",
                        "state": "connected",
                    }
                server.stop()

                async def unavailable() -> bool:
                    async with session.get(url) as down:
                        body = await down.json()
                        return down.status == 503 and body["transport"]["state"] == "disconnected"

                assert await eventually(unavailable, within=10)
        finally:
            await runner.cleanup()
