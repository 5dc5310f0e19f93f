"""The public names of :mod:`mnemo_events`: the one list.

``__init__.py`` reads this stub (through ``lazy_loader``) to resolve each name on first use
and to build ``__all__``; type checkers read it as the package's interface.
"""

from . import integration as integration
from .bus._stream import (
    EventStream as EventStream,
)
from .bus._subscription import (
    SubscriptionInfo as SubscriptionInfo,
)
from .config import (
    EventsConfig as EventsConfig,
    RetryConfig as RetryConfig,
    ServerConfig as ServerConfig,
    Settings as Settings,
    WebhooksConfig as WebhooksConfig,
    load_config as load_config,
)
from .event import (
    Event as Event,
)
from .event_bus import (
    BusObserver as BusObserver,
    BusState as BusState,
    EventBus as EventBus,
    EventFilter as EventFilter,
    EventHandler as EventHandler,
    Subscription as Subscription,
    get_event_bus as get_event_bus,
    reset_event_bus as reset_event_bus,
)
from .exceptions import (
    BusClosedError as BusClosedError,
    BusNotRunningError as BusNotRunningError,
    ConfigError as ConfigError,
    DeliveryStoreClosedError as DeliveryStoreClosedError,
    DeliveryStoreCorruptError as DeliveryStoreCorruptError,
    EventValidationError as EventValidationError,
    InvalidEventTypeError as InvalidEventTypeError,
    InvalidPatternError as InvalidPatternError,
    MnemoEventsError as MnemoEventsError,
    QueueFullError as QueueFullError,
    RemoteStreamError as RemoteStreamError,
    SchemaRegistrationError as SchemaRegistrationError,
    SensitiveWebhookHeaderError as SensitiveWebhookHeaderError,
    SubscriptionClosedError as SubscriptionClosedError,
    UnsafeWebhookPersistenceError as UnsafeWebhookPersistenceError,
    UnsafeWebhookURLError as UnsafeWebhookURLError,
    WebhookActorClosedError as WebhookActorClosedError,
    WebhookConfigError as WebhookConfigError,
    WebhookError as WebhookError,
    WebhookManagerNotRunningError as WebhookManagerNotRunningError,
    WebhookNotFoundError as WebhookNotFoundError,
    WebhookPersistenceCommittedError as WebhookPersistenceCommittedError,
    WebhookPersistenceError as WebhookPersistenceError,
)
from .integration import (
    emit_consolidation_completed as emit_consolidation_completed,
    emit_consolidation_started as emit_consolidation_started,
    emit_contradiction_detected as emit_contradiction_detected,
    emit_contradiction_resolved as emit_contradiction_resolved,
    emit_dream_completed as emit_dream_completed,
    emit_dream_failed as emit_dream_failed,
    emit_dream_started as emit_dream_started,
    emit_event as emit_event,
    emit_gap_detected as emit_gap_detected,
    emit_gap_filled as emit_gap_filled,
    emit_memory_accessed as emit_memory_accessed,
    emit_memory_consolidated as emit_memory_consolidated,
    emit_memory_created as emit_memory_created,
    emit_memory_deleted as emit_memory_deleted,
    emit_synapse_fired as emit_synapse_fired,
    emit_synapse_formed as emit_synapse_formed,
)
from .logging import (
    configure_logging as configure_logging,
)
from .patterns import (
    Pattern as Pattern,
    parse_pattern as parse_pattern,
    pattern_matches as pattern_matches,
    validate_event_type as validate_event_type,
)
from .schemas import (
    ConsolidationCompletedSchema as ConsolidationCompletedSchema,
    ContradictionDetectedSchema as ContradictionDetectedSchema,
    ContradictionResolvedSchema as ContradictionResolvedSchema,
    DreamCompletedSchema as DreamCompletedSchema,
    DreamFailedSchema as DreamFailedSchema,
    DreamStartedSchema as DreamStartedSchema,
    EventSchema as EventSchema,
    GapDetectedSchema as GapDetectedSchema,
    GapFilledSchema as GapFilledSchema,
    MemoryAccessedSchema as MemoryAccessedSchema,
    MemoryConsolidatedSchema as MemoryConsolidatedSchema,
    MemoryCreatedSchema as MemoryCreatedSchema,
    MemoryDeletedSchema as MemoryDeletedSchema,
    SynapseFiredSchema as SynapseFiredSchema,
    SynapseFormedSchema as SynapseFormedSchema,
    export_openapi_spec as export_openapi_spec,
    get_json_schema as get_json_schema,
    get_schema_for_event_type as get_schema_for_event_type,
    list_event_types as list_event_types,
    register_event_type as register_event_type,
    validate_event as validate_event,
)
from .webhook_manager import (
    Delivery as Delivery,
    DeliveryStatus as DeliveryStatus,
    Webhook as Webhook,
    WebhookConfig as WebhookConfig,
    WebhookDelivery as WebhookDelivery,
    WebhookManager as WebhookManager,
    WebhookRetryConfig as WebhookRetryConfig,
    WebhookSecretResolver as WebhookSecretResolver,
    WebhookSignature as WebhookSignature,
    WebhookStatus as WebhookStatus,
    get_webhook_manager as get_webhook_manager,
    reset_webhook_manager as reset_webhook_manager,
)

__version__: str
