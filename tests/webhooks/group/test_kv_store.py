"""Tests of the delivery store on JetStream KV: the SQLite store's behaviours where they apply,
several stores writing at once, duplicate adds, shared counters, retention, restarts."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from nats.js import JetStreamContext
from structlog.testing import capture_logs

from mnemo_events.exceptions import DeliveryStoreClosedError, DeliveryStoreCorruptError
from mnemo_events.webhooks._kv_store import JetStreamDeliveryStore
from mnemo_events.webhooks._store import StoreState, WebhookState
from mnemo_events.webhooks.models import DeliveryStatus
from tests.helpers.nats import NatsServer, connect_jetstream
from tests.helpers.store_rows import add as _add
from tests.helpers.store_rows import retry as _retry
from tests.helpers.store_rows import success as _success

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def store(connection: JetStreamContext) -> AsyncIterator[JetStreamDeliveryStore]:
    """An open store on the server, closed after the test."""
    opened = JetStreamDeliveryStore(connection)
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def other(server: NatsServer) -> AsyncIterator[JetStreamDeliveryStore]:
    """A second store on the same buckets over another connection (another process)."""
    nc, js = await connect_jetstream(server.url)
    opened = JetStreamDeliveryStore(js)
    await opened.open()
    yield opened
    await opened.close()
    await nc.close()


class TestWrites:
    async def test_any_body_is_kept_byte_for_byte(self, store: JetStreamDeliveryStore) -> None:
        """A body with NUL bytes, invalid UTF-8 and quotes reads back exactly, after an
        attempt rewrote its record too."""
        body = b'{"a":"\x00\xff\\"}\x00tail'
        await store.add_delivery("dlv_raw", "wh_a", "evt", "t", body, 1.0)
        store.record_attempt(*_retry("dlv_raw", 1))
        job = await store.job("dlv_raw")
        assert job is not None
        assert (job.body, job.attempts) == (body, 1)

    async def test_a_burst_is_stored_with_pipelined_acknowledgements(
        self, store: JetStreamDeliveryStore
    ) -> None:
        """500 deliveries and their attempts submitted without waiting are all stored by
        flush(), each future resolved, and counted."""
        waiters = [_add(store, n) for n in range(500)]
        for n in range(500):
            store.record_attempt(*_success(f"dlv_wh_a_{n}", 1))
        await store.flush()
        assert all(w.done() and w.exception() is None for w in waiters)
        assert (await store.counts("wh_a")) == {"success": 500}
        assert store.batches == 1000

    async def test_a_failed_write_is_counted_logged_and_reported_by_flush(
        self, store: JetStreamDeliveryStore
    ) -> None:
        """A write that cannot be stored fails its future, is counted and logged, and the next
        flush raises its error; later writes go on."""
        with capture_logs() as logs:
            bad = store.add_delivery("dlv_bad", "wh_a", "evt", "t", object(), 1.0)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                await bad
            with pytest.raises(TypeError):
                await store.flush()
        await store.flush()
        assert store.write_errors == 1
        assert [e["event"] for e in logs] == ["webhooks.store_write_failed"]
        await _add(store, 1)
        assert await store.get_delivery("dlv_wh_a_1") is not None
        assert await store.get_delivery("dlv_bad") is None

    async def test_an_attempt_for_a_missing_record_is_logged_and_counted(
        self, store: JetStreamDeliveryStore
    ) -> None:
        """Recording an attempt of a delivery the store does not hold is a logged, counted
        error, never a silent no-op."""
        with capture_logs() as logs:
            store.record_attempt(*_success("dlv_nowhere", 1))
            await store.flush()
        assert store.write_errors == 1
        assert [e["event"] for e in logs] == ["webhooks.kv_record_missing"]

    async def test_a_store_not_open_refuses_work(self, connection: JetStreamContext) -> None:
        """Before open() and after close() every write and query raises
        DeliveryStoreClosedError naming the bucket; a closed store cannot reopen."""
        store = JetStreamDeliveryStore(connection)
        assert store.state is StoreState.NEW
        with pytest.raises(DeliveryStoreClosedError, match=r"mnemo_deliveries.*new"):
            _add(store, 1)
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
            await store.bump_state("wh_a", success=True, at=1.0)
        with pytest.raises(DeliveryStoreClosedError):
            await store.open()

    async def test_odd_ids_are_stored_and_found(self, store: JetStreamDeliveryStore) -> None:
        """Webhook and delivery ids with dots or spaces keep to their own key tokens."""
        await store.add_delivery("dlv.one two", "wh.x y", "evt", "t", b"{}", 1.0)
        store.record_attempt(*_success("dlv.one two", 1))
        delivery = await store.get_delivery("dlv.one two")
        assert delivery is not None
        assert (delivery.webhook_id, delivery.status) == ("wh.x y", DeliveryStatus.SUCCESS)
        assert await store.counts("wh.x y") == {"success": 1}
        assert await store.counts("wh") == {}


class TestQueries:
    async def test_prune_at_the_retention_cut_off_leaves_it_to_the_ttl(
        self, store: JetStreamDeliveryStore
    ) -> None:
        """The runtime's hourly prune (cut-off: retention_days ago) scans nothing and removes
        nothing: finished records carry their TTL; a later cut-off does scan."""
        now = time.time()
        old = now - 40 * 86400  # finished long ago by its stamp, written just now
        _add(store, 1, at=old)
        store.record_attempt(*_success("dlv_wh_a_1", 1, at=old))
        assert await store.prune(now - 30 * 86400) == 0
        assert await store.get_delivery("dlv_wh_a_1") is not None
        assert await store.prune(now - 29 * 86400) == 1


class TestShared:
    async def test_a_second_store_sees_the_same_records(
        self, store: JetStreamDeliveryStore, other: JetStreamDeliveryStore
    ) -> None:
        """What one store wrote, another store on the same buckets reads: one delivery with
        its attempts, the history, the counts, the open jobs."""
        _add(store, 1)
        _add(store, 2)
        store.record_attempt(*_retry("dlv_wh_a_1", 1))
        store.record_attempt(*_success("dlv_wh_a_1", 2))
        await store.flush()
        delivery = await other.get_delivery("dlv_wh_a_1")
        assert delivery is not None
        assert [a.number for a in delivery.attempt_log] == [1, 2]
        assert [d.id for d in await other.list_deliveries("wh_a")] == ["dlv_wh_a_2", "dlv_wh_a_1"]
        assert await other.counts("wh_a") == {"success": 1, "pending": 1}
        assert [j.id for j in await other.open_jobs()] == ["dlv_wh_a_2"]

    async def test_a_duplicate_add_keeps_the_existing_record(
        self, store: JetStreamDeliveryStore, other: JetStreamDeliveryStore
    ) -> None:
        """Adding a delivery id that exists (a fan-out re-run after a crash, from another
        process) resolves without error and leaves the stored record and attempts as they
        were."""
        await _add(store, 1)
        store.record_attempt(*_success("dlv_wh_a_1", 1))
        await store.flush()
        await other.add_delivery("dlv_wh_a_1", "wh_a", "evt_1", "memory.created", b"{}", 99.0)
        await other.flush()
        delivery = await store.get_delivery("dlv_wh_a_1")
        assert delivery is not None
        assert (delivery.status, delivery.attempts, delivery.created_at.timestamp()) == (
            DeliveryStatus.SUCCESS,
            1,
            1.0,
        )
        assert other.duplicates == 1
        assert other.write_errors == 0

    async def test_updates_from_two_stores_of_one_record_are_all_kept(
        self, store: JetStreamDeliveryStore, other: JetStreamDeliveryStore
    ) -> None:
        """Two stores recording attempts of the same deliveries at once (compare-and-set):
        every attempt of every delivery is in its record."""
        for n in range(20):
            _add(store, n)
        await store.flush()
        for n in range(20):
            store.record_attempt(*_retry(f"dlv_wh_a_{n}", 1))
            other.record_attempt(*_retry(f"dlv_wh_a_{n}", 2))
            store.record_attempt(*_retry(f"dlv_wh_a_{n}", 3))
            other.record_attempt(*_retry(f"dlv_wh_a_{n}", 4))
        await asyncio.gather(store.flush(), other.flush())
        for n in range(20):
            delivery = await other.get_delivery(f"dlv_wh_a_{n}")
            assert delivery is not None
            assert [a.number for a in delivery.attempt_log] == [1, 2, 3, 4]

    async def test_concurrent_bumps_give_the_exact_count(
        self, store: JetStreamDeliveryStore, other: JetStreamDeliveryStore, server: NatsServer
    ) -> None:
        """60 failure bumps from three stores on three connections, 20 tasks each, racing:
        consecutive_failures is exactly 60; then one success resets it."""
        nc, js = await connect_jetstream(server.url)
        third = JetStreamDeliveryStore(js)
        await third.open()
        try:
            results = await asyncio.gather(
                *(
                    s.bump_state("wh_a", success=False, at=float(i), status_code=500)
                    for s in (store, other, third)
                    for i in range(20)
                )
            )
            assert sorted(r.consecutive_failures for r in results) == list(range(1, 61))
            shared = (await third.states())["wh_a"]
            assert shared.consecutive_failures == 60
            assert shared.last_failure_at is not None
            reset = await other.bump_state("wh_a", success=True, at=100.0, status_code=200)
            assert (reset.consecutive_failures, reset.last_success_at) == (0, 100.0)
            assert (await store.states())["wh_a"].last_delivery_at == 100.0
        finally:
            await third.close()
            await nc.close()

    async def test_saved_counters_read_back(
        self, store: JetStreamDeliveryStore, other: JetStreamDeliveryStore
    ) -> None:
        """save_state stores a webhook's counters as they were when it was called."""
        state = WebhookState("wh_a", consecutive_failures=3, last_failure_at=5.0)
        store.save_state(state)
        state.consecutive_failures = 4
        store.save_state(state)
        await store.flush()
        assert (await other.states())["wh_a"] == WebhookState(
            "wh_a", consecutive_failures=4, last_failure_at=5.0
        )


