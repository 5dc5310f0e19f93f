"""The delivery store shared by a group of processes, in JetStream KV buckets.

Same interface as :class:`~mnemo_events.webhooks._store.DeliveryStore`, so the runtime and
the actors run on it unchanged, plus :meth:`JetStreamDeliveryStore.bump_state` for counters
kept group-wide.

**Layout.** ``<prefix>_deliveries``: key ``d.<webhook_id>.<delivery_id>``, one JSON record
per delivery with its attempts inside (see :mod:`~mnemo_events.webhooks._kv_records`).
``<prefix>_webhook_state``: key ``s.<webhook_id>``, each webhook's counters, and
``meta.registry_id``. Both buckets: file storage, history 1.

**Writes.** Each write is one JetStream publish awaited for its acknowledgement: the record
is stored once the future (of ``add_delivery``, ``reopen``) resolves or :meth:`flush`
returns. Writes of one delivery are applied in the order they were submitted (a chain per
delivery); writes of different deliveries run concurrently on the one connection, so
acknowledgements are pipelined. ``add_delivery`` creates the key only if absent: a
delivery id that exists already (a fan-out re-run after a crash) keeps its record, and is
not an error. Every update is a compare-and-set on the record's revision; a conflict (another
process wrote it) re-reads the record and applies the change again. A write that times out
or meets a server going away is retried until ``write_timeout``; then it fails, logged and
counted in :attr:`write_errors`, and the next :meth:`flush` raises its error. A query waits
for the writes submitted before it, so a process reads its own writes.

**Retention.** A finished record (``success``/``failed``) is written with a per-message TTL
of ``retention_days``: the server removes it that long after its last change, with no marker
left. :meth:`prune` removes finished records by their ``updated_at``, as SQLite's does, for
a cut-off more recent than the retention (an older one is the TTL's work: no scan).

**Costs** (a round trip is about 0.3 ms on loopback): ``add_delivery`` one publish;
``record_attempt``, ``reopen`` one compare-and-set publish (plus one get when this process
has not read the record yet, and a get per conflict); ``get_delivery``, ``job`` one get by
the subject ``d.*.<id>``, which the server answers from its subject index (work in the
number of webhooks, not of records); ``list_deliveries``, ``counts``, ``failed_jobs`` one
ephemeral consumer over the webhook's keys: one message per record of that webhook, so
O(its records in the retention period); ``fail_open`` that, plus a write per open record;
``open_jobs`` O(all records); ``prune`` O(all records), or nothing at the retention
cut-off; ``states`` O(webhooks); ``bump_state`` one get and one compare-and-set (two more
per conflict); ``save_state`` one publish.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

from nats.js import JetStreamContext, api
from nats.js.errors import (
    NotFoundError,
)
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue

from mnemo_events._log import logger
from mnemo_events.webhooks._kv_chains import WriteChains
from mnemo_events.webhooks._kv_common import (
    DEFAULT_PREFIX,
    bucket_names,
    key_token,
    open_bucket,
    scan,
    wrong_last,
)
from mnemo_events.webhooks._kv_counters import SharedCounters
from mnemo_events.webhooks._kv_records import (
    FINISHED,
    OPEN,
    apply_attempt,
    decode,
    delivery_of,
    encode,
    job_of,
    new_record,
)
from mnemo_events.webhooks._store import StoreLifecycle, StoreState
from mnemo_events.webhooks._store_rows import AttemptRow, StoredJob, UpdateRow, WebhookState
from mnemo_events.webhooks.models import Delivery

__all__ = ["JetStreamDeliveryStore"]

_log = logger("webhooks.store")
_MAX_CONFLICTS = 256
"""Compare-and-set rounds of one write before it gives up (others kept writing the key)."""
_CACHE = 4096
"""Records this process wrote last, kept with their revision to skip a read before a write."""
_MARKER_TTL = 3600


class JetStreamDeliveryStore(StoreLifecycle):
    """Delivery records and attempts in JetStream KV (see the module docstring).

    Args:
        js: the JetStream context (its connection is the caller's: never closed here).
        prefix: the bucket names' prefix (``<prefix>_deliveries``, ``<prefix>_webhook_state``).
        retention_days: how long a finished record is kept after its last change.
        write_timeout: how long a write is retried while the server is away.
    """

    def __init__(
        self,
        js: JetStreamContext,
        *,
        prefix: str = DEFAULT_PREFIX,
        retention_days: float = 30.0,
        write_timeout: float = 10.0,
    ) -> None:
        names = bucket_names(prefix)
        self._js = js
        self._names = (names["deliveries"], names["state"])
        self._ttl = max(int(retention_days * 86400), 1)
        self._chains = WriteChains(write_timeout)
        self._records: KeyValue | None = None
        self._counters: SharedCounters | None = None
        self._state = StoreState.NEW
        self._registry: tuple[str, bool] | None = None
        self._cache: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.batches = 0
        """Writes the server acknowledged."""
        self.write_errors = 0
        """Writes that failed for good (each logged)."""
        self.duplicates = 0
        """``add_delivery`` calls for an id already stored (its record was kept)."""
        self.bad_entries = 0
        """Stored records that could not be read (each logged, skipped)."""

    @property
    def path(self) -> None:
        """Always ``None``: there is no file."""
        return None

    @property
    def buckets(self) -> tuple[str, str]:
        """The names of the deliveries bucket and of the counters bucket."""
        return self._names

    def _where(self) -> str:
        return f"KV bucket {self._names[0]!r}"

    # -- lifecycle ---------------------------------------------------------------------------

    def expect_registry(self, registry_id: str, *, saved: bool) -> None:
        """Before :meth:`open`: this store serves the webhook registry ``registry_id``.

        At open, buckets recorded for another registry are refused before anything is
        written (their deliveries would be resumed against the wrong webhooks); buckets
        recorded for none record this one (once ``saved``: a KV registry always is).
        """
        self._registry = (registry_id, saved)

    async def open(self) -> None:
        """Open the buckets (created if missing) and check the registry they serve.

        Raises:
            DeliveryStoreCorruptError: the buckets belong to another webhook registry.
            DeliveryStoreClosedError: the store was closed (make a new one).
            nats.errors.Error: the server cannot be reached or refuses.
        """
        if self._state is StoreState.OPEN:
            return
        if self._state is not StoreState.NEW:
            self._refuse_unless_open()
        self._records = await open_bucket(self._js, self._names[0], "mnemo-events deliveries")
        counters = SharedCounters(
            await open_bucket(self._js, self._names[1], "mnemo-events counters"),
            self._chains,
            failed=self._failed_write,
            stored=self._stored,
        )
        if self._registry is not None and self._registry[1]:
            await counters.check_registry(self._registry[0], self._names[0])
        self._counters = counters
        self._state = StoreState.OPEN

    def _stored(self) -> None:
        self.batches += 1

    async def close(self) -> None:
        """Wait for the writes under way (each bounded by ``write_timeout``), then refuse work."""
        if self._state is not StoreState.OPEN:
            if self._state is StoreState.NEW:
                self._state = StoreState.CLOSED
            return
        self._state = StoreState.CLOSING
        try:
            await self._chains.settled()
        finally:
            self._state = StoreState.CLOSED

    async def flush(self) -> None:
        """Return once every write submitted before the call is stored.

        Raises:
            DeliveryStoreClosedError: the store is not open.
            Exception: the error of a write that failed for good since the last flush (it
                was logged and counted; that record is not stored).
        """
        self._refuse_unless_open()
        await self._chains.settled()
        failed = self._chains.take_failure()
        if failed is not None:
            raise failed

    def _failed_write(self, what: str, key: str, err: BaseException) -> None:
        self.write_errors += 1
        _log.error(
            "webhooks.store_write_failed",
            bucket=self._names[0],
            key=key,
            what=what,
            error=repr(err),
        )

    # -- records -----------------------------------------------------------------------------

    def _key(self, webhook_id: str, delivery_id: str) -> str:
        return f"d.{key_token(webhook_id)}.{key_token(delivery_id)}"

    def _remember(self, delivery_id: str, key: str, revision: int, record: dict[str, Any]) -> None:
        self._cache.pop(delivery_id, None)
        self._cache[delivery_id] = (key, revision, record)
        if len(self._cache) > _CACHE:
            del self._cache[next(iter(self._cache))]

    async def _fetch(self, delivery_id: str) -> tuple[str, int, dict[str, Any]] | None:
        """A record as stored now (key, revision, record), or ``None``."""
        records = self._records
        assert records is not None
        subject = f"{records._pre}d.*.{key_token(delivery_id)}"
        try:
            msg = await self._chains.retrying(
                lambda: self._js.get_msg(records._stream, subject=subject)
            )
        except NotFoundError:
            return None
        headers = msg.headers or {}
        if headers.get(KV_OP) in (KV_DEL, KV_PURGE) or not msg.data:
            return None
        return (str(msg.subject)[len(records._pre) :], msg.seq or 0, decode(msg.data))

    async def _publish(
        self, key: str, value: bytes, last: int, *, finished: bool, purge: bool = False
    ) -> int:
        """One compare-and-set write of ``key`` (``last=0``: only if absent)."""
        records = self._records
        assert records is not None
        headers: dict[str, Any] = {api.Header.EXPECTED_LAST_SUBJECT_SEQUENCE.value: str(last)}
        if purge:
            headers |= {KV_OP: KV_PURGE, api.Header.ROLLUP.value: "sub"}
            headers[api.Header.MSG_TTL.value] = str(_MARKER_TTL)
        elif finished:
            headers[api.Header.MSG_TTL.value] = str(self._ttl)
        ack = await self._js.publish(f"{records._pre}{key}", value, headers=headers)
        self.batches += 1
        return ack.seq

    async def _mutate(self, delivery_id: str, change: Callable[[dict[str, Any]], bool]) -> bool:
        """Apply ``change(record)`` (False: nothing to do) by compare-and-set; whether the
        record was changed. A missing record is logged and counted."""
        for _ in range(_MAX_CONFLICTS):
            found = self._cache.pop(delivery_id, None) or await self._fetch(delivery_id)
            if found is None:
                self.write_errors += 1
                _log.error(
                    "webhooks.kv_record_missing", bucket=self._names[0], delivery_id=delivery_id
                )
                return False
            key, revision, stored = found
            record = dict(stored)
            if not change(record):
                self._remember(delivery_id, key, revision, stored)
                return False
            value = encode(record)
            try:
                write = functools.partial(
                    self._publish, key, value, revision, finished=record["status"] in FINISHED
                )
                new_revision = await self._chains.retrying(write)
            except Exception as err:
                if wrong_last(err):
                    continue  # changed by another process (or by our own timed-out try)
                raise
            self._remember(delivery_id, key, new_revision, record)
            return True
        raise RuntimeError(
            f"delivery {delivery_id} in the KV bucket {self._names[0]!r} was changed by others "
            f"{_MAX_CONFLICTS} times in a row"
        )

    def add_delivery(
        self,
        delivery_id: str,
        webhook_id: str,
        event_id: str,
        event_type: str,
        body: bytes,
        created_at: float,
    ) -> asyncio.Future[None]:
        """Record a new pending delivery; the future resolves once the server stored it (or
        found it stored already: the existing record is kept).

        Raises:
            DeliveryStoreClosedError: the store is not open.
        """
        self._refuse_unless_open()
        key = self._key(webhook_id, delivery_id)

        async def _add() -> None:
            try:
                record = new_record(delivery_id, webhook_id, event_id, event_type, body, created_at)
                value = encode(record)
                try:
                    revision = await self._chains.retrying(
                        lambda: self._publish(key, value, 0, finished=False)
                    )
                except Exception as err:
                    if not wrong_last(err):
                        raise
                    self.duplicates += 1  # stored before (a re-run fan-out, or our timed-out try)
                    return
                self._remember(delivery_id, key, revision, record)
            except Exception as err:
                self._failed_write("add_delivery", key, err)
                raise

        return self._chains.enqueue(delivery_id, _add)

    def record_attempt(self, attempt: AttemptRow | None, update: UpdateRow) -> None:
        """Record one attempt (if one was made) and the delivery's new state, in one write.

        Stored in the background, after the delivery's earlier writes; a failure is logged,
        counted and raised by the next :meth:`flush`.

        Raises:
            DeliveryStoreClosedError: the store is not open.
        """
        self._refuse_unless_open()

        def _change(record: dict[str, Any]) -> bool:
            apply_attempt(record, attempt, update)
            return True

        self._change_later("record_attempt", update.id, _change)

    def _change_later(
        self, what: str, delivery_id: str, change: Callable[[dict[str, Any]], bool]
    ) -> asyncio.Task[bool]:
        """Queue ``change`` of one record on its chain; a failure is logged and counted."""

        async def _write() -> bool:
            try:
                return await self._mutate(delivery_id, change)
            except Exception as err:
                self._failed_write(what, delivery_id, err)
                raise

        return self._chains.enqueue(delivery_id, _write)

    def reopen(self, delivery_ids: Sequence[str]) -> asyncio.Future[None]:
        """Make deliveries pending again for a new round of attempts (a redelivery); the
        future resolves once all are stored."""
        self._refuse_unless_open()
        now = time.time()

        def _change(record: dict[str, Any]) -> bool:
            record.update(
                status="pending",
                round_start=record["attempts"],
                next_attempt_at=None,
                updated_at=now,
            )
            return True

        tasks = [self._change_later("reopen", i, _change) for i in delivery_ids]

        async def _all() -> None:
            await asyncio.gather(*tasks)

        return asyncio.ensure_future(_all())

    # -- counters ----------------------------------------------------------------------------

    def save_state(self, state: WebhookState) -> None:
        """Save a webhook's counters as they are now (last writer wins; see
        :meth:`bump_state` for counters shared by a group).

        Raises:
            DeliveryStoreClosedError: the store is not open.
        """
        self._refuse_unless_open()
        assert self._counters is not None
        self._counters.save(state)

    async def bump_state(
        self, webhook_id: str, *, success: bool, at: float, status_code: int | None = None
    ) -> WebhookState:
        """Count one finished delivery in the webhook's shared counters, by compare-and-set,
        and return them: a success resets ``consecutive_failures`` and sets
        ``last_success_at``, a failure adds one and sets ``last_failure_at``; both set
        ``last_delivery_at``. Concurrent bumps from any processes are all counted, once each
        (a write that timed out is checked before it is tried again). ``status_code`` is
        kept in the stored value, for operators.

        Raises:
            DeliveryStoreClosedError: the store is not open.
        """
        self._refuse_unless_open()
        assert self._counters is not None
        return await self._counters.bump(
            webhook_id, success=success, at=at, status_code=status_code
        )

    async def states(self) -> dict[str, WebhookState]:
        """Every webhook's saved counters."""
        self._refuse_unless_open()
        await self._chains.settled()
        assert self._counters is not None
        return await self._counters.every(self._bad_entry)

    def _bad_entry(self, entry: KeyValue.Entry, err: Exception) -> None:
        self.bad_entries += 1
        _log.error("webhooks.kv_bad_entry", bucket=entry.bucket, key=entry.key, error=repr(err))

    # -- queries and rare writes -------------------------------------------------------------

    async def _scan(self, kv: KeyValue, keys: str) -> Any:
        async for entry in scan(kv, keys):
            try:
                record = decode(entry.value)
            except ValueError as err:
                self._bad_entry(entry, err)
                continue
            record["_revision"] = entry.revision
            record["_key"] = entry.key
            yield record

    async def _of_webhook(self, webhook_id: str | None) -> list[dict[str, Any]]:
        self._refuse_unless_open()
        await self._chains.settled()
        assert self._records is not None
        keys = "d.*.*" if webhook_id is None else f"d.{key_token(webhook_id)}.*"
        return [record async for record in self._scan(self._records, keys)]

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery with its attempts, or ``None``."""
        self._refuse_unless_open()
        await self._chains.settled()
        found = await self._fetch(delivery_id)
        return None if found is None else delivery_of(found[2], with_attempts=True)

    async def job(self, delivery_id: str) -> StoredJob | None:
        """One delivery as a job, or ``None``."""
        self._refuse_unless_open()
        await self._chains.settled()
        found = await self._fetch(delivery_id)
        return None if found is None else job_of(found[2])

    async def list_deliveries(
        self, webhook_id: str, *, limit: int = 100, status: str | None = None
    ) -> list[Delivery]:
        """A webhook's deliveries, newest first (``created_at``, then id), optionally of one
        status."""
        records = [
            r for r in await self._of_webhook(webhook_id) if status is None or r["status"] == status
        ]
        records.sort(key=lambda r: (r["created_at"], r["id"]), reverse=True)
        return [delivery_of(r, with_attempts=False) for r in records[: max(limit, 0)]]

    async def counts(self, webhook_id: str) -> dict[str, int]:
        """Deliveries of a webhook by status."""
        found: dict[str, int] = {}
        for record in await self._of_webhook(webhook_id):
            found[record["status"]] = found.get(record["status"], 0) + 1
        return found

    async def open_jobs(self) -> list[StoredJob]:
        """Every pending or retrying delivery, oldest first."""
        records = [r for r in await self._of_webhook(None) if r["status"] in OPEN]
        records.sort(key=lambda r: (r["created_at"], r["id"]))
        return [job_of(r) for r in records]

    async def failed_jobs(self, webhook_id: str, since: float | None) -> list[StoredJob]:
        """A webhook's failed deliveries created at or after ``since``, oldest first."""
        records = [
            r
            for r in await self._of_webhook(webhook_id)
            if r["status"] == "failed" and r["created_at"] >= (since or 0.0)
        ]
        records.sort(key=lambda r: (r["created_at"], r["id"]))
        return [job_of(r) for r in records]

    async def fail_open(self, webhook_id: str, reason: str) -> int:
        """Mark a webhook's pending and retrying deliveries failed; how many there were."""
        now = time.time()

        def _change(record: dict[str, Any]) -> bool:
            if record["status"] not in OPEN:
                return False  # finished meanwhile
            record.update(status="failed", last_error=reason, updated_at=now, next_attempt_at=None)
            return True

        open_ids = [r["id"] for r in await self._of_webhook(webhook_id) if r["status"] in OPEN]
        tasks = [self._change_later("fail_open", i, _change) for i in open_ids]
        return sum(await asyncio.gather(*tasks))

    async def prune(self, before: float) -> int:
        """Delete finished deliveries last updated before ``before``; how many. A record
        changed meanwhile (a redelivery) is kept.

        A cut-off at or before ``retention_days`` ago (what the runtime asks for every hour)
        is the TTL's work already: it returns 0 without the scan of every record, which
        every process of a group would otherwise pay each hour.
        """
        self._refuse_unless_open()
        if before <= time.time() - self._ttl:
            return 0
        pruned = 0
        for record in await self._of_webhook(None):
            if record["status"] not in FINISHED or record["updated_at"] >= before:
                continue
            self._cache.pop(record["id"], None)
            try:
                purge = functools.partial(
                    self._publish,
                    record["_key"],
                    b"",
                    record["_revision"],
                    finished=True,
                    purge=True,
                )
                await self._chains.retrying(purge)
            except Exception as err:
                if wrong_last(err):
                    continue
                raise
            pruned += 1
        return pruned
