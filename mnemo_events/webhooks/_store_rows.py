"""The rows of the delivery store: its SQL schema and statements, row types and converters.

Every row is a NamedTuple or dataclass built by keyword, and every statement names its
columns in the order of the row type's fields (the statements are generated from them), so
a column can move without a value landing in the wrong place.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from itertools import chain
from typing import Any, NamedTuple

from mnemo_events.webhooks.models import Attempt, Delivery, DeliveryStatus

__all__ = [
    "APPLICATION_ID",
    "DELIVERY_COLUMNS",
    "INSERT_ATTEMPT",
    "INSERT_ATTEMPTS",
    "INSERT_DELIVERIES",
    "INSERT_DELIVERY",
    "JOB_COLUMNS",
    "ROWS_PER_STATEMENT",
    "SCHEMA",
    "SCHEMA_VERSION",
    "STATE_COLUMNS",
    "STORE_FORMAT",
    "UPDATE_DELIVERIES",
    "UPDATE_DELIVERY",
    "UPDATE_FROM_SUPPORTED",
    "UPSERT_STATE",
    "AttemptRow",
    "NewDeliveryRow",
    "StoredJob",
    "UpdateRow",
    "WebhookState",
    "attempt_from_row",
    "chunks",
    "delivery_from_row",
    "job_from_row",
    "last_per_delivery",
    "state_from_row",
]

APPLICATION_ID = 0x4D4E4D57
"""``PRAGMA application_id`` of a delivery store ("MNMW"): a file without it is not ours."""
SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of the current schema."""
STORE_FORMAT = "mnemo-events/deliveries"
"""The ``format`` entry of the ``store_meta`` table."""

SCHEMA = f"""
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
CREATE TABLE IF NOT EXISTS store_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
"""


class NewDeliveryRow(NamedTuple):
    """A delivery as first recorded (``pending``, no attempt yet)."""

    id: str
    webhook_id: str
    event_id: str
    event_type: str
    body: bytes
    created_at: float
    updated_at: float


class AttemptRow(NamedTuple):
    """One attempt as recorded in ``attempts``.

    A NamedTuple (not a dataclass): one is made per attempt on the hot path and handed to
    ``executemany`` as it is.
    """

    delivery_id: str
    number: int
    started_at: float
    outcome: str
    status_code: int | None
    error: str | None
    latency_ms: float | None
    response_body: str | None


class UpdateRow(NamedTuple):
    """A delivery's new state after an attempt (or without one, when it is given up)."""

    status: str
    attempts: int
    next_attempt_at: float | None
    updated_at: float
    last_status_code: int | None
    last_error: str | None
    last_latency_ms: float | None
    last_response: str | None
    id: str
    """Last: the ``WHERE id = ?`` of :data:`UPDATE_DELIVERY`."""


def _placeholders(names: tuple[str, ...]) -> str:
    return ", ".join("?" for _ in names)


INSERT_DELIVERY = (
    f"INSERT OR IGNORE INTO deliveries ({', '.join(NewDeliveryRow._fields)}, status) "
    f"VALUES ({_placeholders(NewDeliveryRow._fields)}, 'pending')"
)
INSERT_ATTEMPT = (
    f"INSERT OR REPLACE INTO attempts ({', '.join(AttemptRow._fields)}) "
    f"VALUES ({_placeholders(AttemptRow._fields)})"
)
UPDATE_DELIVERY = (
    "UPDATE deliveries SET "
    + ", ".join(f"{name} = ?" for name in UpdateRow._fields[:-1])
    + " WHERE id = ?"
)

# -- many rows per statement ------------------------------------------------------------------
# The writer records a batch with a few multi-row statements rather than one statement per row:
# the sqlite3 module then binds each chunk once and steps it once, with the GIL released for the
# whole chunk instead of around every row, so the writer thread takes the GIL from the event
# loop a few times per batch, not three times per delivery.

ROWS_PER_STATEMENT = (64, 16, 4, 1)
"""The statement sizes a batch is cut into (at most 64 x 9 = 576 parameters, under every SQLite
version's limit); a handful of sizes keeps the connection's statement cache small."""
UPDATE_FROM_SUPPORTED = sqlite3.sqlite_version_info >= (3, 33, 0)
"""``UPDATE ... FROM`` exists (SQLite 3.33); older libraries update row by row."""


def _rows(template: str, count: int) -> str:
    return ", ".join([template] * count)


