"""``dream_sessions``: each dream session's outcome and duration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from reactivex import Observable, abc

from mnemo_events.event import Event
from mnemo_events.operators import ElementErrors, Pair, map_safe, match, pair

__all__ = ["DreamOutcome", "DreamSession", "dream_sessions"]

DreamOutcome = Literal["completed", "failed", "timed_out", "unfinished"]
"""``completed``/``failed``: the engine said so; ``timed_out``: no end within the timeout;
``unfinished``: the stream ended first."""


@dataclass(frozen=True, slots=True)
class DreamSession:
    """One dream session, from its ``dream.started`` to how it ended."""

    session_id: str
    outcome: DreamOutcome
    started_at: datetime
    """Scheduler time ``dream.started`` arrived."""
    ended_at: datetime
    """Scheduler time of the end event, the timeout, or the end of the stream."""
    duration: float
    """Seconds from start to end on the scheduler's clock."""
    reported_duration: float | None
    """The engine's own ``duration_seconds``, when the end event carries one."""
    trigger: str | None
    error: str | None
    """The ``error`` of a ``dream.failed``."""
    start_event_id: str
    end_event_id: str | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _to_session(found: Pair[Event]) -> DreamSession:
    start, end = found.start, found.end
    outcome: DreamOutcome
    if end is None:
        outcome = "timed_out" if found.status == "timed_out" else "unfinished"
    else:
        outcome = "completed" if end.type == "dream.completed" else "failed"
    return DreamSession(
        session_id=str(found.key),
        outcome=outcome,
        started_at=found.started_at,
        ended_at=found.ended_at,
        duration=found.duration,
        reported_duration=None if end is None else _number(end.data.get("duration_seconds")),
        trigger=_text(start.data.get("trigger")),
        error=None if end is None else _text(end.data.get("error")),
        start_event_id=start.id,
        end_event_id=None if end is None else end.id,
    )


def _is_start(event: Event) -> bool:
    return event.type == "dream.started"


def _is_end(event: Event) -> bool:
    return event.type in ("dream.completed", "dream.failed")


def _session_id(event: Event) -> str:
    session_id = event.data["session_id"]
    if not isinstance(session_id, str):
        raise TypeError(f"session_id must be a string, got {session_id!r}")
    return session_id


def dream_sessions(
    events: Observable[Event],
    *,
    timeout: float = 1800.0,
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Observable[DreamSession]:
    """Pair ``dream.started`` with ``dream.completed``/``dream.failed`` by ``session_id``.

    Emits one :class:`DreamSession` per session when it ends; a session with no end within
    ``timeout`` seconds is emitted as ``timed_out`` (a later end is then ignored), and the
    sessions still open when ``events`` completes as ``unfinished``. A repeated
    ``dream.started`` of an open session is a duplicate and ignored. Durations use the
    scheduler's clock. An event without a string ``session_id`` is dropped, logged and
    counted in ``errors``.

    ::

        events: -s--t-c------|      s, t start sessions 1, 2; c completes 1; timeout=5
        [      dream_sessions     ]
        result: ------a--b---|      a=(1, completed, 5 s)  b=(2, timed_out, 5 s)

    Raises:
        ConfigError: ``timeout`` is not a positive number.
    """
    return events.pipe(
        match("dream.*"),
        pair(
            _is_start,
            _is_end,
            key=_session_id,
            timeout=timeout,
            scheduler=scheduler,
            errors=errors,
        ),
        map_safe(_to_session, stage="dream_sessions", errors=errors),
    )
