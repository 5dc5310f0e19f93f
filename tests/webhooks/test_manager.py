"""Tests of WebhookManager's API: registration, secrets, persistence, tracking, the bus."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest

from mnemo_events.config import RetryConfig, WebhooksConfig
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus, get_event_bus
from mnemo_events.exceptions import (
    UnsafeWebhookURLError,
    WebhookConfigError,
    WebhookError,
    WebhookManagerNotRunningError,
    WebhookNotFoundError,
    WebhookPersistenceError,
)
from mnemo_events.webhook_manager import (
    WebhookManager,
    WebhookManagerState,
    get_webhook_manager,
    reset_webhook_manager,
)
from mnemo_events.webhooks.models import DeliveryStatus, Webhook
from tests.helpers.files import unwritable
from tests.helpers.managers import MakeManager, started_managers
from tests.helpers.receiver import Receiver, Reply, eventually, stripe_verifies

FAST = RetryConfig(max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=0.05)


@pytest.fixture
async def make_manager(tmp_path: Path) -> AsyncIterator[MakeManager]:
    """A factory of started managers sharing one delivery store, stopped after."""
    async with started_managers(tmp_path, shared_store=True) as make:
        yield make


def _event(n: int = 1, event_type: str = "memory.created") -> Event:
    return Event.create(event_type, {"memory_id": f"m{n}"})


class TestRegistration:
    async def test_generated_secret_is_shown_once(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """A generated whsec_ secret comes back from register and is masked everywhere else."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        assert hook.id.startswith("wh_")
        assert hook.secret is not None
        assert hook.secret.startswith("whsec_")
        assert len(hook.secret) == 50
        found = wm.get_webhook(hook.id)
        assert found is not None
        shown = [found, *wm.list_webhooks()]
        assert all(w.secret == "whsec_****" for w in shown)
        for text in (repr(hook), json.dumps(hook.to_dict()), repr(wm.list_webhooks())):
            assert hook.secret not in text

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"events": "memory.*"}, "list of patterns"),
            ({"events": []}, "at least one"),
            ({"events": ["mem*"]}, r"events\[0\]"),
            ({"headers": {"X-MnemoCore-Signature": "x"}}, "cannot be overridden"),
            ({"headers": {"content-type": "text/plain"}}, "cannot be overridden"),
            ({"headers": {"User-Agent": "me"}}, "cannot be overridden"),
            ({"headers": {"webhook-id": "1"}}, "cannot be overridden"),
            ({"headers": {"Bad Name": "x"}}, "not a valid HTTP header name"),
            ({"headers": {"X-A": "a\r\nX-B: b"}}, "single-line"),
            ({"secret": "s", "secret_ref": "env:X"}, "not both"),
            ({"secret": ""}, "non-empty"),
            ({"secret_ref": "vault://hooks/a"}, "env:NAME"),
            ({"secret_ref": "env:MNEMO_TEST_UNSET_SECRET"}, "is not set"),
            ({"signature_scheme": "hmac"}, "signature_scheme"),
            ({"signature_scheme": "standard", "secret": "plain words"}, "whsec_"),
            ({"retry_config": {"max_attempts": 0}}, "retry_config"),
            ({"url": "ftp://127.0.0.1/x"}, "http or https"),
        ],
    )
    async def test_invalid_registrations_are_refused(
        self, make_manager: MakeManager, receiver: Receiver, fields: dict[str, Any], message: str
    ) -> None:
        """Each invalid field is refused with a WebhookConfigError naming it; nothing is saved."""
        wm = await make_manager()
        args: dict[str, Any] = {"url": receiver.url(), "events": ["memory.*"]} | fields
        with pytest.raises(WebhookConfigError, match=message):
            await wm.register_webhook(**args)
        assert wm.list_webhooks() == []

    async def test_private_urls_are_refused_by_default(self, tmp_path: Path) -> None:
        """Without allow_private_networks a loopback URL is refused, saying how to allow it."""
        async with WebhookManager(delivery_store_path=tmp_path / "d.sqlite3") as wm:
            with pytest.raises(UnsafeWebhookURLError, match="allow_private_networks"):
                await wm.register_webhook("http://127.0.0.1:8080/hook", ["memory.*"])
            with pytest.raises(UnsafeWebhookURLError, match="loopback"):
                await wm.register_webhook("http://localhost:8080/hook", ["memory.*"])

    async def test_secret_from_environment(
        self,
        make_manager: MakeManager,
        receiver: Receiver,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
    ) -> None:
        """secret_ref='env:NAME' signs with the variable's value and keeps it out of the file."""
        monkeypatch.setenv("MNEMO_TEST_HOOK_SECRET", "whsec_from_the_environment")
        wm = await make_manager()
        hook = await wm.register_webhook(
            receiver.url(), ["memory.*"], secret_ref="env:MNEMO_TEST_HOOK_SECRET"
        )
        assert (hook.secret, hook.secret_ref) == (None, "env:MNEMO_TEST_HOOK_SECRET")
        receiver.secrets["/hook"] = "whsec_from_the_environment"
        wm.deliver(_event())
        await receiver.wait_for(1)
        assert receiver.requests[0].stripe_ok
        assert "whsec_from_the_environment" not in (tmp_path / "webhooks.json").read_text()


