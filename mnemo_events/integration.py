"""One-line event emission for engine code: ``await emit_memory_created(bus, memory_id=...)``.

Every helper is built for an engine's hot path:

- the bus is ``None`` or disabled: return ``None`` at once, nothing else is done;
- optional arguments left ``None`` are omitted from the payload;
- bad arguments (a tier of ``"lukewarm"``, a score of 3) raise
  :class:`~mnemo_events.exceptions.EventValidationError` at once, listing every problem,
  whatever the bus's ``events.validation`` mode;
- a full mailbox or a shut-down bus is logged (``integration.emit_failed``) and counted in
  :func:`integration_stats`, never raised into the engine; the helper returns ``None``.

Otherwise each helper returns the published :class:`~mnemo_events.event.Event`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mnemo_events._log import logger
from mnemo_events.event import Event
from mnemo_events.exceptions import BusClosedError, EventValidationError, QueueFullError
from mnemo_events.schemas import (
    ConsolidationType,
    DeletionReason,
    DreamStage,
    DreamTrigger,
    FillMethod,
    FormationReason,
    GapType,
    ResolutionType,
    Tier,
    is_registered,
    validate_event,
)

__all__ = [
    "EmitStats",
    "EventPublisher",
    "emit_consolidation_completed",
    "emit_consolidation_started",
    "emit_contradiction_detected",
    "emit_contradiction_resolved",
    "emit_dream_completed",
    "emit_dream_failed",
    "emit_dream_started",
    "emit_event",
    "emit_gap_detected",
    "emit_gap_filled",
    "emit_memory_accessed",
    "emit_memory_consolidated",
    "emit_memory_created",
    "emit_memory_deleted",
    "emit_synapse_fired",
    "emit_synapse_formed",
    "integration_stats",
    "reset_integration_stats",
]

_log = logger("integration")
_WARN_EVERY = 1_000


class EventPublisher(Protocol):
    """What the helpers need from a bus; :class:`~mnemo_events.event_bus.EventBus` has it."""

    @property
    def enabled(self) -> bool:
        """False when publishing is switched off."""
        ...

    async def publish(
        self,
        event_type: str,
        data: Mapping[str, Any],
        metadata: Mapping[str, Any] | None = None,
    ) -> Event:
        """Publish one event."""
        ...


@dataclass(frozen=True, slots=True)
class EmitStats:
    """Counters of every helper call in this process (see :func:`integration_stats`)."""

    emitted: int
    """Events the bus accepted."""
    skipped: int
    """Calls that returned None at once: no bus, or the bus disabled."""
    queue_full: int
    """Events dropped because the bus mailbox stayed full (``QueueFullError``)."""
    bus_closed: int
    """Events dropped because the bus was shut down (``BusClosedError``)."""

    @property
    def failed(self) -> int:
        """Events dropped on a publish failure, all causes."""
        return self.queue_full + self.bus_closed


class _Counters:
    __slots__ = ("bus_closed", "emitted", "queue_full", "skipped")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.emitted = self.skipped = self.queue_full = self.bus_closed = 0


_counters = _Counters()


def integration_stats() -> EmitStats:
    """A snapshot of the helpers' counters: emitted, skipped, and dropped per cause."""
    c = _counters
    return EmitStats(c.emitted, c.skipped, c.queue_full, c.bus_closed)


def reset_integration_stats() -> None:
    """Zero the helpers' counters (tests, or a long-running process's periodic report)."""
    _counters.reset()


async def _publish(
    bus: EventPublisher | None,
    event_type: str,
    data: Mapping[str, Any],
    metadata: Mapping[str, Any] | None,
) -> Event | None:
    """The one body behind every helper: skip, validate, publish, absorb delivery failures."""
    if bus is None or not bus.enabled:
        _counters.skipped += 1
        return None
    if is_registered(event_type):
        valid, errors = validate_event(event_type, data)
        if not valid:
            raise EventValidationError(event_type, errors)
    try:
        event = await bus.publish(event_type, data, metadata)
    except (QueueFullError, BusClosedError) as err:
        _note_failure(event_type, err)
        return None
    _counters.emitted += 1
    return event


def _note_failure(event_type: str, err: QueueFullError | BusClosedError) -> None:
    if isinstance(err, QueueFullError):
        _counters.queue_full += 1
        count = _counters.queue_full
    else:
        _counters.bus_closed += 1
        count = _counters.bus_closed
    # A full mailbox fails every emit until it drains: warn on the first and every 1000th.
    _log.warning_every(
        count,
        _WARN_EVERY,
        "integration.emit_failed",
        event_type=event_type,
        error=type(err).__name__,
        reason=str(err),
        failures=count,
    )


async def _emit_fields(event_type: str, arguments: dict[str, Any]) -> Event | None:
    """Publish a helper's arguments: its fields, ``None`` ones dropped, as the payload.

    Each helper passes ``locals()`` as its first statement, so the payload keys are exactly
    its parameter names (tests pin those to the model's fields).
    """
    bus: EventPublisher | None = arguments.pop("event_bus")
    if bus is None or not bus.enabled:  # the engine's hot path: nothing else to do
        _counters.skipped += 1
        return None
    metadata = arguments.pop("metadata")
    data = {name: value for name, value in arguments.items() if value is not None}
    return await _publish(bus, event_type, data, metadata)


