"""What both delivery stores promise, run on each: the SQLite store (a file in tmp_path) and
the JetStream KV store (a real nats-server). Store-specific behaviour stays in
``test_store.py`` and ``group/test_kv_store.py``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeAlias

import pytest

from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore
from mnemo_events.webhooks._store import DeliveryStore
from mnemo_events.webhooks.models import DeliveryStatus
from tests.helpers.nats import NatsServer, connect_jetstream
from tests.helpers.store_rows import add as _add
from tests.helpers.store_rows import retry as _retry
from tests.helpers.store_rows import rows as _rows
from tests.helpers.store_rows import success as _success

pytestmark = pytest.mark.timeout(90)

AnyStore: TypeAlias = DeliveryStore | JetStreamDeliveryStore


@pytest.fixture(params=["sqlite", "kv"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AnyStore]:
    """An open store of each kind, closed after the test."""
    if request.param == "sqlite":
        sqlite = DeliveryStore(tmp_path / "deliveries.sqlite3")
        await sqlite.open()
        yield sqlite
        await sqlite.close()
        return
    with NatsServer(tmp_path / "js") as server:
        nc, js = await connect_jetstream(server.url)
        kv = JetStreamDeliveryStore(js)
        await kv.open()
        yield kv
        await kv.close()
        await nc.close()


class TestWrites:
    async def test_delivery_and_attempts_round_trip(self, store: AnyStore) -> None:
        """A delivery with a failed then a successful attempt reads back with both attempts."""
        await _add(store, 1)
        store.record_attempt(*_retry("dlv_wh_a_1", 1))
        store.record_attempt(*_success("dlv_wh_a_1", 2))
        delivery = await store.get_delivery("dlv_wh_a_1")
        assert delivery is not None
        assert delivery.status is DeliveryStatus.SUCCESS
        assert delivery.attempts == 2
        assert delivery.last_status_code == 200
        assert [(a.number, a.outcome, a.status_code) for a in delivery.attempt_log] == [
            (1, "retry", 500),
            (2, "success", 200),
        ]
        assert delivery.attempt_log[0].response_body == "boom"
        job = await store.job("dlv_wh_a_1")
        assert job is not None
        assert (job.body, job.event_type) == (b'{"n":1}', "memory.created")

    async def test_unknown_delivery_is_none(self, store: AnyStore) -> None:
        """Looking up an id that does not exist gives None."""
        assert await store.get_delivery("dlv_missing") is None
        assert await store.job("dlv_missing") is None

    async def test_reads_see_earlier_writes(self, store: AnyStore) -> None:
        """A query submitted after a write (without awaiting it) sees that write."""
        _add(store, 7)
        store.record_attempt(*_retry("dlv_wh_a_7", 1))
        delivery = await store.get_delivery("dlv_wh_a_7")
        assert delivery is not None
        assert delivery.status is DeliveryStatus.RETRYING


class TestQueries:
    async def test_history_newest_first_with_filter_and_limit(self, store: AnyStore) -> None:
        """History lists newest first, filters by status and honours the limit."""
        for n in range(1, 6):
            _add(store, n)
        store.record_attempt(*_success("dlv_wh_a_2", 1))
        store.record_attempt(*_success("dlv_wh_a_4", 1))
        _add(store, 9, webhook="wh_other")
        history = await store.list_deliveries("wh_a")
        assert [d.id for d in history] == [f"dlv_wh_a_{n}" for n in (5, 4, 3, 2, 1)]
        ok = await store.list_deliveries("wh_a", status="success")
        assert [d.id for d in ok] == ["dlv_wh_a_4", "dlv_wh_a_2"]
        assert len(await store.list_deliveries("wh_a", limit=2)) == 2

    async def test_open_jobs_are_pending_and_retrying_oldest_first(self, store: AnyStore) -> None:
        """Resume reads every pending and retrying delivery with its body, oldest first."""
        for n in (3, 1, 2, 4):
            _add(store, n)
        store.record_attempt(*_retry("dlv_wh_a_2", 1, next_at=50.0))
        store.record_attempt(*_success("dlv_wh_a_4", 1))
        jobs = await store.open_jobs()
        assert [j.id for j in jobs] == ["dlv_wh_a_1", "dlv_wh_a_2", "dlv_wh_a_3"]
        retrying = jobs[1]
        assert (retrying.attempts, retrying.next_attempt_at, retrying.body) == (1, 50.0, b'{"n":2}')

    async def test_reopen_starts_a_new_round(self, store: AnyStore) -> None:
        """Reopening a finished delivery makes it pending with round_start at its attempts."""
        _add(store, 1)
        store.record_attempt(*_retry("dlv_wh_a_1", 1))
        store.record_attempt(*_rows("dlv_wh_a_1", 2, "failed", 500, error="x", at=3.0))
        assert [j.id for j in await store.failed_jobs("wh_a", None)] == ["dlv_wh_a_1"]
        await store.reopen(["dlv_wh_a_1"])
        job = await store.job("dlv_wh_a_1")
        assert job is not None
        assert (job.attempts, job.round_start) == (2, 2)
        assert [j.id for j in await store.open_jobs()] == ["dlv_wh_a_1"]

    async def test_failed_jobs_since(self, store: AnyStore) -> None:
        """replay_failed's query keeps failed deliveries created at or after `since`."""
        for n in (10, 20):
            _add(store, n)
            store.record_attempt(*_rows(f"dlv_wh_a_{n}", 1, "failed", 410, error="gone", at=30.0))
        assert [j.id for j in await store.failed_jobs("wh_a", 15.0)] == ["dlv_wh_a_20"]

    async def test_fail_open(self, store: AnyStore) -> None:
        """fail_open marks only the unfinished deliveries of one webhook failed."""
        _add(store, 1)
        _add(store, 2)
        store.record_attempt(*_success("dlv_wh_a_2", 1))
        _add(store, 3, webhook="wh_b")
        assert await store.fail_open("wh_a", "webhook deleted") == 1
        gone = await store.get_delivery("dlv_wh_a_1")
        assert gone is not None
        assert (gone.status, gone.last_error) == (DeliveryStatus.FAILED, "webhook deleted")
        assert (await store.counts("wh_b")) == {"pending": 1}

    async def test_prune_removes_old_finished_records_only(self, store: AnyStore) -> None:
        """Pruning deletes finished deliveries (and attempts) older than the cut-off."""
        now = time.time()
        _add(store, 1)
        store.record_attempt(*_success("dlv_wh_a_1", 1, at=now - 100))
        _add(store, 2)
        store.record_attempt(*_success("dlv_wh_a_2", 1, at=now))
        _add(store, 3, at=now - 100)
        assert await store.prune(now - 50) == 1
        assert await store.get_delivery("dlv_wh_a_1") is None
        assert await store.get_delivery("dlv_wh_a_2") is not None
        assert await store.get_delivery("dlv_wh_a_3") is not None
        remaining = await store.get_delivery("dlv_wh_a_2")
        assert remaining is not None
        assert len(remaining.attempt_log) == 1
        assert await store.counts("wh_a") == {"success": 1, "pending": 1}
