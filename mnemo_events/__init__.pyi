"""The public names of :mod:`mnemo_events`: the one list.

``__init__.py`` reads this stub (through ``lazy_loader``) to resolve each name on first use
and to build ``__all__``; type checkers read it as the package's interface.
"""

from .bus._jetstream_config import (
    JetStreamConfig as JetStreamConfig,
)
from .bus._jetstream_observable import (
    EventReplay as EventReplay,
)
from .bus._stream import (
    EventStream as EventStream,
)
from .bus._subscription import (
    SubscriptionInfo as SubscriptionInfo,
)
from .config import (
    EventsConfig as EventsConfig,
)
from .config import (
    RetryConfig as RetryConfig,
)
from .config import (
    ServerConfig as ServerConfig,
)
from .config import (
    Settings as Settings,
)
from .config import (
    WebhooksConfig as WebhooksConfig,
)
from .config import (
    load_config as load_config,
)
from .event import (
    Event as Event,
)
from .event_bus import (
    BusState as BusState,
)
from .event_bus import (
    EventBus as EventBus,
)
from .event_bus import (
    JetStreamTransport as JetStreamTransport,
)
from .event_bus import (
    get_event_bus as get_event_bus,
)
from .event_bus import (
    reset_event_bus as reset_event_bus,
)
from .exceptions import (
    BusClosedError as BusClosedError,
)
from .exceptions import (
    BusNotRunningError as BusNotRunningError,
)
from .exceptions import (
    ConfigError as ConfigError,
)
from .exceptions import (
    EventValidationError as EventValidationError,
)
from .exceptions import (
    InvalidEventTypeError as InvalidEventTypeError,
)
from .exceptions import (
    InvalidPatternError as InvalidPatternError,
)
from .exceptions import (
    MnemoEventsError as MnemoEventsError,
)
from .exceptions import (
    QueueFullError as QueueFullError,
)
from .exceptions import (
    SchemaRegistrationError as SchemaRegistrationError,
)
from .exceptions import (
    SubscriptionClosedError as SubscriptionClosedError,
)
from .exceptions import (
    TransportError as TransportError,
)
from .exceptions import (
    TransportTimeoutError as TransportTimeoutError,
)
from .exceptions import (
    UnsafeWebhookURLError as UnsafeWebhookURLError,
)
from .exceptions import (
    WebhookConfigError as WebhookConfigError,
)
from .exceptions import (
    WebhookError as WebhookError,
)
from .exceptions import (
    WebhookNotFoundError as WebhookNotFoundError,
)
from .exceptions import (
    WebhookPersistenceError as WebhookPersistenceError,
)
from .logging import (
    configure_logging as configure_logging,
)
from .patterns import (
    Pattern as Pattern,
)
from .patterns import (
    parse_pattern as parse_pattern,
)
from .patterns import (
    pattern_matches as pattern_matches,
)
from .patterns import (
    validate_event_type as validate_event_type,
)
from .schemas import (
    export_openapi_spec as export_openapi_spec,
)
from .schemas import (
    get_json_schema as get_json_schema,
)
from .schemas import (
    list_event_types as list_event_types,
)
from .schemas import (
    register_event_type as register_event_type,
)
from .schemas import (
    validate_event as validate_event,
)
from .webhook_manager import (
    Delivery as Delivery,
)
from .webhook_manager import (
    DeliveryStatus as DeliveryStatus,
)
from .webhook_manager import (
    Webhook as Webhook,
)
from .webhook_manager import (
    WebhookManager as WebhookManager,
)
from .webhook_manager import (
    WebhookSignature as WebhookSignature,
)
from .webhook_manager import (
    WebhookStatus as WebhookStatus,
)
from .webhook_manager import (
    get_webhook_manager as get_webhook_manager,
)
from .webhook_manager import (
    reset_webhook_manager as reset_webhook_manager,
)

__version__: str
