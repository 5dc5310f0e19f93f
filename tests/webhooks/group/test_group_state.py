"""Group-wide webhook state on a real nats-server: two members in one process share the
failure count that auto-disables, a 410 disables for everyone, and ``deliver`` on a member
reaches the group through the stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.webhook_manager import WebhookManager
from tests.helpers.nats import NatsServer
from tests.helpers.receiver import Receiver, Reply

pytestmark = pytest.mark.timeout(60)

_ONCE = {"max_attempts": 1, "timeout_seconds": 2.0}


async def _until(check: Callable[[], Any], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _members(url: str, count: int, **settings: Any) -> AsyncIterator[list[WebhookManager]]:
    managers = [
        WebhookManager(transport=url, allow_private_networks=True, takeover_seconds=2.0, **settings)
        for _ in range(count)
    ]
    try:
        for manager in managers:
            await manager.start()
        yield managers
    finally:
        for manager in managers:
            await manager.stop()


def _disabled(member: WebhookManager, webhook_id: str) -> bool:
    found = member.get_webhook(webhook_id)
    return found is not None and not found.enabled


async def _publish(url: str, count: int) -> list[Event]:
    async with EventBus(transport=url, validation="off") as bus:
        return await bus.publish_batch(("memory.created", {"n": n}) for n in range(count))


async def test_consecutive_failures_are_counted_across_members_and_disable_everywhere(
    tmp_path: Path,
) -> None:
    """Failed deliveries handled by two members add up in one shared count: at the threshold
    the webhook is disabled in the shared registry and both members show it, with the same
    status."""
    with NatsServer(tmp_path / "js") as server:
        async with (
            Receiver() as receiver,
            _members(server.url, 2, disable_after_failures=4) as (one, two),
        ):
            receiver.script("/down", then=Reply(status=500))
            hook = await one.register_webhook(
                receiver.url("/down"), ["memory.*"], retry_config=_ONCE
            )
            await _until(lambda: two.get_webhook(hook.id) is not None)
            await _publish(server.url, 4)
            await _until(lambda: _disabled(one, hook.id) and _disabled(two, hook.id))
            first, second = one.get_webhook(hook.id), two.get_webhook(hook.id)
            assert first is not None
            assert second is not None
            assert (
                first.disabled_reason
                == second.disabled_reason
                == ("4 consecutive failed deliveries")
            )
            status_one = await one.get_webhook_status(hook.id)
            status_two = await two.get_webhook_status(hook.id)
            assert status_one.consecutive_failures == status_two.consecutive_failures == 4
            assert status_one.deliveries == status_two.deliveries
            assert status_one.deliveries["failed"] == 4
            await two.update_webhook(hook.id, enabled=True)
            await _until(lambda: not _disabled(one, hook.id))
            assert (await one.get_webhook_status(hook.id)).consecutive_failures == 0


async def test_a_410_disables_the_webhook_for_every_member(tmp_path: Path) -> None:
    """An endpoint answering 410 Gone to one member is disabled in every member at once."""
    with NatsServer(tmp_path / "js") as server:
        async with Receiver() as receiver, _members(server.url, 2) as (one, two):
            receiver.script("/gone", then=Reply(status=410))
            hook = await two.register_webhook(
                receiver.url("/gone"), ["memory.*"], retry_config=_ONCE
            )
            await _until(lambda: one.get_webhook(hook.id) is not None)
            await _publish(server.url, 1)
            await _until(lambda: _disabled(one, hook.id) and _disabled(two, hook.id))
            for member in (one, two):
                found = member.get_webhook(hook.id)
                assert found is not None
                assert found.disabled_reason == "the endpoint answered 410 Gone"


async def test_deliver_on_a_member_goes_through_the_stream_to_the_group(tmp_path: Path) -> None:
    """An event handed to a member with ``deliver`` (not published on its stream) is stored
    in the stream and delivered once by the group."""
    with NatsServer(tmp_path / "js") as server:
        async with Receiver() as receiver, _members(server.url, 2) as (one, two):
            hook = await one.register_webhook(receiver.url("/in"), ["memory.*"])
            await _until(lambda: two.get_webhook(hook.id) is not None)
            event = Event.create("memory.created", {"n": 1})
            two.deliver(event)
            await two.flush()
            await receiver.wait_for(1, "/in", within=15)
            await asyncio.sleep(0.5)  # a second delivery would have come by now
            assert [r.body for r in receiver.on("/in")] == [event.to_json()]


def test_worker_without_a_transport_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``mnemo-events worker`` with no JetStream transport anywhere refuses to run (exit 2)
    and says how to give one."""
    from mnemo_events.cli import main

    monkeypatch.chdir(tmp_path)  # no config.yaml here: the defaults (no transport)
    monkeypatch.delenv("MNEMO_EVENTS_CONFIG", raising=False)
    assert main(["worker"]) == 2
    assert "--transport nats://" in capsys.readouterr().err
