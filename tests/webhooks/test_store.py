"""Tests of the SQLite delivery store: batched writes off the loop, queries, resume, pruning."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mnemo_events.exceptions import DeliveryStoreClosedError
from mnemo_events.webhooks._store import (
    DeliveryStore,
    StoreState,
    WebhookState,
)
from mnemo_events.webhooks._store_rows import ROWS_PER_STATEMENT, chunks, last_per_delivery
from mnemo_events.webhooks.models import DeliveryStatus
from tests.helpers.store_rows import add as _add
from tests.helpers.store_rows import retry as _retry
from tests.helpers.store_rows import rows as _rows
from tests.helpers.store_rows import success as _success


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DeliveryStore]:
    """An open store in a file under tmp_path, closed after the test."""
    opened = DeliveryStore(tmp_path / "deliveries.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


class TestWrites:
    async def test_file_uses_wal(self, store: DeliveryStore, tmp_path: Path) -> None:
        """The database file is in WAL mode."""
        await store.flush()
        conn = sqlite3.connect(tmp_path / "deliveries.sqlite3")
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()

    async def test_writes_are_batched(self, store: DeliveryStore) -> None:
        """Writes submitted together commit in far fewer transactions than rows."""
        await store.flush()
        before = store.batches
        waiters = [_add(store, n) for n in range(500)]
        for n in range(500):
            store.record_attempt(*_success(f"dlv_wh_a_{n}", 1))
        await store.flush()
        assert all(w.done() for w in waiters)
        assert store.batches - before <= 3
        assert (await store.counts("wh_a")) == {"success": 500}

    async def test_a_burst_is_recorded_in_chunks(self, store: DeliveryStore) -> None:
        """A burst of new deliveries commits in chunks, so the first ones can be sent while
        the last are still being recorded."""
        await store.flush()
        waiters = [_add(store, n) for n in range(600)]
        await waiters[0]
        assert not waiters[-1].done()
        await waiters[-1]
        assert (await store.counts("wh_a")) == {"pending": 600}

    async def test_failed_batch_is_counted_and_reported(self, store: DeliveryStore) -> None:
        """A batch that cannot commit is rolled back, counted, its waiters fail, and later
        batches go on."""
        await store.flush()
        bad = store.add_delivery("dlv_bad", "wh_a", "evt", "t", object(), 1.0)  # type: ignore[arg-type]
        with pytest.raises(sqlite3.Error):
            await bad
        assert store.write_errors == 1
        await _add(store, 1)
        assert await store.get_delivery("dlv_wh_a_1") is not None
        assert await store.get_delivery("dlv_bad") is None

    async def test_records_survive_reopening(self, tmp_path: Path) -> None:
        """What was committed is there after closing and opening the file again."""
        path = tmp_path / "d.sqlite3"
        first = DeliveryStore(path)
        await first.open()
        _add(first, 1)
        store_state = WebhookState("wh_a", consecutive_failures=3, last_failure_at=5.0)
        first.save_state(store_state)
        await first.close()
        second = DeliveryStore(path)
        await second.open()
        try:
            assert (await second.get_delivery("dlv_wh_a_1")) is not None
            assert (await second.states())["wh_a"] == store_state
        finally:
            await second.close()

    async def test_memory_store_is_private_and_temporary(self) -> None:
        """path=None keeps records in memory until close."""
        memory = DeliveryStore(None)
        await memory.open()
        await _add(memory, 1)
        assert (await memory.counts("wh_a")) == {"pending": 1}
        await memory.close()
        assert not memory.is_open

    async def test_a_store_not_open_refuses_work(self, tmp_path: Path) -> None:
        """Before open() and after close() every write and query raises
        DeliveryStoreClosedError naming the file; a closed store cannot reopen."""
        path = tmp_path / "early.sqlite3"
        store = DeliveryStore(path)
        assert store.state is StoreState.NEW
        with pytest.raises(DeliveryStoreClosedError, match=r"early\.sqlite3.*new"):
            _add(store, 1)
        assert not path.exists()
        await store.open()
        assert store.is_open
        await _add(store, 1)
        await store.close()
        assert store.state.value == "closed"
        with pytest.raises(DeliveryStoreClosedError, match="closed"):
            store.record_attempt(*_success("dlv_wh_a_1", 1))
        with pytest.raises(DeliveryStoreClosedError):
            await store.counts("wh_a")
        with pytest.raises(DeliveryStoreClosedError):
            await store.flush()
        with pytest.raises(DeliveryStoreClosedError):
            await store.open()

    async def test_flush_waits_for_every_earlier_batch(self, store: DeliveryStore) -> None:
        """flush() returns only once every delivery submitted before it is committed, even
        when they span several batches."""
        waiters = [_add(store, n) for n in range(700)]
        await store.flush()
        assert all(w.done() and w.exception() is None for w in waiters)

    async def test_flush_reports_a_batch_that_failed(self, store: DeliveryStore) -> None:
        """A flush covering a batch that could not commit raises its error: those rows are
        not durable."""
        await store.flush()
        store.add_delivery("dlv_bad", "wh_a", "evt", "t", object(), 1.0)  # type: ignore[arg-type]
        with pytest.raises(sqlite3.Error):
            await store.flush()
        await store.flush()


class TestExactRoundTrips:
    async def test_a_batch_reads_back_exactly(self, store: DeliveryStore) -> None:
        """A batch of rows comes back byte for byte and float for float."""
        await store.flush()
        stamps = [1_764_594_559.123456789 + n / 7 for n in range(300)]
        bodies = [(f'{{"n":{n},"t":"é😀\u2028\\"q\\""}}').encode() for n in range(300)]
        for n in range(300):
            store.add_delivery(
                f"dlv_{n}", "wh_a", f"evt_{n}", "memory.created", bodies[n], stamps[n]
            )
        for n in range(300):
            store.record_attempt(
                *_rows(f"dlv_{n}", 1, "retry", 503, error="é", body="ü\n", next_at=stamps[n] / 3)
            )
            store.record_attempt(*_rows(f"dlv_{n}", 2, "success", 200, latency=stamps[n] / 11))
        await store.flush()
        for n in (0, 137, 299):
            job = await store.job(f"dlv_{n}")
            delivery = await store.get_delivery(f"dlv_{n}")
            assert job is not None
            assert delivery is not None
            assert job.body == bodies[n]
            assert type(job.body) is bytes
            assert delivery.created_at.timestamp() == pytest.approx(stamps[n], abs=1e-6)
            assert (delivery.status, delivery.attempts) == (DeliveryStatus.SUCCESS, 2)
            assert delivery.last_latency_ms == stamps[n] / 11
            assert [(a.number, a.error, a.response_body) for a in delivery.attempt_log] == [
                (1, "é", "ü\n"),
                (2, None, None),
            ]
        conn = sqlite3.connect(store.path)  # type: ignore[arg-type]
        try:
            row = conn.execute("SELECT created_at FROM deliveries WHERE id = 'dlv_137'").fetchone()
        finally:
            conn.close()
        assert row[0] == stamps[137]

    async def test_a_non_utf8_body_and_nul_text_are_stored_exactly(
        self, store: DeliveryStore
    ) -> None:
        """A body that is not UTF-8, or text holding a NUL, is stored exactly."""
        await store.flush()
        odd = {"dlv_latin1": b'{"n":"\xe9"}', "dlv_nul": b'{"n":"a\x00b"}', "dlv_ok": b"{}"}
        for delivery_id, body in odd.items():
            store.add_delivery(delivery_id, "wh_a", "evt", "memory.created", body, 1.0)
        store.record_attempt(*_rows("dlv_ok", 1, "failed", 500, body="x\x00y", error="e\x00"))
        await store.flush()
        for delivery_id, body in odd.items():
            job = await store.job(delivery_id)
            assert job is not None
            assert job.body == body
        delivery = await store.get_delivery("dlv_ok")
        assert delivery is not None
        assert delivery.last_response == "x\x00y"
        assert delivery.attempt_log[0].response_body == "x\x00y"
        assert delivery.attempt_log[0].error == "e\x00"


def _committed_attempts(path: Path) -> int:
    """Attempt rows a second connection sees (what a crash would leave)."""
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0])
    finally:
        conn.close()


class TestMultiRowStatements:
    @pytest.mark.parametrize("count", [1, 3, 5, 17, 63, 64, 65, 100, 257])
    async def test_every_batch_size_lands_whole(self, store: DeliveryStore, count: int) -> None:
        """A batch of any size, cut into multi-row statements, records every delivery, attempt
        and update exactly once."""
        await store.flush()
        for n in range(count):
            _add(store, n)
        await store.flush()
        for n in range(count):
            store.record_attempt(*_success(f"dlv_wh_a_{n}", 1, at=1000.0 + n))
        await store.flush()
        assert (await store.counts("wh_a")) == {"success": count}
        assert _committed_attempts(store.path) == count  # type: ignore[arg-type]
        for n in (0, count // 2, count - 1):
            delivery = await store.get_delivery(f"dlv_wh_a_{n}")
            assert delivery is not None
            assert delivery.event_id == f"evt_{n}"
            job = await store.job(f"dlv_wh_a_{n}")
            assert job is not None
            assert job.body == b'{"n":%d}' % n
            assert delivery.updated_at.timestamp() == 1000.0 + n

    @pytest.mark.parametrize("update_from", [True, False], ids=["update-from", "row-by-row"])
    async def test_several_updates_of_a_delivery_in_one_batch_keep_the_last(
        self, store: DeliveryStore, monkeypatch: pytest.MonkeyPatch, update_from: bool
    ) -> None:
        """Two attempts of one delivery recorded in the same batch (a retry, then a success)
        leave the second one's state, for every delivery of a batch that spans statements;
        the same on a SQLite older than 3.33, which updates row by row (no UPDATE ... FROM)."""
        monkeypatch.setattr("mnemo_events.webhooks._store.UPDATE_FROM_SUPPORTED", update_from)
        await store.flush()
        for n in range(100):
            _add(store, n)
        await store.flush()
        for n in range(100):
            store.record_attempt(*_retry(f"dlv_wh_a_{n}", 1))
            store.record_attempt(*_success(f"dlv_wh_a_{n}", 2))
        await store.flush()
        assert (await store.counts("wh_a")) == {"success": 100}
        delivery = await store.get_delivery("dlv_wh_a_99")
        assert delivery is not None
        assert delivery.attempts == 2
        assert delivery.next_attempt_at is None
        assert [a.outcome for a in delivery.attempt_log] == ["retry", "success"]


class TestChunks:
    def test_chunks_keep_every_row_in_order(self) -> None:
        """Cutting rows into statement sizes keeps every value once, in order."""
        for count in range(0, 300, 7):
            rows = [(n, f"v{n}") for n in range(count)]
            cut = list(chunks(rows))
            assert all(size in ROWS_PER_STATEMENT for size, _ in cut)
            assert all(len(values) == 2 * size for size, values in cut)
            assert [v for _, values in cut for v in values] == [v for row in rows for v in row]

    def test_last_update_per_delivery_wins(self) -> None:
        """Of several updates of one delivery the last one is kept."""
        first = _retry("dlv_1", 1)[1]
        other = _success("dlv_2", 1)[1]
        last = _success("dlv_1", 2)[1]
        assert sorted(last_per_delivery([first, other, last])) == sorted([last, other])


class TestResultsWindow:
    async def test_attempt_results_commit_without_a_flush(self, store: DeliveryStore) -> None:
        """An attempt result waits a few milliseconds for company, then commits on its own."""
        await _add(store, 1)
        store.record_attempt(*_success("dlv_wh_a_1", 1))
        deadline = time.monotonic() + 5.0
        # Polling another connection: nothing in this process can say the row is on disk.
        while _committed_attempts(store.path) == 0 and time.monotonic() < deadline:  # type: ignore[arg-type]  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        assert _committed_attempts(store.path) == 1  # type: ignore[arg-type]

    async def test_a_flush_commits_waiting_results_at_once(self, store: DeliveryStore) -> None:
        """flush() does not wait out the window: the results are committed when it returns."""
        await _add(store, 1)
        store.record_attempt(*_success("dlv_wh_a_1", 1))
        await store.flush()
        assert _committed_attempts(store.path) == 1  # type: ignore[arg-type]

    async def test_a_new_delivery_does_not_wait_for_the_window(self, store: DeliveryStore) -> None:
        """Results gathered in the window go with the next new delivery, which commits at once
        (its first attempt waits for that commit)."""
        await _add(store, 1)
        store.record_attempt(*_success("dlv_wh_a_1", 1))
        await asyncio.wait_for(_add(store, 2), 5.0)
        assert _committed_attempts(store.path) == 1  # type: ignore[arg-type]

    async def test_close_commits_results_in_the_window(self, tmp_path: Path) -> None:
        """Closing the store commits the results that were waiting."""
        store = DeliveryStore(tmp_path / "d.sqlite3")
        await store.open()
        await _add(store, 1)
        store.record_attempt(*_success("dlv_wh_a_1", 1))
        await store.close()
        assert _committed_attempts(tmp_path / "d.sqlite3") == 1
