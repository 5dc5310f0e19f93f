"""The records of the JetStream KV delivery store: one JSON value per delivery, its attempts
inside, and the counters of each webhook; pure functions from rows to records and back.

A delivery record holds what the SQLite store keeps in its ``deliveries`` row plus the
``attempts`` rows of that delivery (``log``), so one read gives a delivery with its
attempts and one compare-and-set write records an attempt and the delivery's new state
together, as the SQLite store's single transaction does.

The stored value is the record as JSON (UTF-8), one NUL byte, then the event body exactly as
it is sent. JSON never holds a raw NUL (it escapes control characters), so the first NUL
splits the two; the body is copied, never escaped into a JSON string: measured here, escaping
a 240-byte event body cost about 50 µs per write, and every attempt rewrites the record.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mnemo_events.webhooks._store_rows import AttemptRow, StoredJob, UpdateRow, WebhookState
from mnemo_events.webhooks.models import Attempt, Delivery, DeliveryStatus

__all__ = [
    "FINISHED",
    "OPEN",
    "apply_attempt",
    "decode",
    "delivery_of",
    "encode",
    "job_of",
    "new_record",
    "state_of",
    "state_record",
]

OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value)
FINISHED = (DeliveryStatus.SUCCESS.value, DeliveryStatus.FAILED.value)


def new_record(
    delivery_id: str,
    webhook_id: str,
    event_id: str,
    event_type: str,
    body: bytes,
    created_at: float,
) -> dict[str, Any]:
    """A pending delivery with no attempt yet.

    Raises:
        TypeError: ``body`` is not bytes.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"the body of delivery {delivery_id} must be bytes, not {type(body)}")
    return {
        "id": delivery_id,
        "webhook_id": webhook_id,
        "event_id": event_id,
        "event_type": event_type,
        "status": DeliveryStatus.PENDING.value,
        "attempts": 0,
        "round_start": 0,
        "next_attempt_at": None,
        "created_at": created_at,
        "updated_at": created_at,
        "last_status_code": None,
        "last_error": None,
        "last_latency_ms": None,
        "last_response": None,
        "log": [],
        "body": bytes(body),
    }


def encode(record: dict[str, Any]) -> bytes:
    """The stored bytes of a record: strict JSON (UTF-8), then NUL and the body, if any."""
    body = record.get("body")
    meta = record if body is None else {k: v for k, v in record.items() if k != "body"}
    text = json.dumps(meta, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return text if body is None else b"%s\x00%s" % (text, body)


def decode(value: bytes | None) -> dict[str, Any]:
    """A record from its stored bytes (see :func:`encode`).

    Raises:
        ValueError: not a JSON object.
    """
    text, nul, body = (value or b"").partition(b"\x00")
    record = json.loads(text)
    if not isinstance(record, dict):
        raise ValueError(f"a stored record must be a JSON object, not {type(record).__name__}")
    if nul:
        record["body"] = body
    return record


def apply_attempt(record: dict[str, Any], attempt: AttemptRow | None, update: UpdateRow) -> None:
    """Record one attempt (replacing one of the same number, as ``INSERT OR REPLACE``) and
    the delivery's new state, in place."""
    if attempt is not None:
        entry = attempt._asdict()
        del entry["delivery_id"]
        log = [a for a in record.get("log", []) if a.get("number") != attempt.number]
        log.append(entry)
        log.sort(key=lambda a: a["number"])
        record["log"] = log
    for name, value in update._asdict().items():
        if name != "id":
            record[name] = value


def _dt(stamp: float | None) -> datetime | None:
    return None if stamp is None else datetime.fromtimestamp(stamp, UTC)


def delivery_of(record: dict[str, Any], *, with_attempts: bool) -> Delivery:
    """A :class:`Delivery` from a record (its attempts only when asked for, as
    ``get_delivery`` gives them and history listings do not)."""
    attempts = tuple(
        Attempt(
            number=a["number"],
            started_at=datetime.fromtimestamp(a["started_at"], UTC),
            outcome=a["outcome"],
            status_code=a.get("status_code"),
            error=a.get("error"),
            latency_ms=a.get("latency_ms"),
            response_body=a.get("response_body"),
        )
        for a in (record.get("log", []) if with_attempts else [])
    )
    return Delivery(
        id=record["id"],
        webhook_id=record["webhook_id"],
        event_id=record["event_id"],
        event_type=record["event_type"],
        status=DeliveryStatus(record["status"]),
        attempts=record["attempts"],
        created_at=datetime.fromtimestamp(record["created_at"], UTC),
        updated_at=datetime.fromtimestamp(record["updated_at"], UTC),
        next_attempt_at=_dt(record.get("next_attempt_at")),
        last_status_code=record.get("last_status_code"),
        last_error=record.get("last_error"),
        last_latency_ms=record.get("last_latency_ms"),
        last_response=record.get("last_response"),
        attempt_log=attempts,
    )


def job_of(record: dict[str, Any]) -> StoredJob:
    """A :class:`StoredJob` (what is sent again) from a record."""
    return StoredJob(
        id=record["id"],
        webhook_id=record["webhook_id"],
        event_id=record["event_id"],
        event_type=record["event_type"],
        body=bytes(record.get("body") or b""),
        attempts=record["attempts"],
        round_start=record.get("round_start", 0),
        next_attempt_at=record.get("next_attempt_at"),
    )


def state_record(state: WebhookState, status_code: int | None = None) -> dict[str, Any]:
    """The stored form of a webhook's counters (``last_status_code``: of the last attempt
    counted by :meth:`bump_state`, for operators; not part of :class:`WebhookState`)."""
    return {
        "webhook_id": state.webhook_id,
        "consecutive_failures": state.consecutive_failures,
        "last_delivery_at": state.last_delivery_at,
        "last_success_at": state.last_success_at,
        "last_failure_at": state.last_failure_at,
        "last_status_code": status_code,
    }


def state_of(record: dict[str, Any]) -> WebhookState:
    """A :class:`WebhookState` from its stored form."""
    return WebhookState(
        webhook_id=record["webhook_id"],
        consecutive_failures=int(record.get("consecutive_failures", 0)),
        last_delivery_at=record.get("last_delivery_at"),
        last_success_at=record.get("last_success_at"),
        last_failure_at=record.get("last_failure_at"),
    )
