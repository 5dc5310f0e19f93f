"""The demo's webhook receiver: checks every signature, fails a share of deliveries on purpose.

It listens on 127.0.0.1 (any free port), one path per webhook (``/hooks/<name>``). A
signature that does not verify gets a 401 and is counted. For a chosen share of deliveries
the first attempts fail (a 500, a 503, or a reply slower than the sender's time-out) so the
sender retries; the retry is accepted. Acknowledged deliveries are recorded with their
end-to-end latency: from the event's ``published_at`` to the acknowledgement.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from mnemo_events.webhook_manager import WebhookSignature

__all__ = ["Acknowledged", "DemoReceiver"]

_SIGNATURE = WebhookSignature.HEADER


@dataclass(frozen=True, slots=True)
class Acknowledged:
    """One delivery the receiver accepted."""

    hook: str
    event_type: str
    attempt: int
    latency_ms: float


@dataclass(frozen=True, slots=True)
class _Plan:
    failures: int
    """Attempts answered with a failure before one is accepted."""
    kind: str
    """``500``, ``503`` or ``slow``."""
    extra_delay: float
    """Seconds the accepted reply waits (some receivers are slow)."""


class DemoReceiver:
    """A local webhook endpoint for the demo (see the module docstring).

    Args:
        error_share: share of deliveries whose first attempts fail on purpose.
        seed: seeds the choice of failures (with the delivery id).
        slow_seconds: how long a ``slow`` failure waits; more than the sender's time-out.
    """

    def __init__(self, *, error_share: float, seed: int, slow_seconds: float) -> None:
        self.error_share = error_share
        self.seed = seed
        self.slow_seconds = slow_seconds
        self.secrets: dict[str, list[str]] = {}
        self.requests: Counter[str] = Counter()
        """Requests per hook, every attempt counted."""
        self.failed_on_purpose: Counter[str] = Counter()
        self.verified = 0
        self.bad_signatures = 0
        self.duplicates = 0
        self.acknowledged: dict[tuple[str, str], Acknowledged] = {}
        """First acknowledgement per (hook, delivery id)."""
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        """Listen on 127.0.0.1, any free port."""
        app = web.Application()
        app.router.add_post("/hooks/{hook}", self._handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        """Stop listening; replies still sleeping are cut short."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, hook: str) -> str:
        """The URL of one hook."""
        return f"{self.base_url}/hooks/{hook}"

    def _plan(self, delivery_id: str) -> _Plan:
        rng = random.Random(f"{self.seed}:{delivery_id}")
        slow_reply = rng.random() < 0.1
        extra = rng.uniform(0.005, 0.03) if slow_reply else 0.0
        if rng.random() >= self.error_share:
            return _Plan(0, "", extra)
        kind = rng.choices(("500", "503", "slow"), (5, 4, 1))[0]
        return _Plan(1 if kind == "slow" else rng.randint(1, 3), kind, extra)

    async def _handle(self, request: web.Request) -> web.Response:
        hook = request.match_info["hook"]
        body = await request.read()
        self.requests[hook] += 1
        header = request.headers.get(_SIGNATURE)
        if not any(WebhookSignature.verify(body, s, header) for s in self.secrets.get(hook, [])):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        self.verified += 1
        delivery_id = request.headers.get("X-MnemoCore-Delivery", "")
        try:
            attempt = int(request.headers.get("X-MnemoCore-Attempt", "1"))
        except ValueError:
            attempt = 1
        plan = self._plan(delivery_id)
        if attempt <= plan.failures:
            self.failed_on_purpose[hook] += 1
            if plan.kind == "slow":
                await asyncio.sleep(self.slow_seconds)  # the sender times out first
                return web.Response(status=504)
            return web.json_response({"error": "failing on purpose"}, status=int(plan.kind))
        if plan.extra_delay:
            await asyncio.sleep(plan.extra_delay)
        self._record(hook, delivery_id, attempt, body)
        return web.json_response({"ok": True})

    def _record(self, hook: str, delivery_id: str, attempt: int, body: bytes) -> None:
        key = (hook, delivery_id)
        if key in self.acknowledged:
            self.duplicates += 1  # at-least-once: a retry after a reply the sender missed
            return
        event = json.loads(body)
        published = datetime.fromisoformat(event["published_at"]).timestamp()
        latency_ms = max(time.time() - published, 0.0) * 1000
        self.acknowledged[key] = Acknowledged(hook, event["type"], attempt, latency_ms)
