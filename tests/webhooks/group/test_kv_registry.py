"""Tests of the webhook registry on JetStream KV: CRUD, compare-and-set across processes, the
mirror and its listeners, restarts, secrets kept apart, errors without secrets."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats
import nats.errors
import pytest
from nats.js import JetStreamContext
from structlog.testing import capture_logs

from mnemo_events._frozen import FrozenDict
from mnemo_events.config import RetryConfig
from mnemo_events.exceptions import WebhookNotFoundError, WebhookPersistenceError
from mnemo_events.webhooks._kv_common import key_token, scan
from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
from mnemo_events.webhooks.models import RetiredSecret, Webhook
from tests.helpers.nats import NatsServer, connect_jetstream
from tests.helpers.webhooks import numbered_webhook as _webhook

pytestmark = pytest.mark.timeout(60)


_IN_TEN_MINUTES = time.time() + 600


def _full() -> Webhook:
    return _webhook(
        1,
        events=("memory.*", "dream.>"),
        headers=FrozenDict({"X-Team": "core", "Authorization": "Bearer tok-INLINE-123"}),
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        updated_at=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC),
        enabled=False,
        disabled_reason="the endpoint answered 410 Gone",
        retry_config=RetryConfig(max_attempts=3, base_delay_seconds=0.5, jitter=0.1),
        signature_scheme="both",
        description="audit sink",
        previous_secrets=(RetiredSecret("whsec_OLD-ROTATING", None, _IN_TEN_MINUTES),),
    )


_FIELDS = (
    "url", "events", "secret", "secret_ref", "headers", "enabled", "disabled_reason",
    "retry_config", "signature_scheme", "description", "previous_secrets", "created_at",
    "updated_at",
)  # fmt: skip


def _same(a: Webhook, b: Webhook) -> None:
    for name in _FIELDS:
        assert getattr(a, name) == getattr(b, name), name
    assert list(a.headers) == list(b.headers)


async def _eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def two(server: NatsServer) -> AsyncIterator[tuple[JetStreamWebhookRegistry, ...]]:
    """Two registries on one server, each on its own connection (two processes, as it were)."""
    connections = [await connect_jetstream(server.url) for _ in range(2)]
    registries = [await JetStreamWebhookRegistry.open(js) for _, js in connections]
    yield tuple(registries)
    for registry in registries:
        await registry.close()
    for nc, _ in connections:
        await nc.close()


def _all_log_text(logs: Sequence[Mapping[str, Any]]) -> str:
    return "\n".join(repr(entry) for entry in logs)


class TestCrud:
    async def test_put_get_find_all_len(self, two: tuple[JetStreamWebhookRegistry, ...]) -> None:
        """A put webhook reads back equal, at once, from the registry that wrote it."""
        registry, _ = two
        assert len(registry) == 0
        assert registry.path is None
        await registry.put(_full())
        await registry.put(_webhook(2, secret=None, secret_ref="env:HOOK_SECRET"))
        assert len(registry) == 2
        assert [w.id for w in registry.all()] == ["wh_1", "wh_2"]
        _same(registry.get("wh_1"), _full())
        assert registry.find("wh_2") is not None
        assert registry.get("wh_2").secret_ref == "env:HOOK_SECRET"
        assert registry.find("nope") is None

    async def test_change_and_remove(self, two: tuple[JetStreamWebhookRegistry, ...]) -> None:
        """change() returns and shows the new webhook; remove() returns the removed one."""
        registry, _ = two
        await registry.put(_webhook(1))
        changed = await registry.change(
            "wh_1", lambda w: dataclasses.replace(w, url="https://new.example.com/")
        )
        assert changed.url == registry.get("wh_1").url == "https://new.example.com/"
        removed = await registry.remove("wh_1")
        assert removed.url == "https://new.example.com/"
        assert registry.find("wh_1") is None
        assert len(registry) == 0

    async def test_unknown_ids_raise_not_found(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """get, change and remove of an unknown id raise WebhookNotFoundError naming it."""
        registry, _ = two
        with pytest.raises(WebhookNotFoundError, match="wh_404"):
            registry.get("wh_404")
        with pytest.raises(WebhookNotFoundError, match="wh_404"):
            await registry.change("wh_404", lambda w: w)
        with pytest.raises(WebhookNotFoundError, match="wh_404"):
            await registry.remove("wh_404")

    async def test_ids_that_are_not_key_tokens(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """An id with dots, spaces or non-ASCII is stored and seen by the other registry."""
        one, other = two
        odd = "team.alpha hook/é"
        await one.put(_webhook(1, id=odd))
        assert key_token(odd).startswith("=")
        await _eventually(lambda: other.find(odd) is not None)
        assert other.get(odd).secret == "whsec_secret1"

    async def test_one_registry_id_for_every_process(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """Registries on the same buckets share one whr_ identity, kept in the bucket."""
        one, other = two
        assert one.registry_id.startswith("whr_")
        assert one.registry_id == other.registry_id
        assert one.registry_id_saved


class TestSharing:
    async def test_concurrent_changes_from_two_registries_all_land(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """40 read-modify-write changes racing from two registries: none is lost."""
        one, other = two
        await one.put(_webhook(1, description="0"))
        await _eventually(lambda: other.find("wh_1") is not None)

        def _bump(webhook: Webhook) -> Webhook:
            return dataclasses.replace(webhook, description=str(int(webhook.description or 0) + 1))

        await asyncio.gather(
            *(registry.change("wh_1", _bump) for registry in (one, other) for _ in range(20))
        )
        await _eventually(lambda: other.get("wh_1").description == "40")
        await _eventually(lambda: one.get("wh_1").description == "40")

    async def test_concurrent_removals_one_wins(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """Two registries removing one webhook at once: exactly one succeeds."""
        one, other = two
        await one.put(_webhook(1))
        await _eventually(lambda: other.find("wh_1") is not None)
        results = await asyncio.gather(
            one.remove("wh_1"), other.remove("wh_1"), return_exceptions=True
        )
        assert sorted(type(r).__name__ for r in results) == ["Webhook", "WebhookNotFoundError"]
        await _eventually(lambda: one.find("wh_1") is None and other.find("wh_1") is None)

    async def test_every_kind_of_change_reaches_the_other_mirror_and_listener(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """Registered, updated, rotated, disabled, enabled, deleted through one registry: the
        other's mirror shows each and its listener is told, in order; the writer's own
        listener hears nothing unless it asked for its own changes."""
        one, other = two
        heard: list[tuple[str, Webhook | None]] = []
        own: list[tuple[str, Webhook | None]] = []
        silent: list[tuple[str, Webhook | None]] = []
        other.listen(lambda i, w: heard.append((i, w)))
        one.listen(lambda i, w: own.append((i, w)), include_own=True)
        one.listen(lambda i, w: silent.append((i, w)))

        await one.put(_webhook(1))
        await _eventually(lambda: len(heard) == 1)
        await one.change("wh_1", lambda w: dataclasses.replace(w, url="https://b.example.com/"))
        await _eventually(lambda: len(heard) == 2)
        await one.change("wh_1", lambda w: w.rotated("whsec_NEW", None, time.time() + 60))
        await _eventually(lambda: len(heard) == 3)
        await one.change("wh_1", lambda w: w.disabled("too many failures"))
        await _eventually(lambda: len(heard) == 4)
        await one.change("wh_1", lambda w: dataclasses.replace(w, enabled=True))
        await _eventually(lambda: len(heard) == 5)
        await one.remove("wh_1")
        await _eventually(lambda: len(heard) == 6)

        states = [w for _, w in heard]
        assert [i for i, _ in heard] == ["wh_1"] * 6
        assert states[0] is not None
        assert states[0].url == "https://hooks.example.com/1"
        assert states[1] is not None
        assert states[1].url == "https://b.example.com/"
        assert states[2] is not None
        assert states[2].secret == "whsec_NEW"
        assert [old.secret for old in states[2].previous_secrets] == ["whsec_secret1"]
        assert states[3] is not None
        assert not states[3].enabled
        assert states[3].disabled_reason == "too many failures"
        assert states[4] is not None
        assert states[4].enabled
        assert states[5] is None
        assert other.find("wh_1") is None
        assert [w is None for _, w in own] == [False] * 5 + [True]
        assert silent == []

    async def test_a_listener_that_raises_is_logged_and_the_mirror_goes_on(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """An exception from a listener is logged and counted; later changes still arrive."""
        one, other = two

        def _bad(webhook_id: str, webhook: Webhook | None) -> None:
            raise RuntimeError("listener bug")

        other.listen(_bad)
        with capture_logs() as logs:
            await one.put(_webhook(1))
            await _eventually(lambda: other.listener_errors == 1)
            await one.put(_webhook(2))
            await _eventually(lambda: other.find("wh_2") is not None)
        assert other.listener_errors == 2
        assert "webhooks.kv_listener_failed" in [entry["event"] for entry in logs]


class TestRestarts:
    async def test_everything_restarted_loses_nothing(self, tmp_path: Path) -> None:
        """Registries closed, nats-server restarted on its store: new registries on new
        connections read every webhook back, secrets and rotation included."""
        with NatsServer(tmp_path / "js") as server:
            nc, js = await connect_jetstream(server.url)
            registry = await JetStreamWebhookRegistry.open(js)
            identity = registry.registry_id
            await registry.put(_full())
            await registry.put(_webhook(2))
            await registry.change("wh_2", lambda w: w.rotated("whsec_NEXT", None, time.time() + 60))
            await registry.remove("wh_2")
            await registry.put(_webhook(3, description="kept"))
            await registry.close()
            await nc.close()
            server.restart()
            nc, js = await connect_jetstream(server.url)
            again = await JetStreamWebhookRegistry.open(js)
            try:
                assert again.registry_id == identity
                assert [w.id for w in again.all()] == ["wh_1", "wh_3"]
                _same(again.get("wh_1"), _full())
                assert again.get("wh_3").description == "kept"
            finally:
                await again.close()
                await nc.close()

    async def test_a_new_registry_loads_every_webhook(
        self, server: NatsServer, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """300 webhooks (more than a KV watcher's queue holds) written by one registry are
        all in the mirror of a registry opened afterwards, before open() returns."""
        registry, _ = two
        await asyncio.gather(*(registry.put(_webhook(n)) for n in range(300)))
        nc, js = await connect_jetstream(server.url)
        try:
            fresh = await JetStreamWebhookRegistry.open(js)
            try:
                assert len(fresh) == 300
                assert fresh.get("wh_299").secret == "whsec_secret299"
            finally:
                await fresh.close()
        finally:
            await nc.close()

    async def test_a_live_registry_follows_changes_after_a_server_restart(
        self, tmp_path: Path
    ) -> None:
        """nats-server restarted under two open registries: a change made through one
        afterwards reaches the other's mirror."""
        with NatsServer(tmp_path / "js") as server:
            connections = [await connect_jetstream(server.url) for _ in range(2)]
            one, other = [await JetStreamWebhookRegistry.open(js) for _, js in connections]
            try:
                await one.put(_webhook(1))
                await _eventually(lambda: other.find("wh_1") is not None)
                server.restart()
                await _eventually(lambda: all(nc.is_connected for nc, _ in connections))
                deadline = time.monotonic() + 15
                while True:  # the first writes may meet the stream still recovering
                    try:
                        await one.put(_webhook(2))
                        break
                    except WebhookPersistenceError:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(0.2)
                await _eventually(lambda: other.find("wh_2") is not None, within=20)
            finally:
                for registry in (one, other):
                    await registry.close()
                for nc, _ in connections:
                    await nc.close()

    async def test_a_change_whose_answer_times_out_is_applied_once(self, tmp_path: Path) -> None:
        """nats-server frozen (SIGSTOP) past the request time-out during a change: the
        change returns once the server runs again, and is in the bucket exactly once (its
        lost answer recognised by its write id, not applied a second time)."""
        with NatsServer(tmp_path / "js") as server:
            nc = await nats.connect(server.url)
            registry = await JetStreamWebhookRegistry.open(
                nc.jetstream(timeout=1.0), write_timeout=30.0
            )
            process = server._process
            assert process is not None
            try:
                await registry.put(_webhook(1, description="0"))
                runs: list[str | None] = []

                def _once(webhook: Webhook) -> Webhook:
                    runs.append(webhook.description)
                    return dataclasses.replace(webhook, description="1")

                process.send_signal(signal.SIGSTOP)
                try:
                    change = asyncio.ensure_future(registry.change("wh_1", _once))
                    await asyncio.sleep(2.5)
                finally:
                    process.send_signal(signal.SIGCONT)
                changed = await asyncio.wait_for(change, 40)
                assert changed.description == "1"
                assert runs == ["0"]  # not run again on its own stored result
                again = await JetStreamWebhookRegistry.open(nc.jetstream(timeout=5.0))
                try:
                    assert again.get("wh_1").description == "1"
                finally:
                    await again.close()
            finally:
                await registry.close()
                await nc.close()


class _LateStore:
    """The registry's definitions bucket (real) with the server's worst timing after a
    freeze: the first ``update`` times out unanswered, and the server stores it only after
    answering the read that follows, just before the next write arrives."""

    def __init__(self, kv: Any) -> None:
        self._kv = kv
        self._late: tuple[str, bytes, int | None] | None = None
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._kv, name)

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        if not self.lost:
            self.lost = True
            self._late = (key, value, last)
            raise nats.errors.TimeoutError
        if self._late is not None:
            late, self._late = self._late, None
            await self._kv.update(late[0], late[1], last=late[2])
        revision: int = await self._kv.update(key, value, last=last)
        return revision


