"""The delivery store: every delivery and attempt in SQLite, written in batches off the loop.

One worker thread owns the only connection (stdlib :mod:`sqlite3`, WAL journal, synchronous
NORMAL: a killed process loses nothing committed; only a power cut may lose the last
transactions). Writes are buffered and committed together, one transaction per batch: while
one batch is being written the next one fills up, so the cost per delivery falls as the load
rises. Each table's rows go in a few multi-row statements (see
:data:`~mnemo_events.webhooks._store_rows.ROWS_PER_STATEMENT`), so the writer thread takes the
GIL from the event loop a few times per batch rather than per row. Reads go through the same
queue, after the writes submitted before them, so a reader sees its own writes. New
deliveries, reads and :meth:`DeliveryStore.flush` start a transaction at once; a batch of only
attempt results waits up to 5 ms for company first.

**The crash boundary.** A delivery is durable once the batch holding its row has committed:
the future returned by :meth:`DeliveryStore.add_delivery` (or :meth:`DeliveryStore.flush`)
resolves then. Before that, a SIGKILL loses it; after, it survives and is resumed. An
attempt's record is durable once its batch commits, at most about 5 ms after the attempt
(plus the time to write the batch before it): a SIGKILL in between leaves the delivery
``pending`` or ``retrying``, and it is sent again after the restart (at least once, as for a
kill during the attempt itself).

**Checked at open.** An existing file must be a delivery store (``PRAGMA application_id``,
``user_version`` and the ``store_meta`` format) and pass ``PRAGMA quick_check``; a 0-byte,
damaged or foreign file raises :class:`~mnemo_events.exceptions.DeliveryStoreCorruptError`
naming it and is never written to. A store also records the ``registry_id`` of the
``webhooks.json`` it serves, and refuses to open for another one. A new file is built under a
temporary name and linked into place, so a crash during creation never leaves a half-made store
behind.

``path=None`` keeps the store in memory (gone at :meth:`DeliveryStore.close`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import secrets
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from mnemo_events._log import logger
from mnemo_events.exceptions import DeliveryStoreClosedError, DeliveryStoreCorruptError
from mnemo_events.webhooks._store_rows import (
    APPLICATION_ID,
    DELIVERY_COLUMNS,
    INSERT_ATTEMPTS,
    INSERT_DELIVERIES,
    JOB_COLUMNS,
    SCHEMA,
    SCHEMA_VERSION,
    STATE_COLUMNS,
    STORE_FORMAT,
    UPDATE_DELIVERIES,
    UPDATE_DELIVERY,
    UPDATE_FROM_SUPPORTED,
    UPSERT_STATE,
    AttemptRow,
    NewDeliveryRow,
    StoredJob,
    UpdateRow,
    WebhookState,
    attempt_from_row,
    chunks,
    delivery_from_row,
    job_from_row,
    last_per_delivery,
    state_from_row,
)
from mnemo_events.webhooks.models import Delivery

__all__ = [
    "AttemptRow",
    "DeliveryStore",
    "StoreLifecycle",
    "StoreState",
    "StoredJob",
    "UpdateRow",
    "WebhookState",
    "check_store_file",
]

_T = TypeVar("_T")
_MAX_NEW_PER_BATCH = 256
"""New deliveries per transaction: a burst starts sending after its first 256 are recorded."""
_RESULTS_WINDOW = 0.005
"""Seconds attempt results wait for company before their transaction starts. New deliveries,
reads and :meth:`DeliveryStore.flush` start it at once; a batch of only results waits this
long, so one transaction records a few milliseconds of attempts rather than one or two."""
_log = logger("webhooks.store")


class StoreState(enum.Enum):
    """Where a :class:`DeliveryStore` is in its life."""

    NEW = "new"
    """Not opened yet: refuses work."""
    OPEN = "open"
    CLOSING = "closing"
    """Committing what is buffered; refuses new work."""
    CLOSED = "closed"


@dataclass(slots=True)
class _Batch:
    deliveries: list[NewDeliveryRow] = field(default_factory=list)
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

    @property
    def urgent(self) -> bool:
        """Something waits for this batch: new deliveries, reads, or a flush."""
        return bool(self.deliveries or self.calls) or self.committed is not None

    def commit_future(self) -> asyncio.Future[None]:
        if self.committed is None:
            self.committed = asyncio.get_running_loop().create_future()
        return self.committed


def _corrupt(path: Path, problem: str) -> DeliveryStoreCorruptError:
    return DeliveryStoreCorruptError(
        f"delivery store {str(path)!r} {problem}; it was left untouched: restore it from a "
        "backup or move it away to start with an empty store"
    )


def check_store_file(conn: sqlite3.Connection, path: Path) -> bool:
    """Check that an existing file is a sound delivery store; whether it needs stamping.

    Returns True for a store made by a version that did not stamp its files yet (no
    ``application_id``, the same tables): it is adopted.

    Raises:
        DeliveryStoreCorruptError: not a SQLite database, not a delivery store, a newer
            schema, or ``PRAGMA quick_check`` found damage.
    """
    try:
        application_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")
        }
        problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as err:
        raise _corrupt(path, f"cannot be read as a SQLite database ({err})") from err
    if problems != ["ok"]:
        raise _corrupt(path, f"is damaged (quick_check: {'; '.join(problems)})")
    legacy = application_id == 0 and version == 1 and {"deliveries", "attempts"} <= tables
    if application_id != APPLICATION_ID and not legacy:
        found = f"application_id {application_id:#x}, tables {sorted(tables)}"
        raise _corrupt(path, f"is not a mnemo-events delivery store ({found})")
    if version > SCHEMA_VERSION:
        raise _corrupt(path, f"has schema version {version}, newer than this version's")
    if not legacy:
        try:
            meta = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise _corrupt(path, f"has no readable store_meta table ({err})") from err
        if meta.get("format") != STORE_FORMAT:
            raise _corrupt(path, f"has store format {meta.get('format')!r}")
    return legacy


class StoreLifecycle:
    """Where a delivery store is in its life, and its refusal outside ``open()``/``close()``
    (shared by the SQLite store and the JetStream KV store)."""

    _state: StoreState

    @property
    def state(self) -> StoreState:
        """Where the store is in its life."""
        return self._state

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` ran and :meth:`close` did not."""
        return self._state is StoreState.OPEN

    def _where(self) -> str:
        """Where the store keeps its records, for error messages."""
        raise NotImplementedError

    def _refuse_unless_open(self) -> None:
        if self._state is not StoreState.OPEN:
            raise DeliveryStoreClosedError(
                f"the delivery store ({self._where()}) is {self._state.value}: it takes work "
                "only between open() and close()"
            )


