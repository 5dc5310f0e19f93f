"""The parts of the webhook sender; the public entry point is :mod:`mnemo_events.webhook_manager`.

- :mod:`.signature`: Stripe-compatible ``X-MnemoCore-Signature`` and Standard Webhooks.
- :mod:`.ssrf`: the address policy and the connection-time resolver guard.
- :mod:`.backoff`: the retry schedule, ``Retry-After`` and jitter.
- :mod:`.models`: webhooks, deliveries, attempts, statuses.
- :mod:`.registry`: webhooks persisted to JSON with atomic writes.
- :mod:`.validation`: checks on registrations and updates.
- :mod:`.store`, :mod:`.store_rows`: deliveries and attempts in SQLite, batched off the loop.
- :mod:`.sender`: one signed HTTP attempt and what its answer means.
- :mod:`.outcome`: the retry decision of an attempt, its rows and its log lines.
- :mod:`.delivery`: the observable pipeline and the per-webhook actor.
- :mod:`.metrics`: delivery results scanned into metrics.
- :mod:`.runtime`: what runs between ``start()`` and ``stop()``.
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
