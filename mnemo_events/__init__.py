"""mnemo-events: the event system of a cognitive-memory engine.

An actor-model event bus on RxPY (:class:`EventBus`), typed event schemas, and signed,
retried, durable webhooks (:class:`WebhookManager`). The reference's module paths work too:
``mnemo_events.event_bus``, ``mnemo_events.webhook_manager``, ``mnemo_events.schemas``,
``mnemo_events.integration``.
"""

import importlib.metadata as _metadata

try:
    __version__ = _metadata.version("mnemo-events")
except _metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# `__version__` is set first: the webhook sender's User-Agent reads it at import.
from mnemo_events._stream import EventStream
from mnemo_events._subscription import SubscriptionInfo
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
