"""The payload models of the 15 built-in event types, one pydantic model each.

These models are the single source of truth: the registry turns each into a JSON Schema
(draft 2020-12) and validates payloads with it. Optional fields default to ``None`` and mean
"absent": :meth:`EventPayload.to_data` omits them, and the generated schema lets them be left
out but never be ``null``. The models are strict (a boolean is not a number, a string is not an
integer), refuse unknown fields and non-finite numbers, and are frozen.
"""

# No `from __future__ import annotations`: pydantic resolves these annotations at runtime.

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BUILTIN_MODELS",
    "ConsolidationCompleted",
    "ConsolidationStarted",
    "ConsolidationType",
    "ContradictionDetected",
    "ContradictionResolved",
    "DeletionReason",
    "DreamCompleted",
    "DreamFailed",
    "DreamStage",
    "DreamStarted",
    "DreamTrigger",
    "EventPayload",
    "FillMethod",
    "FormationReason",
    "GapDetected",
    "GapFilled",
    "GapType",
    "MemoryAccessed",
    "MemoryConsolidated",
    "MemoryCreated",
    "MemoryDeleted",
    "ResolutionType",
    "SynapseFired",
    "SynapseFormed",
    "Tier",
]

Tier = Literal["hot", "warm", "cold"]
"""A memory tier: ``hot`` (working set), ``warm`` and ``cold`` (archive)."""

DreamStage = Literal[
    "episodic_clustering",
    "pattern_extraction",
    "recursive_synthesis",
    "contradiction_resolution",
    "semantic_promotion",
    "dream_report",
]
"""A stage of the dream pipeline, in the order the engine runs them."""

DeletionReason = Literal["manual", "eviction", "decay", "contradiction"]
"""Why a memory was removed (``memory.deleted``)."""
ConsolidationType = Literal["promotion", "demotion", "archival"]
"""The kind of tier move (``memory.consolidated``)."""
ResolutionType = Literal["manual", "auto", "merge", "delete_a", "delete_b"]
"""How a contradiction was resolved (``contradiction.resolved``)."""
DreamTrigger = Literal["idle", "scheduled", "manual"]
"""What started a dream session (``dream.started``)."""
FormationReason = Literal["auto_bind", "associative", "manual", "dream"]
"""Why a synapse formed (``synapse.formed``)."""
GapType = Literal["missing_info", "low_confidence", "contradiction"]
"""The kind of knowledge gap (``gap.detected``)."""
FillMethod = Literal["llm_generation", "user_input", "external_source"]
"""Where the knowledge filling a gap came from (``gap.filled``)."""

_Unit = Annotated[float, Field(ge=0, le=1)]
_Duration = Annotated[float, Field(ge=0)]
_Count = Annotated[int, Field(ge=0)]


