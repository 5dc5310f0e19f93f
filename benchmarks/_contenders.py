"""The contenders: our bus and its peers, each as a :class:`~benchmarks._harness.Trial`.

Peers are used the way their documentation shows, with the payload dict as the message;
our bus is used through its public API only (``subscribe``, ``start``, ``publish``,
``publish_batch``, ``shutdown``). Every handler is a sink from the shared tally.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any, Literal

import blinker
import pyee
import reactivex.subject
from pyee.asyncio import AsyncIOEventEmitter

from benchmarks._harness import Tally, Trial
from benchmarks._payloads import EVENT_TYPE
from mnemo_events.event_bus import EventBus

__all__ = [
    "BlinkerTrial",
    "BusTrial",
    "PyeeAsyncTrial",
    "PyeeTrial",
    "QueueTrial",
    "SubjectTrial",
]

Payloads = Sequence[dict[str, Any]]
Validation = Literal["strict", "warn", "off"]


class BusTrial(Trial):
    """Our bus, started, with ``subscribers`` sinks on ``patterns`` (default: the type).

    ``batches`` switches publishing from one ``await publish`` per event to one
    ``await publish_batch`` per prepared batch. ``prime`` publishes one event during set-up,
    so one-time work for a new event type (building its route) is not timed.
    """

    def __init__(
        self,
        prepared: Payloads,
        *,
        validation: Validation = "off",
        batches: Sequence[Sequence[dict[str, Any]]] | None = None,
        subscribers: int = 1,
        is_async: bool = False,
        patterns: Sequence[str] = (),
        prime: bool = False,
    ) -> None:
        self.tally = Tally()
        self._prepared = prepared
        self._batches = batches
        self._prime = prime
        self.bus = EventBus(validation=validation)
        idle = self.tally.sink()  # never called: these patterns must not match
        for pattern in patterns:
            self.bus.subscribe(pattern, idle)
        make: Callable[[], Any] = self.tally.async_sink if is_async else self.tally.sink
        for _ in range(subscribers):  # the matching subscriptions come last
            self.bus.subscribe(EVENT_TYPE, make())

    async def open(self) -> None:
        """Start the bus (and prime the route when asked)."""
        await self.bus.start()
        if self._prime:
            self.tally.expect(1)
            await self.bus.publish(EVENT_TYPE, self._prepared[0])
            await self.tally.wait()

    async def run(self) -> None:
        """Publish every prepared payload (one by one or in batches)."""
        bus = self.bus
        if self._batches is not None:
            publish_batch = bus.publish_batch
            for batch in self._batches:
                await publish_batch(batch)
            return
        publish = bus.publish
        for data in self._prepared:
            await publish(EVENT_TYPE, data)

    async def close(self) -> None:
        """Shut the bus down."""
        await self.bus.shutdown()


class SubjectTrial(Trial):
    """A bare ``reactivex.subject.Subject`` with ``subscribers`` observers."""

    def __init__(self, prepared: Payloads, *, subscribers: int = 1) -> None:
        self.tally = Tally()
        self._prepared = prepared
        self.subject: reactivex.subject.Subject[dict[str, Any]] = reactivex.subject.Subject()
        self._disposables = [self.subject.subscribe(self.tally.sink()) for _ in range(subscribers)]

    async def run(self) -> None:
        """``on_next`` each payload."""
        on_next = self.subject.on_next
        for data in self._prepared:
            on_next(data)

    async def close(self) -> None:
        """Dispose the observers."""
        for disposable in self._disposables:
            disposable.dispose()


class PyeeTrial(Trial):
    """``pyee.EventEmitter`` with ``subscribers`` listeners on the event type."""

    def __init__(self, prepared: Payloads, *, subscribers: int = 1) -> None:
        self.tally = Tally()
        self._prepared = prepared
        self.emitter = pyee.EventEmitter()
        for _ in range(subscribers):
            self.emitter.on(EVENT_TYPE, self.tally.sink())

    async def run(self) -> None:
        """``emit`` each payload."""
        emit = self.emitter.emit
        for data in self._prepared:
            emit(EVENT_TYPE, data)

    async def close(self) -> None:
        """Remove the listeners."""
        self.emitter.remove_all_listeners()


class PyeeAsyncTrial(Trial):
    """``pyee.asyncio.AsyncIOEventEmitter`` with one ``async def`` listener.

    Timed until ``wait_for_complete()``: every handler coroutine has finished.
    """

    def __init__(self, prepared: Payloads) -> None:
        self.tally = Tally()
        self._prepared = prepared
        self.emitter: AsyncIOEventEmitter | None = None

    async def open(self) -> None:
        """Create the emitter on the running loop."""
        self.emitter = AsyncIOEventEmitter(loop=asyncio.get_running_loop())
        self.emitter.on(EVENT_TYPE, self.tally.async_sink())

    async def run(self) -> None:
        """``emit`` each payload, then wait for every scheduled handler."""
        assert self.emitter is not None
        emit = self.emitter.emit
        for data in self._prepared:
            emit(EVENT_TYPE, data)
        await self.emitter.wait_for_complete()

    async def close(self) -> None:
        """Remove the listener."""
        if self.emitter is not None:
            self.emitter.remove_all_listeners()


class BlinkerTrial(Trial):
    """A ``blinker.Signal`` with one receiver (connected weakly, blinker's default)."""

    def __init__(self, prepared: Payloads) -> None:
        self.tally = Tally()
        self._prepared = prepared
        self.signal = blinker.Signal()
        self._receiver = self.tally.blinker_receiver()  # held strongly here
        self.signal.connect(self._receiver)

    async def run(self) -> None:
        """``send`` each payload as the ``event`` keyword."""
        send = self.signal.send
        for data in self._prepared:
            send(None, event=data)

    async def close(self) -> None:
        """Disconnect the receiver."""
        self.signal.disconnect(self._receiver)


class QueueTrial(Trial):
    """A producer ``await queue.put`` loop and one consumer task awaiting the handler.

    The queue is bounded like the bus's mailbox (10,000 by default).
    """

    def __init__(self, prepared: Payloads, *, maxsize: int = 10_000) -> None:
        self.tally = Tally()
        self._prepared = prepared
        self._maxsize = maxsize
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._consumer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Create the queue and start the consumer."""
        self._queue = asyncio.Queue(self._maxsize)
        self._consumer = asyncio.get_running_loop().create_task(
            self._consume(self._queue, self.tally.async_sink())
        )

    @staticmethod
    async def _consume(queue: asyncio.Queue[dict[str, Any]], handler: Callable[[Any], Any]) -> None:
        while True:
            item = await queue.get()
            await handler(item)

    async def run(self) -> None:
        """Put each payload."""
        assert self._queue is not None
        put = self._queue.put
        for data in self._prepared:
            await put(data)

    async def close(self) -> None:
        """Cancel the consumer."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
