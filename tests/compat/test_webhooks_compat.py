"""The webhook manager as MnemoCore code and MnemoCore's webhooks.json use it."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from mnemo_events import (
    Event,
    EventBus,
    SensitiveWebhookHeaderError,
    WebhookConfigError,
    WebhookManager,
    WebhookPersistenceError,
    get_event_bus,
    get_webhook_manager,
    reset_event_bus,
)
from mnemo_events.webhook_manager import reset_webhook_manager
from tests.helpers.managers import MakeManager, started_managers
from tests.helpers.payloads import VALID_PAYLOADS
from tests.helpers.receiver import Receiver, eventually


@pytest.fixture
async def make_manager(tmp_path: Path) -> AsyncIterator[MakeManager]:
    """Started managers on files in tmp_path, loopback allowed, stopped after the test."""
    async with started_managers(tmp_path, shared_store=False) as make:
        yield make


def _event(event_type: str = "memory.created") -> Event:
    return Event(type=event_type, data=VALID_PAYLOADS[event_type])


class TestMnemoCoreAnswers:
    """``events=None``, ``delete_webhook`` and ``get_webhook`` answer as in MnemoCore."""

    async def test_events_none_means_every_event(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """A webhook registered without events receives events of every type."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), secret="s3cret")
        assert hook.events == (">",)
        assert hook.matches_event("gap.filled")
        wm.deliver(_event("memory.created"))
        wm.deliver(_event("gap.filled"))
        await receiver.wait_for(2)
        assert sorted(r.headers["X-MnemoCore-Event"] for r in receiver.requests) == [
            "gap.filled",
            "memory.created",
        ]

    async def test_concurrent_deletes_have_one_winner(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Of two concurrent deletes of one webhook exactly one answers True."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        results = await asyncio.gather(wm.delete_webhook(hook.id), wm.delete_webhook(hook.id))
        assert sorted(results) == [False, True]
        assert wm.get_webhook(hook.id) is None
        assert wm.list_webhooks() == []

    async def test_status_reads_with_mnemocore_keys(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """A webhook's status answers MnemoCore's keys beside its attributes."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        wm.deliver(_event())
        await eventually(lambda: wm.get_delivery_history(hook.id, status="success"))
        status = await wm.get_webhook_status(hook.id)
        assert status["webhook_id"] == hook.id
        assert status["total_deliveries"] == status["successful_deliveries"] == 1
        assert (status["failed_deliveries"], status["pending_deliveries"]) == (0, 0)
        assert status["success_rate"] == 1.0


class TestSessionAndSecrets:
    """An injected session, and secrets resolved only when an attempt is signed."""

    async def test_injected_session_is_used_and_left_open(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """Attempts go through the application's session, which stop() does not close."""
        async with aiohttp.ClientSession(headers={"X-From-App": "yes"}) as session:
            wm = WebhookManager(
                tmp_path / "webhooks.json",
                delivery_store_path=tmp_path / "d.sqlite3",
                allow_private_networks=True,
                http_session=session,
            )
            async with wm:
                await wm.register_webhook(receiver.url(), ["memory.*"])
                wm.deliver(_event())
                await receiver.wait_for(1)
            assert receiver.requests[0].headers["X-From-App"] == "yes"
            assert session.closed is False

    async def test_bare_environment_name_is_read_at_send_time(
        self, make_manager: MakeManager, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """MnemoCore's bare ``secret_ref`` names a variable read when signing, not before."""
        monkeypatch.delenv("MNEMO_TEST_BARE_SECRET", raising=False)
        wm = await make_manager()
        hook = await wm.register_webhook(
            receiver.url(), ["memory.*"], secret_ref="MNEMO_TEST_BARE_SECRET"
        )
        assert (hook.secret, hook.secret_ref) == (None, "MNEMO_TEST_BARE_SECRET")
        monkeypatch.setenv("MNEMO_TEST_BARE_SECRET", "set-after-registration")
        receiver.secrets["/hook"] = "set-after-registration"
        wm.deliver(_event())
        await receiver.wait_for(1)
        assert receiver.requests[0].stripe_ok is True

    async def test_resolver_reference_is_resolved_when_signing(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """A ``vault://`` reference goes to the injected resolver at send time only."""
        asked: list[str] = []

        def resolve(ref: str) -> str:
            asked.append(ref)
            return "from-the-vault"

        wm = await make_manager(secret_resolver=resolve)
        await wm.register_webhook(receiver.url(), ["memory.*"], secret_ref="vault://hooks/a")
        assert asked == []
        receiver.secrets["/hook"] = "from-the-vault"
        wm.deliver(_event())
        await receiver.wait_for(1)
        assert asked == ["vault://hooks/a"]
        assert receiver.requests[0].stripe_ok is True

    async def test_resolver_failure_is_recorded_without_its_message(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """A failing resolver fails the delivery; its message (maybe a secret) is nowhere."""
        leaked = "resolver-leaked-secret"

        def fail(ref: str) -> str:
            raise RuntimeError(f"backend exposed {leaked}")

        wm = await make_manager(secret_resolver=fail)
        hook = await wm.register_webhook(receiver.url(), ["memory.*"], secret_ref="vault://a")
        with capture_logs() as logs:
            wm.deliver(_event())
            (failed,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="failed"))
        assert receiver.requests == []
        assert leaked not in repr(failed.to_dict())
        assert leaked not in repr(logs)
        assert any(
            log["event"] == "webhooks.secret_unavailable" and log["error"] == "RuntimeError"
            for log in logs
        )

    async def test_resolver_reference_needs_a_resolver(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Without an injected resolver a ``vault://`` reference is refused at registration."""
        wm = await make_manager()
        with pytest.raises(WebhookConfigError, match="secret_resolver"):
            await wm.register_webhook(receiver.url(), ["memory.*"], secret_ref="vault://a")


class TestHardening:
    """MnemoCore's hardening: no plaintext credential header stored, no URL credentials."""

    @pytest.mark.parametrize(
        "header",
        [
            "Authorization",
            "proxy-authorization",
            "X-API-Key",
            "api-key",
            "Cookie",
            "X-Customer-Token",
        ],
    )
    async def test_plaintext_credential_headers_are_refused_with_persistence(
        self, make_manager: MakeManager, receiver: Receiver, tmp_path: Path, header: str
    ) -> None:
        """With persistence on, a credential header given in plaintext is refused, unsaved."""
        wm = await make_manager()
        with pytest.raises(SensitiveWebhookHeaderError, match="secret references") as caught:
            await wm.register_webhook(
                receiver.url(), ["memory.*"], headers={header: "must-not-persist"}
            )
        assert "must-not-persist" not in str(caught.value)
        assert wm.list_webhooks() == []
        assert not (tmp_path / "webhooks.json").exists()

    async def test_credential_header_as_reference_is_resolved_when_sending(
        self,
        make_manager: MakeManager,
        receiver: Receiver,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A credential header given as ``env:NAME`` is stored as such and sent resolved."""
        monkeypatch.setenv("MNEMO_TEST_HOOK_TOKEN", "Bearer t0ken")
        wm = await make_manager()
        await wm.register_webhook(
            receiver.url(),
            ["memory.*"],
            headers={"Authorization": "env:MNEMO_TEST_HOOK_TOKEN", "X-Webhook-Version": "2"},
        )
        wm.deliver(_event())
        await receiver.wait_for(1)
        assert receiver.requests[0].headers["Authorization"] == "Bearer t0ken"
        assert receiver.requests[0].headers["X-Webhook-Version"] == "2"
        assert "t0ken" not in (tmp_path / "webhooks.json").read_text()

    async def test_without_persistence_plaintext_headers_still_work(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """In-memory managers keep accepting plaintext credential headers (MnemoCore's too)."""
        async with WebhookManager(
            delivery_store_path=tmp_path / "d.sqlite3", allow_private_networks=True
        ) as wm:
            hook = await wm.register_webhook(
                receiver.url(), ["memory.*"], headers={"Authorization": "legacy"}
            )
            assert hook.headers == {"Authorization": "legacy"}

    async def test_url_credentials_are_refused_without_echo(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """A URL with ``user:password@`` is refused; the message shows neither."""
        wm = await make_manager()
        url = receiver.url().replace("http://", "http://alice:hunter2@")
        with pytest.raises(WebhookConfigError, match="credentials") as caught:
            await wm.register_webhook(url, ["memory.*"])
        assert "hunter2" not in str(caught.value)
        assert "alice" not in str(caught.value)
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        with pytest.raises(WebhookConfigError, match="credentials"):
            await wm.update_webhook(hook.id, url=url)

    async def test_reference_inline_secret_with_persistence_is_kept(
        self, make_manager: MakeManager, receiver: Receiver, tmp_path: Path
    ) -> None:
        """The reference's ``secret=`` with ``persistence_path`` works (unlike MnemoCore's
        newer refusal); the file holding it is owner-only."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"], secret="webhook-secret-123")
        assert hook.secret == "webhook-secret-123"
        path = tmp_path / "webhooks.json"
        assert os.stat(path).st_mode & 0o077 == 0


def _mnemocore_file(path: Path, **entry: Any) -> dict[str, Any]:
    document = {
        "version": "2.0",
        "updated_at": "2026-01-01T00:00:00+00:00",
        "webhooks": [
            {
                "id": "wh_0123456789ab",
                "url": entry.pop("url"),
                "events": ["memory.created", "dream.completed"],
                "secret_ref": "MNEMO_TEST_MC_SECRET",
                "headers": {},
                "enabled": True,
                "retry_config": {
                    "max_attempts": 3,
                    "base_delay_seconds": 0.1,
                    "max_delay_seconds": 1.0,
                    "timeout_seconds": 5.0,
                },
                "created_at": "2026-01-01T00:00:00+00:00",
                "updated_at": "2026-01-01T00:00:00+00:00",
            }
            | entry
        ],
    }
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return document


class TestMnemoCoreFile:
    """A MnemoCore ``webhooks.json`` (version 2.0) loads and is migrated on first save."""

    async def test_loads_delivers_and_migrates_keeping_the_original(
        self,
        make_manager: MakeManager,
        receiver: Receiver,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Its webhooks deliver as before; the first save writes our format and keeps the
        original beside it, unchanged."""
        monkeypatch.setenv("MNEMO_TEST_MC_SECRET", "mc-secret")
        path = tmp_path / "webhooks.json"
        _mnemocore_file(path, url=receiver.url())
        original = path.read_bytes()
        wm = await make_manager(path=path)
        (hook,) = wm.list_webhooks()
        assert (hook.id, hook.secret_ref, hook.retry_config.max_attempts) == (
            "wh_0123456789ab",
            "MNEMO_TEST_MC_SECRET",
            3,
        )
        assert hook.events == ("memory.created", "dream.completed")
        receiver.secrets["/hook"] = "mc-secret"
        wm.deliver(_event())
        await receiver.wait_for(1)
        assert receiver.requests[0].stripe_ok is True
        assert path.read_bytes() == original  # loading alone rewrites nothing
        await wm.update_webhook(hook.id, enabled=False)
        kept = tmp_path / "webhooks.json.mnemocore-2.0"
        assert kept.read_bytes() == original
        assert json.loads(path.read_text())["format"] == "mnemo-events/webhooks"
        await wm.update_webhook(hook.id, enabled=True)
        assert sorted(n for n in os.listdir(tmp_path) if n.startswith("webhooks.json")) == [
            "webhooks.json",
            "webhooks.json.mnemocore-2.0",
        ]
        reopened = await make_manager(path=path)
        assert [w.id for w in reopened.list_webhooks()] == ["wh_0123456789ab"]

    async def test_empty_events_mean_every_event(
        self, make_manager: MakeManager, tmp_path: Path
    ) -> None:
        """MnemoCore's ``events: []`` (every event) loads as ``[">"]``."""
        path = tmp_path / "webhooks.json"
        _mnemocore_file(path, url="http://127.0.0.1:9/hook", events=[])
        wm = await make_manager(path=path)
        assert wm.list_webhooks()[0].events == (">",)

    async def test_plaintext_credential_header_in_the_file_is_refused(self, tmp_path: Path) -> None:
        """A 2.0 file with a plaintext credential header is refused, naming the header only."""
        path = tmp_path / "webhooks.json"
        _mnemocore_file(
            path, url="http://127.0.0.1:9/hook", headers={"Authorization": "plaintext-credential"}
        )
        with pytest.raises(SensitiveWebhookHeaderError, match="Authorization") as caught:
            WebhookManager(path)
        assert "plaintext-credential" not in str(caught.value)

    async def test_malformed_entry_is_refused_whole(self, tmp_path: Path) -> None:
        """A bad entry refuses the whole file, naming its index; nothing is half-loaded."""
        path = tmp_path / "webhooks.json"
        _mnemocore_file(path, url="")
        with pytest.raises(WebhookPersistenceError, match=r"webhooks\[0\]"):
            WebhookManager(path)


class TestSharedManagerFollowsTheBus:
    """``get_webhook_manager()`` starts and stops with ``get_event_bus()``."""

    @pytest.fixture
    def configured(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """A config.yaml with files in tmp_path and loopback allowed; no singletons."""
        config = tmp_path / "config.yaml"
        config.write_text(
            "webhooks:\n"
            f"  persistence_path: {tmp_path / 'webhooks.json'}\n"
            f"  delivery_store_path: {tmp_path / 'd.sqlite3'}\n"
            "  allow_private_networks: true\n"
            "  stop_timeout: 1\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("MNEMO_EVENTS_CONFIG", str(config))
        reset_webhook_manager()
        return config

    async def test_starts_delivers_and_stops_with_the_bus(
        self, configured: Path, receiver: Receiver
    ) -> None:
        """No ``start()`` call: the shared manager runs while the shared bus does."""
        bus = get_event_bus()
        wm = get_webhook_manager()
        try:
            assert not wm.is_running
            await bus.start()
            assert wm.is_running
            await wm.register_webhook(receiver.url(), ["dream.*"], secret="s")
            await bus.publish("dream.completed", VALID_PAYLOADS["dream.completed"])
            await receiver.wait_for(1)
            await bus.stop()
            assert not wm.is_running
        finally:
            await bus.shutdown()
            reset_webhook_manager()

    async def test_started_at_once_on_a_running_bus(
        self, configured: Path, receiver: Receiver
    ) -> None:
        """Asked for while the bus runs, the manager starts without a call."""
        bus = get_event_bus()
        await bus.start()
        try:
            wm = get_webhook_manager()
            await wm.register_webhook(receiver.url(), ["dream.*"], secret="s")
            await bus.publish("dream.completed", VALID_PAYLOADS["dream.completed"])
            await receiver.wait_for(1)
            assert wm.is_running
        finally:
            await bus.shutdown()
            reset_webhook_manager()

    async def test_follows_a_new_shared_bus(self, configured: Path) -> None:
        """After ``reset_event_bus()`` the shared manager follows the new shared bus only."""
        first = get_event_bus()
        wm = get_webhook_manager()
        reset_event_bus()
        second = get_event_bus()
        assert get_webhook_manager() is wm
        await first.start()
        assert not wm.is_running
        await second.start()
        assert wm.is_running
        await first.shutdown()
        await second.shutdown()
        assert not wm.is_running
        reset_webhook_manager()

    async def test_an_explicit_attach_does_not_follow(self, tmp_path: Path) -> None:
        """``wm.attach(bus)`` alone keeps the manager's lifecycle the caller's."""
        async with EventBus() as bus:
            wm = WebhookManager(delivery_store_path=tmp_path / "d.sqlite3")
            wm.attach(bus)
            await bus.stop()
            await bus.start()
            assert not wm.is_running