class DeliveryStore(StoreLifecycle):
    """SQLite records of deliveries and attempts (see the module docstring)."""

    def __init__(self, path: str | Path | None) -> None:
        self._path = None if path is None else Path(path)
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._batches: deque[_Batch] = deque([_Batch()])
        self._writing: _Batch | None = None
        self._wakeup: asyncio.Event | None = None
        self._soon: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._state = StoreState.NEW
        self._registry: tuple[str, bool] | None = None
        self.batches = 0
        """Transactions committed."""
        self.write_errors = 0
        """Batches that failed to commit (each logged)."""

    @property
    def path(self) -> Path | None:
        """The database file, or ``None`` in memory."""
        return self._path

    def _where(self) -> str:
        return "in memory" if self._path is None else repr(str(self._path))

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Open (creating if needed) and check the database, then start the writer.

        Raises:
            DeliveryStoreCorruptError: the file exists but is empty, damaged or not a delivery
                store (the file is left as it is).
            DeliveryStoreClosedError: the store was closed (make a new one).
        """
        if self._state is StoreState.OPEN:
            return
        if self._state is not StoreState.NEW:
            self._refuse_unless_open()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mnemo-wh-store")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._connect)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._wakeup = asyncio.Event()
        self._state = StoreState.OPEN
        self._task = asyncio.create_task(self._writer(), name="mnemo-events-webhook-store")

    def _connect(self) -> None:
        if self._path is None:
            conn = sqlite3.connect(":memory:", isolation_level=None)
            conn.executescript(SCHEMA)
            self._init_meta(conn)
        else:
            if not self._path.exists():
                self._create(self._path)
            conn = self._open_existing(self._path)
        conn.row_factory = sqlite3.Row
        self._conn = conn

    @staticmethod
    def _init_meta(conn: sqlite3.Connection) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO store_meta (key, value) VALUES (?, ?)",
            [
                ("format", STORE_FORMAT),
                ("store_id", f"dst_{secrets.token_hex(12)}"),
                ("created_at", repr(time.time())),
            ],
        )

    def expect_registry(self, registry_id: str, *, saved: bool) -> None:
        """Before :meth:`open`: this store serves the webhook registry ``registry_id``.

        At open, a store recorded for another registry is refused before anything is written
        (its deliveries would be resumed against the wrong webhooks); one recorded for none
        records this one, once the registry's file carries it (``saved``).
        """
        self._registry = (registry_id, saved)

    def _check_registry(self, conn: sqlite3.Connection, path: Path) -> None:
        if self._registry is None:
            return
        registry_id, saved = self._registry
        row = conn.execute("SELECT value FROM store_meta WHERE key = 'registry_id'").fetchone()
        if row is not None and saved and row[0] != registry_id:
            raise _corrupt(
                path,
                f"belongs to another webhook registry (registry_id {row[0]!r}, but the webhook "
                f"file says {registry_id!r})",
            )

    def _record_registry(self, conn: sqlite3.Connection) -> None:
        if self._registry is not None and self._registry[1]:
            conn.execute(
                "INSERT OR IGNORE INTO store_meta (key, value) VALUES ('registry_id', ?)",
                (self._registry[0],),
            )

    def _create(self, path: Path) -> None:
        """Build a new store under a temporary name, then link it into place (no clobber)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.new")
        try:
            conn = sqlite3.connect(str(temp), isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(SCHEMA)
                self._init_meta(conn)
            finally:
                conn.close()
            with contextlib.suppress(FileExistsError):  # another process made it first
                os.link(temp, path)
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        finally:
            for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm")):
                leftover.unlink(missing_ok=True)

    def _open_existing(self, path: Path) -> sqlite3.Connection:
        if path.stat().st_size == 0:
            raise _corrupt(path, "is empty (0 bytes)")
        try:
            conn = sqlite3.connect(str(path), isolation_level=None)
        except sqlite3.Error as err:
            raise _corrupt(path, f"cannot be opened ({err})") from err
        try:
            legacy = check_store_file(conn, path)
            if not legacy:
                self._check_registry(conn, path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.executescript(SCHEMA)
            if legacy:
                self._init_meta(conn)
            self._record_registry(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Commit what is buffered, stop the writer and close the database."""
        if self._state is not StoreState.OPEN:
            if self._state is StoreState.NEW:
                self._state = StoreState.CLOSED
            return
        self._state = StoreState.CLOSING
        assert self._wakeup is not None
        assert self._task is not None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        self._wakeup.set()
        try:
            await self._task
        finally:
            self._task = None
            assert self._executor is not None
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._executor, self._disconnect)
            self._executor.shutdown(wait=True)
            self._executor = None
            self._state = StoreState.CLOSED

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- buffered writes -------------------------------------------------------------------

    def _kick(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _kick_soon(self) -> None:
        """Wake the writer within :data:`_RESULTS_WINDOW` (for attempt results)."""
        if self._soon is None and self._wakeup is not None and not self._wakeup.is_set():
            self._soon = asyncio.get_running_loop().call_later(_RESULTS_WINDOW, self._kick_now)

    def _kick_now(self) -> None:
        self._soon = None
        self._kick()

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

        Raises:
            DeliveryStoreClosedError: the store is not open.
        """
        if self._state is not StoreState.OPEN:
            self._refuse_unless_open()
        batch = self._batches[-1]
        if len(batch.deliveries) >= _MAX_NEW_PER_BATCH:
            batch = _Batch()
            self._batches.append(batch)
        batch.deliveries.append(
            NewDeliveryRow(
                id=delivery_id,
                webhook_id=webhook_id,
                event_id=event_id,
                event_type=event_type,
                body=body,
                created_at=created_at,
                updated_at=created_at,
            )
        )
        self._kick()
        return batch.commit_future()

    def record_attempt(self, attempt: AttemptRow | None, update: UpdateRow) -> None:
        """Record one attempt (if one was made) and the delivery's new state, in the same
        transaction.

        Committed with the next batch; a failed batch is logged and counted.

        Raises:
            DeliveryStoreClosedError: the store is not open.
        """
        if self._state is not StoreState.OPEN:
            self._refuse_unless_open()
        batch = self._batches[-1]
        if attempt is not None:
            batch.attempts.append(attempt)
        batch.updates.append(update)
        self._kick_soon()

    def save_state(self, state: WebhookState) -> None:
        """Save a webhook's counters as they are when the batch is written.

        Raises:
            DeliveryStoreClosedError: the store is not open.
        """
        if self._state is not StoreState.OPEN:
            self._refuse_unless_open()
        self._batches[-1].states[state.webhook_id] = state
        self._kick_soon()

    async def flush(self) -> None:
        """Return once everything submitted before the call is committed.

        Raises:
            DeliveryStoreClosedError: the store is not open.
            sqlite3.Error: a batch holding some of those writes could not commit (it was
                logged and counted; its rows are not in the store).
        """
        self._refuse_unless_open()
        pending = [batch.commit_future() for batch in self._batches]
        if self._writing is not None:
            pending.append(self._writing.commit_future())
        self._kick()
        # Shielded: the futures are shared by every waiter of their batch.
        await asyncio.gather(*(asyncio.shield(future) for future in pending))

    def _submit(self, call: Callable[[sqlite3.Connection], _T]) -> asyncio.Future[_T]:
        self._refuse_unless_open()
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
                batch = self._writing = self._batches.popleft()
                if not self._batches:
                    self._batches.append(_Batch())
                # Rows of the counters as they are now, built on the loop that changes them.
                batch.state_rows = [state.row() for state in batch.states.values()]
                try:
                    results = await loop.run_in_executor(self._executor, self._apply, batch)
                except Exception as err:  # the whole transaction was rolled back
                    self._writing = None
                    self.write_errors += 1
                    _log.error("webhooks.store_write_failed", path=str(self._path), error=repr(err))
                    if batch.committed is not None and not batch.committed.done():
                        batch.committed.set_exception(err)
                        batch.committed.exception()  # reported here; awaiting it is optional
                    for _, future in batch.calls:
                        if not future.done():
                            future.set_exception(err)
                    continue
                self._writing = None
                if batch.committed is not None and not batch.committed.done():
                    batch.committed.set_result(None)
                for (_, future), result in zip(batch.calls, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, _Failed):
                        future.set_exception(result.error)
                    else:
                        future.set_result(result)
                waiting = self._batches[0]
                if waiting and not waiting.urgent and self._state is StoreState.OPEN:
                    self._kick_soon()  # only attempt results next: let them gather first
                    break
            if self._state is not StoreState.OPEN:
                return

    def _apply(self, batch: _Batch) -> list[Any]:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN")
        try:
            for size, values in chunks(batch.deliveries):
                conn.execute(INSERT_DELIVERIES[size], values)
            for size, values in chunks(batch.attempts):
                conn.execute(INSERT_ATTEMPTS[size], values)
            if not UPDATE_FROM_SUPPORTED:
                conn.executemany(UPDATE_DELIVERY, batch.updates)
            else:
                for size, values in chunks(last_per_delivery(batch.updates)):
                    conn.execute(UPDATE_DELIVERIES[size], values)
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
                "SELECT status, COUNT(*) AS n FROM deliveries WHERE webhook_id = ? GROUP BY status",
                (webhook_id,),
            )
            return {row["status"]: row["n"] for row in rows}

        return await self._submit(_counts)

    async def open_jobs(self) -> list[StoredJob]:
        """Every pending or retrying delivery, oldest first (what :meth:`start` resumes)."""
        return await self._submit(
            lambda conn: [
                job_from_row(row)
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
                job_from_row(row)
                for row in conn.execute(
                    f"SELECT {JOB_COLUMNS} FROM deliveries WHERE webhook_id = ? "
                    "AND status = 'failed' AND created_at >= ? ORDER BY created_at",
                    (webhook_id, since or 0.0),
                )
            ]
        )

    async def job(self, delivery_id: str) -> StoredJob | None:
        """One delivery as a job, or ``None``."""

        def _job(conn: sqlite3.Connection) -> StoredJob | None:
            row = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            return None if row is None else job_from_row(row)

        return await self._submit(_job)

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
                state.webhook_id: state
                for state in map(
                    state_from_row, conn.execute(f"SELECT {STATE_COLUMNS} FROM webhook_state")
                )
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
