"""Delivery-store rows for the store tests (the SQLite store and the KV store take the same).

``add`` records delivery ``dlv_<webhook>_<n>``; ``rows`` builds one attempt and the update it
makes; ``retry`` and ``success`` are the two usual ones.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from mnemo_events.webhooks._store import AttemptRow, UpdateRow


class _Adds(Protocol):
    def add_delivery(
        self,
        delivery_id: str,
        webhook_id: str,
        event_id: str,
        event_type: str,
        body: bytes,
        created_at: float,
    ) -> asyncio.Future[None]: ...


def add(
    store: _Adds, n: int, webhook: str = "wh_a", at: float | None = None
) -> asyncio.Future[None]:
    """Record delivery ``dlv_<webhook>_<n>`` of event ``evt_<n>`` (created at ``at`` or ``n``)."""
    return store.add_delivery(
        f"dlv_{webhook}_{n}", webhook, f"evt_{n}", "memory.created", b'{"n":%d}' % n, at or n
    )


def rows(
    delivery_id: str,
    number: int,
    outcome: str,
    status_code: int,
    *,
    error: str | None = None,
    body: str | None = None,
    next_at: float | None = None,
    at: float = 2.0,
    latency: float = 1.0,
) -> tuple[AttemptRow, UpdateRow]:
    """One attempt and the delivery update it makes (``retry`` means status retrying)."""
    status = {"retry": "retrying"}.get(outcome, outcome)
    attempt = AttemptRow(
        delivery_id=delivery_id,
        number=number,
        started_at=1.0,
        outcome=outcome,
        status_code=status_code,
        error=error,
        latency_ms=latency,
        response_body=body,
    )
    update = UpdateRow(
        status=status,
        attempts=number,
        next_attempt_at=next_at,
        updated_at=at,
        last_status_code=status_code,
        last_error=error,
        last_latency_ms=latency,
        last_response=body,
        id=delivery_id,
    )
    return attempt, update


def retry(
    delivery_id: str, number: int, next_at: float | None = 99.0
) -> tuple[AttemptRow, UpdateRow]:
    """A retryable HTTP 500 attempt, next attempt at ``next_at``."""
    return rows(
        delivery_id,
        number,
        "retry",
        500,
        error="HTTP 500",
        body="boom",
        next_at=next_at,
        latency=3.5,
    )


def success(delivery_id: str, number: int, at: float = 2.0) -> tuple[AttemptRow, UpdateRow]:
    """A successful HTTP 200 attempt."""
    return rows(delivery_id, number, "success", 200, body="ok", at=at, latency=1.5)
