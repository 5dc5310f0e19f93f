"""Tests of the webhook registry's JSON persistence: atomic, owner-only, concurrent, strict."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mnemo_events._frozen import FrozenDict
from mnemo_events.config import RetryConfig
from mnemo_events.exceptions import WebhookNotFoundError, WebhookPersistenceError
from mnemo_events.webhooks._registry import WebhookRegistry, webhook_to_json
from mnemo_events.webhooks.models import RetiredSecret
from tests.helpers.files import unwritable
from tests.helpers.webhooks import numbered_webhook as _webhook


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


def _stored_ids(path: Path) -> list[str]:
    return [entry["id"] for entry in json.loads(path.read_text())["webhooks"]]


def _all_log_text(logs: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(repr(entry) for entry in logs)


class TestLoadChecks:
    def test_bad_pattern_is_refused_naming_the_file_and_the_webhook(self, tmp_path: Path) -> None:
        """A pattern such as `cor.>.x` in the file stops the load, naming file and webhook."""
        path = tmp_path / "webhooks.json"
        entry = webhook_to_json(_webhook(7)) | {"events": ["memory.*", "cor.>.x"]}
        content = json.dumps({"format": "mnemo-events/webhooks", "webhooks": [entry]})
        path.write_text(content)
        with pytest.raises(WebhookPersistenceError, match=r"events\[1\]") as caught:
            WebhookRegistry(path)
        message = str(caught.value)
        assert str(path) in message
        assert "'wh_7'" in message
        assert "cor.>.x" in message
        assert "whsec_secret7" not in message
        assert path.read_text() == content

    def test_lone_surrogate_in_the_file_is_refused(self, tmp_path: Path) -> None:
        """A `\\ud800` escape in the file is refused at load (it could never be saved back)."""
        path = tmp_path / "webhooks.json"
        entry = webhook_to_json(_webhook(3)) | {"description": "\ud800"}
        path.write_text(json.dumps({"webhooks": [entry]}))  # ASCII escapes: a valid file
        with pytest.raises(WebhookPersistenceError, match=r"wh_3.*description.*not valid Unicode"):
            WebhookRegistry(path)

    def test_userinfo_with_authorization_in_the_file_is_refused(self, tmp_path: Path) -> None:
        """URL credentials plus an Authorization header in the file (never sendable) stop the
        load, naming the webhook and no credential."""
        path = tmp_path / "webhooks.json"
        entry = webhook_to_json(_webhook(4)) | {
            "url": "https://u:pw-SECRET@hooks.example.com/",
            "headers": {"Authorization": "Bearer tok-SECRET"},
        }
        path.write_text(json.dumps({"webhooks": [entry]}))
        with pytest.raises(WebhookPersistenceError, match=r"wh_4.*Authorization header") as caught:
            WebhookRegistry(path)
        assert "SECRET" not in str(caught.value)


class TestFailedSaves:
    async def test_unencodable_change_is_rolled_back_and_logged_without_secrets(
        self, tmp_path: Path
    ) -> None:
        """A save failing with a non-OSError (a lone surrogate) undoes the change; the log line
        and the error name the file and the problem, never the document or a secret."""
        path = tmp_path / "webhooks.json"
        registry = WebhookRegistry(path)
        await registry.put(_webhook(1, headers=FrozenDict({"Authorization": "Bearer tok-123"})))
        before = path.read_bytes()
        poisoned = _webhook(2, secret="whsec_TOPSECRET", description="\ud800")
        with capture_logs() as logs, pytest.raises(WebhookPersistenceError) as caught:
            await registry.put(poisoned)
        assert [w.id for w in registry.all()] == ["wh_1"]
        assert path.read_bytes() == before
        text = _all_log_text(logs) + str(caught.value)
        for secret in ("whsec_TOPSECRET", "whsec_secret1", "tok-123", '"webhooks"'):
            assert secret not in text
        assert [entry["event"] for entry in logs] == ["webhooks.persist_failed"]
        assert str(path) in logs[0]["path"]
        assert "surrogates not allowed" in logs[0]["error"]
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
        # Not poisoned: later changes are written.
        await registry.put(_webhook(3))
        assert _stored_ids(path) == ["wh_1", "wh_3"]

    async def test_unencodable_replacement_keeps_the_old_webhook(self, tmp_path: Path) -> None:
        """change() with a failing save leaves the previous version in memory and file."""
        path = tmp_path / "webhooks.json"
        registry = WebhookRegistry(path)
        await registry.put(_webhook(1, description="before"))
        with pytest.raises(WebhookPersistenceError):
            await registry.change("wh_1", lambda w: _webhook(1, description="\udfff"))
        assert registry.get("wh_1").description == "before"
        assert WebhookRegistry(path).get("wh_1").description == "before"

    async def test_memory_and_file_agree_after_failed_saves(self, tmp_path: Path) -> None:
        """With the folder unwritable, put, change and remove all fail and change nothing; a
        reload then shows what memory shows (a deleted webhook does not come back, a failed
        delete does not vanish)."""
        folder = tmp_path / "state"
        path = folder / "webhooks.json"
        registry = WebhookRegistry(path)
        await registry.put(_webhook(1))
        await registry.put(_webhook(2))
        await registry.remove("wh_2")
        with unwritable(folder):
            with pytest.raises(WebhookPersistenceError, match="cannot write"):
                await registry.put(_webhook(3))
            with pytest.raises(WebhookPersistenceError, match="cannot write"):
                await registry.change("wh_1", lambda w: _webhook(1, url="https://x.example/"))
            with pytest.raises(WebhookPersistenceError, match="cannot write"):
                await registry.remove("wh_1")
        assert [(w.id, w.url) for w in registry.all()] == [("wh_1", "https://hooks.example.com/1")]
        reloaded = WebhookRegistry(path)
        assert [(w.id, w.url) for w in reloaded.all()] == [(w.id, w.url) for w in registry.all()]

    async def test_cancelled_save_leaves_memory_matching_the_file(self, tmp_path: Path) -> None:
        """A put cancelled while its write runs waits for the write, so memory and file agree."""
        path = tmp_path / "webhooks.json"
        registry = WebhookRegistry(path)
        await registry.put(_webhook(1))
        task = asyncio.create_task(registry.put(_webhook(2)))
        await asyncio.sleep(0)  # the write is under way in its thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert [w.id for w in registry.all()] == _stored_ids(path)
