"""Tests of the webhook registry's JSON persistence: atomic, owner-only, concurrent, strict."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path

import pytest

from mnemo_events._frozen import FrozenDict
from mnemo_events.config import RetryConfig
from mnemo_events.exceptions import WebhookNotFoundError, WebhookPersistenceError
from mnemo_events.webhooks._registry import WebhookRegistry
from mnemo_events.webhooks.models import RetiredSecret, Webhook


def _webhook(n: int = 1, **fields: object) -> Webhook:
    base: dict[str, object] = {
        "id": f"wh_{n}",
        "url": f"https://hooks.example.com/{n}",
        "events": ("memory.*",),
        "secret": f"whsec_secret{n}",
    }
    return Webhook(**(base | fields))  # type: ignore[arg-type]


class TestRoundTrip:
    async def test_everything_survives_a_reload(self, tmp_path: Path) -> None:
        """Every field, secrets included, reads back equal from the file."""
        path = tmp_path / "webhooks.json"
        registry = WebhookRegistry(path)
        full = _webhook(
            1,
            events=("memory.*", "dream.>"),
            headers=FrozenDict({"X-Team": "core"}),
            enabled=False,
            disabled_reason="the endpoint answered 410 Gone",
            retry_config=RetryConfig(max_attempts=3, base_delay_seconds=0.5, jitter=0.1),
            signature_scheme="both",
            description="audit sink",
            previous_secrets=(RetiredSecret("whsec_old", None, time.time() + 60),),
        )
        await registry.put(full)
        await registry.put(_webhook(2, secret=None, secret_ref="env:HOOK_SECRET"))
        loaded = WebhookRegistry(path)
        assert [w.id for w in loaded.all()] == ["wh_1", "wh_2"]
        again = loaded.get("wh_1")
        for name in (
            "url", "events", "secret", "headers", "enabled", "disabled_reason", "retry_config",
            "signature_scheme", "description", "previous_secrets", "created_at", "updated_at",
        ):  # fmt: skip
            assert getattr(again, name) == getattr(full, name), name
        assert loaded.get("wh_2").secret_ref == "env:HOOK_SECRET"

    async def test_expired_rotation_secrets_are_dropped_on_save(self, tmp_path: Path) -> None:
        """A retired secret past its grace period is not written back."""
        path = tmp_path / "webhooks.json"
        registry = WebhookRegistry(path)
        await registry.put(
            _webhook(previous_secrets=(RetiredSecret("whsec_gone", None, time.time() - 1),))
        )
        assert WebhookRegistry(path).get("wh_1").previous_secrets == ()

    async def test_change_and_remove_persist(self, tmp_path: Path) -> None:
        """change() and remove() are written through."""
        path = tmp_path / "webhooks.json"
        registry = WebhookRegistry(path)
        await registry.put(_webhook(1))
        await registry.put(_webhook(2))
        await registry.change("wh_1", lambda w: _webhook(1, url="https://new.example.com/"))
        await registry.remove("wh_2")
        loaded = WebhookRegistry(path)
        assert [(w.id, w.url) for w in loaded.all()] == [("wh_1", "https://new.example.com/")]
        with pytest.raises(WebhookNotFoundError, match="wh_2"):
            await registry.remove("wh_2")

    async def test_memory_only_registry_writes_nothing(self, tmp_path: Path) -> None:
        """path=None keeps webhooks in memory."""
        registry = WebhookRegistry(None)
        await registry.put(_webhook())
        assert len(registry) == 1
        assert os.listdir(tmp_path) == []


class TestFileSafety:
    async def test_file_is_owner_only_and_no_temp_files_remain(self, tmp_path: Path) -> None:
        """The file has mode 0600, and the atomic write leaves no temporary file behind."""
        path = tmp_path / "sub" / "webhooks.json"
        registry = WebhookRegistry(path)
        await registry.put(_webhook())
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert os.listdir(path.parent) == ["webhooks.json"]

    async def test_concurrent_registrations_all_land(self, tmp_path: Path) -> None:
        """Fifty registrations racing each other all end up in the file."""
        path = tmp_path / "webhooks.json"
        registry = WebhookRegistry(path)
        await asyncio.gather(*(registry.put(_webhook(n)) for n in range(50)))
        stored = json.loads(path.read_text())["webhooks"]
        assert sorted(entry["id"] for entry in stored) == sorted(f"wh_{n}" for n in range(50))

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            ("{not json", "not valid JSON"),
            ('["a", "list"]', "'webhooks' list"),
            ('{"webhooks": {"wh_1": {}}}', "'webhooks' list"),
            ('{"webhooks": [{"id": "wh_1"}]}', r"webhooks\[0\].*missing field 'events'"),
            (
                '{"webhooks": [{"id": "w", "url": "u", "events": "memory.*", "created_at": "x"}]}',
                "events must be a list",
            ),
            (
                '{"webhooks": [{"id": "w", "url": "u", "events": [], "retry_config": '
                '{"max_attempts": 0}, "created_at": "2026-01-01", "updated_at": "2026-01-01"}]}',
                "max_attempts",
            ),
        ],
        ids=["syntax", "list", "mapping", "missing-field", "bad-events", "bad-retry"],
    )
    def test_corrupt_file_raises_naming_the_path_and_is_kept(
        self, tmp_path: Path, content: str, message: str
    ) -> None:
        """A corrupt file raises WebhookPersistenceError naming it, and stays byte for byte."""
        path = tmp_path / "webhooks.json"
        path.write_text(content)
        with pytest.raises(WebhookPersistenceError, match=message) as caught:
            WebhookRegistry(path)
        assert str(path) in str(caught.value)
        assert path.read_text() == content

    def test_unreadable_file_raises(self, tmp_path: Path) -> None:
        """A path that cannot be read as a file raises WebhookPersistenceError naming it."""
        path = tmp_path / "webhooks.json"
        path.mkdir()
        with pytest.raises(WebhookPersistenceError, match="cannot read") as caught:
            WebhookRegistry(path)
        assert str(path) in str(caught.value)
        assert isinstance(caught.value, OSError)

    async def test_failed_write_raises_and_rolls_back(self, tmp_path: Path) -> None:
        """When the file cannot be written the change is undone in memory too."""
        folder = tmp_path / "folder"
        registry = WebhookRegistry(folder / "webhooks.json")
        folder.write_text("a file where the folder should be")
        with pytest.raises(WebhookPersistenceError, match="cannot write"):
            await registry.put(_webhook())
        assert len(registry) == 0
        assert registry.find("wh_1") is None
