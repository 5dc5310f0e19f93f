"""The delivery store: every delivery and attempt in SQLite, written in batches off the loop.

One worker thread owns the only connection (stdlib :mod:`sqlite3`, WAL journal, synchronous
NORMAL: a killed process loses nothing committed; only a power cut may lose the last
transactions). Writes are buffered and committed together, one transaction per batch: while
one batch is being written the next one fills up, so the cost per delivery falls as the load
rises. Reads go through the same queue, after the writes submitted before them, so a reader
sees its own writes.

``path=None`` keeps the store in memory (gone at :meth:`DeliveryStore.close`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mnemo_events._log import logger
from mnemo_events.webhooks._store_rows import (
    DELIVERY_COLUMNS,
    INSERT_ATTEMPT,
    INSERT_DELIVERY,
    JOB_COLUMNS,
    SCHEMA,
    UPDATE_DELIVERY,
    UPSERT_STATE,
    AttemptRow,
    StoredJob,
    UpdateRow,
    WebhookState,
    attempt_from_row,
    delivery_from_row,
)
from mnemo_events.webhooks.models import Delivery

__all__ = ["AttemptRow", "DeliveryStore", "StoredJob", "UpdateRow", "WebhookState"]

_T = TypeVar("_T")
_MAX_NEW_PER_BATCH = 256
"""New deliveries per transaction: a burst starts sending after its first 256 are recorded."""
_log = logger("webhooks.store")


@dataclass(slots=True)
class _Batch:
    deliveries: list[tuple[Any, ...]] = field(default_factory=list)
    attempts: list[AttemptRow] = field(default_factory=list)
    updates: list[UpdateRow] = field(default_factory=list)
    states: dict[str, WebhookState] = field(default_factory=dict)
    state_rows: list[tuple[Any, ...]] = field(default_factory=list)
    calls: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = field(
        default_factory=list
    )
    committed: asyncio.Future[None] | None = None
    """One future for the whole batch: resolved when its transaction commits."""

    def __bool__(self) -> bool:
        return bool(
            self.deliveries or self.attempts or self.updates or self.states or self.calls
        ) or (self.committed is not None)

    def commit_future(self) -> asyncio.Future[None]:
        if self.committed is None:
            self.committed = asyncio.get_running_loop().create_future()
        return self.committed


class DeliveryStore:
    """SQLite records of deliveries and attempts (see the module docstring)."""

    def __init__(self, path: str | Path | None) -> None:
        self._path = None if path is None else Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._batches: deque[_Batch] = deque([_Batch()])
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0
        """Transactions committed."""
        self.rows_written = 0
        self.write_errors = 0
        """Batches that failed to commit (each logged)."""

    @property
    def path(self) -> Path | None:
        """The database file, or ``None`` in memory."""
        return self._path

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` ran and :meth:`close` did not."""
        return self._task is not None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) the database and start the writer."""
        if self._task is not None:
            return
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnemo-wh-store")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._connect)
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._writer(), name="mnemo-events-webhook-store")
        if self._batches[0]:
            self._wakeup.set()

    def _connect(self) -> None:
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            ":memory:" if self._path is None else str(self._path), isolation_level=None
        )
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.executescript(SCHEMA)
        self._conn = conn

    async def close(self) -> None:
        """Commit what is buffered, stop the writer and close the database."""
        if self._task is None:
            return
        self._closing = True
        assert self._wakeup is not None
        self._wakeup.set()
        await self._task
        self._task = None
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._disconnect)
        self._executor.shutdown(wait=True)
        self._executor = None

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- buffered writes -------------------------------------------------------------------

    def _kick(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def add_delivery(
        self,
        delivery_id: str,
        webhook_id: str,
        event_id: str,
        event_type: str,
        body: bytes,
        created_at: float,
    ) -> asyncio.Future[None]:
        """Record a new pending delivery; the future resolves once it is committed.

        The future is shared by the whole batch: await it through :func:`asyncio.shield`
        if the awaiting task may be cancelled.
        """
        batch = self._batches[-1]
        if len(batch.deliveries) >= _MAX_NEW_PER_BATCH:
            batch = _Batch()
            self._batches.append(batch)
        batch.deliveries.append(
            (delivery_id, webhook_id, event_id, event_type, body, created_at, created_at)
        )
        self._kick()
        return batch.commit_future()

    def record_attempt(self, attempt: AttemptRow | None, update: UpdateRow) -> None:
        """Record one attempt (if one was made) and the delivery's new state.

        Committed with the next batch; a failed batch is logged and counted.
        """
        if attempt is not None:
            self._batches[-1].attempts.append(attempt)
        self._batches[-1].updates.append(update)
        self._kick()

    def save_state(self, state: WebhookState) -> None:
        """Save a webhook's counters as they are when the batch is written."""
        self._batches[-1].states[state.webhook_id] = state
        self._kick()

    def flush(self) -> asyncio.Future[None]:
        """A future that resolves once everything buffered so far is committed."""
        self._kick()
        return asyncio.shield(self._batches[-1].commit_future())

    def _submit(self, call: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._batches[-1].calls.append((call, future))
        self._kick()
        return future

    async def _writer(self) -> None:
        assert self._wakeup is not None
        assert self._executor is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._batches[0]:
                batch = self._batches.popleft()
                if not self._batches:
                    self._batches.append(_Batch())
                # Rows of the counters as they are now, built on the loop that changes them.
                batch.state_rows = [state.row() for state in batch.states.values()]
                try:
                    results = await loop.run_in_executor(self._executor, self._apply, batch)
                except Exception as err:  # the whole transaction was rolled back
                    self.write_errors += 1
                    _log.error("webhooks.store_write_failed", path=str(self._path), error=repr(err))
                    if batch.committed is not None and not batch.committed.done():
                        batch.committed.set_exception(err)
                        batch.committed.exception()  # reported here; awaiting it is optional
                    for _, future in batch.calls:
                        if not future.done():
                            future.set_exception(err)
                    continue
                if batch.committed is not None and not batch.committed.done():
                    batch.committed.set_result(None)
                for (_, future), result in zip(batch.calls, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, _Failed):
                        future.set_exception(result.error)
                    else:
                        future.set_result(result)
            if self._closing:
                return

    def _apply(self, batch: _Batch) -> list[Any]:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            if batch.deliveries:
                conn.executemany(INSERT_DELIVERY, batch.deliveries)
            if batch.attempts:
                conn.executemany(INSERT_ATTEMPT, batch.attempts)
            if batch.updates:
                conn.executemany(UPDATE_DELIVERY, batch.updates)
            if batch.state_rows:
                conn.executemany(UPSERT_STATE, batch.state_rows)
            results: list[Any] = []
            for call, _ in batch.calls:
                try:
                    results.append(call(conn))
                except sqlite3.Error as err:  # one bad call does not undo the others
                    results.append(_Failed(err))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self.batches += 1
        self.rows_written += len(batch.deliveries) + len(batch.attempts) + len(batch.updates)
        return results

    # -- queries and rare writes -------------------------------------------------------------

    async def get_delivery(self, delivery_id: str) -> Delivery | None:
        """One delivery with its attempts, or ``None``."""

        def _get(conn: sqlite3.Connection) -> Delivery | None:
            row = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                return None
            attempts = tuple(
                attempt_from_row(a)
                for a in conn.execute(
                    "SELECT number, started_at, outcome, status_code, error, latency_ms, "
                    "response_body FROM attempts WHERE delivery_id = ? ORDER BY number",
                    (delivery_id,),
                )
            )
            return delivery_from_row(row, attempts)

        return await self._submit(_get)

    async def list_deliveries(
        self, webhook_id: str, *, limit: int = 100, status: str | None = None
    ) -> list[Delivery]:
        """A webhook's deliveries, newest first, optionally of one status."""
        where = "webhook_id = ?" + (" AND status = ?" if status else "")
        params: tuple[Any, ...] = (webhook_id, status) if status else (webhook_id,)

        def _list(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {where} "
                "ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (*params, limit),
            )
            return [delivery_from_row(row) for row in rows]

        return await self._submit(_list)

    async def counts(self, webhook_id: str) -> dict[str, int]:
        """Deliveries of a webhook by status."""

        def _counts(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT status, COUNT(*) FROM deliveries WHERE webhook_id = ? GROUP BY status",
                (webhook_id,),
            )
            return dict(rows)

        return await self._submit(_counts)

    async def open_jobs(self) -> list[StoredJob]:
        """Every pending or retrying delivery, oldest first (what :meth:`start` resumes)."""
        return await self._submit(
            lambda conn: [
                StoredJob(*row)
                for row in conn.execute(
                    f"SELECT {JOB_COLUMNS} FROM deliveries "
                    "WHERE status IN ('pending', 'retrying') ORDER BY created_at"
                )
            ]
        )

    async def failed_jobs(self, webhook_id: str, since: float | None) -> list[StoredJob]:
        """A webhook's failed deliveries created at or after ``since``, oldest first."""
        return await self._submit(
            lambda conn: [
                StoredJob(*row)
                for row in conn.execute(
                    f"SELECT {JOB_COLUMNS} FROM deliveries WHERE webhook_id = ? "
                    "AND status = 'failed' AND created_at >= ? ORDER BY created_at",
                    (webhook_id, since or 0.0),
                )
            ]
        )

    async def job(self, delivery_id: str) -> StoredJob | None:
        """One delivery as a job, or ``None``."""
        return await self._submit(
            lambda conn: (
                None
                if (
                    row := conn.execute(
                        f"SELECT {JOB_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
                    ).fetchone()
                )
                is None
                else StoredJob(*row)
            )
        )

    def reopen(self, delivery_ids: Sequence[str]) -> asyncio.Future[None]:
        """Make deliveries pending again for a new round of attempts (a redelivery)."""
        now = time.time()
        ids = [(now, delivery_id) for delivery_id in delivery_ids]
        return self._submit(
            lambda conn: conn.executemany(
                "UPDATE deliveries SET status = 'pending', round_start = attempts, "
                "next_attempt_at = NULL, updated_at = ? WHERE id = ?",
                ids,
            ).close()
        )

    async def fail_open(self, webhook_id: str, reason: str) -> int:
        """Mark a webhook's pending and retrying deliveries failed; how many there were."""
        now = time.time()
        return await self._submit(
            lambda conn: (
                conn.execute(
                    "UPDATE deliveries SET status = 'failed', last_error = ?, updated_at = ?, "
                    "next_attempt_at = NULL "
                    "WHERE webhook_id = ? AND status IN ('pending', 'retrying')",
                    (reason, now, webhook_id),
                ).rowcount
            )
        )

    async def states(self) -> dict[str, WebhookState]:
        """Every webhook's saved counters."""
        return await self._submit(
            lambda conn: {
                row[0]: WebhookState(*row) for row in conn.execute("SELECT * FROM webhook_state")
            }
        )

    async def prune(self, before: float) -> int:
        """Delete finished deliveries (and their attempts) last updated before ``before``."""

        def _prune(conn: sqlite3.Connection) -> int:
            old = (
                "SELECT id FROM deliveries WHERE status IN ('success', 'failed') AND updated_at < ?"
            )
            conn.execute(f"DELETE FROM attempts WHERE delivery_id IN ({old})", (before,))
            return conn.execute(
                "DELETE FROM deliveries WHERE status IN ('success', 'failed') AND updated_at < ?",
                (before,),
            ).rowcount

        return await self._submit(_prune)


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception
