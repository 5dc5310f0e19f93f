"""The work queue of a webhook group: names, the work message, and the two consumers.

::

    events stream ─▶ consumer webhook-fanout (shared) ─▶ one record per (event, webhook)
                                                       └▶ work message ─▶ work stream
    work stream ─▶ consumer webhook-workers (shared) ─▶ the worker that takes the lease

A work message names one round of one delivery: ``{"d": delivery id, "w": webhook id,
"r": round start}`` (the record's attempt count when the round began: 0 for the fan-out, the
attempts made so far for a redelivery). Its ``Nats-Msg-Id`` is ``<delivery id>.<round>``, so
a fan-out re-run after a crash, or a publish retried after a lost acknowledgement, stores it
once. The delivery id is derived from the event id and the webhook id for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from nats.js import api

from mnemo_events._log import logger

__all__ = [
    "ACK_FAILURES",
    "GroupNames",
    "WorkItem",
    "delivery_id_for",
    "fanout_consumer",
    "fetch_some",
    "quietly",
    "work_consumer",
    "work_stream",
]

_log = logger("webhooks.group")


@dataclass(slots=True)
class _Count:
    value: int = 0


ACK_FAILURES = _Count()
"""Acknowledgements and clean-ups of this process's group members that failed (each logged;
the server redelivers what was not acknowledged); reported in the group's metrics."""


async def quietly(step: Awaitable[Any]) -> None:
    """An acknowledgement or clean-up: bounded to 2 s; a failure is logged and counted in
    :data:`ACK_FAILURES`, not raised (the server redelivers what was not acknowledged)."""
    try:
        await asyncio.wait_for(step, 2.0)
    except Exception as err:
        ACK_FAILURES.value += 1
        _log.warning_every(
            ACK_FAILURES.value,
            100,
            "webhooks.group_ack_failed",
            error=repr(err),
            failures=ACK_FAILURES.value,
        )


_DUPLICATE_WINDOW = 600.0
"""Seconds the work stream remembers message ids (well beyond any fan-out re-run)."""


def delivery_id_for(event_id: str, webhook_id: str) -> str:
    """The delivery id of one (event, webhook) pair: the same in every member and re-run."""
    digest = hashlib.sha256(f"{event_id}\x00{webhook_id}".encode()).hexdigest()
    return f"dlv_{digest[:32]}"


@dataclass(frozen=True, slots=True)
class GroupNames:
    """The JetStream names of a group, derived from the events stream and subject prefix."""

    events_stream: str
    prefix: str

    @property
    def work_stream(self) -> str:
        """The work-queue stream."""
        return f"{self.events_stream}_WEBHOOK_WORK"

    @property
    def work_subject(self) -> str:
        """The subject prefix of work messages (``.<webhook id>`` follows)."""
        return f"{self.prefix}_webhook_work"

    @property
    def leases(self) -> str:
        """The lease bucket."""
        return f"{self.prefix}_webhook_leases"

    fanout = "webhook-fanout"
    """The consumer on the events stream that the group shares for the fan-out."""
    workers = "webhook-workers"
    """The consumer on the work stream that the group's workers share."""


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One round of one delivery, as a work message carries it."""

    delivery_id: str
    webhook_id: str
    round_start: int

    @property
    def msg_id(self) -> str:
        """The ``Nats-Msg-Id``: a re-run publish of the same round is stored once."""
        return f"{self.delivery_id}.{self.round_start}"

    def encode(self) -> bytes:
        """The message body."""
        return json.dumps(
            {"d": self.delivery_id, "w": self.webhook_id, "r": self.round_start}
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> WorkItem:
        """A work message read back.

        Raises:
            ValueError: not a work message.
        """
        try:
            value = json.loads(raw)
            return cls(str(value["d"]), str(value["w"]), int(value["r"]))
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a webhook work message: {raw[:80]!r}") from err


async def fetch_some(sub: Any, most: int, wait: float) -> list[Any]:
    """Up to ``most`` messages as soon as there is one (at most ``wait`` seconds).

    nats-py's ``fetch(n)`` with nothing available waits for all ``n`` (or the time-out):
    work trickling in would be taken a batch per time-out. So: wait for one, then take what
    is there already.

    Raises:
        TimeoutError: nothing within ``wait``.
    """
    msgs: list[Any] = await sub.fetch(1, timeout=wait)
    if most > 1:
        with contextlib.suppress(TimeoutError):
            msgs += await sub.fetch(most - 1, timeout=0.02)
    return msgs


def work_stream(names: GroupNames) -> api.StreamConfig:
    """The work-queue stream: a message lives until a worker acknowledges it."""
    return api.StreamConfig(
        name=names.work_stream,
        subjects=[f"{names.work_subject}.>"],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.WORK_QUEUE,
        discard=api.DiscardPolicy.OLD,
        duplicate_window=_DUPLICATE_WINDOW,
    )


def work_consumer(names: GroupNames, *, takeover_seconds: float) -> api.ConsumerConfig:
    """The workers' consumer: unacknowledged for ``takeover_seconds`` means redelivered.

    A worker holding a message sends ``in_progress`` well within that time; only a dead
    (or stalled) worker's messages come back. No ``max_deliver``: a delivery ends by its
    record (success or failed), never by the queue giving up on it.
    """
    return api.ConsumerConfig(
        name=names.workers,
        durable_name=names.workers,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=takeover_seconds,
        max_deliver=-1,
        max_ack_pending=100_000,
        filter_subject=f"{names.work_subject}.>",
    )


def fanout_consumer(names: GroupNames, *, takeover_seconds: float) -> api.ConsumerConfig:
    """The fan-out consumer: every event published from the group's first start on."""
    return api.ConsumerConfig(
        name=names.fanout,
        durable_name=names.fanout,
        deliver_policy=api.DeliverPolicy.NEW,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=max(takeover_seconds, 5.0),
        max_deliver=-1,
        max_ack_pending=10_000,
        filter_subject=f"{names.prefix}.>",
    )
