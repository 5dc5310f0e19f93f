"""The parts of the webhook sender; the public entry point is :mod:`mnemo_events.webhook_manager`.

- :mod:`.signature`: Stripe-compatible ``X-MnemoCore-Signature`` and Standard Webhooks.
- :mod:`.ssrf`: the address policy and the connection-time resolver guard.
- :mod:`.backoff`: the retry schedule, ``Retry-After`` and jitter.
- :mod:`.models`: webhooks, deliveries, attempts, statuses.

Private, used only by the manager:

- ``_registry``: webhooks persisted to JSON with atomic writes.
- ``_validation``: checks on registrations and updates.
- ``_store``, ``_store_rows``: deliveries and attempts in SQLite, batched off the loop.
- ``_sender``: one signed HTTP attempt and what its answer means.
- ``_outcome``: the retry decision of an attempt, its rows and its log lines.
- ``_delivery``: the observable pipeline and the per-webhook actor.
- ``_metrics``: delivery results scanned into metrics.
- ``_runtime``: what runs between ``start()`` and ``stop()``.
"""

from __future__ import annotations

from mnemo_events.webhooks.models import (
    Attempt,
    Delivery,
    DeliveryStatus,
    RetiredSecret,
    SignatureScheme,
    Webhook,
    WebhookStatus,
)
from mnemo_events.webhooks.signature import (
    StandardWebhookSignature,
    WebhookSignature,
    generate_secret,
    mask_secret,
)

__all__ = [
    "Attempt",
    "Delivery",
    "DeliveryStatus",
    "RetiredSecret",
    "SignatureScheme",
    "StandardWebhookSignature",
    "Webhook",
    "WebhookSignature",
    "WebhookStatus",
    "generate_secret",
    "mask_secret",
]
