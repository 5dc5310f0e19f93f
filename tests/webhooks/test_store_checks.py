"""The delivery store checks its file at open: damaged or foreign files are refused, untouched."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from mnemo_events.exceptions import DeliveryStoreCorruptError, WebhookError
from mnemo_events.webhook_manager import WebhookManager
from mnemo_events.webhooks._store import DeliveryStore
from mnemo_events.webhooks._store_rows import APPLICATION_ID

PAGE = 4096


async def _filled_store(path: Path, count: int = 400) -> None:
    """A real store with ``count`` pending deliveries, closed (its WAL checkpointed)."""
    store = DeliveryStore(path)
    await store.open()
    for n in range(count):
        store.add_delivery(f"dlv_{n:05d}", "wh_a", f"evt_{n}", "memory.created", b"x" * 300, n)
    await store.flush()
    await store.close()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _smash(path: Path, offset: int, length: int = 512) -> None:
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(bytes((n * 37 + 11) % 256 for n in range(length)))


async def _refused(path: Path, match: str) -> None:
    before = _digest(path)
    store = DeliveryStore(path)
    with pytest.raises(DeliveryStoreCorruptError, match=match) as caught:
        await store.open()
    assert str(path) in str(caught.value)
    assert not store.is_open
    assert _digest(path) == before


class TestRefused:
    async def test_an_empty_file(self, tmp_path: Path) -> None:
        """A 0-byte file (a truncated store) is refused, not taken for a new empty store."""
        path = tmp_path / "d.sqlite3"
        path.touch()
        await _refused(path, "empty")
        assert path.stat().st_size == 0

    async def test_a_corrupt_page_in_the_middle(self, tmp_path: Path) -> None:
        """Garbage over a page inside the deliveries table fails quick_check at open."""
        path = tmp_path / "d.sqlite3"
        await _filled_store(path)
        pages = path.stat().st_size // PAGE
        assert pages > 10
        _smash(path, (pages // 2) * PAGE + 100)
        await _refused(path, "damaged|cannot be read")

    async def test_a_corrupted_last_page(self, tmp_path: Path) -> None:
        """Garbage over the file's last page is found at open too."""
        path = tmp_path / "d.sqlite3"
        await _filled_store(path)
        size = path.stat().st_size
        _smash(path, size - PAGE, PAGE)
        await _refused(path, "damaged|cannot be read")

    async def test_a_file_that_is_not_sqlite(self, tmp_path: Path) -> None:
        """A file of text is refused as unreadable."""
        path = tmp_path / "d.sqlite3"
        path.write_text("not a database at all\n" * 300)
        await _refused(path, "cannot be read")

    async def test_another_applications_database(self, tmp_path: Path) -> None:
        """A sound SQLite file that is not a delivery store is refused, naming what it is."""
        path = tmp_path / "d.sqlite3"
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
            conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
        conn.close()
        await _refused(path, "not a mnemo-events delivery store")

    async def test_a_newer_schema(self, tmp_path: Path) -> None:
        """A store written by a newer version (higher user_version) is refused."""
        path = tmp_path / "d.sqlite3"
        await _filled_store(path, 3)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        await _refused(path, "schema version 99")

    async def test_the_manager_refuses_to_start(self, tmp_path: Path) -> None:
        """WebhookManager.start() raises the store's error (a WebhookError) and stays stopped."""
        path = tmp_path / "d.sqlite3"
        path.touch()
        wm = WebhookManager(tmp_path / "w.json", delivery_store_path=path)
        with pytest.raises(DeliveryStoreCorruptError, match=r"d\.sqlite3") as caught:
            await wm.start()
        assert isinstance(caught.value, WebhookError)
        assert isinstance(caught.value, OSError)
        assert not wm.is_running
        assert path.stat().st_size == 0


class TestRegistryIdentity:
    async def _registered(self, registry: Path, store: Path) -> None:
        wm = WebhookManager(registry, delivery_store_path=store, allow_private_networks=True)
        await wm.start()
        await wm.register_webhook("http://127.0.0.1:9/h", ["memory.*"])
        await wm.stop()

    async def test_a_store_of_another_registry_is_refused(self, tmp_path: Path) -> None:
        """A delivery store used with one webhooks.json refuses to start with another (whose
        webhooks are not the ones its deliveries were for), naming both ids; it is untouched."""
        store = tmp_path / "d.sqlite3"
        await self._registered(tmp_path / "a.json", store)
        await self._registered(tmp_path / "a.json", store)  # binds it (the file has its id)
        other = tmp_path / "b.json"
        await self._registered(other, tmp_path / "other.sqlite3")
        before = _digest(store)
        wm = WebhookManager(other, delivery_store_path=store)
        with pytest.raises(DeliveryStoreCorruptError, match="another webhook registry"):
            await wm.start()
        assert not wm.is_running
        assert _digest(store) == before

    async def test_the_same_registry_reopens_its_store(self, tmp_path: Path) -> None:
        """Restarting with the same webhooks.json and store is accepted, again and again."""
        store = tmp_path / "d.sqlite3"
        for _ in range(3):
            await self._registered(tmp_path / "a.json", store)
        wm = WebhookManager(tmp_path / "a.json", delivery_store_path=store)
        await wm.start()
        assert len(wm.list_webhooks()) == 3
        await wm.stop()


class TestAccepted:
    async def test_a_new_store_is_stamped(self, tmp_path: Path) -> None:
        """A new file carries the store's application_id and format, and leaves no temporary
        file behind."""
        path = tmp_path / "sub" / "d.sqlite3"
        store = DeliveryStore(path)
        await store.open()
        await store.close()
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
            meta = dict(conn.execute("SELECT key, value FROM store_meta").fetchall())
        finally:
            conn.close()
        assert meta["format"] == "mnemo-events/deliveries"
        assert meta["store_id"].startswith("dst_")
        assert sorted(p.name for p in path.parent.iterdir()) == ["d.sqlite3"]

    async def test_a_store_of_the_previous_version_is_adopted(self, tmp_path: Path) -> None:
        """A store made before files were stamped (no application_id) opens with its records
        and is stamped."""
        path = tmp_path / "d.sqlite3"
        await _filled_store(path, 2)
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("DROP TABLE store_meta")
        conn.execute("PRAGMA application_id = 0")
        conn.close()
        store = DeliveryStore(path)
        await store.open()
        try:
            assert await store.counts("wh_a") == {"pending": 2}
        finally:
            await store.close()
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        finally:
            conn.close()

    async def test_reopening_a_sound_store(self, tmp_path: Path) -> None:
        """A store written and closed opens again with its records."""
        path = tmp_path / "d.sqlite3"
        await _filled_store(path, 5)
        store = DeliveryStore(path)
        await store.open()
        try:
            assert await store.counts("wh_a") == {"pending": 5}
        finally:
            await store.close()
