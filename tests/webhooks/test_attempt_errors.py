"""Unexpected errors inside an attempt end as failed, counted deliveries, never stuck ones."""

from __future__ import annotations

import socket
from pathlib import Path

from aiohttp.abc import AbstractResolver, ResolveResult
from structlog.testing import capture_logs

from mnemo_events._log import set_library_level
from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.webhook_manager import WebhookManager
from mnemo_events.webhooks.models import DeliveryStatus
from tests.helpers.receiver import Receiver, eventually

FAST = RetryConfig(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.02)


class _BrokenResolver(AbstractResolver):
    """A resolver that raises ValueError (not an OSError) for one name: an error the HTTP
    client does not translate, as aiohttp's own ``ValueError`` for a request it refuses."""

    def __init__(self, broken: str) -> None:
        self.broken = broken

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host == self.broken:
            raise ValueError(f"cannot resolve {host}: a bug")
        raise OSError(f"{host} does not resolve")

    async def close(self) -> None:
        return None


def _event(n: int) -> Event:
    return Event.create("memory.created", {"memory_id": f"m{n}"})


class TestUnexpectedErrors:
    async def test_a_value_error_in_an_attempt_fails_the_delivery(self, tmp_path: Path) -> None:
        """An attempt raising ValueError is recorded as one failed attempt (not retried, not
        left pending), logged as webhooks.attempt_error without the secret, and counted in
        internal_errors and total_errors."""
        set_library_level("warning")
        wm = WebhookManager(
            tmp_path / "w.json",
            delivery_store_path=tmp_path / "d.sqlite3",
            allow_private_networks=True,
            resolver=_BrokenResolver("broken.test"),
        )
        async with wm:
            hook = await wm.register_webhook(
                "http://broken.test:9/hook", ["memory.*"], retry_config=FAST
            )
            with capture_logs() as logs:
                wm.deliver(_event(1))
                (delivery,) = await eventually(
                    lambda: wm.get_delivery_history(hook.id, status="failed")
                )
            full = await wm.get_delivery(delivery.id)
            assert full.status is DeliveryStatus.FAILED
            assert [(a.number, a.outcome) for a in full.attempt_log] == [(1, "failed")]
            assert full.last_error == "internal error: ValueError"
            errors = wm.get_metrics()["errors"]
            assert errors["internal_errors"] == 1
            assert errors["total_errors"] >= errors["internal_errors"] == 1
            assert wm.get_metrics()["deliveries"]["pending"] == 0
        (line,) = [entry for entry in logs if entry["event"] == "webhooks.attempt_error"]
        assert (line["delivery_id"], line["error_type"]) == (delivery.id, "ValueError")
        assert hook.secret is not None
        assert hook.secret not in repr(logs)

    async def test_other_webhooks_go_on(self, tmp_path: Path, receiver: Receiver) -> None:
        """A webhook whose attempts crash does not hold up another one, and its later
        deliveries fail the same way instead of piling up."""
        wm = WebhookManager(
            tmp_path / "w.json",
            delivery_store_path=tmp_path / "d.sqlite3",
            allow_private_networks=True,
            resolver=_BrokenResolver("broken.test"),
        )
        async with wm:
            broken = await wm.register_webhook(
                "http://broken.test:9/hook", ["memory.*"], retry_config=FAST
            )
            await wm.register_webhook(receiver.url(), ["memory.*"], retry_config=FAST)
            for n in range(5):
                wm.deliver(_event(n))
            await receiver.wait_for(5)
            await eventually(
                lambda: (
                    wm.get_metrics()["deliveries"]["failed"] == 5
                    and wm.get_metrics()["deliveries"]["success"] == 5
                )
            )
            status = await wm.get_webhook_status(broken.id)
            assert status.deliveries["failed"] == 5
            assert status.deliveries["pending"] == 0
            assert wm.get_metrics()["errors"]["internal_errors"] == 5