class EventPayload(BaseModel):
    """Base of every payload model: strict, closed, frozen."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    event_type: ClassVar[str] = ""
    """The event type this model describes (``""`` on the base)."""

    def to_data(self) -> dict[str, Any]:
        """The payload as a plain dict for ``publish``, optional fields left unset omitted."""
        return self.model_dump(mode="json", exclude_none=True)


# -- memory.* ---------------------------------------------------------------------------------


class MemoryCreated(EventPayload):
    """A memory was stored."""

    event_type: ClassVar[str] = "memory.created"

    memory_id: str = Field(description="Id of the new memory.")
    content: str = Field(description="Full text of the memory.")
    tier: Tier = Field(description="Tier the memory was stored in.")
    ltp_strength: _Unit | None = Field(None, description="Long-term potentiation strength.")
    eig: _Unit | None = Field(None, description="Expected information gain of the memory.")
    tags: list[str] | None = Field(None, description="Free-form tags.")
    category: str | None = Field(None, description="Category the engine filed it under.")
    agent_id: str | None = Field(None, description="Agent that stored the memory.")
    episode_id: str | None = Field(None, description="Episode the memory belongs to.")
    content_preview: str | None = Field(None, description="Shortened content for displays.")
    previous_id: str | None = Field(None, description="Memory this one supersedes.")


class MemoryAccessed(EventPayload):
    """A memory was returned by a query."""

    event_type: ClassVar[str] = "memory.accessed"

    memory_id: str = Field(description="Id of the memory returned.")
    query: str = Field(description="Query that returned it.")
    similarity_score: _Unit | None = Field(None, description="Similarity to the query.")
    rank: Annotated[int, Field(ge=1)] | None = Field(None, description="1-based result rank.")
    tier: Tier | None = Field(None, description="Tier the memory was read from.")


class MemoryDeleted(EventPayload):
    """A memory was removed."""

    event_type: ClassVar[str] = "memory.deleted"

    memory_id: str = Field(description="Id of the removed memory.")
    tier: Tier | None = Field(None, description="Tier the memory was removed from.")
    reason: DeletionReason | None = Field(None, description="Why the memory was removed.")


class MemoryConsolidated(EventPayload):
    """A consolidation cycle moved a memory between tiers."""

    event_type: ClassVar[str] = "memory.consolidated"

    memory_id: str = Field(description="Id of the memory moved.")
    from_tier: Tier = Field(description="Tier before the move.")
    to_tier: Tier = Field(description="Tier after the move.")
    consolidation_type: ConsolidationType | None = Field(None, description="Kind of move.")
    ltp_strength: _Unit | None = Field(None, description="Strength that decided the move.")


# -- consolidation.* --------------------------------------------------------------------------


class ConsolidationStarted(EventPayload):
    """A tier consolidation cycle began."""

    event_type: ClassVar[str] = "consolidation.started"

    cycle_id: str = Field(description="Id of the cycle.")
    trigger: str | None = Field(None, description="What started it (e.g. scheduled, manual).")
    memories_queued: _Count | None = Field(None, description="Memories queued for review.")


class ConsolidationCompleted(EventPayload):
    """A tier consolidation cycle finished."""

    event_type: ClassVar[str] = "consolidation.completed"

    cycle_id: str = Field(description="Id of the cycle.")
    duration_seconds: _Duration = Field(description="Wall time of the cycle.")
    memories_processed: _Count | None = Field(None, description="Memories reviewed.")
    hot_to_warm: _Count | None = Field(None, description="Memories moved from hot to warm.")
    warm_to_cold: _Count | None = Field(None, description="Memories moved from warm to cold.")
    memories_consolidated: _Count | None = Field(None, description="Memories moved in all.")


# -- contradiction.* --------------------------------------------------------------------------


class ContradictionDetected(EventPayload):
    """Two memories were found to contradict each other."""

    event_type: ClassVar[str] = "contradiction.detected"

    group_id: str = Field(description="Id of the contradiction group.")
    memory_a_id: str = Field(description="First memory of the pair.")
    memory_b_id: str = Field(description="Second memory of the pair.")
    similarity_score: _Unit | None = Field(None, description="Similarity of the two memories.")
    llm_confirmed: bool | None = Field(None, description="Whether an LLM confirmed it.")
    llm_confidence: _Unit | None = Field(None, description="The LLM's confidence.")


class ContradictionResolved(EventPayload):
    """A contradiction group was resolved."""

    event_type: ClassVar[str] = "contradiction.resolved"

    group_id: str = Field(description="Id of the contradiction group.")
    resolution_type: ResolutionType | None = Field(None, description="How it was resolved.")
    resolution_note: str | None = Field(None, description="Free-form note.")
    resolved_by: str | None = Field(None, description="Who or what resolved it.")


# -- dream.* ----------------------------------------------------------------------------------


class DreamStarted(EventPayload):
    """A dream session (offline consolidation pipeline) began."""

    event_type: ClassVar[str] = "dream.started"

    session_id: str = Field(description="Id of the dream session.")
    trigger: DreamTrigger = Field(description="What started it.")
    schedule_name: str | None = Field(None, description="Schedule that fired, if scheduled.")
    max_memories: _Count | None = Field(None, description="Most memories the session reads.")
    stages_enabled: list[DreamStage] | None = Field(None, description="Stages it will run.")


class DreamCompleted(EventPayload):
    """A dream session finished."""

    event_type: ClassVar[str] = "dream.completed"

    session_id: str = Field(description="Id of the dream session.")
    duration_seconds: _Duration = Field(description="Wall time of the session.")
    memories_processed: _Count | None = Field(None, description="Memories read.")
    clusters_found: _Count | None = Field(None, description="Episodic clusters found.")
    patterns_extracted: _Count | None = Field(None, description="Patterns extracted.")
    contradictions_resolved: _Count | None = Field(None, description="Contradictions resolved.")
    memories_promoted: _Count | None = Field(None, description="Memories promoted.")
    dream_report_path: str | None = Field(None, description="Path of the written report.")


class DreamFailed(EventPayload):
    """A dream session stopped on an error."""

    event_type: ClassVar[str] = "dream.failed"

    session_id: str = Field(description="Id of the dream session.")
    error: str = Field(description="What went wrong.")
    stage: str | None = Field(None, description="Stage that failed.")
    duration_seconds: _Duration | None = Field(None, description="Wall time until the failure.")
    memories_processed: _Count | None = Field(None, description="Memories read before it.")


# -- synapse.* --------------------------------------------------------------------------------


class SynapseFormed(EventPayload):
    """An associative link between two memories was created."""

    event_type: ClassVar[str] = "synapse.formed"

    synapse_id: str = Field(description="Id of the synapse.")
    neuron_a_id: str = Field(description="First memory linked.")
    neuron_b_id: str = Field(description="Second memory linked.")
    initial_strength: _Unit | None = Field(None, description="Strength at formation.")
    formation_reason: FormationReason | None = Field(None, description="Why it formed.")
    similarity: _Unit | None = Field(None, description="Similarity of the two memories.")


class SynapseFired(EventPayload):
    """A synapse carried activation from one memory to another."""

    event_type: ClassVar[str] = "synapse.fired"

    synapse_id: str = Field(description="Id of the synapse.")
    source_id: str = Field(description="Memory the activation came from.")
    target_id: str = Field(description="Memory the activation reached.")
    strength: _Unit | None = Field(None, description="Strength after firing.")
    was_successful: bool | None = Field(None, description="Whether the target was activated.")
    context: str | None = Field(None, description="Query or task that caused the firing.")


# -- gap.* ------------------------------------------------------------------------------------


class GapDetected(EventPayload):
    """A query revealed a gap in what the engine knows."""

    event_type: ClassVar[str] = "gap.detected"

    gap_id: str = Field(description="Id of the knowledge gap.")
    query: str = Field(description="Query that revealed it.")
    gap_type: GapType | None = Field(None, description="Kind of gap.")
    related_memory_ids: list[str] | None = Field(None, description="Memories near the gap.")
    severity: _Unit | None = Field(None, description="How much the gap matters.")


class GapFilled(EventPayload):
    """A knowledge gap was filled by a new memory."""

    event_type: ClassVar[str] = "gap.filled"

    gap_id: str = Field(description="Id of the knowledge gap.")
    memory_id: str = Field(description="Memory that fills it.")
    fill_method: FillMethod | None = Field(
        None, description="Where the filling knowledge came from."
    )
    confidence: _Unit | None = Field(None, description="Confidence in the filling memory.")


BUILTIN_MODELS: Mapping[str, type[EventPayload]] = {
    model.event_type: model
    for model in (
        MemoryCreated,
        MemoryAccessed,
        MemoryDeleted,
        MemoryConsolidated,
        ConsolidationStarted,
        ConsolidationCompleted,
        ContradictionDetected,
        ContradictionResolved,
        DreamStarted,
        DreamCompleted,
        DreamFailed,
        SynapseFormed,
        SynapseFired,
        GapDetected,
        GapFilled,
    )
}
"""The built-in event types and their models, in the reference's order."""
