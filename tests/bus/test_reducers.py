"""The bus's stream reducers, as pure functions on a state (no event loop)."""

from __future__ import annotations

from mnemo_events.bus._reducers import StreamState, recent_events, record_batch
from mnemo_events.event import Event


def _events(*types: str) -> list[Event]:
    return [Event.create(event_type, {"n": n}) for n, event_type in enumerate(types)]


def test_record_batch_keeps_order_counts_types_and_bounds_history() -> None:
    """Folding batches keeps the newest history_size events in order and counts every type."""
    state = StreamState.empty(history_size=3)
    first = _events("a.x", "a.y", "a.x")
    second = _events("b.z", "a.x")
    assert record_batch(record_batch(state, first), second) is state
    assert list(state.history) == [first[2], second[0], second[1]]
    assert state.per_type == {"a.x": 3, "a.y": 1, "b.z": 1}
    assert state.dispatched == 5


def test_zero_history_keeps_counting() -> None:
    """With history_size 0 nothing is remembered, but every event is still counted."""
    state = record_batch(StreamState.empty(history_size=0), _events("a.x", "a.x"))
    assert list(state.history) == []
    assert state.dispatched == 2


def test_recent_events_filters_by_type_or_pattern_newest_last() -> None:
    """recent_events returns the newest matching events, oldest first, up to the limit."""
    events = _events("memory.created", "dream.started", "memory.deleted", "memory.created")
    state = record_batch(StreamState.empty(history_size=10), events)
    assert recent_events(state, None, 2) == events[2:]
    assert recent_events(state, "memory.created", 5) == [events[0], events[3]]
    assert recent_events(state, "memory.*", 2) == [events[2], events[3]]
    assert recent_events(state, "gap.>", 5) == []
    assert recent_events(state, None, 0) == []


def test_a_burst_of_one_type_is_counted_whole() -> None:
    """A batch of one type adds its length to that type's count (and empty batches nothing)."""
    state = StreamState.empty(history_size=10)
    record_batch(state, _events("a.x", "a.x", "a.x"))
    record_batch(state, [])
    record_batch(state, _events("a.x", "b.y"))
    assert state.per_type == {"a.x": 4, "b.y": 1}
    assert state.dispatched == 5
