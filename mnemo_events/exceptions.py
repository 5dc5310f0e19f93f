"""The error tree of mnemo-events.

Every error subclasses :class:`MnemoEventsError` and the builtin it behaves like, so callers
can catch either::

    MnemoEventsError
    ├── InvalidEventTypeError      (ValueError)
    ├── InvalidPatternError        (ValueError)
    ├── EventValidationError       (ValueError)
    ├── SchemaRegistrationError    (ValueError)
    ├── ConfigError                (ValueError)
    ├── BusClosedError             (RuntimeError)
    ├── BusNotRunningError         (RuntimeError)
    ├── SubscriptionClosedError    (RuntimeError)
    ├── QueueFullError             (RuntimeError)
    ├── RemoteStreamError          (ConnectionError)
    ├── TransportError             (ConnectionError)
    │   └── TransportTimeoutError  (also a QueueFullError)
    └── WebhookError
        ├── WebhookNotFoundError   (KeyError)
        ├── WebhookConfigError     (ValueError)
        │   └── UnsafeWebhookURLError
        ├── WebhookPersistenceError (OSError)
        │   ├── WebhookPersistenceCommittedError
        │   └── UnsafeWebhookPersistenceError
        ├── SensitiveWebhookHeaderError (WebhookConfigError, WebhookPersistenceError)
        ├── WebhookManagerNotRunningError (RuntimeError)
        ├── DeliveryStoreCorruptError (OSError)
        ├── DeliveryStoreClosedError (RuntimeError)
        └── WebhookActorClosedError (RuntimeError)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BusClosedError",
    "BusNotRunningError",
    "ConfigError",
    "DeliveryStoreClosedError",
    "DeliveryStoreCorruptError",
    "EventValidationError",
    "InvalidEventTypeError",
    "InvalidPatternError",
    "MnemoEventsError",
    "QueueFullError",
    "RemoteStreamError",
    "SchemaRegistrationError",
    "SensitiveWebhookHeaderError",
    "SubscriptionClosedError",
    "TransportError",
    "TransportTimeoutError",
    "UnsafeWebhookPersistenceError",
    "UnsafeWebhookURLError",
    "WebhookActorClosedError",
    "WebhookConfigError",
    "WebhookError",
    "WebhookManagerNotRunningError",
    "WebhookNotFoundError",
    "WebhookPersistenceCommittedError",
    "WebhookPersistenceError",
]


class MnemoEventsError(Exception):
    """Base of every error raised by mnemo-events."""


class InvalidEventTypeError(MnemoEventsError, ValueError):
    """An event type is not a well-formed dotted name such as ``memory.created``."""


class InvalidPatternError(MnemoEventsError, ValueError):
    """A subscription pattern is malformed (empty segment, partial wildcard, ``>`` not last)."""


class EventValidationError(MnemoEventsError, ValueError):
    """An event payload breaks its schema; ``errors`` lists every problem found."""

    def __init__(self, event_type: str, errors: Sequence[str]) -> None:
        self.event_type = event_type
        self.errors = list(errors)
        listing = "; ".join(self.errors)
        super().__init__(f"invalid payload for event type {event_type!r}: {listing}")


class SchemaRegistrationError(MnemoEventsError, ValueError):
    """A schema cannot be registered: it is not valid JSON Schema, or the type is taken."""


class ConfigError(MnemoEventsError, ValueError):
    """A configuration file or value is invalid; the message names the key and the source."""


class BusClosedError(MnemoEventsError, RuntimeError):
    """The event bus was shut down and refuses further work."""


class BusNotRunningError(MnemoEventsError, RuntimeError):
    """The event bus is not started (or stopped), so the work asked of it would never finish."""


class SubscriptionClosedError(MnemoEventsError, RuntimeError):
    """The subscription was removed and cannot be started again."""


class QueueFullError(MnemoEventsError, RuntimeError):
    """The bus mailbox stayed full for ``publish_timeout`` seconds; the event was not accepted."""


class WebhookError(MnemoEventsError):
    """Base of the webhook errors."""


class WebhookNotFoundError(WebhookError, KeyError):
    """No webhook (or delivery) has the given id."""

    def __str__(self) -> str:
        # KeyError quotes its argument; a sentence reads better in logs and HTTP bodies.
        return str(self.args[0]) if self.args else "not found"


class WebhookConfigError(WebhookError, ValueError):
    """A webhook registration or update is invalid (URL, header, pattern, retry settings)."""


class UnsafeWebhookURLError(WebhookConfigError):
    """A webhook URL points at a network the manager is not allowed to reach (SSRF guard)."""


class WebhookPersistenceError(WebhookError, OSError):
    """The webhook configuration file cannot be read or written; the message names the path."""


class WebhookManagerNotRunningError(WebhookError, RuntimeError):
    """The webhook manager is not started yet, or was stopped: ``await wm.start()`` first."""


class RemoteStreamError(MnemoEventsError, ConnectionError):
    """A service's event stream refused this client or stayed unreachable past its retries."""


class WebhookPersistenceCommittedError(WebhookPersistenceError):
    """MnemoCore's "written but directory sync failed" error, importable for its callers.

    Not raised by mnemo-events: a failed sync is reported as :class:`WebhookPersistenceError`.
    """


class UnsafeWebhookPersistenceError(WebhookPersistenceError):
    """A webhook file holds what must not be stored (a credential header in plaintext)."""


class SensitiveWebhookHeaderError(WebhookConfigError, WebhookPersistenceError):
    """A credential header (``Authorization``, ``*-Token``, ...) would be stored in plaintext."""


class DeliveryStoreCorruptError(WebhookError, OSError):
    """The delivery store file is damaged or not a delivery store; it is left untouched."""


class DeliveryStoreClosedError(WebhookError, RuntimeError):
    """The delivery store is not open (never opened, or closed) and refuses work."""


class WebhookActorClosedError(WebhookError, RuntimeError):
    """A webhook's delivery actor is not running (not started, or stopped) and refuses work."""


class TransportError(MnemoEventsError, ConnectionError):
    """The bus's transport (a NATS JetStream server) failed or refused; the message names it."""


class TransportTimeoutError(TransportError, QueueFullError):
    """The stream did not acknowledge a publish within ``publish_timeout``; nothing was promised."""
