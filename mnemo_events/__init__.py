"""mnemo-events: the event system of a cognitive-memory engine.

An actor-model event bus on RxPY (:class:`EventBus`), typed event schemas, and signed,
retried, durable webhooks (:class:`WebhookManager`). The reference's module paths work too:
``mnemo_events.event_bus``, ``mnemo_events.webhook_manager``, ``mnemo_events.schemas``,
``mnemo_events.integration``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mnemo_events.bus._stream import EventStream
    from mnemo_events.bus._subscription import SubscriptionInfo
    from mnemo_events.config import (
        EventsConfig,
        RetryConfig,
        ServerConfig,
        Settings,
        WebhooksConfig,
        load_config,
    )
    from mnemo_events.event import Event
    from mnemo_events.event_bus import BusState, EventBus, get_event_bus, reset_event_bus
    from mnemo_events.exceptions import (
        BusClosedError,
        ConfigError,
        EventValidationError,
        InvalidEventTypeError,
        InvalidPatternError,
        MnemoEventsError,
        QueueFullError,
        SchemaRegistrationError,
        UnsafeWebhookURLError,
        WebhookConfigError,
        WebhookError,
        WebhookNotFoundError,
        WebhookPersistenceError,
    )
    from mnemo_events.logging import configure_logging
    from mnemo_events.patterns import Pattern, parse_pattern, pattern_matches, validate_event_type
    from mnemo_events.schemas import (
        export_openapi_spec,
        get_json_schema,
        list_event_types,
        register_event_type,
        validate_event,
    )
    from mnemo_events.webhook_manager import (
        Delivery,
        DeliveryStatus,
        Webhook,
        WebhookManager,
        WebhookSignature,
        WebhookStatus,
        get_webhook_manager,
        reset_webhook_manager,
    )

    __version__: str

# Public names resolve on first use (PEP 562), so `import mnemo_events.event_bus` does not pay
# for aiohttp and the webhook manager, and the CLI starts faster.
_LAZY: dict[str, str] = {
    "BusClosedError": "mnemo_events.exceptions",
    "BusState": "mnemo_events.event_bus",
    "ConfigError": "mnemo_events.exceptions",
    "Delivery": "mnemo_events.webhook_manager",
    "DeliveryStatus": "mnemo_events.webhook_manager",
    "Event": "mnemo_events.event",
    "EventBus": "mnemo_events.event_bus",
    "EventStream": "mnemo_events.bus._stream",
    "EventValidationError": "mnemo_events.exceptions",
    "EventsConfig": "mnemo_events.config",
    "InvalidEventTypeError": "mnemo_events.exceptions",
    "InvalidPatternError": "mnemo_events.exceptions",
    "MnemoEventsError": "mnemo_events.exceptions",
    "Pattern": "mnemo_events.patterns",
    "QueueFullError": "mnemo_events.exceptions",
    "RetryConfig": "mnemo_events.config",
    "SchemaRegistrationError": "mnemo_events.exceptions",
    "ServerConfig": "mnemo_events.config",
    "Settings": "mnemo_events.config",
    "SubscriptionInfo": "mnemo_events.bus._subscription",
    "UnsafeWebhookURLError": "mnemo_events.exceptions",
    "Webhook": "mnemo_events.webhook_manager",
    "WebhookConfigError": "mnemo_events.exceptions",
    "WebhookError": "mnemo_events.exceptions",
    "WebhookManager": "mnemo_events.webhook_manager",
    "WebhookNotFoundError": "mnemo_events.exceptions",
    "WebhookPersistenceError": "mnemo_events.exceptions",
    "WebhookSignature": "mnemo_events.webhook_manager",
    "WebhookStatus": "mnemo_events.webhook_manager",
    "WebhooksConfig": "mnemo_events.config",
    "configure_logging": "mnemo_events.logging",
    "export_openapi_spec": "mnemo_events.schemas",
    "get_event_bus": "mnemo_events.event_bus",
    "get_json_schema": "mnemo_events.schemas",
    "get_webhook_manager": "mnemo_events.webhook_manager",
    "list_event_types": "mnemo_events.schemas",
    "load_config": "mnemo_events.config",
    "parse_pattern": "mnemo_events.patterns",
    "pattern_matches": "mnemo_events.patterns",
    "register_event_type": "mnemo_events.schemas",
    "reset_event_bus": "mnemo_events.event_bus",
    "reset_webhook_manager": "mnemo_events.webhook_manager",
    "validate_event": "mnemo_events.schemas",
    "validate_event_type": "mnemo_events.patterns",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib import metadata

        try:
            value: Any = metadata.version("mnemo-events")
        except metadata.PackageNotFoundError:  # a source tree that was never installed
            value = "0.0.0+unknown"
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'mnemo_events' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "BusClosedError",
    "BusState",
    "ConfigError",
    "Delivery",
    "DeliveryStatus",
    "Event",
    "EventBus",
    "EventStream",
    "EventValidationError",
    "EventsConfig",
    "InvalidEventTypeError",
    "InvalidPatternError",
    "MnemoEventsError",
    "Pattern",
    "QueueFullError",
    "RetryConfig",
    "SchemaRegistrationError",
    "ServerConfig",
    "Settings",
    "SubscriptionInfo",
    "UnsafeWebhookURLError",
    "Webhook",
    "WebhookConfigError",
    "WebhookError",
    "WebhookManager",
    "WebhookNotFoundError",
    "WebhookPersistenceError",
    "WebhookSignature",
    "WebhookStatus",
    "WebhooksConfig",
    "__version__",
    "configure_logging",
    "export_openapi_spec",
    "get_event_bus",
    "get_json_schema",
    "get_webhook_manager",
    "list_event_types",
    "load_config",
    "parse_pattern",
    "pattern_matches",
    "register_event_type",
    "reset_event_bus",
    "reset_webhook_manager",
    "validate_event",
    "validate_event_type",
]
