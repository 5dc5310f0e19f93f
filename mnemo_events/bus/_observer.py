"""An RxPY observer that publishes what it observes: ``source.subscribe(bus.as_observer())``.

An engine that is itself reactive pushes straight into the bus. Elements are published one
at a time, in the order observed, by one task on the bus's event loop; ``on_next`` never
blocks the source (elements wait in an unbounded queue while the bus applies backpressure).
An element that cannot be published (malformed, invalid, the bus closed) is logged and
counted and the next one goes on; an ``on_error`` from the source is logged and counted too.

Accepted elements: an :class:`~mnemo_events.event.Event` (its type, data and metadata are
published again), a registered pydantic payload model, a dict ``{"type", "data",
"metadata"}``, a ``(type, data[, metadata])`` tuple, or, when the observer was made with an
``event_type``, any payload (dict or model) for that type.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from reactivex import abc

from mnemo_events._log import logger
from mnemo_events.event import Event

if TYPE_CHECKING:
    from mnemo_events.event_bus import EventBus

__all__ = ["BusObserver", "ObserverStats"]

_log = logger("bus")


@dataclass(frozen=True, slots=True)
class ObserverStats:
    """What a :class:`BusObserver` did so far."""

    published: int
    """Elements published."""
    failed: int
    """Elements that could not be published (each logged)."""
    source_errors: int
    """``on_error`` calls from the source (each logged)."""
    pending: int
    """Elements waiting to be published."""
    completed: bool
    """Whether the source completed."""


def _arguments(item: Any, event_type: str | None) -> tuple[Any, Any, Any]:
    if isinstance(item, Event):
        return item.type, item.data, item.metadata
    if event_type is not None:
        return event_type, item, None
    if isinstance(item, BaseModel):
        return item, None, None
    if isinstance(item, Mapping) and "type" in item:
        return item["type"], item.get("data", {}), item.get("metadata")
    if isinstance(item, tuple) and len(item) in (2, 3):
        return item[0], item[1], item[2] if len(item) == 3 else None
    raise TypeError(
        f"cannot publish a {type(item).__name__}: expected an Event, a payload model, a "
        "{'type', 'data'} dict or a (type, data[, metadata]) tuple"
    )


class BusObserver(abc.ObserverBase[Any]):
    """Publishes each observed element on ``bus``, in order (see the module docstring).

    Made by :meth:`EventBus.as_observer`, inside the bus's event loop; ``on_next`` may be
    called from any thread.
    """

    def __init__(self, bus: EventBus, event_type: str | None = None) -> None:
        self._bus = bus
        self._event_type = event_type
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._queue: deque[Any] = deque()
        self._task: asyncio.Task[None] | None = None
        self._published = 0
        self._failed = 0
        self._source_errors = 0
        self._completed = False

    # -- the Observer interface --------------------------------------------------------------

    def on_next(self, value: Any) -> None:
        """Queue one element for publishing."""
        if threading.get_ident() == self._thread:
            self._enqueue(value)
        else:
            self._loop.call_soon_threadsafe(self._enqueue, value)

    def on_error(self, error: Exception) -> None:
        """The source failed: logged and counted; elements already queued still go out."""
        self._source_errors += 1
        _log.error("bus.observer_source_failed", error=repr(error))

    def on_completed(self) -> None:
        """The source is done; elements already queued still go out."""
        self._completed = True

    # -- draining ----------------------------------------------------------------------------

    async def drain(self) -> None:
        """Wait until every element observed so far was published (or failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def statistics(self) -> ObserverStats:
        """The counters so far."""
        return ObserverStats(
            self._published, self._failed, self._source_errors, len(self._queue), self._completed
        )

    def _enqueue(self, value: Any) -> None:
        self._queue.append(value)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="mnemo-events observer")

    async def _run(self) -> None:
        queue = self._queue
        while queue:
            item = queue.popleft()
            try:
                event_type, data, metadata = _arguments(item, self._event_type)
                await self._bus.publish(event_type, data, metadata)
            except Exception as err:  # the source goes on: one bad element is data, not fatal
                self._failed += 1
                _log.warning("bus.observer_publish_failed", error=repr(err), failed=self._failed)
            else:
                self._published += 1
