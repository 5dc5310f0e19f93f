"""Delivery to a real aiohttp receiver on 127.0.0.1: the wire format, retries and failures.

Every request is checked by Stripe's and the standardwebhooks package's own verifiers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from mnemo_events import __version__
from mnemo_events._log import set_library_level
from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.webhook_manager import WebhookManager
from mnemo_events.webhooks.models import DeliveryStatus, Webhook
from tests.helpers.managers import MakeManager, started_managers
from tests.helpers.receiver import Receiver, Reply, StaticResolver, eventually

FAST = RetryConfig(max_attempts=4, base_delay_seconds=0.01, max_delay_seconds=0.05)


@pytest.fixture
async def make_manager(tmp_path: Path) -> AsyncIterator[MakeManager]:
    """A factory of started managers, each with its own delivery store, stopped after."""
    async with started_managers(tmp_path, shared_store=False) as make:
        yield make


async def _hook(
    wm: WebhookManager, receiver: Receiver, path: str = "/hook", **fields: Any
) -> Webhook:
    fields.setdefault("retry_config", FAST)
    hook = await wm.register_webhook(
        receiver.url(path), fields.pop("events", ["memory.*"]), **fields
    )
    if hook.secret is not None:
        receiver.secrets[path] = hook.secret
        if hook.signature_scheme != "mnemocore":
            receiver.standard_secrets[path] = hook.secret
    return hook


def _event(n: int = 1, event_type: str = "memory.created") -> Event:
    return Event.create(event_type, {"memory_id": f"m{n}", "content": "caf\u00e9"}, {"agent": "a"})


async def _status(wm: WebhookManager, delivery_id: str, *wanted: DeliveryStatus) -> Any:
    async def _check() -> Any:
        delivery = await wm.get_delivery(delivery_id)
        return delivery if delivery.status in wanted else None

    return await eventually(_check)


class TestWire:
    async def test_request_format(self, make_manager: MakeManager, receiver: Receiver) -> None:
        """The POST carries the event's exact JSON, the documented headers and a valid signature."""
        wm = await make_manager()
        await _hook(wm, receiver, headers={"X-Team": "core"})
        event = _event()
        wm.deliver(event)
        await receiver.wait_for(1)
        (request,) = receiver.requests
        assert request.body == event.to_json()
        assert json.loads(request.body) == event.to_dict()
        headers = request.headers
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"] == f"mnemo-events/{__version__}"
        assert headers["X-MnemoCore-Event"] == "memory.created"
        assert headers["X-MnemoCore-Delivery"].startswith("dlv_")
        assert headers["X-MnemoCore-Attempt"] == "1"
        assert headers["X-Team"] == "core"
        assert request.stripe_ok is True
        assert "webhook-signature" not in headers

    @pytest.mark.parametrize(
        ("scheme", "mnemocore", "standard"),
        [("standard", False, True), ("both", True, True)],
    )
    async def test_standard_webhooks_scheme(
        self,
        make_manager: MakeManager,
        receiver: Receiver,
        scheme: str,
        mnemocore: bool,
        standard: bool,
    ) -> None:
        """signature_scheme 'standard' or 'both' adds headers the standardwebhooks package
        verifies, with webhook-id equal to the delivery id."""
        wm = await make_manager()
        await _hook(wm, receiver, signature_scheme=scheme)
        wm.deliver(_event())
        await receiver.wait_for(1)
        (request,) = receiver.requests
        assert request.standard_ok is True
        assert request.headers["webhook-id"] == request.delivery_id
        assert ("X-MnemoCore-Signature" in request.headers) is mnemocore
        assert request.stripe_ok is mnemocore

    async def test_only_matching_enabled_webhooks_receive(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Each webhook receives only the event types its patterns match."""
        wm = await make_manager()
        await _hook(wm, receiver, "/memory", events=["memory.*"])
        await _hook(wm, receiver, "/dreams", events=["dream.>"])
        await _hook(wm, receiver, "/off", events=[">"], enabled=False)
        for n, kind in enumerate(
            ["memory.created", "dream.started", "dream.phase.done", "gap.filled"]
        ):
            wm.deliver(_event(n, kind))
        await receiver.wait_for(3)
        await wm.flush()
        assert [r.headers["X-MnemoCore-Event"] for r in receiver.on("/memory")] == [
            "memory.created"
        ]
        assert sorted(r.headers["X-MnemoCore-Event"] for r in receiver.on("/dreams")) == [
            "dream.phase.done",
            "dream.started",
        ]
        assert receiver.on("/off") == []

    async def test_response_body_is_read_up_to_the_cap(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Only response_body_limit bytes of the answer are read and recorded."""
        wm = await make_manager(response_body_limit=100)
        receiver.script("/hook", Reply(200, body=b"x" * 50_000))
        hook = await _hook(wm, receiver)
        wm.deliver(_event())
        await receiver.wait_for(1)
        (delivery,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="success"))
        assert delivery.last_response == "x" * 100


