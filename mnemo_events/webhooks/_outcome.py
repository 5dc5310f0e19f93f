"""What an attempt comes to: the delivery job, the pure retry policy, the rows recorded
and the log lines.

The retry policy of one attempt: 2xx succeeds (:func:`is_final` with outcome ``success``);
410 Gone, a refused address, a missing secret or an internal error fail at once; anything
else is a retryable failure, and :func:`retry_delay_after` (called by the ``retry_when``
notifier of the delivery's pipeline) gives the wait before the next attempt from the attempt
number, ``Retry-After`` and the schedule, or ``None`` once ``max_attempts`` attempts of the
current round have been made.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from mnemo_events._log import logger
from mnemo_events.config import RetryConfig
from mnemo_events.webhooks._sender import Response
from mnemo_events.webhooks._store_rows import AttemptRow, StoredJob, UpdateRow
from mnemo_events.webhooks.backoff import retry_delay
from mnemo_events.webhooks.models import DeliveryStatus

__all__ = [
    "DeliveryJob",
    "Outcome",
    "attempt_rows",
    "final_outcome",
    "given_up_rows",
    "log_attempt",
    "log_unattempted",
    "new_delivery_id",
    "retry_delay_after",
]

Outcome = Literal["success", "retry", "failed"]
_log = logger("webhooks")
_STATUS: dict[Outcome, str] = {
    "success": DeliveryStatus.SUCCESS.value,
    "failed": DeliveryStatus.FAILED.value,
    "retry": DeliveryStatus.RETRYING.value,
}


def new_delivery_id() -> str:
    """A fresh delivery id: ``"dlv_"``, the time in ns and 64 random bits, in hex.

    Time-ordered ids are appended at the right edge of the store's key index instead of at
    random places in it, which halves the CPU cost of recording a delivery in a big store.
    """
    return f"dlv_{time.time_ns():016x}{os.urandom(8).hex()}"


@dataclass(slots=True)
class DeliveryJob:
    """One delivery travelling through a webhook's pipeline."""

    delivery_id: str
    webhook_id: str
    event_id: str
    event_type: str
    body: bytes
    attempts: int = 0
    """Attempts made so far, across rounds (the next one is ``attempts + 1``)."""
    round_start: int = 0
    """``attempts`` when the current round began (a redelivery starts a new round)."""
    delay: float = 0.0
    """Seconds to wait before the first attempt of this run (a resumed retry)."""
    persisted: asyncio.Future[None] | None = None
    """Resolves once the store has the delivery; the first attempt waits for it."""
    retrying: bool = False
    queued_at: float = field(default_factory=time.monotonic)
    """When this process queued (or resumed) the delivery, for the delivery-latency histogram."""
    on_finished: Callable[[DeliveryJob], None] | None = None
    """Called once the delivery's chain has ended here (a webhook group acknowledges its work)."""

    @classmethod
    def from_stored(cls, stored: StoredJob, *, now: float, new_round: bool = False) -> DeliveryJob:
        """A job for a delivery read back from the store."""
        wait = 0.0 if new_round or stored.next_attempt_at is None else stored.next_attempt_at - now
        return cls(
            delivery_id=stored.id,
            webhook_id=stored.webhook_id,
            event_id=stored.event_id,
            event_type=stored.event_type,
            body=stored.body,
            attempts=stored.attempts,
            round_start=stored.attempts if new_round else stored.round_start,
            delay=max(wait, 0.0),
        )


def final_outcome(response: Response) -> Outcome | None:
    """``success`` for a 2xx, ``failed`` for an answer not worth retrying (410 Gone, a refused
    address, a missing secret, an internal error), ``None`` for a retryable failure."""
    if response.ok:
        return "success"
    if response.gone or response.final:
        return "failed"
    return None


def retry_delay_after(in_round: int, response: Response, config: RetryConfig) -> float | None:
    """Seconds before the next attempt after retryable failed attempt ``in_round`` (1-based
    within the round), or ``None`` when the round's ``max_attempts`` are used up.

    The schedule's retry number is ``in_round``; a ``Retry-After`` answer replaces it
    (see :func:`~mnemo_events.webhooks.backoff.retry_delay`).
    """
    if in_round >= config.max_attempts:
        return None
    return retry_delay(in_round, config, retry_after=response.retry_after)


def attempt_rows(
    job: DeliveryJob,
    number: int,
    started: float,
    now: float,
    outcome: Outcome,
    retry_in: float | None,
    response: Response,
) -> tuple[AttemptRow, UpdateRow]:
    """The attempt row and the delivery update the store records for one attempt."""
    return (
        AttemptRow(
            delivery_id=job.delivery_id,
            number=number,
            started_at=started,
            outcome=outcome,
            status_code=response.status_code,
            error=response.error,
            latency_ms=response.latency_ms,
            response_body=response.body,
        ),
        UpdateRow(
            status=_STATUS[outcome],
            attempts=number,
            next_attempt_at=None if retry_in is None else now + retry_in,
            updated_at=now,
            last_status_code=response.status_code,
            last_error=response.error,
            last_latency_ms=response.latency_ms,
            last_response=response.body,
            id=job.delivery_id,
        ),
    )


def given_up_rows(job: DeliveryJob, now: float, reason: str) -> UpdateRow:
    """The delivery update of a delivery failed without (another) attempt."""
    return UpdateRow(
        status=DeliveryStatus.FAILED.value,
        attempts=job.attempts,
        next_attempt_at=None,
        updated_at=now,
        last_status_code=None,
        last_error=reason,
        last_latency_ms=None,
        last_response=None,
        id=job.delivery_id,
    )


def log_attempt(
    job: DeliveryJob, number: int, outcome: Outcome, response: Response, retry_in: float | None
) -> None:
    """The lines of one attempt: ``webhooks.attempt`` (debug), then ``webhooks.delivered``
    (debug), ``webhooks.retry_scheduled`` (info) or ``webhooks.delivery_failed`` (warning)."""
    fields = {
        "webhook_id": job.webhook_id,
        "delivery_id": job.delivery_id,
        "event_id": job.event_id,
        "attempt": number,
        "status_code": response.status_code,
        "latency_ms": round(response.latency_ms, 2),
    }
    _log.debug("webhooks.attempt", outcome=outcome, error=response.error, **fields)
    if outcome == "success":
        _log.debug("webhooks.delivered", **fields)
    elif outcome == "retry":
        _log.info("webhooks.retry_scheduled", retry_in=retry_in, error=response.error, **fields)
    else:
        _log.warning("webhooks.delivery_failed", error=response.error, **fields)


def log_unattempted(job: DeliveryJob, reason: str) -> None:
    """The line of a delivery given up without an attempt (its webhook went away)."""
    _log.warning(
        "webhooks.delivery_failed",
        webhook_id=job.webhook_id,
        delivery_id=job.delivery_id,
        event_id=job.event_id,
        status_code=None,
        latency_ms=None,
        error=reason,
    )
