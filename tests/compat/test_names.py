"""MnemoCore's public names import from the same module paths and are views of our types."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

import mnemo_events
from mnemo_events import exceptions, schemas
from mnemo_events.bus._subscription import SubscriptionInfo
from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.webhooks.models import Delivery, Webhook
from tests.helpers.payloads import VALID_PAYLOADS

# Every public name of MnemoCore's events package, by the module it imports from there.
MNEMOCORE_NAMES: dict[str, list[str]] = {
    "mnemo_events": [
        "EventBus", "get_event_bus", "Event", "EventHandler", "EventFilter", "WebhookManager",
        "get_webhook_manager", "WebhookConfig", "WebhookDelivery", "WebhookSignature",
        "WebhookRetryConfig", "EventSchema", "MemoryCreatedSchema", "MemoryAccessedSchema",
        "MemoryDeletedSchema", "MemoryConsolidatedSchema", "ConsolidationCompletedSchema",
        "ContradictionDetectedSchema", "ContradictionResolvedSchema", "DreamStartedSchema",
        "DreamCompletedSchema", "DreamFailedSchema", "SynapseFormedSchema", "SynapseFiredSchema",
        "GapDetectedSchema", "GapFilledSchema", "validate_event", "get_schema_for_event_type",
        "integration", "emit_event", "emit_memory_created", "emit_memory_accessed",
        "emit_memory_deleted", "emit_memory_consolidated", "emit_consolidation_completed",
        "emit_contradiction_detected", "emit_contradiction_resolved", "emit_dream_started",
        "emit_dream_completed", "emit_dream_failed", "emit_synapse_formed", "emit_synapse_fired",
        "emit_gap_detected", "emit_gap_filled",
    ],
    "mnemo_events.event_bus": [
        "Event", "EventBus", "EventFilter", "EventHandler", "Subscription", "get_event_bus",
        "reset_event_bus",
    ],
    "mnemo_events.webhook_manager": [
        "RetryConfig", "SensitiveWebhookHeaderError", "UnsafeWebhookPersistenceError",
        "WebhookConfig", "WebhookDelivery", "WebhookManager", "WebhookPersistenceCommittedError",
        "WebhookPersistenceError", "WebhookSecretResolver", "WebhookSignature",
        "get_webhook_manager", "reset_webhook_manager", "resolve_webhook_secret_from_environment",
    ],
    "mnemo_events.schemas": [
        "EventSchema", "MemoryCreatedSchema", "MemoryAccessedSchema", "MemoryDeletedSchema",
        "MemoryConsolidatedSchema", "ConsolidationCompletedSchema", "ContradictionDetectedSchema",
        "ContradictionResolvedSchema", "DreamStartedSchema", "DreamCompletedSchema",
        "DreamFailedSchema", "SynapseFormedSchema", "SynapseFiredSchema", "GapDetectedSchema",
        "GapFilledSchema", "validate_event", "get_schema_for_event_type", "list_event_types",
        "get_json_schema", "export_openapi_spec",
    ],
    "mnemo_events.integration": [
        "emit_event", "emit_memory_created", "emit_dream_completed", "emit_gap_filled",
    ],
}  # fmt: skip

SCHEMA_CLASSES = {
    "memory.created": schemas.MemoryCreatedSchema,
    "memory.accessed": schemas.MemoryAccessedSchema,
    "memory.deleted": schemas.MemoryDeletedSchema,
    "memory.consolidated": schemas.MemoryConsolidatedSchema,
    "consolidation.completed": schemas.ConsolidationCompletedSchema,
    "contradiction.detected": schemas.ContradictionDetectedSchema,
    "contradiction.resolved": schemas.ContradictionResolvedSchema,
    "dream.started": schemas.DreamStartedSchema,
    "dream.completed": schemas.DreamCompletedSchema,
    "dream.failed": schemas.DreamFailedSchema,
    "synapse.formed": schemas.SynapseFormedSchema,
    "synapse.fired": schemas.SynapseFiredSchema,
    "gap.detected": schemas.GapDetectedSchema,
    "gap.filled": schemas.GapFilledSchema,
}


@pytest.mark.parametrize(("module", "names"), MNEMOCORE_NAMES.items())
def test_mnemocore_names_import_from_the_same_paths(module: str, names: list[str]) -> None:
    """Each MnemoCore name imports from its MnemoCore module path (renamed to mnemo_events)."""
    found = importlib.import_module(module)
    assert [name for name in names if not hasattr(found, name)] == []
    if hasattr(found, "__all__"):
        assert set(names) - {"integration"} <= set(found.__all__)


def test_names_are_our_types_not_copies() -> None:
    """The MnemoCore names are our own classes under a second name, never a second type."""
    from mnemo_events.event_bus import Subscription
    from mnemo_events.webhook_manager import WebhookConfig, WebhookDelivery

    assert WebhookConfig is Webhook
    assert WebhookDelivery is Delivery
    assert mnemo_events.WebhookRetryConfig is RetryConfig
    assert Subscription is SubscriptionInfo
    assert mnemo_events.integration is importlib.import_module("mnemo_events.integration")


@pytest.mark.parametrize(
    ("name", "parents"),
    [
        ("WebhookPersistenceCommittedError", (exceptions.WebhookPersistenceError,)),
        ("UnsafeWebhookPersistenceError", (exceptions.WebhookPersistenceError,)),
        (
            "SensitiveWebhookHeaderError",
            (exceptions.WebhookPersistenceError, exceptions.WebhookConfigError, ValueError),
        ),
    ],
)
def test_mnemocore_errors_sit_in_our_tree(name: str, parents: tuple[type, ...]) -> None:
    """MnemoCore's webhook errors are in our tree, catchable as MnemoCore's bases were."""
    from mnemo_events import webhook_manager

    error = getattr(webhook_manager, name)
    assert error is getattr(exceptions, name)
    assert issubclass(error, (exceptions.MnemoEventsError, *parents))
    assert all(issubclass(error, parent) for parent in parents)


class TestSchemaViews:
    """MnemoCore's schema classes read the registry."""

    @pytest.mark.parametrize(("event_type", "cls"), SCHEMA_CLASSES.items())
    def test_each_class_validates_as_the_registry(
        self, event_type: str, cls: type[schemas.EventSchema]
    ) -> None:
        """``XSchema()`` needs no argument, names its type, and validates as the registry."""
        view = cls()  # type: ignore[call-arg]
        assert view.event_type == event_type
        assert view.schema == schemas.get_json_schema(event_type)
        assert view.description
        assert view.validate(VALID_PAYLOADS[event_type]) == (True, [])
        assert view.validate({}) == schemas.default_registry.validate(event_type, {})
        assert view.validate({})[0] is False

    def test_get_schema_for_event_type(self) -> None:
        """Built-in types get their MnemoCore class, other registered types a plain view,
        unknown types None."""
        assert isinstance(
            schemas.get_schema_for_event_type("memory.created"), schemas.MemoryCreatedSchema
        )
        started = schemas.get_schema_for_event_type("consolidation.started")
        assert type(started) is schemas.EventSchema
        assert started.event_type == "consolidation.started"
        assert schemas.get_schema_for_event_type("unknown.event") is None

    def test_an_event_schema_of_ones_own(self) -> None:
        """``EventSchema(type, description, schema)`` validates against that schema, without
        registering the type."""
        mine = schemas.EventSchema(
            "app.pinged",
            "a ping",
            {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}},
        )
        assert mine.validate({"n": 1}) == (True, [])
        valid, errors = mine.validate({"n": "one"})
        assert valid is False
        assert any("n" in error for error in errors)
        assert not schemas.is_registered("app.pinged")

    def test_unknown_field_is_named(self) -> None:
        """An unknown field is refused with a message saying "unknown", as MnemoCore's was."""
        data: dict[str, Any] = {**VALID_PAYLOADS["memory.deleted"], "unknown_field": 1}
        valid, errors = schemas.MemoryDeletedSchema().validate(data)
        assert valid is False
        assert any("unknown" in error.lower() for error in errors)


def test_event_needs_only_type_and_data() -> None:
    """``Event(type=..., data=...)`` fills id, metadata and published_at, as MnemoCore's did."""
    event = Event(type="memory.deleted", data={"memory_id": "m1"})
    assert event.id.startswith("evt_")
    assert event.metadata == {}
    assert event.published_at.tzinfo is not None
    assert Event(id="evt_1", type="x.y", data={}, metadata={}).id == "evt_1"
    with pytest.raises(exceptions.EventValidationError, match="type"):
        Event(data={})
