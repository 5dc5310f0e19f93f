"""``bus.stream()``: the live stream as an async iterator with a bounded buffer."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from types import TracebackType

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from mnemo_events.bus._subscription import Handler, SubscriptionActor
from mnemo_events.event import Event

__all__ = ["EventStream", "observable_of", "open_stream"]

Subscribe = Callable[[Handler], SubscriptionActor]
Unsubscribe = Callable[[SubscriptionActor], None]


class EventStream:
    """Async iterator over the events of one bus subscription.

    Made by :meth:`EventBus.stream`, which subscribes at once, so nothing published after the
    call is missed. At most ``buffer`` events wait here for the consumer; the rest wait in the
    subscription's mailbox. Iteration ends after the bus stops (once what was published
    before is yielded). ``aclose()``, ``async with`` or ``contextlib.aclosing`` unsubscribe at
    once; a stream abandoned by ``break`` unsubscribes when it is garbage-collected.
    """

    def __init__(self, buffer: int, unsubscribe: Callable[[], None]) -> None:
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(buffer)
        self._unsubscribe: Callable[[], None] | None = unsubscribe
        self._ended = False

    async def put(self, event: Event) -> None:
        """The subscription's handler: wait for room in the buffer."""
        await self._queue.put(event)

    def end(self) -> None:
        """Called when the subscription closes: the iterator stops after the buffer."""
        self._ended = True
        if not self._queue.full():
            self._queue.put_nowait(None)  # wakes a consumer waiting on an empty buffer

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        if self._ended and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Unsubscribe now; further iteration ends."""
        self.close()

    def close(self) -> None:
        """Unsubscribe now (synchronous form of :meth:`aclose`)."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        self._ended = True
        if unsubscribe is not None:
            unsubscribe()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if self._unsubscribe is not None:
            self.close()


def open_stream(
    subscribe: Subscribe, unsubscribe: Unsubscribe, buffer: int
) -> tuple[EventStream, SubscriptionActor]:
    """A new stream fed by a new subscription."""
    holder: list[SubscriptionActor] = []
    events = EventStream(buffer, lambda: unsubscribe(holder[0]))
    # The subscription holds the stream weakly, so a consumer that walks away (break) lets
    # it be collected, which unsubscribes.
    stream_ref = weakref.ref(events)

    async def _deliver(event: Event) -> None:
        target = stream_ref()
        if target is not None:
            await target.put(event)

    def _end() -> None:
        target = stream_ref()
        if target is not None:
            target.end()

    actor = subscribe(_deliver)
    actor.on_closed = _end
    holder.append(actor)
    return events, actor


def observable_of(subscribe: Subscribe, unsubscribe: Unsubscribe) -> Observable[Event]:
    """An observable whose every subscription is a bus subscription (``bus.observe``)."""

    def _subscribe(
        observer: abc.ObserverBase[Event], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        actor = subscribe(observer.on_next)
        actor.on_closed = observer.on_completed
        return Disposable(lambda: unsubscribe(actor))

    return reactivex.create(_subscribe)
