"""The public names of :mod:`mnemo_events`: the one list.

``__init__.py`` reads this stub (through ``lazy_loader``) to resolve each name on first use
and to build ``__all__``; type checkers read it as the package's interface.
"""

from . import integration as integration
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
    BusObserver as BusObserver,
)
from .event_bus import (
    BusState as BusState,
)
from .event_bus import (
    EventBus as EventBus,
)
from .event_bus import (
    EventFilter as EventFilter,
)
from .event_bus import (
    EventHandler as EventHandler,
)
from .event_bus import (
    JetStreamTransport as JetStreamTransport,
)
from .event_bus import (
    Subscription as Subscription,
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
    DeliveryStoreClosedError as DeliveryStoreClosedError,
)
from .exceptions import (
    DeliveryStoreCorruptError as DeliveryStoreCorruptError,
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
    RemoteStreamError as RemoteStreamError,
)
from .exceptions import (
    SchemaRegistrationError as SchemaRegistrationError,
)
from .exceptions import (
    SensitiveWebhookHeaderError as SensitiveWebhookHeaderError,
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
    UnsafeWebhookPersistenceError as UnsafeWebhookPersistenceError,
)
from .exceptions import (
    UnsafeWebhookURLError as UnsafeWebhookURLError,
)
from .exceptions import (
    WebhookActorClosedError as WebhookActorClosedError,
)
from .exceptions import (
    WebhookConfigError as WebhookConfigError,
)
from .exceptions import (
    WebhookError as WebhookError,
)
from .exceptions import (
    WebhookManagerNotRunningError as WebhookManagerNotRunningError,
)
from .exceptions import (
    WebhookNotFoundError as WebhookNotFoundError,
)
from .exceptions import (
    WebhookPersistenceCommittedError as WebhookPersistenceCommittedError,
)
from .exceptions import (
    WebhookPersistenceError as WebhookPersistenceError,
)
from .integration import (
    emit_consolidation_completed as emit_consolidation_completed,
)
from .integration import (
    emit_consolidation_started as emit_consolidation_started,
)
from .integration import (
    emit_contradiction_detected as emit_contradiction_detected,
)
from .integration import (
    emit_contradiction_resolved as emit_contradiction_resolved,
)
from .integration import (
    emit_dream_completed as emit_dream_completed,
)
from .integration import (
    emit_dream_failed as emit_dream_failed,
)
from .integration import (
    emit_dream_started as emit_dream_started,
)
from .integration import (
    emit_event as emit_event,
)
from .integration import (
    emit_gap_detected as emit_gap_detected,
)
from .integration import (
    emit_gap_filled as emit_gap_filled,
)
from .integration import (
    emit_memory_accessed as emit_memory_accessed,
)
from .integration import (
    emit_memory_consolidated as emit_memory_consolidated,
)
from .integration import (
    emit_memory_created as emit_memory_created,
)
from .integration import (
    emit_memory_deleted as emit_memory_deleted,
)
from .integration import (
    emit_synapse_fired as emit_synapse_fired,
)
from .integration import (
    emit_synapse_formed as emit_synapse_formed,
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
    ConsolidationCompletedSchema as ConsolidationCompletedSchema,
)
from .schemas import (
    ContradictionDetectedSchema as ContradictionDetectedSchema,
)
from .schemas import (
    ContradictionResolvedSchema as ContradictionResolvedSchema,
)
from .schemas import (
    DreamCompletedSchema as DreamCompletedSchema,
)
from .schemas import (
    DreamFailedSchema as DreamFailedSchema,
)
from .schemas import (
    DreamStartedSchema as DreamStartedSchema,
)
from .schemas import (
    EventSchema as EventSchema,
)
from .schemas import (
    GapDetectedSchema as GapDetectedSchema,
)
from .schemas import (
    GapFilledSchema as GapFilledSchema,
)
from .schemas import (
    MemoryAccessedSchema as MemoryAccessedSchema,
)
from .schemas import (
    MemoryConsolidatedSchema as MemoryConsolidatedSchema,
)
from .schemas import (
    MemoryCreatedSchema as MemoryCreatedSchema,
)
from .schemas import (
    MemoryDeletedSchema as MemoryDeletedSchema,
)
from .schemas import (
    SynapseFiredSchema as SynapseFiredSchema,
)
from .schemas import (
    SynapseFormedSchema as SynapseFormedSchema,
)
from .schemas import (
    export_openapi_spec as export_openapi_spec,
)
from .schemas import (
    get_json_schema as get_json_schema,
)
from .schemas import (
    get_schema_for_event_type as get_schema_for_event_type,
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
    WebhookConfig as WebhookConfig,
)
from .webhook_manager import (
    WebhookDelivery as WebhookDelivery,
)
from .webhook_manager import (
    WebhookManager as WebhookManager,
)
from .webhook_manager import (
    WebhookRetryConfig as WebhookRetryConfig,
)
from .webhook_manager import (
    WebhookSecretResolver as WebhookSecretResolver,
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