async def emit_event(
    event_bus: EventPublisher | None,
    event_type: str,
    data: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Publish any event, registered or not, with the helpers' hot-path guarantees.

    ``data`` is published as given (``None`` values are kept). A registered type is validated
    first; an unregistered one is left to the bus, which publishes it with a warning.

    Raises:
        EventValidationError: ``data`` breaks the schema of a registered type.
        InvalidEventTypeError: ``event_type`` is not a well-formed dotted name.
    """
    return await _publish(event_bus, event_type, data, metadata)


# -- memory.* ---------------------------------------------------------------------------------


async def emit_memory_created(
    event_bus: EventPublisher | None,
    *,
    memory_id: str,
    content: str,
    tier: Tier,
    ltp_strength: float | None = None,
    eig: float | None = None,
    tags: Sequence[str] | None = None,
    category: str | None = None,
    agent_id: str | None = None,
    episode_id: str | None = None,
    content_preview: str | None = None,
    previous_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``memory.created``: a memory was stored."""
    return await _emit_fields("memory.created", locals())


async def emit_memory_accessed(
    event_bus: EventPublisher | None,
    *,
    memory_id: str,
    query: str,
    similarity_score: float | None = None,
    rank: int | None = None,
    tier: Tier | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``memory.accessed``: a memory was returned by a query."""
    return await _emit_fields("memory.accessed", locals())


async def emit_memory_deleted(
    event_bus: EventPublisher | None,
    *,
    memory_id: str,
    tier: Tier | None = None,
    reason: DeletionReason | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``memory.deleted``: a memory was removed."""
    return await _emit_fields("memory.deleted", locals())


async def emit_memory_consolidated(
    event_bus: EventPublisher | None,
    *,
    memory_id: str,
    from_tier: Tier,
    to_tier: Tier,
    consolidation_type: ConsolidationType | None = None,
    ltp_strength: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``memory.consolidated``: a consolidation cycle moved a memory between tiers."""
    return await _emit_fields("memory.consolidated", locals())


# -- consolidation.* --------------------------------------------------------------------------


async def emit_consolidation_started(
    event_bus: EventPublisher | None,
    *,
    cycle_id: str,
    trigger: str | None = None,
    memories_queued: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``consolidation.started``: a tier consolidation cycle began."""
    return await _emit_fields("consolidation.started", locals())


async def emit_consolidation_completed(
    event_bus: EventPublisher | None,
    *,
    cycle_id: str,
    duration_seconds: float,
    memories_processed: int | None = None,
    hot_to_warm: int | None = None,
    warm_to_cold: int | None = None,
    memories_consolidated: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``consolidation.completed``: a tier consolidation cycle finished."""
    return await _emit_fields("consolidation.completed", locals())


# -- contradiction.* --------------------------------------------------------------------------


async def emit_contradiction_detected(
    event_bus: EventPublisher | None,
    *,
    group_id: str,
    memory_a_id: str,
    memory_b_id: str,
    similarity_score: float | None = None,
    llm_confirmed: bool | None = None,
    llm_confidence: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``contradiction.detected``: two memories contradict each other."""
    return await _emit_fields("contradiction.detected", locals())


async def emit_contradiction_resolved(
    event_bus: EventPublisher | None,
    *,
    group_id: str,
    resolution_type: ResolutionType | None = None,
    resolution_note: str | None = None,
    resolved_by: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``contradiction.resolved``: a contradiction group was resolved."""
    return await _emit_fields("contradiction.resolved", locals())


# -- dream.* ----------------------------------------------------------------------------------


async def emit_dream_started(
    event_bus: EventPublisher | None,
    *,
    session_id: str,
    trigger: DreamTrigger,
    schedule_name: str | None = None,
    max_memories: int | None = None,
    stages_enabled: Sequence[DreamStage] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``dream.started``: a dream session began."""
    return await _emit_fields("dream.started", locals())


async def emit_dream_completed(
    event_bus: EventPublisher | None,
    *,
    session_id: str,
    duration_seconds: float,
    memories_processed: int | None = None,
    clusters_found: int | None = None,
    patterns_extracted: int | None = None,
    contradictions_resolved: int | None = None,
    memories_promoted: int | None = None,
    dream_report_path: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``dream.completed``: a dream session finished."""
    return await _emit_fields("dream.completed", locals())


async def emit_dream_failed(
    event_bus: EventPublisher | None,
    *,
    session_id: str,
    error: str,
    stage: str | None = None,
    duration_seconds: float | None = None,
    memories_processed: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``dream.failed``: a dream session stopped on an error."""
    return await _emit_fields("dream.failed", locals())


# -- synapse.* --------------------------------------------------------------------------------


async def emit_synapse_formed(
    event_bus: EventPublisher | None,
    *,
    synapse_id: str,
    neuron_a_id: str,
    neuron_b_id: str,
    initial_strength: float | None = None,
    formation_reason: FormationReason | None = None,
    similarity: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``synapse.formed``: an associative link between two memories was created."""
    return await _emit_fields("synapse.formed", locals())


async def emit_synapse_fired(
    event_bus: EventPublisher | None,
    *,
    synapse_id: str,
    source_id: str,
    target_id: str,
    strength: float | None = None,
    was_successful: bool | None = None,
    context: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``synapse.fired``: a synapse carried activation from one memory to another."""
    return await _emit_fields("synapse.fired", locals())


# -- gap.* ------------------------------------------------------------------------------------


async def emit_gap_detected(
    event_bus: EventPublisher | None,
    *,
    gap_id: str,
    query: str,
    gap_type: GapType | None = None,
    related_memory_ids: Sequence[str] | None = None,
    severity: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``gap.detected``: a query revealed a gap in what the engine knows."""
    return await _emit_fields("gap.detected", locals())


async def emit_gap_filled(
    event_bus: EventPublisher | None,
    *,
    gap_id: str,
    memory_id: str,
    fill_method: FillMethod | None = None,
    confidence: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Event | None:
    """Emit ``gap.filled``: a knowledge gap was filled by a new memory."""
    return await _emit_fields("gap.filled", locals())
