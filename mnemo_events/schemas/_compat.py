"""MnemoCore's schema classes as views of the registry: ``EventSchema`` and one class per type.

``MemoryCreatedSchema().validate(data)`` is ``default_registry.validate("memory.created",
data)``: the schema is the registry's (generated from :class:`MemoryCreated`), never a copy
kept here. :func:`get_schema_for_event_type` answers ``None`` for a type without a schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from mnemo_events.schemas._registry import SchemaRegistry, default_registry

__all__ = [
    "ConsolidationCompletedSchema",
    "ContradictionDetectedSchema",
    "ContradictionResolvedSchema",
    "DreamCompletedSchema",
    "DreamFailedSchema",
    "DreamStartedSchema",
    "EventSchema",
    "GapDetectedSchema",
    "GapFilledSchema",
    "MemoryAccessedSchema",
    "MemoryConsolidatedSchema",
    "MemoryCreatedSchema",
    "MemoryDeletedSchema",
    "SynapseFiredSchema",
    "SynapseFormedSchema",
    "get_schema_for_event_type",
]


class EventSchema:
    """One event type's schema, read from the registry (MnemoCore's ``EventSchema``).

    ``EventSchema("memory.created")`` views the default registry. Given a ``schema`` (a JSON
    Schema dict), it validates against that schema instead, compiled once by a registry of
    its own; the default registry is left alone (``register_event_type`` adds a type there).

    Attributes:
        event_type: the dotted type.
        description: the schema's description (the model's docstring).
    """

    __slots__ = ("_registry", "description", "event_type")

    def __init__(
        self,
        event_type: str,
        description: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        self.event_type = event_type
        if schema is None:
            self._registry = default_registry
        else:
            self._registry = SchemaRegistry(builtins=False)
            self._registry.register(event_type, schema)
        found = self._registry.json_schema(event_type).get("description")
        self.description = description if description is not None else (found or "")

    @property
    def schema(self) -> dict[str, Any]:
        """A copy of the JSON Schema (draft 2020-12) of ``data``.

        Raises:
            KeyError: the type is no longer registered.
        """
        return self._registry.json_schema(self.event_type)

    def validate(self, data: Any) -> tuple[bool, list[str]]:
        """``(True, [])``, or ``(False, messages)`` naming every problem (field and why)."""
        return self._registry.validate(self.event_type, data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(event_type={self.event_type!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventSchema):
            return NotImplemented
        return (self.event_type, self.schema) == (other.event_type, other.schema)

    def __hash__(self) -> int:
        return hash(self.event_type)


class _BuiltinSchema(EventSchema):
    """A built-in type's schema, constructed without arguments as in MnemoCore."""

    __slots__ = ()
    EVENT_TYPE: ClassVar[str]

    def __init__(self) -> None:
        super().__init__(self.EVENT_TYPE)


class MemoryCreatedSchema(_BuiltinSchema):
    """``memory.created`` (model :class:`~mnemo_events.schemas.MemoryCreated`)."""

    __slots__ = ()
    EVENT_TYPE = "memory.created"


class MemoryAccessedSchema(_BuiltinSchema):
    """``memory.accessed`` (model :class:`~mnemo_events.schemas.MemoryAccessed`)."""

    __slots__ = ()
    EVENT_TYPE = "memory.accessed"


class MemoryDeletedSchema(_BuiltinSchema):
    """``memory.deleted`` (model :class:`~mnemo_events.schemas.MemoryDeleted`)."""

    __slots__ = ()
    EVENT_TYPE = "memory.deleted"


class MemoryConsolidatedSchema(_BuiltinSchema):
    """``memory.consolidated`` (model :class:`~mnemo_events.schemas.MemoryConsolidated`)."""

    __slots__ = ()
    EVENT_TYPE = "memory.consolidated"


class ConsolidationCompletedSchema(_BuiltinSchema):
    """``consolidation.completed`` (model :class:`~mnemo_events.schemas.ConsolidationCompleted`)."""

    __slots__ = ()
    EVENT_TYPE = "consolidation.completed"


class ContradictionDetectedSchema(_BuiltinSchema):
    """``contradiction.detected`` (model :class:`~mnemo_events.schemas.ContradictionDetected`)."""

    __slots__ = ()
    EVENT_TYPE = "contradiction.detected"


class ContradictionResolvedSchema(_BuiltinSchema):
    """``contradiction.resolved`` (model :class:`~mnemo_events.schemas.ContradictionResolved`)."""

    __slots__ = ()
    EVENT_TYPE = "contradiction.resolved"


class DreamStartedSchema(_BuiltinSchema):
    """``dream.started`` (model :class:`~mnemo_events.schemas.DreamStarted`)."""

    __slots__ = ()
    EVENT_TYPE = "dream.started"


class DreamCompletedSchema(_BuiltinSchema):
    """``dream.completed`` (model :class:`~mnemo_events.schemas.DreamCompleted`)."""

    __slots__ = ()
    EVENT_TYPE = "dream.completed"


class DreamFailedSchema(_BuiltinSchema):
    """``dream.failed`` (model :class:`~mnemo_events.schemas.DreamFailed`)."""

    __slots__ = ()
    EVENT_TYPE = "dream.failed"


class SynapseFormedSchema(_BuiltinSchema):
    """``synapse.formed`` (model :class:`~mnemo_events.schemas.SynapseFormed`)."""

    __slots__ = ()
    EVENT_TYPE = "synapse.formed"


class SynapseFiredSchema(_BuiltinSchema):
    """``synapse.fired`` (model :class:`~mnemo_events.schemas.SynapseFired`)."""

    __slots__ = ()
    EVENT_TYPE = "synapse.fired"


class GapDetectedSchema(_BuiltinSchema):
    """``gap.detected`` (model :class:`~mnemo_events.schemas.GapDetected`)."""

    __slots__ = ()
    EVENT_TYPE = "gap.detected"


class GapFilledSchema(_BuiltinSchema):
    """``gap.filled`` (model :class:`~mnemo_events.schemas.GapFilled`)."""

    __slots__ = ()
    EVENT_TYPE = "gap.filled"


_BUILTIN_CLASSES: dict[str, type[_BuiltinSchema]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        MemoryCreatedSchema,
        MemoryAccessedSchema,
        MemoryDeletedSchema,
        MemoryConsolidatedSchema,
        ConsolidationCompletedSchema,
        ContradictionDetectedSchema,
        ContradictionResolvedSchema,
        DreamStartedSchema,
        DreamCompletedSchema,
        DreamFailedSchema,
        SynapseFormedSchema,
        SynapseFiredSchema,
        GapDetectedSchema,
        GapFilledSchema,
    )
}


def get_schema_for_event_type(event_type: str) -> EventSchema | None:
    """The schema of ``event_type`` (its MnemoCore class for a built-in type), or ``None``
    when the type has no registered schema."""
    if not default_registry.is_registered(event_type):
        return None
    cls = _BUILTIN_CLASSES.get(event_type)
    return cls() if cls is not None else EventSchema(event_type)
