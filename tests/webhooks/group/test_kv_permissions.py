"""Secrets are not readable by anything that can only read events: NATS permissions on a real
server, with the webhook secrets in a bucket of their own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import nats
import nats.errors
import pytest

from mnemo_events._frozen import FrozenDict
from mnemo_events.event_bus import EventBus
from mnemo_events.webhooks._kv_registry import JetStreamWebhookRegistry
from mnemo_events.webhooks.models import Webhook
from tests.helpers.nats_auth import AuthNatsServer, NatsUser

pytestmark = pytest.mark.timeout(60)

_EVENTS = "MNEMO_EVENTS"
_DEFINITIONS = "KV_mnemo_webhooks"
_SECRETS_STREAM = "KV_mnemo_webhook_secrets"


def _api(stream: str) -> list[str]:
    """What a reader needs to read one stream: info, message gets, its own consumers."""
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
    ]


_USERS = {
    "webhooks": NatsUser("webhooks-pw-1"),
    "reader": NatsUser(
        "reader-pw-2",
        publish=["$JS.API.INFO", "$JS.FC.>", *_api(_EVENTS), *_api(_DEFINITIONS)],
        subscribe=["_INBOX.>"],
    ),
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[AuthNatsServer]:
    """A nats-server with a full-access ``webhooks`` user and a ``reader`` of events and
    webhook definitions only."""
    with AuthNatsServer(tmp_path / "js", _USERS) as started:
        yield started


async def test_a_reader_of_events_and_definitions_cannot_read_secrets(
    server: AuthNatsServer,
) -> None:
    """The reader reads a published event and a webhook's definition (which holds no secret),
    but every way to the secrets bucket (stream info, a message get, a subscription, opening
    the registry) is refused by the server with a permissions violation."""
    bus = EventBus(
        transport=f"nats://webhooks:webhooks-pw-1@127.0.0.1:{server.port}", validation="off"
    )
    writer = await nats.connect(server.url_for("webhooks"))
    violations: list[str] = []

    async def _on_error(err: Exception) -> None:
        violations.append(str(err))

    reader = await nats.connect(server.url_for("reader"), error_cb=_on_error)
    registry = await JetStreamWebhookRegistry.open(writer.jetstream(timeout=5.0))
    try:
        await bus.start()
        event = await bus.publish("memory.created", {"memory_id": "m1"})
        await registry.put(
            Webhook(
                id="wh_1",
                url="https://hooks.example.com/1",
                events=("memory.*",),
                secret="whsec_READER-MUST-NOT-SEE",
                headers=FrozenDict({"Authorization": "Bearer tok-READER-MUST-NOT-SEE"}),
            )
        )
        js = reader.jetstream(timeout=1.0)

        stored = await js.get_msg(_EVENTS, seq=1)
        assert event.id in (stored.data or b"").decode()
        definitions = await js.key_value("mnemo_webhooks")
        definition = json.loads((await definitions.get("w.wh_1")).value or b"")
        assert definition["url"] == "https://hooks.example.com/1"
        assert "READER-MUST-NOT-SEE" not in json.dumps(definition)
        assert violations == []

        with pytest.raises(nats.errors.TimeoutError):
            await js.key_value("mnemo_webhook_secrets")
        with pytest.raises(nats.errors.TimeoutError):
            await js.get_msg(_SECRETS_STREAM, subject="$KV.mnemo_webhook_secrets.>")
        await reader.subscribe("$KV.mnemo_webhook_secrets.>")
        with pytest.raises(nats.errors.TimeoutError):
            await JetStreamWebhookRegistry.open(js)
        # Each refusal reached the error callback before its request timed out (1 s).
        said = [v.lower() for v in violations]  # nats-py lower-cases the server's -ERR
        assert all("permissions violation" in v for v in said), violations
        secrets_stream = _SECRETS_STREAM.lower()
        assert any(f'publish to "$js.api.stream.info.{secrets_stream}"' in v for v in said)
        assert any(f'publish to "$js.api.stream.msg.get.{secrets_stream}"' in v for v in said)
        assert any('subscription to "$kv.mnemo_webhook_secrets.>"' in v for v in said)
        assert not any("READER-MUST-NOT-SEE" in v for v in violations)
    finally:
        await registry.close()
        await bus.shutdown()
        await reader.close()
        await writer.close()
