"""Delivery metrics as a scan over the stream of delivery results.

The runtime pipes every :class:`Queued` notice and :class:`AttemptResult` of every webhook
into ``ops.scan(reduce_metrics, DeliveryMetrics(...))`` and keeps what the scan emits: that
value is what ``get_metrics()`` and the webhook status read (the counters, and each
webhook's :class:`WebhookState`: consecutive failures, last delivery, success and failure
times). The accumulator is owned by that one scan; it is updated in place rather than
copied, so an attempt costs O(1) (a copy per attempt measured 4 µs here).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from mnemo_events.webhooks._store_rows import WebhookState

__all__ = ["AttemptResult", "DeliveryMetrics", "Queued", "reduce_metrics"]

Outcome = Literal["success", "retry", "failed"]
_WINDOW = 2048


class Queued(NamedTuple):
    """A delivery entered a webhook's pipeline (new, resumed or redelivered)."""

    webhook_id: str
    delivery_id: str


class AttemptResult(NamedTuple):
    """One finished attempt (or a delivery ended without one, ``attempted=False``).

    Named tuples rather than frozen dataclasses: one is made per attempt on the hot path.
    """

    webhook_id: str
    delivery_id: str
    event_id: str
    number: int
    outcome: Outcome
    status_code: int | None
    error: str | None
    latency_ms: float | None
    retry_in: float | None
    was_retrying: bool
    """The delivery was waiting for this retry (so it leaves the ``retrying`` count)."""
    finished_at: float
    """Unix time the attempt ended (or the delivery was given up)."""
    attempted: bool = True


@dataclass(slots=True)
class DeliveryMetrics:
    """Counters since the manager started, plus a window of recent latencies."""

    queued: int = 0
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    attempts: int = 0
    attempts_failed: int = 0
    latency_total_ms: float = 0.0
    latency_count: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_WINDOW))
    webhooks: dict[str, WebhookState] = field(default_factory=dict)
    """Each webhook's counters that outlive a restart (seeded from the store)."""

    def webhook(self, webhook_id: str) -> WebhookState:
        """A webhook's counters (created empty on first use)."""
        state = self.webhooks.get(webhook_id)
        if state is None:
            state = self.webhooks[webhook_id] = WebhookState(webhook_id)
        return state

    def snapshot(self) -> dict[str, Any]:
        """The JSON-ready view used by ``get_metrics()``."""
        window = sorted(self.latencies)
        p95 = window[min(len(window) - 1, int(0.95 * len(window)))] if window else None
        pending = max(self.queued - self.succeeded - self.failed - self.retrying, 0)
        return {
            "deliveries": {
                "total": self.queued,
                "pending": pending,
                "retrying": self.retrying,
                "success": self.succeeded,
                "failed": self.failed,
            },
            "attempts": {"total": self.attempts, "failed": self.attempts_failed},
            "latency_ms": {
                "mean": self.latency_total_ms / self.latency_count if self.latency_count else None,
                "p95": p95,
                "window": len(window),
            },
        }


def reduce_metrics(acc: DeliveryMetrics, item: Queued | AttemptResult) -> DeliveryMetrics:
    """Fold one delivery notice into the metrics."""
    if isinstance(item, Queued):
        acc.queued += 1
        return acc
    if item.was_retrying:
        acc.retrying -= 1
    if item.attempted:
        acc.attempts += 1
        if item.outcome != "success":
            acc.attempts_failed += 1
        if item.latency_ms is not None:
            acc.latency_total_ms += item.latency_ms
            acc.latency_count += 1
            acc.latencies.append(item.latency_ms)
    if item.outcome == "success":
        acc.succeeded += 1
    elif item.outcome == "failed":
        acc.failed += 1
    else:
        acc.retrying += 1
    if item.attempted:  # a delivery given up unattempted (webhook gone) says nothing of it
        state = acc.webhook(item.webhook_id)
        state.last_delivery_at = item.finished_at
        if item.outcome == "success":
            state.consecutive_failures = 0
            state.last_success_at = item.finished_at
        elif item.outcome == "failed":
            state.consecutive_failures += 1
            state.last_failure_at = item.finished_at
    return acc