class TestLostAnswers:
    async def test_a_lost_write_stored_after_the_next_read_is_applied_once(
        self, connection: JetStreamContext, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A change whose answer is lost and which is stored only after the read that follows
        it is applied once: the lost try is sent again as it was, refused since the first
        landed, and recognised as this change's; ``update`` runs once, the bucket takes one
        write."""
        registry = await JetStreamWebhookRegistry.open(connection)
        try:
            await registry.put(_webhook(1, description="0"))
            key = f"w.{key_token('wh_1')}"
            before = (await registry._defs_kv.get(key)).revision
            late = _LateStore(registry._defs_kv)
            monkeypatch.setattr(registry, "_defs_kv", late)
            runs: list[str | None] = []

            def _once(webhook: Webhook) -> Webhook:
                runs.append(webhook.description)
                return dataclasses.replace(webhook, description="1")

            changed = await registry.change("wh_1", _once)
            assert late.lost
            assert changed.description == "1"
            assert runs == ["0"]
            stored = await late.get(key)
            assert before is not None
            assert stored.revision == before + 1  # stored once: no second write of the change
        finally:
            await registry.close()
        again = await JetStreamWebhookRegistry.open(connection)
        try:
            assert again.get("wh_1").description == "1"
        finally:
            await again.close()


class TestSecretsApart:
    async def test_no_secret_in_the_definitions_bucket(
        self, server: NatsServer, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """Every raw entry of the definitions bucket is free of the signing secret, the
        rotating secret and the credential header value; the secrets bucket holds them."""
        registry, _ = two
        await registry.put(_full())
        await registry.change(
            "wh_1", lambda w: w.rotated("whsec_ROTATED-IN", None, time.time() + 60)
        )
        nc, js = await connect_jetstream(server.url)
        try:
            definitions = await js.key_value(registry.buckets[0])
            secret_bucket = await js.key_value(registry.buckets[1])
            raw_defs = [entry.value or b"" async for entry in scan(definitions, ">")]
            raw_secrets = [entry.value or b"" async for entry in scan(secret_bucket, ">")]
        finally:
            await nc.close()
        assert len(raw_defs) == 2  # the webhook and the registry id
        everything = b"\n".join(raw_defs)
        for secret in (b"whsec_secret1", b"whsec_OLD-ROTATING", b"whsec_ROTATED-IN", b"tok-INLINE"):
            assert secret not in everything
            assert secret in b"\n".join(raw_secrets)
        definition = json.loads(next(d for d in raw_defs if d.startswith(b"{")))
        assert definition["headers"] == {"X-Team": "core"}
        assert definition["header_names"] == ["X-Team", "Authorization"]
        assert len(raw_secrets) == 1  # the replaced secrets entry was purged

    async def test_a_dangling_secrets_version_keeps_the_webhook_hidden(
        self, server: NatsServer, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """A definition naming a secrets entry that does not exist is never shown (with a
        log line at open), so no webhook is ever paired with the wrong secrets."""
        registry, _ = two
        await registry.put(_webhook(1))
        nc, js = await connect_jetstream(server.url)
        try:
            definitions = await js.key_value(registry.buckets[0])
            entry = await definitions.get("w.wh_1")
            doc = json.loads(entry.value or b"") | {"secrets_version": "0000000000000000"}
            await definitions.put("w.wh_1", json.dumps(doc).encode())
            with capture_logs() as logs:
                fresh = await JetStreamWebhookRegistry.open(js)
            try:
                assert fresh.find("wh_1") is None
                assert fresh.bad_entries == 1
                assert [e["event"] for e in logs] == ["webhooks.kv_secrets_missing"]
            finally:
                await fresh.close()
        finally:
            await nc.close()


class TestFailures:
    async def test_a_failed_write_changes_nothing_and_shows_no_secret(
        self, server: NatsServer
    ) -> None:
        """A write on a closed connection raises WebhookPersistenceError naming the bucket
        and the webhook; the mirror is unchanged; no secret in the error or the log."""
        nc, js = await connect_jetstream(server.url)
        registry = await JetStreamWebhookRegistry.open(js)
        try:
            await registry.put(_webhook(1, headers=FrozenDict({"Authorization": "Bearer tok-123"})))
            await nc.close()
            with capture_logs() as logs, pytest.raises(WebhookPersistenceError) as caught:
                await registry.put(_webhook(2, secret="whsec_TOPSECRET"))
            with pytest.raises(WebhookPersistenceError):
                await registry.change("wh_1", lambda w: w.rotated("whsec_NEWONE", None, 0.0))
            assert [w.id for w in registry.all()] == ["wh_1"]
            assert registry.get("wh_1").secret == "whsec_secret1"
            text = _all_log_text(logs) + str(caught.value)
            for secret in ("whsec_TOPSECRET", "whsec_secret1", "tok-123", "whsec_NEWONE"):
                assert secret not in text
            assert "mnemo_webhooks" in str(caught.value)
            assert "wh_2" in str(caught.value)
            assert "webhooks.persist_failed" in [entry["event"] for entry in logs]
            assert caught.value.__cause__ is None
        finally:
            await registry.close()

    async def test_a_closed_registry_refuses_writes_and_still_reads(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """After close(), reads answer from the mirror and writes raise a clear error."""
        registry, _ = two
        await registry.put(_webhook(1))
        await registry.close()
        assert registry.get("wh_1").id == "wh_1"
        with pytest.raises(WebhookPersistenceError, match="closed"):
            await registry.put(_webhook(2))

    async def test_a_bad_prefix_is_refused(self, server: NatsServer) -> None:
        """A prefix that cannot name a bucket raises ValueError naming it."""
        nc, js = await connect_jetstream(server.url)
        try:
            with pytest.raises(ValueError, match=r"'bad\.prefix'"):
                await JetStreamWebhookRegistry.open(js, prefix="bad.prefix")
        finally:
            await nc.close()

    async def test_created_at_order_is_registration_order(
        self, two: tuple[JetStreamWebhookRegistry, ...]
    ) -> None:
        """all() lists by creation time, whatever order the entries arrived in."""
        registry, other = two
        late = datetime(2030, 1, 1, tzinfo=UTC)
        early = datetime(2020, 1, 1, tzinfo=UTC)
        await registry.put(_webhook(1, created_at=late))
        await registry.put(_webhook(2, created_at=early))
        assert [w.id for w in registry.all()] == ["wh_2", "wh_1"]
        await _eventually(lambda: len(other) == 2)
        assert [w.id for w in other.all()] == ["wh_2", "wh_1"]