_NEW_DELIVERY_VALUES = f"({_placeholders(NewDeliveryRow._fields)}, 'pending')"
INSERT_DELIVERIES = {
    n: f"INSERT OR IGNORE INTO deliveries ({', '.join(NewDeliveryRow._fields)}, status) "
    f"VALUES {_rows(_NEW_DELIVERY_VALUES, n)}"
    for n in ROWS_PER_STATEMENT
}
"""Rows per statement -> the multi-row form of :data:`INSERT_DELIVERY`."""
INSERT_ATTEMPTS = {
    n: f"INSERT OR REPLACE INTO attempts ({', '.join(AttemptRow._fields)}) "
    f"VALUES {_rows(f'({_placeholders(AttemptRow._fields)})', n)}"
    for n in ROWS_PER_STATEMENT
}
"""Rows per statement -> the multi-row form of :data:`INSERT_ATTEMPT` (rows replace in order)."""
UPDATE_DELIVERIES = {
    n: "UPDATE deliveries SET "
    + ", ".join(f"{name} = v.column{i}" for i, name in enumerate(UpdateRow._fields[:-1], 1))
    + f" FROM (VALUES {_rows(f'({_placeholders(UpdateRow._fields)})', n)}) AS v"
    + f" WHERE deliveries.id = v.column{len(UpdateRow._fields)}"
    for n in ROWS_PER_STATEMENT
}
"""Rows per statement -> the multi-row form of :data:`UPDATE_DELIVERY`. Each delivery may occur
once per statement (``UPDATE ... FROM`` would pick any of several): see
:func:`last_per_delivery`."""


def chunks(rows: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """Cut ``rows`` in order into runs of :data:`ROWS_PER_STATEMENT` sizes: (size, the run's
    values flattened into one parameter tuple)."""
    start = 0
    left = len(rows)
    for size in ROWS_PER_STATEMENT:
        while left >= size:
            yield size, tuple(chain.from_iterable(rows[start : start + size]))
            start += size
            left -= size


def last_per_delivery(updates: Sequence[UpdateRow]) -> list[UpdateRow]:
    """The last update of each delivery: what applying them all in order leaves, since every
    update sets the same columns."""
    if len(updates) < 2:
        return list(updates)
    return list({update.id: update for update in updates}.values())


DELIVERY_COLUMNS = (
    "id, webhook_id, event_id, event_type, status, attempts, created_at, updated_at, "
    "next_attempt_at, last_status_code, last_error, last_latency_ms, last_response"
)


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


JOB_COLUMNS = ", ".join(f.name for f in fields(StoredJob))


@dataclass(slots=True)
class WebhookState:
    """The counters of one webhook that outlive a restart."""

    webhook_id: str
    consecutive_failures: int = 0
    last_delivery_at: float | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None

    def row(self) -> tuple[str, int, float | None, float | None, float | None]:
        """The row as stored, in the order of :data:`STATE_COLUMNS`."""
        return (
            self.webhook_id,
            self.consecutive_failures,
            self.last_delivery_at,
            self.last_success_at,
            self.last_failure_at,
        )


STATE_COLUMNS = ", ".join(f.name for f in fields(WebhookState))
UPSERT_STATE = (
    f"INSERT OR REPLACE INTO webhook_state ({STATE_COLUMNS}) "
    f"VALUES ({_placeholders(tuple(STATE_COLUMNS.split(', ')))})"
)


def _dt(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


def job_from_row(row: sqlite3.Row) -> StoredJob:
    """A :class:`StoredJob` from a row selected with :data:`JOB_COLUMNS`."""
    return StoredJob(
        id=row["id"],
        webhook_id=row["webhook_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        body=row["body"],
        attempts=row["attempts"],
        round_start=row["round_start"],
        next_attempt_at=row["next_attempt_at"],
    )


def state_from_row(row: sqlite3.Row) -> WebhookState:
    """A :class:`WebhookState` from a row selected with :data:`STATE_COLUMNS`."""
    return WebhookState(
        webhook_id=row["webhook_id"],
        consecutive_failures=row["consecutive_failures"],
        last_delivery_at=row["last_delivery_at"],
        last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"],
    )


def delivery_from_row(row: sqlite3.Row, attempts: tuple[Attempt, ...] = ()) -> Delivery:
    """A :class:`Delivery` from a row selected with :data:`DELIVERY_COLUMNS`."""
    return Delivery(
        id=row["id"],
        webhook_id=row["webhook_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        status=DeliveryStatus(row["status"]),
        attempts=row["attempts"],
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        updated_at=datetime.fromtimestamp(row["updated_at"], UTC),
        next_attempt_at=_dt(row["next_attempt_at"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        last_latency_ms=row["last_latency_ms"],
        last_response=row["last_response"],
        attempt_log=attempts,
    )


def attempt_from_row(row: sqlite3.Row) -> Attempt:
    """An :class:`Attempt` from a row of ``attempts`` (columns by name)."""
    return Attempt(
        number=row["number"],
        started_at=datetime.fromtimestamp(row["started_at"], UTC),
        outcome=row["outcome"],
        status_code=row["status_code"],
        error=row["error"],
        latency_ms=row["latency_ms"],
        response_body=row["response_body"],
    )
