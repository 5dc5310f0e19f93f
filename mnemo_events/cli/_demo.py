"""``demo``: the whole system end to end on this machine, in a few seconds.

::

    SimulatedEngine ─emit_*─▶ EventBus ─┬─▶ WebhookManager ──signed POST, retried──▶ DemoReceiver
                                        │   (SQLite store)          (verifies signatures, fails
                                        │                            a share of attempts on purpose)
                                        └─▶ pipelines: event_rates, dream_sessions,
                                                       contradiction_watch, tier_flow
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mnemo_events.cli._demo_report import DemoPipelines, build_summary, render_summary
from mnemo_events.cli._receiver import DemoReceiver
from mnemo_events.cli._render import Progress
from mnemo_events.config import RetryConfig, Settings, WebhooksConfig
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.patterns import parse_pattern
from mnemo_events.simulation import SimulatedEngine
from mnemo_events.webhook_manager import Webhook, WebhookManager

__all__ = ["DEMO_HOOKS", "run_demo"]

DEMO_HOOKS: dict[str, tuple[str, ...]] = {
    "audit": (">",),
    "memories": ("memory.*", "consolidation.*"),
    "alerts": ("dream.*", "contradiction.*", "gap.*"),
}
"""The demo's webhooks: name -> event patterns."""
_DESCRIPTION = "mnemo-events demo"
_RETRY = RetryConfig(
    max_attempts=10,
    base_delay_seconds=0.05,
    max_delay_seconds=0.4,
    timeout_seconds=2.0,
    jitter=0.2,
)


@contextlib.contextmanager
def _data_dir(chosen: str | None) -> Iterator[Path]:
    if chosen is not None:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="mnemo-events-demo-") as tmp:
        yield Path(tmp)


def _webhooks_config(settings: Settings, root: Path) -> WebhooksConfig:
    raw = settings.webhooks.model_dump()
    raw.update(
        enabled=True,
        persistence_path=str(root / "webhooks.json"),
        delivery_store_path=str(root / "deliveries.sqlite3"),
        allow_private_networks=True,  # the receiver is on 127.0.0.1
        max_in_flight_per_endpoint=max(settings.webhooks.max_in_flight_per_endpoint, 32),
        stop_timeout=2.0,
        default_retry=_RETRY.model_dump(),
    )
    return WebhooksConfig.model_validate(raw)


class _Counter:
    """Counts the events the bus dispatched, per type."""

    def __init__(self) -> None:
        self.per_type: Counter[str] = Counter()
        self.total = 0

    def __call__(self, event: Event) -> None:
        self.per_type[event.type] += 1
        self.total += 1


async def _wait_until(predicate: Any, deadline: float) -> bool:
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def _register(wm: WebhookManager, receiver: DemoReceiver) -> dict[str, Webhook]:
    for stale in wm.list_webhooks():  # left by an earlier demo in the same --data-dir
        if (stale.description or "").startswith(_DESCRIPTION):
            await wm.delete_webhook(stale.id)
    hooks = {}
    for name, patterns in DEMO_HOOKS.items():
        hook = await wm.register_webhook(
            receiver.url(name), list(patterns), description=f"{_DESCRIPTION}: {name}"
        )
        assert hook.secret is not None  # generated, shown once
        receiver.secrets[name] = [hook.secret]
        hooks[name] = hook
    return hooks


def _expected(counts: Counter[str]) -> dict[str, int]:
    """Deliveries each demo webhook should receive for these event counts."""
    return {
        name: sum(
            n
            for event_type, n in counts.items()
            if any(parse_pattern(p).matches(event_type) for p in patterns)
        )
        for name, patterns in DEMO_HOOKS.items()
    }


async def _emit(engine: SimulatedEngine, count: int, rate: float) -> None:
    """Emit ``count`` events at ``rate`` per second (0: as fast as possible).

    Yields to the event loop before every event, even when behind schedule, so the
    deliveries and the receiver sharing this loop keep running during a catch-up burst.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    for index in range(count):
        if rate:
            await asyncio.sleep(max(start + index / rate - loop.time(), 0.0))
        elif index % 64 == 63:
            await asyncio.sleep(0)
        await engine.step()


def _progress_line(
    engine: SimulatedEngine, total: int, wm: WebhookManager, pipes: DemoPipelines, began: float
) -> str:
    deliveries = wm.get_metrics().get("deliveries") or {}
    return (
        f"events {engine.emitted}/{total}  {pipes.rate:6.0f}/s | deliveries "
        f"{deliveries.get('success', 0)} succeeded, {deliveries.get('retrying', 0)} retrying, "
        f"{deliveries.get('failed', 0)} failed | {time.monotonic() - began:5.1f} s"
    )


async def _demo(args: argparse.Namespace, settings: Settings, root: Path) -> int:
    began = time.monotonic()
    receiver = DemoReceiver(
        error_share=args.error_share, seed=args.seed, slow_seconds=_RETRY.timeout_seconds + 0.2
    )
    await receiver.start()
    bus = EventBus(settings.events)
    wm = WebhookManager(config=_webhooks_config(settings, root))
    counter = _Counter()
    engine = SimulatedEngine(bus, seed=args.seed)
    pipes = DemoPipelines()
    progress = Progress(sys.stderr, lambda: _progress_line(engine, args.events, wm, pipes, began))
    ticker: asyncio.Task[None] | None = None
    finished = False
    try:
        hooks = await _register(wm, receiver)
        wm.attach(bus)
        await wm.start()
        bus.subscribe(">", counter)
        await bus.start()
        pipes.connect(bus)

        async def _tick() -> None:
            while True:
                progress.tick()
                await asyncio.sleep(progress.interval)

        ticker = asyncio.create_task(_tick())
        await _emit(engine, args.events, args.rate)
        deadline = time.monotonic() + args.timeout
        dispatched = await _wait_until(lambda: counter.total >= engine.published, deadline)
        want = sum(_expected(counter.per_type).values())

        def _settled() -> bool:
            done = wm.get_metrics().get("deliveries") or {}
            return int(done.get("success", 0)) + int(done.get("failed", 0)) >= want

        finished = dispatched and await _wait_until(_settled, deadline)
        ticker.cancel()
        progress.close()
        await bus.shutdown()  # completes the pipelines (open dream sessions: unfinished)
        expected = _expected(counter.per_type)  # complete: stopping dispatched every event
        statuses = {name: await wm.get_webhook_status(hook.id) for name, hook in hooks.items()}
        summary = build_summary(
            engine=engine,
            counts=counter.per_type,
            expected=expected,
            statuses=statuses,
            receiver=receiver,
            pipelines=pipes,
            finished=finished,
            elapsed=time.monotonic() - began,
            data_dir=root if args.data_dir else None,
        )
    finally:
        if ticker is not None:
            ticker.cancel()
        await bus.shutdown()
        await wm.stop()
        await receiver.stop()
    print(render_summary(summary, as_json=args.json))
    return 0 if summary["ok"] else 1


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """``demo``: exit 0 only if every delivery succeeded and every signature verified."""
    if getattr(args, "transport", None) or getattr(args, "nats", False):
        from mnemo_events.cli._nats import run_nats_demo

        return run_nats_demo(args, settings)
    with _data_dir(args.data_dir) as root:
        return asyncio.run(_demo(args, settings, root))