class TestChanges:
    async def test_update_changes_what_is_delivered(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """New patterns and headers apply to the next event; the result is masked."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        updated = await wm.update_webhook(hook.id, events=["dream.*"], headers={"X-V": "2"})
        assert updated.events == ("dream.*",)
        assert updated.secret == "whsec_****"
        wm.deliver(_event(1, "memory.created"))
        wm.deliver(_event(2, "dream.started"))
        await receiver.wait_for(1)
        await wm.flush()
        assert [r.headers["X-MnemoCore-Event"] for r in receiver.requests] == ["dream.started"]
        assert receiver.requests[0].headers["X-V"] == "2"

    @pytest.mark.parametrize(
        ("fields", "error", "message"),
        [
            ({"colour": "red"}, WebhookConfigError, "cannot update"),
            ({"events": ["a..b"]}, WebhookConfigError, "events"),
            ({"secret": None}, WebhookConfigError, "new secret"),
            (
                {"signature_scheme": "standard", "secret": "not base64!"},
                WebhookConfigError,
                "whsec_",
            ),
        ],
    )
    async def test_invalid_updates_are_refused(
        self,
        make_manager: MakeManager,
        receiver: Receiver,
        fields: dict[str, Any],
        error: type[Exception],
        message: str,
    ) -> None:
        """An unknown field or a bad value is refused and the webhook is unchanged."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        with pytest.raises(error, match=message):
            await wm.update_webhook(hook.id, **fields)
        found = wm.get_webhook(hook.id)
        assert found is not None
        assert found.events == ("memory.*",)

    async def test_unknown_ids_raise_not_found(self, make_manager: MakeManager) -> None:
        """Every id-taking method raises WebhookNotFoundError (a KeyError) for unknown ids,
        except MnemoCore's two lookups: ``delete_webhook`` answers False, ``get_webhook``
        None (issue 14)."""
        wm = await make_manager()
        assert await wm.delete_webhook("wh_nope") is False
        assert wm.get_webhook("wh_nope") is None
        for call in (
            lambda: wm.update_webhook("wh_nope", enabled=False),
            lambda: wm.rotate_secret("wh_nope"),
            lambda: wm.get_webhook_status("wh_nope"),
            lambda: wm.get_delivery("dlv_nope"),
            lambda: wm.redeliver("dlv_nope"),
            lambda: wm.replay_failed("wh_nope"),
        ):
            with pytest.raises(WebhookNotFoundError, match="nope"):
                await call()

    async def test_delete_fails_unfinished_deliveries(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Deleting a webhook marks its waiting deliveries failed and forgets the webhook."""
        wm = await make_manager()
        receiver.script("/hook", Reply(503, headers={"Retry-After": "60"}))
        hook = await wm.register_webhook(
            receiver.url(),
            ["memory.*"],
            retry_config=FAST.model_copy(update={"max_delay_seconds": 60}),
        )
        wm.deliver(_event())
        (waiting,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="retrying"))
        await wm.delete_webhook(hook.id)
        gone = await wm.get_delivery(waiting.id)
        assert (gone.status, gone.last_error) == (DeliveryStatus.FAILED, "webhook deleted")
        assert wm.list_webhooks() == []

    async def test_rotation_signs_with_both_secrets_during_grace(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """After rotate_secret, requests verify (with Stripe's verifier) under the old and the
        new secret; with no grace only the new one works."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"], signature_scheme="both")
        old = hook.secret
        assert old is not None
        rotated = await wm.rotate_secret(hook.id)
        new = rotated.secret
        assert new is not None
        assert new != old
        wm.deliver(_event(1))
        await receiver.wait_for(1)
        first = receiver.requests[0]
        signature = first.headers["X-MnemoCore-Signature"]
        assert signature.count("v1=") == 2
        assert stripe_verifies(first.body, signature, old)
        assert stripe_verifies(first.body, signature, new)
        assert first.headers["webhook-signature"].count("v1,") == 2
        await wm.rotate_secret(hook.id, "whsec_bmV3ZXN0LXNlY3JldC1ieXRlcw==", grace_seconds=0)
        wm.deliver(_event(2))
        await receiver.wait_for(2)
        second = receiver.requests[1]
        assert not stripe_verifies(second.body, second.headers["X-MnemoCore-Signature"], new)
        assert stripe_verifies(
            second.body,
            second.headers["X-MnemoCore-Signature"],
            "whsec_bmV3ZXN0LXNlY3JldC1ieXRlcw==",
        )


class TestPersistence:
    async def test_webhooks_survive_a_restart(self, tmp_path: Path, receiver: Receiver) -> None:
        """A webhook registered by one manager is loaded and used by the next one."""
        path = tmp_path / "webhooks.json"
        async with WebhookManager(path, allow_private_networks=True) as first:
            hook = await first.register_webhook(receiver.url(), ["memory.*"], headers={"X-A": "1"})
        assert hook.secret is not None
        async with WebhookManager(path, allow_private_networks=True) as second:
            (loaded,) = second.list_webhooks()
            assert (loaded.id, loaded.url, loaded.headers) == (hook.id, hook.url, {"X-A": "1"})
            receiver.secrets["/hook"] = hook.secret
            second.deliver(_event())
            await receiver.wait_for(1)
        assert receiver.requests[0].stripe_ok

    def test_corrupt_file_stops_the_manager_and_is_kept(self, tmp_path: Path) -> None:
        """A corrupt webhooks file raises WebhookPersistenceError and is left as it was."""
        path = tmp_path / "webhooks.json"
        path.write_text('{"webhooks": [')
        with pytest.raises(WebhookPersistenceError, match=str(path)):
            WebhookManager(path)
        assert path.read_text() == '{"webhooks": ['

    async def test_concurrent_registrations(
        self, make_manager: MakeManager, tmp_path: Path
    ) -> None:
        """Twenty registrations at once are all in memory and in the file."""
        wm = await make_manager()
        hooks = await asyncio.gather(
            *(wm.register_webhook(f"http://127.0.0.1:9/{n}", ["memory.*"]) for n in range(20))
        )
        stored = json.loads((tmp_path / "webhooks.json").read_text())["webhooks"]
        assert {entry["id"] for entry in stored} == {hook.id for hook in hooks}
        assert len(wm.list_webhooks()) == 20


class TestTracking:
    async def test_history_status_and_metrics(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """History lists newest first by status; status and metrics count what happened."""
        wm = await make_manager()
        receiver.script("/hook", Reply(500), Reply(500), Reply(500))
        hook = await wm.register_webhook(receiver.url(), ["memory.*"], retry_config=FAST)
        wm.deliver(_event(1))
        await eventually(lambda: wm.get_delivery_history(hook.id, status="failed"))
        wm.deliver(_event(2))
        wm.deliver(_event(3))
        await eventually(lambda: len(receiver.requests) == 5)
        await eventually(lambda: wm.get_metrics()["deliveries"]["success"] == 2)
        history = await wm.get_delivery_history(hook.id)
        assert [d.status for d in history][-1] is DeliveryStatus.FAILED
        assert len(await wm.get_delivery_history(hook.id, limit=1)) == 1
        status = await wm.get_webhook_status(hook.id)
        assert status.deliveries == {
            "pending": 0, "retrying": 0, "success": 2, "failed": 1, "total": 3,
        }  # fmt: skip
        assert status.success_rate == pytest.approx(2 / 3)
        assert status.last_success_at is not None
        assert status.last_failure_at is not None
        assert status.to_dict()["deliveries"]["total"] == 3
        metrics = wm.get_metrics()
        assert metrics["webhooks"] == {"total": 1, "enabled": 1}
        assert metrics["deliveries"] == {
            "total": 3, "pending": 0, "retrying": 0, "success": 2, "failed": 1,
        }  # fmt: skip
        assert metrics["attempts"] == {"total": 5, "failed": 3}
        assert metrics["latency_ms"]["mean"] > 0
        assert metrics["latency_ms"]["p95"] > 0
        with pytest.raises(WebhookConfigError, match="status must be one of"):
            await wm.get_delivery_history(hook.id, status="lost")

    async def test_redeliver_keeps_the_delivery_id(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """redeliver sends a finished delivery again with the same id and the next attempt
        number; a delivery still in progress is refused."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"], retry_config=FAST)
        receiver.secrets["/hook"] = hook.secret or ""
        wm.deliver(_event())
        (done,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="success"))
        assert await wm.redeliver(done.id) == done.id
        await receiver.wait_for(2)
        again = receiver.requests[1]
        assert (again.delivery_id, again.attempt, again.stripe_ok) == (done.id, 2, True)
        assert again.body == receiver.requests[0].body
        await eventually(
            lambda: _attempts_of(wm, done.id, 2),
        )

    async def test_replay_failed(self, make_manager: MakeManager, receiver: Receiver) -> None:
        """replay_failed resends every failed delivery of a webhook, with fresh attempts."""
        wm = await make_manager()
        receiver.script("/hook", Reply(500), Reply(500))
        hook = await wm.register_webhook(
            receiver.url(), ["memory.*"], retry_config=FAST.model_copy(update={"max_attempts": 1})
        )
        wm.deliver(_event(1))
        wm.deliver(_event(2))
        failed = await eventually(
            lambda: _when_len(wm.get_delivery_history(hook.id, status="failed"), 2)
        )
        assert await wm.replay_failed(hook.id) == 2
        await receiver.wait_for(4)
        assert {r.delivery_id for r in receiver.requests[2:]} == {d.id for d in failed}
        await eventually(lambda: _when_len(wm.get_delivery_history(hook.id, status="success"), 2))
        assert await wm.replay_failed(hook.id) == 0

    async def test_queries_need_a_running_manager(self) -> None:
        """Store queries before start() raise a WebhookError saying to start."""
        wm = WebhookManager()
        with pytest.raises(WebhookError, match="start"):
            await wm.get_delivery_history("wh_x")
        assert wm.get_metrics()["running"] is False

    async def test_old_records_are_pruned(self, tmp_path: Path, receiver: Receiver) -> None:
        """Finished deliveries older than retention_days are deleted at start."""
        store = tmp_path / "d.sqlite3"
        settings: dict[str, Any] = {"delivery_store_path": store, "allow_private_networks": True}
        async with WebhookManager(tmp_path / "w.json", **settings) as first:
            hook = await first.register_webhook(receiver.url(), ["memory.*"])
            first.deliver(_event())
            await eventually(lambda: first.get_delivery_history(hook.id, status="success"))
        conn = sqlite3.connect(store)
        with conn:
            conn.execute("UPDATE deliveries SET updated_at = ?", (time.time() - 3 * 86400,))
        conn.close()
        async with WebhookManager(tmp_path / "w.json", retention_days=2, **settings) as second:
            await eventually(lambda: _when_len(second.get_delivery_history(hook.id), 0, empty=True))


async def _attempts_of(wm: WebhookManager, delivery_id: str, count: int) -> bool:
    delivery = await wm.get_delivery(delivery_id)
    return delivery.status is DeliveryStatus.SUCCESS and len(delivery.attempt_log) == count


async def _when_len(pending: Awaitable[list[Any]], count: int, empty: bool = False) -> Any:
    items = await pending
    if len(items) != count:
        return None
    return True if empty else items


class TestBus:
    async def test_attached_bus_events_are_delivered(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """After attach(bus), events published on the bus reach matching webhooks, signed."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        receiver.secrets["/hook"] = hook.secret or ""
        async with EventBus(validation="off") as bus:
            wm.attach(bus)
            event = await bus.publish("memory.created", {"memory_id": "m1"})
            await bus.publish("dream.started", {"session_id": "s"})
            await bus.publish_batch([{"type": "memory.deleted", "data": {"memory_id": "m1"}}])
            await receiver.wait_for(2)
            await bus.stop()
        await wm.flush()
        assert [r.headers["X-MnemoCore-Event"] for r in receiver.requests] == [
            "memory.created",
            "memory.deleted",
        ]
        assert receiver.requests[0].body == event.to_json()
        assert all(r.stripe_ok for r in receiver.requests)

    async def test_events_before_start_wait_and_after_stop_are_not_sent(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """Events published before start() go out once it runs; after stop() nothing is sent."""
        wm = WebhookManager(tmp_path / "w.json", allow_private_networks=True)
        async with EventBus(validation="off") as bus:
            wm.attach(bus)
            async with wm:
                await wm.register_webhook(receiver.url(), ["memory.*"])
            seen: list[Event] = []
            bus.subscribe("memory.*", seen.append)
            await bus.publish("memory.created", {"memory_id": "while-stopped"})
            await eventually(lambda: seen)
            fresh = WebhookManager(tmp_path / "w.json", allow_private_networks=True)
            fresh.attach(bus)
            await bus.publish("memory.created", {"memory_id": "before-start"})
            await bus.stop()
            async with fresh:
                await receiver.wait_for(1)
                await fresh.flush()
        assert [json.loads(r.body)["data"]["memory_id"] for r in receiver.requests] == [
            "before-start"
        ]
        assert wm.get_metrics()["running"] is False

    async def test_events_during_start_are_kept(self, tmp_path: Path, receiver: Receiver) -> None:
        """An event handed over while start() is still opening the store goes out once it runs."""
        path = tmp_path / "w.json"
        async with WebhookManager(path, allow_private_networks=True) as first:
            await first.register_webhook(receiver.url(), ["memory.*"])
        wm = WebhookManager(path, allow_private_networks=True)
        starting = asyncio.create_task(wm.start())
        await asyncio.sleep(0)
        assert not wm.is_running
        wm.deliver(_event(7))
        await starting
        try:
            await receiver.wait_for(1)
        finally:
            await wm.stop()
        assert json.loads(receiver.requests[0].body)["data"]["memory_id"] == "m7"

    async def test_restart_after_stop(self, make_manager: MakeManager, receiver: Receiver) -> None:
        """A stopped manager can start again and delivers again."""
        wm = await make_manager()
        await wm.register_webhook(receiver.url(), ["memory.*"])
        await wm.stop()
        await wm.stop()
        await wm.start()
        await wm.start()
        wm.deliver(_event())
        await receiver.wait_for(1)

    async def test_disabled_in_config_sends_nothing(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """webhooks.enabled false: events are ignored."""
        wm = await make_manager(enabled=False)
        await wm.register_webhook(receiver.url(), ["memory.*"])
        wm.deliver(_event())
        await wm.flush()
        assert wm.get_metrics()["deliveries"]["total"] == 0


class TestShared:
    async def test_shared_manager_from_config_attached_to_the_shared_bus(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
    ) -> None:
        """get_webhook_manager() reads config.yaml, is attached to get_event_bus(), and
        reset_webhook_manager() forgets it."""
        config = tmp_path / "config.yaml"
        config.write_text(
            "events:\n  validation: 'off'\n"
            f"webhooks:\n  persistence_path: {tmp_path / 'w.json'}\n"
            f"  delivery_store_path: {tmp_path / 'd.sqlite3'}\n"
            "  allow_private_networks: true\n"
        )
        monkeypatch.setenv("MNEMO_EVENTS_CONFIG", str(config))
        wm = get_webhook_manager()
        assert get_webhook_manager() is wm
        assert wm.config.allow_private_networks
        bus = get_event_bus()
        try:
            await bus.start()
            async with wm:
                await wm.register_webhook(receiver.url(), ["memory.*"])
                await bus.publish("memory.created", {"memory_id": "m1"})
                await receiver.wait_for(1)
        finally:
            await bus.shutdown()
            reset_webhook_manager()
        assert get_webhook_manager() is not wm
        reset_webhook_manager()

    def test_unknown_settings_are_refused(self) -> None:
        """A misspelt setting is refused rather than ignored."""
        with pytest.raises(WebhookConfigError, match="max_inflight"):
            WebhookManager(max_inflight=3)

    def test_invalid_settings_are_refused(self) -> None:
        """An out-of-range setting raises WebhookConfigError naming it."""
        with pytest.raises(WebhookConfigError, match="retention_days"):
            WebhookManager(retention_days=-1)

    def test_keywords_override_the_config(self, tmp_path: Path) -> None:
        """Keyword settings win over the given WebhooksConfig."""
        config = WebhooksConfig(persistence_path=None, delivery_store_path=None, retention_days=9)
        wm = WebhookManager(config=config, retention_days=1, allow_private_networks=True)
        assert (wm.config.retention_days, wm.config.allow_private_networks) == (1, True)
        assert wm.config.delivery_store_path is None


class TestHostileInput:
    @pytest.mark.parametrize(
        "fields",
        [
            {"description": "\ud800"},
            {"headers": {"X-Team": "a\udc00b"}},
            {"secret": "whsec_\ud800"},
            {"events": ["memory.\ud800"]},
        ],
        ids=["description", "header-value", "secret", "pattern"],
    )
    async def test_lone_surrogates_are_refused_up_front(
        self, make_manager: MakeManager, receiver: Receiver, tmp_path: Path, fields: dict[str, Any]
    ) -> None:
        """`"description": "\\ud800"` (or a surrogate anywhere) is a WebhookConfigError; the
        registry is not poisoned: later changes are saved and a restart shows the same."""
        wm = await make_manager()
        args: dict[str, Any] = {"url": receiver.url(), "events": ["memory.*"]} | fields
        with pytest.raises(WebhookConfigError, match="not valid Unicode") as caught:
            await wm.register_webhook(**args)
        assert "\ud800" not in str(caught.value)
        assert wm.list_webhooks() == []
        kept = await wm.register_webhook(receiver.url("/kept"), ["memory.*"])
        gone = await wm.register_webhook(receiver.url("/gone"), ["memory.*"])
        with pytest.raises(WebhookConfigError, match="description: not valid Unicode"):
            await wm.update_webhook(kept.id, description="\ud800")
        with pytest.raises(WebhookConfigError, match="secret: not valid Unicode"):
            await wm.rotate_secret(kept.id, "whsec_\udfff")
        await wm.delete_webhook(gone.id)
        assert [w.id for w in WebhookManager(tmp_path / "webhooks.json").list_webhooks()] == [
            kept.id
        ]

    async def test_failed_saves_change_nothing_and_a_restart_agrees(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """With the webhook file's folder unwritable, register, update, rotate and delete all
        raise WebhookPersistenceError and leave memory as it was; after a restart the same
        webhooks come back (a failed delete is not half-done)."""
        folder = tmp_path / "state"
        path = folder / "webhooks.json"
        settings: dict[str, Any] = {"allow_private_networks": True, "stop_timeout": 0.5}
        async with WebhookManager(path, **settings) as wm:
            hook = await wm.register_webhook(receiver.url(), ["memory.*"], description="v1")
            assert hook.secret is not None
            with unwritable(folder):
                with pytest.raises(WebhookPersistenceError):
                    await wm.register_webhook(receiver.url("/new"), ["memory.*"])
                with pytest.raises(WebhookPersistenceError):
                    await wm.update_webhook(hook.id, description="v2")
                with pytest.raises(WebhookPersistenceError):
                    await wm.rotate_secret(hook.id)
                with pytest.raises(WebhookPersistenceError):
                    await wm.delete_webhook(hook.id)
            (still,) = wm.list_webhooks()
            assert (still.id, still.description, still.previous_secrets) == (hook.id, "v1", ())
            receiver.secrets["/hook"] = hook.secret
            wm.deliver(_event())
            await receiver.wait_for(1)
            assert receiver.requests[0].stripe_ok
        async with WebhookManager(path, **settings) as again:
            assert [(w.id, w.description) for w in again.list_webhooks()] == [(hook.id, "v1")]

    @pytest.mark.parametrize("grace", [float("inf"), float("nan"), 1e400])
    async def test_non_finite_grace_is_refused(
        self, make_manager: MakeManager, receiver: Receiver, grace: float
    ) -> None:
        """A grace of Infinity (`1e400`) or NaN is refused: the old secret cannot live forever."""
        wm = await make_manager()
        hook = await wm.register_webhook(receiver.url(), ["memory.*"])
        with pytest.raises(WebhookConfigError, match="grace_seconds"):
            await wm.rotate_secret(hook.id, grace_seconds=grace)


CREDENTIALS = {
    "Authorization": "Bearer tok-AUTH-123",
    "Cookie": "session=cookie-456",
    "X-Api-Key": "key-789",
    "X-Auth-Token": "token-abc",
}


class TestCredentials:
    async def test_receiver_credentials_are_masked_everywhere_but_sent_in_full(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Credential headers (accepted in plaintext without a webhook file) are masked in
        get/list/update/rotate results, to_dict and repr, and still reach the receiver."""
        wm = await make_manager(path=None)
        headed = await wm.register_webhook(
            receiver.url("/headers"), ["memory.*"], headers={**CREDENTIALS, "X-Team": "a"}
        )
        shown: list[Webhook] = [headed, *wm.list_webhooks()]
        shown.append(await wm.rotate_secret(headed.id))
        shown.append(await wm.update_webhook(headed.id, description="audit"))
        current = wm.get_webhook(headed.id)
        assert current is not None
        shown.append(current)
        texts = [repr(w) for w in shown] + [json.dumps(w.to_dict()) for w in shown]
        for text in texts:
            for value in CREDENTIALS.values():
                assert value not in text
        assert current.headers == {**dict.fromkeys(CREDENTIALS, "****"), "X-Team": "a"}
        wm.deliver(_event())
        await receiver.wait_for(1)
        got = receiver.on("/headers")[0].headers
        assert {name: got[name] for name in CREDENTIALS} == CREDENTIALS
        assert got["X-Team"] == "a"

    async def test_url_credentials_are_refused(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """`user:pass@` in the URL (with or without an Authorization header) is refused at
        registration and at update, with an error that names the host and no credential."""
        wm = await make_manager(path=None)
        url = f"http://user:pw-SECRET-1@127.0.0.1:{receiver.port}/hook"
        for headers in ({"authorization": "Basic eA=="}, None):
            with pytest.raises(WebhookConfigError, match="must not carry credentials") as caught:
                await wm.register_webhook(url, ["memory.*"], headers=headers)
            assert "pw-SECRET-1" not in str(caught.value)
        assert wm.list_webhooks() == []
        plain = await wm.register_webhook(receiver.url(), ["memory.*"], headers=CREDENTIALS)
        with pytest.raises(WebhookConfigError, match="must not carry credentials"):
            await wm.update_webhook(plain.id, url=url)
        current = wm.get_webhook(plain.id)
        assert current is not None
        assert current.url == receiver.url()

    async def test_bad_header_values_are_not_echoed(self, make_manager: MakeManager) -> None:
        """A refused header value (a credential, perhaps) is not repeated in the error."""
        wm = await make_manager()
        with pytest.raises(WebhookConfigError, match="single-line") as caught:
            await wm.register_webhook(
                "http://127.0.0.1:9/h", ["memory.*"], headers={"X-Api-Key": "k-SECRET\r\nX: y"}
            )
        assert "k-SECRET" not in str(caught.value)


class TestLifecycle:
    async def test_state_follows_start_and_stop(self, tmp_path: Path) -> None:
        """The manager's state goes NEW, RUNNING, STOPPED, and RUNNING again on a restart."""
        wm = WebhookManager(delivery_store_path=tmp_path / "d.sqlite3", stop_timeout=0.5)
        seen = [wm.state]
        for step in (wm.start, wm.stop, wm.start, wm.stop):
            await step()
            seen.append(wm.state)
        assert seen == [
            WebhookManagerState.NEW,
            WebhookManagerState.RUNNING,
            WebhookManagerState.STOPPED,
            WebhookManagerState.RUNNING,
            WebhookManagerState.STOPPED,
        ]

    async def test_not_started_and_stopped_managers_refuse_work(self, tmp_path: Path) -> None:
        """Before start and after stop, queries, flush and redelivery raise
        WebhookManagerNotRunningError (a WebhookError and a RuntimeError) naming the state."""
        wm = WebhookManager(delivery_store_path=tmp_path / "d.sqlite3", stop_timeout=0.5)

        def calls() -> list[Awaitable[Any]]:
            return [
                wm.get_delivery_history("wh_x"),
                wm.get_delivery("dlv_x"),
                wm.redeliver("dlv_x"),
                wm.flush(),
            ]

        for call in calls():
            with pytest.raises(WebhookManagerNotRunningError, match=r"'new'.*start"):
                await call
        await wm.start()
        await wm.stop()
        for call in calls():
            with pytest.raises(WebhookManagerNotRunningError, match="stopped"):
                await call
        assert issubclass(WebhookManagerNotRunningError, WebhookError)
        assert issubclass(WebhookManagerNotRunningError, RuntimeError)


def _point_at(path: Path, urls: dict[str, str]) -> None:
    """Rewrite the webhook file so each webhook id has the given URL (as an operator might)."""
    document = json.loads(path.read_text())
    for entry in document["webhooks"]:
        entry["url"] = urls[entry["id"]]
    path.write_text(json.dumps(document))


class TestProductionResolver:
    async def test_loopback_hosts_are_refused_at_connect_time(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """With allow_private_networks off and the default resolver, webhooks on a loopback name
        or numeric form (that reached the file without registration) end as one failed attempt
        each, and the receiver records nothing; the same file with the policy off delivers."""
        path = tmp_path / "webhooks.json"
        store = tmp_path / "d.sqlite3"
        hosts = ["localhost", "2130706433", "0177.0.0.1", "127.1", "0x7f.1"]
        async with WebhookManager(path, allow_private_networks=True) as setup:
            hooks = [
                await setup.register_webhook(receiver.url(f"/{n}"), ["memory.*"], retry_config=FAST)
                for n in range(len(hosts))
            ]
        _point_at(
            path,
            {
                h.id: f"http://{host}:{receiver.port}/{n}"
                for n, (h, host) in enumerate(zip(hooks, hosts, strict=True))
            },
        )
        async with WebhookManager(path, delivery_store_path=store, stop_timeout=0.5) as wm:
            assert wm.config.allow_private_networks is False
            wm.deliver(_event())

            async def all_failed() -> list[Any]:
                found = [await wm.get_delivery_history(h.id) for h in hooks]
                done = [d for ds in found for d in ds if d.status is DeliveryStatus.FAILED]
                return done if len(done) == len(hooks) else []

            failed = await eventually(all_failed)
        assert receiver.requests == []
        assert all(d.attempts == 1 for d in failed)
        assert all("loopback" in (d.last_error or "") for d in failed)
        # The control: the receiver is reachable, so the refusal above is the guard's doing.
        async with WebhookManager(path, allow_private_networks=True, stop_timeout=0.5) as open_:
            open_.deliver(_event(2))
            await receiver.wait_for(1, path="/0")