class TestRetries:
    async def test_failures_are_retried_with_the_same_body_and_delivery_id(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Two 500s then a 200: three attempts, one delivery id, identical bytes, verified."""
        wm = await make_manager()
        receiver.script("/hook", Reply(500), Reply(502))
        hook = await _hook(wm, receiver)
        wm.deliver(_event())
        await receiver.wait_for(3)
        requests = receiver.requests
        assert [r.attempt for r in requests] == [1, 2, 3]
        assert len({r.delivery_id for r in requests}) == 1
        assert len({r.body for r in requests}) == 1
        assert all(r.stripe_ok for r in requests)
        delivery = await _status(wm, requests[0].delivery_id, DeliveryStatus.SUCCESS)
        assert [(a.number, a.outcome, a.status_code) for a in delivery.attempt_log] == [
            (1, "retry", 500),
            (2, "retry", 502),
            (3, "success", 200),
        ]
        status = await wm.get_webhook_status(hook.id)
        assert status.success_rate == 1.0
        assert status.consecutive_failures == 0

    async def test_attempts_are_bounded_by_max_attempts(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """An endpoint that always fails gets max_attempts attempts, then the delivery fails."""
        wm = await make_manager()
        receiver.script("/hook", then=Reply(500))
        hook = await _hook(wm, receiver, retry_config=FAST.model_copy(update={"max_attempts": 3}))
        wm.deliver(_event())
        await receiver.wait_for(3)
        (delivery,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="failed"))
        assert delivery.attempts == 3
        assert len(receiver.requests) == 3
        status = await wm.get_webhook_status(hook.id)
        assert (status.consecutive_failures, status.success_rate) == (1, 0.0)
        assert status.deliveries["failed"] == 1

    @pytest.mark.parametrize(
        ("status", "retry_after", "expected"),
        [(429, "0", 0.0), (503, "3600", 0.05), (429, "soon", 0.01), (500, "0", 0.01)],
        ids=["429-now", "503-capped", "429-unparseable", "500-ignored"],
    )
    async def test_retry_after(
        self,
        make_manager: MakeManager,
        receiver: Receiver,
        status: int,
        retry_after: str,
        expected: float,
    ) -> None:
        """Retry-After on 429/503 sets the delay, capped at max_delay; otherwise the schedule."""
        set_library_level("info")
        wm = await make_manager()
        receiver.script("/hook", Reply(status, headers={"Retry-After": retry_after}))
        await _hook(wm, receiver)
        with capture_logs() as logs:
            wm.deliver(_event())
            await receiver.wait_for(2)
        (scheduled,) = [line for line in logs if line["event"] == "webhooks.retry_scheduled"]
        assert scheduled["retry_in"] == expected
        assert scheduled["status_code"] == status

    async def test_timeouts_are_retried(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """An answer slower than timeout_seconds counts as a failed attempt and is retried."""
        wm = await make_manager()
        gate = asyncio.Event()
        receiver.script("/hook", Reply(gate=gate))
        hook = await _hook(
            wm, receiver, retry_config=FAST.model_copy(update={"timeout_seconds": 0.2})
        )
        wm.deliver(_event())
        try:
            await receiver.wait_for(2)
        finally:
            gate.set()
        (delivery,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="success"))
        full = await wm.get_delivery(delivery.id)
        assert full.attempt_log[0].error == "timed out after 0.2s"
        assert full.attempt_log[1].outcome == "success"

    async def test_refused_connections_are_retried_then_fail(
        self, make_manager: MakeManager
    ) -> None:
        """A port nobody listens on gives connection errors, retried up to max_attempts."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        wm = await make_manager()
        hook = await wm.register_webhook(
            f"http://127.0.0.1:{port}/hook",
            ["memory.*"],
            retry_config=FAST.model_copy(update={"max_attempts": 2}),
        )
        wm.deliver(_event())
        (delivery,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="failed"))
        full = await wm.get_delivery(delivery.id)
        assert [a.outcome for a in full.attempt_log] == ["retry", "failed"]
        assert all(a.status_code is None for a in full.attempt_log)
        assert "connect" in (full.last_error or "").lower()

    async def test_redirects_are_not_followed(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """A 3xx is a failed attempt: the Location is never requested."""
        wm = await make_manager()
        receiver.script("/hook", Reply(302, headers={"Location": receiver.url("/elsewhere")}))
        hook = await _hook(wm, receiver)
        wm.deliver(_event())
        (delivery,) = await eventually(lambda: wm.get_delivery_history(hook.id, status="success"))
        full = await wm.get_delivery(delivery.id)
        assert (full.attempt_log[0].status_code, full.attempt_log[0].error) == (
            302,
            "HTTP 302: redirect not followed",
        )
        assert receiver.on("/elsewhere") == []

    async def test_gone_disables_the_webhook(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """410 Gone fails the delivery at once and disables the webhook until re-enabled."""
        set_library_level("warning")
        wm = await make_manager()
        receiver.script("/hook", Reply(410))
        hook = await _hook(wm, receiver)
        with capture_logs() as logs:
            wm.deliver(_event(1))
            await eventually(lambda: any(line["event"] == "webhooks.disabled" for line in logs))
        assert len(receiver.requests) == 1
        status = await wm.get_webhook_status(hook.id)
        assert (status.enabled, status.disabled_reason) == (False, "the endpoint answered 410 Gone")
        wm.deliver(_event(2))
        await wm.flush()
        await wm.update_webhook(hook.id, enabled=True)
        wm.deliver(_event(3))
        await receiver.wait_for(2)
        assert json.loads(receiver.requests[1].body)["data"]["memory_id"] == "m3"
        assert (await wm.get_webhook_status(hook.id)).consecutive_failures == 0

    async def test_consecutive_failures_disable(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """disable_after_failures consecutive failed deliveries disable the webhook."""
        wm = await make_manager(disable_after_failures=2)
        receiver.script("/hook", then=Reply(500))
        hook = await _hook(wm, receiver, retry_config=FAST.model_copy(update={"max_attempts": 1}))
        wm.deliver(_event(1))
        wm.deliver(_event(2))
        await eventually(lambda: (w := wm.get_webhook(hook.id)) is not None and not w.enabled)
        status = await wm.get_webhook_status(hook.id)
        assert status.disabled_reason == "2 consecutive failed deliveries"
        assert status.consecutive_failures == 2


class TestIsolation:
    async def test_a_slow_endpoint_does_not_hold_up_a_fast_one(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """With the slow endpoint stuck, the fast one gets everything, and the slow one has
        exactly max_in_flight_per_endpoint requests open."""
        wm = await make_manager(max_in_flight_per_endpoint=2, stop_timeout=0.1)
        gate = asyncio.Event()
        receiver.script("/slow", then=Reply(gate=gate))
        await _hook(wm, receiver, "/slow")
        await _hook(wm, receiver, "/fast")
        try:
            for n in range(6):
                wm.deliver(_event(n))
            await receiver.wait_for(6, "/fast")
            await receiver.wait_for(2, "/slow")
            await eventually(lambda: wm.get_metrics()["deliveries"]["success"] == 6)
            assert len(receiver.on("/slow")) == 2
            assert wm.get_metrics()["in_flight"] == 2
        finally:
            gate.set()
        await receiver.wait_for(6, "/slow")

    async def test_a_delivery_waiting_to_retry_holds_nothing_up(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """With one attempt in flight allowed, later events go out while an earlier delivery
        waits for its retry."""
        wm = await make_manager(max_in_flight_per_endpoint=1)
        receiver.script("/hook", Reply(503, headers={"Retry-After": "60"}))
        slow_retry = FAST.model_copy(update={"max_delay_seconds": 60.0})
        hook = await _hook(wm, receiver, retry_config=slow_retry)
        for n in range(4):
            wm.deliver(_event(n))
        await receiver.wait_for(4)
        first = receiver.requests[0].delivery_id
        assert len({r.delivery_id for r in receiver.requests}) == 4
        waiting = await wm.get_delivery(first)
        assert (waiting.status, waiting.attempts) == (DeliveryStatus.RETRYING, 1)
        assert waiting.next_attempt_at is not None
        assert (await wm.get_webhook_status(hook.id)).deliveries["success"] == 3
        metrics = wm.get_metrics()
        assert (metrics["deliveries"]["retrying"], metrics["in_flight"]) == (1, 0)


class TestGuardAtConnection:
    async def test_a_name_that_later_resolves_privately_is_refused(self, tmp_path: Path) -> None:
        """A name unresolvable at registration is accepted; when it then resolves to loopback
        the attempt is refused without retrying."""
        dns = StaticResolver({})
        wm = WebhookManager(delivery_store_path=tmp_path / "d.sqlite3", resolver=dns)
        async with wm:
            hook = await wm.register_webhook(
                "http://rebind.test:9/hook", ["memory.*"], retry_config=FAST
            )
            dns.table["rebind.test"] = ["127.0.0.1"]
            wm.deliver(_event())
            (delivery,) = await eventually(
                lambda: wm.get_delivery_history(hook.id, status="failed")
            )
            assert delivery.attempts == 1
            assert "loopback" in (delivery.last_error or "")
            assert "allow_private_networks" in (delivery.last_error or "")


class TestLogs:
    async def test_lines_for_attempts_retries_success_failure_and_disable(
        self, make_manager: MakeManager, receiver: Receiver
    ) -> None:
        """Each step logs a dotted line with webhook, delivery and event ids; no secret."""
        set_library_level("debug")
        wm = await make_manager(disable_after_failures=1)
        receiver.script("/ok", Reply(500))
        receiver.script("/bad", then=Reply(500))
        ok = await _hook(wm, receiver, "/ok")
        bad = await _hook(
            wm, receiver, "/bad", retry_config=FAST.model_copy(update={"max_attempts": 2})
        )
        with capture_logs() as logs:
            wm.deliver(_event())
            await eventually(lambda: any(line["event"] == "webhooks.disabled" for line in logs))
            await receiver.wait_for(2, "/ok")
            await wm.flush()
        names = {line["event"] for line in logs}
        assert {
            "webhooks.attempt",
            "webhooks.retry_scheduled",
            "webhooks.delivered",
            "webhooks.delivery_failed",
            "webhooks.disabled",
        } <= names
        for line in logs:
            if line["event"] in ("webhooks.attempt", "webhooks.delivery_failed"):
                assert {
                    "webhook_id",
                    "delivery_id",
                    "event_id",
                    "status_code",
                    "latency_ms",
                } <= set(line)
        text = repr(logs)
        assert ok.secret is not None
        assert bad.secret is not None
        assert ok.secret not in text
        assert bad.secret not in text
