"""Delivery leases of a webhook group: one JetStream KV entry per delivery being attempted.

A worker attempts a delivery only while it holds the delivery's lease: the entry
``<delivery id>`` in the bucket ``<stream>_WEBHOOK_LEASES`` holds ``{"owner", "until"}``
(``until`` in Unix seconds). Taking and renewing are compare-and-set writes on the entry's
revision, so of two workers racing for one delivery exactly one wins; a lease nobody renewed
for ``lease_seconds`` has expired and may be taken over. ``until`` is wall-clock time: the
members of a group need clocks in step (NTP) to well within the takeover time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import nats.js.errors
from nats.js import api

from mnemo_events._log import logger

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

__all__ = ["Lease", "LeaseBucket", "Taken"]

_log = logger("webhooks.group")
_KEEP_SECONDS = 86_400.0
"""Bucket entries (released or stale leases) older than this are dropped by the server."""


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this worker holds: the entry's revision is what the next write must match."""

    delivery_id: str
    revision: int
    until: float


@dataclass(frozen=True, slots=True)
class Taken:
    """A lease another worker holds: retry after ``until``."""

    owner: str
    until: float


class LeaseBucket:
    """Takes, renews and releases delivery leases for one worker (``owner``)."""

    def __init__(self, kv: KeyValue, *, owner: str, lease_seconds: float) -> None:
        self._kv = kv
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.lost = 0
        """Renewals refused because another worker had taken the lease over (each logged)."""

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, bucket: str, owner: str, lease_seconds: float
    ) -> LeaseBucket:
        """The bucket, created if missing (file storage, one value per key)."""
        try:
            kv = await js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            kv = await js.create_key_value(
                api.KeyValueConfig(
                    bucket=bucket,
                    history=1,
                    ttl=_KEEP_SECONDS,
                    storage=api.StorageType.FILE,
                    description="mnemo-events webhook delivery leases",
                )
            )
        return cls(kv, owner=owner, lease_seconds=lease_seconds)

    def _value(self, until: float) -> bytes:
        return json.dumps({"owner": self.owner, "until": until}).encode()

    async def take(self, delivery_id: str) -> Lease | Taken:
        """Take the lease of a delivery: free, expired or already ours; else who holds it."""
        now = time.time()
        until = now + self.lease_seconds
        try:  # the common case first: nobody ever held it (one round trip)
            revision = await self._kv.create(delivery_id, self._value(until))
        except nats.js.errors.KeyWrongLastSequenceError:
            pass
        else:
            return Lease(delivery_id, revision, until)
        try:
            entry = await self._kv.get(delivery_id)
        except nats.js.errors.KeyNotFoundError:
            return Taken(owner="?", until=now + 0.2)  # changed meanwhile: look again soon
        held = _decode(entry.value)
        if held is not None and held[0] != self.owner and held[1] > now:
            return Taken(owner=held[0], until=held[1])
        try:
            revision = await self._kv.update(delivery_id, self._value(until), last=entry.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return Taken(owner="?", until=now + 0.2)
        return Lease(delivery_id, revision, until)

    async def renew(self, lease: Lease) -> Lease | None:
        """Extend a lease by ``lease_seconds``; None when another worker took it over."""
        until = time.time() + self.lease_seconds
        try:
            revision = await self._kv.update(
                lease.delivery_id, self._value(until), last=lease.revision
            )
        except nats.js.errors.KeyWrongLastSequenceError:
            self.lost += 1
            _log.error("webhooks.group_lease_lost", delivery_id=lease.delivery_id)
            return None
        return Lease(lease.delivery_id, revision, until)

    async def release(self, lease: Lease) -> None:
        """Give a lease up (the delivery is finished or handed back); a lost race is fine."""
        try:
            await self._kv.update(lease.delivery_id, self._value(0.0), last=lease.revision)
        except nats.js.errors.KeyWrongLastSequenceError:
            return


def _decode(raw: bytes | None) -> tuple[str, float] | None:
    try:
        value = json.loads(raw or b"")
        return str(value["owner"]), float(value["until"])
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: treated as free (the next write replaces it)
