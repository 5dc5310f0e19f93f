"""``bus.replay(...)``: past events as an RxPY observable and as an async iterator.

Transport-agnostic (no nats-py import): the source is a function returning a fresh async
iterator, the stream's on JetStream or this process's history in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from reactivex import Observable, abc
from reactivex.disposable import Disposable

from mnemo_events._log import logger
from mnemo_events.event import Event

__all__ = ["EventReplay"]

_log = logger("bus")


class EventReplay(Observable[Event]):
    """Past events, as an RxPY observable and as an async iterator (``bus.replay``).

    Each subscription and each ``async for`` reads the past afresh: on the event loop, in
    stream order, completing at the end of what was stored when it began. An observer's
    ``on_next`` that raises is logged and counted (``errors``) and the replay goes on; a
    transport failure ends it with ``on_error`` (or raises from the iterator).
    """

    def __init__(self, source: Callable[[], AsyncIterator[Event]]) -> None:
        self._source = source
        self._tasks: set[asyncio.Task[None]] = set()
        self.errors = 0
        """Observer callbacks that raised."""
        super().__init__(self._subscribe_core_replay)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._source().__aiter__()

    def _subscribe_core_replay(
        self, observer: abc.ObserverBase[Event], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        task = asyncio.get_running_loop().create_task(self._pump(observer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

        def _dispose() -> None:
            task.cancel()

        return Disposable(_dispose)

    async def _pump(self, observer: abc.ObserverBase[Event]) -> None:
        try:
            async for event in self._source():
                try:
                    observer.on_next(event)
                except Exception as err:
                    self.errors += 1
                    _log.error("bus.replay_observer_failed", event_id=event.id, error=repr(err))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            observer.on_error(err)
            return
        observer.on_completed()
