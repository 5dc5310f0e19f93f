"""``contradiction_watch``: contradictions left unresolved for too long."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reactivex import Observable, abc
from reactivex import operators as ops

from mnemo_events.event import Event
from mnemo_events.operators import ElementErrors, Pair, map_safe, match, pair

__all__ = ["ContradictionAlert", "contradiction_watch"]


@dataclass(frozen=True, slots=True)
class ContradictionAlert:
    """A contradiction group detected and not resolved within the time limit."""

    group_id: str
    memory_a_id: str | None
    memory_b_id: str | None
    detected_at: datetime
    """Scheduler time ``contradiction.detected`` arrived."""
    alerted_at: datetime
    waited: float
    """Seconds waited for ``contradiction.resolved`` (the limit)."""
    detected_event_id: str


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _group_id(event: Event) -> str:
    group_id = event.data["group_id"]
    if not isinstance(group_id, str):
        raise TypeError(f"group_id must be a string, got {group_id!r}")
    return group_id


def _is_detected(event: Event) -> bool:
    return event.type == "contradiction.detected"


def _is_resolved(event: Event) -> bool:
    return event.type == "contradiction.resolved"


def _is_overdue(found: Pair[Event]) -> bool:
    return found.status == "timed_out"


def _to_alert(found: Pair[Event]) -> ContradictionAlert:
    detected = found.start
    return ContradictionAlert(
        group_id=str(found.key),
        memory_a_id=_text(detected.data.get("memory_a_id")),
        memory_b_id=_text(detected.data.get("memory_b_id")),
        detected_at=found.started_at,
        alerted_at=found.ended_at,
        waited=found.duration,
        detected_event_id=detected.id,
    )


def contradiction_watch(
    events: Observable[Event],
    *,
    limit: float = 300.0,
    scheduler: abc.SchedulerBase | None = None,
    errors: ElementErrors | None = None,
) -> Observable[ContradictionAlert]:
    """Alert when a ``contradiction.detected`` gets no ``contradiction.resolved`` in time.

    Matches by ``group_id``. The clock of a group starts at its first detection (a repeated
    detection while it is open does not reset it); a resolution after the alert is ignored.
    Nothing is emitted for groups resolved in time, nor for groups still open when
    ``events`` completes. An event without a string ``group_id`` is dropped, logged and
    counted in ``errors``.

    ::

        events: -d-e-r-------|      d, e detect groups 1, 2; r resolves 1; limit=6
        [  contradiction_watch  ]
        result: ---------a---|      a=alert(group 2, waited 6 s)

    Raises:
        ConfigError: ``limit`` is not a positive number.
    """
    return events.pipe(
        match("contradiction.*"),
        pair(
            _is_detected,
            _is_resolved,
            key=_group_id,
            timeout=limit,
            scheduler=scheduler,
            errors=errors,
        ),
        ops.filter(_is_overdue),
        map_safe(_to_alert, stage="contradiction_watch", errors=errors),
    )
