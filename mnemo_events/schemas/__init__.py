"""Event payload schemas: pydantic models, the JSON Schema registry and the OpenAPI export.

::

    from mnemo_events.schemas import MemoryCreated, validate_event

    ok, errors = validate_event("memory.created", {"memory_id": "m1", "tier": "lukewarm"})
    # (False, ["data.content: required field is missing",
    #          "data.tier: expected one of 'hot', 'warm', 'cold', got 'lukewarm' (str)"])
    payload = MemoryCreated(memory_id="m1", content="...", tier="hot").to_data()
"""

from __future__ import annotations

from mnemo_events.schemas._models import (
    BUILTIN_MODELS,
    ConsolidationCompleted,
    ConsolidationStarted,
    ConsolidationType,
    ContradictionDetected,
    ContradictionResolved,
    DeletionReason,
    DreamCompleted,
    DreamFailed,
    DreamStage,
    DreamStarted,
    DreamTrigger,
    EventPayload,
    FillMethod,
    FormationReason,
    GapDetected,
    GapFilled,
    GapType,
    MemoryAccessed,
    MemoryConsolidated,
    MemoryCreated,
    MemoryDeleted,
    ResolutionType,
    SynapseFired,
    SynapseFormed,
    Tier,
)
from mnemo_events.schemas._openapi import SIGNATURE_HEADER, export_openapi_spec
from mnemo_events.schemas._registry import (
    DIALECT,
    SchemaRegistry,
    default_registry,
    get_json_schema,
    get_model,
    is_registered,
    list_event_types,
    model_json_schema,
    register_event_type,
    suggest_event_types,
    unregister_event_type,
    validate_event,
)

__all__ = [
    "BUILTIN_MODELS",
    "DIALECT",
    "SIGNATURE_HEADER",
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
    "SchemaRegistry",
    "SynapseFired",
    "SynapseFormed",
    "Tier",
    "default_registry",
    "export_openapi_spec",
    "get_json_schema",
    "get_model",
    "is_registered",
    "list_event_types",
    "model_json_schema",
    "register_event_type",
    "suggest_event_types",
    "unregister_event_type",
    "validate_event",
]
