"""The rows of the delivery store: its SQL schema and statements, row types and converters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mnemo_events.webhooks.models import Attempt, Delivery, DeliveryStatus

__all__ = [
    "DELIVERY_COLUMNS",
    "INSERT_ATTEMPT",
    "INSERT_DELIVERY",
    "JOB_COLUMNS",
    "SCHEMA",
    "UPDATE_DELIVERY",
    "UPSERT_STATE",
    "AttemptRow",
    "StoredJob",
    "UpdateRow",
    "WebhookState",
    "attempt_from_row",
    "delivery_from_row",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body BLOB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    round_start INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    last_status_code INTEGER,
    last_error TEXT,
    last_latency_ms REAL,
    last_response TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_by_webhook ON deliveries (webhook_id, created_at);
CREATE INDEX IF NOT EXISTS deliveries_open ON deliveries (created_at)
    WHERE status IN ('pending', 'retrying');
CREATE TABLE IF NOT EXISTS attempts (
    delivery_id TEXT NOT NULL,
    number INTEGER NOT NULL,
    started_at REAL NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER,
    error TEXT,
    latency_ms REAL,
    response_body TEXT,
    PRIMARY KEY (delivery_id, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhook_state (
    webhook_id TEXT PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL,
    last_delivery_at REAL,
    last_success_at REAL,
    last_failure_at REAL
);
PRAGMA user_version = 1;
"""
INSERT_DELIVERY = (
    "INSERT OR IGNORE INTO deliveries (id, webhook_id, event_id, event_type, body, status, "
    "attempts, round_start, next_attempt_at, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, 'pending', 0, 0, NULL, ?, ?)"
)
INSERT_ATTEMPT = "INSERT OR REPLACE INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
UPDATE_DELIVERY = (
    "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, updated_at = ?, "
    "last_status_code = ?, last_error = ?, last_latency_ms = ?, last_response = ? WHERE id = ?"
)
UPSERT_STATE = "INSERT OR REPLACE INTO webhook_state VALUES (?, ?, ?, ?, ?)"
DELIVERY_COLUMNS = (
    "id, webhook_id, event_id, event_type, status, attempts, created_at, updated_at, "
    "next_attempt_at, last_status_code, last_error, last_latency_ms, last_response"
)
JOB_COLUMNS = "id, webhook_id, event_id, event_type, body, attempts, round_start, next_attempt_at"

AttemptRow = tuple[str, int, float, str, int | None, str | None, float | None, str | None]
"""``(delivery_id, number, started_at, outcome, status_code, error, latency_ms, response)``."""
UpdateRow = tuple[
    str, int, float | None, float, int | None, str | None, float | None, str | None, str
]
"""``(status, attempts, next_attempt_at, updated_at, status_code, error, latency_ms, response,
delivery_id)``."""


@dataclass(frozen=True, slots=True)
class StoredJob:
    """An unfinished (or replayed) delivery as read back for sending."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    body: bytes
    attempts: int
    round_start: int
    next_attempt_at: float | None


@dataclass(slots=True)
class WebhookState:
    """The counters of one webhook that outlive a restart."""

    webhook_id: str
    consecutive_failures: int = 0
    last_delivery_at: float | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None

    def row(self) -> tuple[str, int, float | None, float | None, float | None]:
        """The row as stored."""
        return (
            self.webhook_id,
            self.consecutive_failures,
            self.last_delivery_at,
            self.last_success_at,
            self.last_failure_at,
        )


def _dt(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


def delivery_from_row(row: Sequence[Any], attempts: tuple[Attempt, ...] = ()) -> Delivery:
    return Delivery(
        id=row[0],
        webhook_id=row[1],
        event_id=row[2],
        event_type=row[3],
        status=DeliveryStatus(row[4]),
        attempts=row[5],
        created_at=datetime.fromtimestamp(row[6], UTC),
        updated_at=datetime.fromtimestamp(row[7], UTC),
        next_attempt_at=_dt(row[8]),
        last_status_code=row[9],
        last_error=row[10],
        last_latency_ms=row[11],
        last_response=row[12],
        attempt_log=attempts,
    )


def attempt_from_row(row: Sequence[Any]) -> Attempt:
    """An :class:`Attempt` from ``number, started_at, outcome, status_code, error, latency_ms,
    response_body``."""
    return Attempt(
        number=row[0],
        started_at=datetime.fromtimestamp(row[1], UTC),
        outcome=row[2],
        status_code=row[3],
        error=row[4],
        latency_ms=row[5],
        response_body=row[6],
    )
