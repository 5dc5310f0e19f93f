"""History and per-type counts as ``scan`` reducers over the bus stream.

The reducers are plain functions on a small state object, testable without an event loop;
the bus folds its stream of batches through :func:`record_batch` with ``ops.scan``. The
state is updated in place (one allocation per bus, not per event) and handed on as the
scan's accumulation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from operator import attrgetter

from mnemo_events.event import Event
from mnemo_events.patterns import parse_pattern

__all__ = ["StreamState", "recent_events", "record_batch"]

_type_of = attrgetter("type")


@dataclass(slots=True)
class StreamState:
    """What the bus remembers of its stream."""

    history: deque[Event]
    """The most recent events, oldest first, bounded by ``history_size``."""
    per_type: dict[str, int] = field(default_factory=dict)
    """Events dispatched per event type."""
    dispatched: int = 0
    """Events that have flowed through the stream."""

    @classmethod
    def empty(cls, history_size: int) -> StreamState:
        """A fresh state keeping at most ``history_size`` events."""
        return cls(history=deque(maxlen=history_size))


def record_batch(state: StreamState, batch: list[Event]) -> StreamState:
    """Fold a batch of events into the state, in order."""
    state.history.extend(batch)
    per_type = state.per_type
    types = list(map(_type_of, batch))
    first = types[0] if types else None
    if first is not None and types.count(first) == len(types):
        per_type[first] = per_type.get(first, 0) + len(types)  # a burst of one type
    else:
        for event_type in types:
            per_type[event_type] = per_type.get(event_type, 0) + 1
    state.dispatched += len(batch)
    return state


def recent_events(state: StreamState, pattern: str | None, limit: int) -> list[Event]:
    """The newest ``limit`` events matching ``pattern`` (exact type or pattern), oldest first."""
    if limit <= 0:
        return []
    if pattern is None:
        history = state.history
        return list(history)[-limit:]
    compiled = parse_pattern(pattern)
    picked: list[Event] = []
    for event in reversed(state.history):
        if compiled.matches(event.type):
            picked.append(event)
            if len(picked) == limit:
                break
    picked.reverse()
    return picked