class TestDurability:
    async def test_records_survive_a_server_restart(self, tmp_path: Path) -> None:
        """Records and counters stored before nats-server restarts are there afterwards,
        read by a new store on a new connection."""
        with NatsServer(tmp_path / "js") as server:
            nc, js = await connect_jetstream(server.url)
            first = JetStreamDeliveryStore(js)
            await first.open()
            _add(first, 1)
            first.record_attempt(*_success("dlv_wh_a_1", 1))
            first.save_state(WebhookState("wh_a", consecutive_failures=2))
            await first.close()
            await nc.close()
            server.restart()
            nc, js = await connect_jetstream(server.url)
            second = JetStreamDeliveryStore(js)
            await second.open()
            try:
                delivery = await second.get_delivery("dlv_wh_a_1")
                assert delivery is not None
                assert delivery.status is DeliveryStatus.SUCCESS
                assert (await second.states())["wh_a"].consecutive_failures == 2
            finally:
                await second.close()
                await nc.close()

    async def test_writes_during_a_server_restart_are_retried(self, tmp_path: Path) -> None:
        """Deliveries added while nats-server restarts are stored once it is back (the write
        is tried again within write_timeout), none lost, none failed."""
        with NatsServer(tmp_path / "js") as server:
            nc, js = await connect_jetstream(server.url)
            store = JetStreamDeliveryStore(js, write_timeout=20.0)
            await store.open()
            try:
                server.stop()
                waiters = [_add(store, n) for n in range(20)]
                await asyncio.sleep(0.3)
                server.start()
                await asyncio.wait_for(store.flush(), 30)
                assert all(w.exception() is None for w in waiters)
                assert await store.counts("wh_a") == {"pending": 20}
                assert store.write_errors == 0
            finally:
                await store.close()
                await nc.close()

    async def test_writes_whose_answers_time_out_are_stored_once(self, tmp_path: Path) -> None:
        """nats-server frozen (SIGSTOP) for longer than the request time-out while writes
        are under way: each is tried again and, once the server runs, stored exactly once
        (the late originals and their retries meet as duplicates and conflicts), none lost,
        none failed."""
        with NatsServer(tmp_path / "js") as server:
            nc = await nats.connect(server.url)
            store = JetStreamDeliveryStore(nc.jetstream(timeout=1.0), write_timeout=30.0)
            await store.open()
            process = server._process
            assert process is not None
            try:
                await _add(store, 0)
                process.send_signal(signal.SIGSTOP)
                try:
                    waiters = [_add(store, n) for n in range(1, 11)]
                    store.record_attempt(*_retry("dlv_wh_a_0", 1))
                    store.record_attempt(*_success("dlv_wh_a_0", 2))
                    await asyncio.sleep(2.5)
                finally:
                    process.send_signal(signal.SIGCONT)
                await asyncio.wait_for(store.flush(), 40)
                assert all(w.exception() is None for w in waiters)
                assert await store.counts("wh_a") == {"pending": 10, "success": 1}
                delivery = await store.get_delivery("dlv_wh_a_0")
                assert delivery is not None
                assert [a.number for a in delivery.attempt_log] == [1, 2]
                assert store.write_errors == 0
                assert store.duplicates >= 1  # a retried add met its own late original
            finally:
                await store.close()
                await nc.close()

    async def test_finished_records_expire_after_the_retention(
        self, connection: JetStreamContext
    ) -> None:
        """A finished record carries a per-message TTL of retention_days and is gone after
        it; a pending one stays."""
        store = JetStreamDeliveryStore(connection, prefix="short", retention_days=1.0 / 86400)
        await store.open()
        try:
            _add(store, 1)
            _add(store, 2)
            store.record_attempt(*_success("dlv_wh_a_1", 1))
            await store.flush()
            assert await store.counts("wh_a") == {"success": 1, "pending": 1}
            deadline = time.monotonic() + 10
            while await store.get_delivery("dlv_wh_a_1") is not None:
                assert time.monotonic() < deadline, "the finished record did not expire"
                await asyncio.sleep(0.2)
            assert await store.counts("wh_a") == {"pending": 1}
        finally:
            await store.close()


class TestRegistryIdentity:
    async def test_buckets_of_another_registry_are_refused(
        self, connection: JetStreamContext
    ) -> None:
        """Buckets recorded for one registry refuse a store told to serve another, naming
        both ids; the same registry opens them again."""
        first = JetStreamDeliveryStore(connection)
        first.expect_registry("whr_one", saved=True)
        await first.open()
        await first.close()
        stranger = JetStreamDeliveryStore(connection)
        stranger.expect_registry("whr_two", saved=True)
        with pytest.raises(DeliveryStoreCorruptError, match=r"whr_one.*whr_two"):
            await stranger.open()
        assert not stranger.is_open
        again = JetStreamDeliveryStore(connection)
        again.expect_registry("whr_one", saved=True)
        await again.open()
        await again.close()
