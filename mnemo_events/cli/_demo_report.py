"""The demo's pipelines and its closing report: per event type, per webhook, per pipeline."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnemo_events.cli._receiver import DemoReceiver
from mnemo_events.cli._render import format_ms, percentile, table
from mnemo_events.event_bus import EventBus
from mnemo_events.simulation import SimulatedEngine
from mnemo_events.webhook_manager import WebhookStatus
from pipelines import (
    ContradictionAlert,
    DreamSession,
    EventRates,
    TierFlow,
    contradiction_watch,
    dream_sessions,
    event_rates,
    tier_flow,
)

__all__ = ["DemoPipelines", "build_summary", "render_summary"]

_CONTRADICTION_LIMIT = 1.0
"""Seconds a contradiction may stay unresolved before the watch alerts (short for the demo)."""


class DemoPipelines:
    """Four ready-made pipelines subscribed to the demo's bus, with what they emitted."""

    def __init__(self) -> None:
        self.rate = 0.0
        """Events per second over the last second, all types (from ``event_rates``)."""
        self.dreams: Counter[str] = Counter()
        self.dream_seconds: list[float] = []
        self.alerts: list[ContradictionAlert] = []
        self.tier_moves: Counter[tuple[str, str]] = Counter()

    def connect(self, bus: EventBus) -> None:
        """Subscribe the pipelines; they complete when the bus shuts down."""
        scheduler = bus.scheduler
        event_rates(bus.observe(), window=1.0, every=0.25, scheduler=scheduler).subscribe(
            self._on_rates
        )
        dream_sessions(bus.observe("dream.*"), timeout=60.0, scheduler=scheduler).subscribe(
            self._on_dream
        )
        contradiction_watch(
            bus.observe("contradiction.*"), limit=_CONTRADICTION_LIMIT, scheduler=scheduler
        ).subscribe(self.alerts.append)
        tier_flow(bus.observe("memory.consolidated"), window=1.0, scheduler=scheduler).subscribe(
            self._on_flow
        )

    def _on_rates(self, sample: EventRates) -> None:
        self.rate = sample.total_rate

    def _on_dream(self, session: DreamSession) -> None:
        self.dreams[session.outcome] += 1
        if session.reported_duration is not None:
            self.dream_seconds.append(session.reported_duration)

    def _on_flow(self, flow: TierFlow) -> None:
        self.tier_moves.update(flow.counts)

    def summary(self) -> dict[str, Any]:
        """What the pipelines found, JSON-ready."""
        return {
            "dream_sessions": dict(self.dreams),
            "dream_reported_seconds_p50": percentile(self.dream_seconds, 50),
            "contradictions_unresolved_after_1s": len(self.alerts),
            "tier_moves": {f"{a}->{b}": n for (a, b), n in sorted(self.tier_moves.items())},
        }


def _latencies(values: list[float]) -> dict[str, float | None]:
    return {f"p{q}_ms": percentile(values, q) for q in (50, 95, 99)}


def build_summary(
    *,
    engine: SimulatedEngine,
    counts: Mapping[str, int],
    expected: Mapping[str, int],
    statuses: Mapping[str, WebhookStatus],
    receiver: DemoReceiver,
    pipelines: DemoPipelines,
    finished: bool,
    elapsed: float,
    data_dir: Path | None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict; ``ok`` says whether the demo passed and ``problems``
    why not."""
    by_type: dict[str, list[float]] = defaultdict(list)
    by_hook: dict[str, list[float]] = defaultdict(list)
    retried: Counter[str] = Counter()
    for ack in receiver.acknowledged.values():
        by_type[ack.event_type].append(ack.latency_ms)
        by_hook[ack.hook].append(ack.latency_ms)
        if ack.attempt > 1:
            retried[ack.event_type] += 1
    events = [
        {
            "type": event_type,
            "events": counts.get(event_type, 0),
            "deliveries": len(by_type[event_type]),
            "retried": retried[event_type],
            **_latencies(by_type[event_type]),
        }
        for event_type in engine.counts
    ]
    webhooks = []
    problems = []
    for name, status in statuses.items():
        done = status.deliveries
        row = {
            "webhook": name,
            "expected": expected.get(name, 0),
            "success": done.get("success", 0),
            "failed": done.get("failed", 0),
            "unfinished": done.get("pending", 0) + done.get("retrying", 0),
            "attempts": receiver.requests[name],
            "failed_on_purpose": receiver.failed_on_purpose[name],
            **_latencies(by_hook[name]),
        }
        webhooks.append(row)
        if row["success"] != row["expected"] or row["failed"] or row["unfinished"]:
            problems.append(
                f"webhook {name}: {row['success']} of {row['expected']} deliveries succeeded, "
                f"{row['failed']} failed, {row['unfinished']} unfinished"
            )
    if receiver.bad_signatures:
        problems.append(f"{receiver.bad_signatures} requests had a signature that did not verify")
    if engine.published != engine.emitted:
        problems.append(f"{engine.emitted - engine.published} events were not accepted by the bus")
    if not finished:
        problems.append("deliveries were still running when --timeout ran out")
    return {
        "ok": not problems,
        "problems": problems,
        "elapsed_seconds": round(elapsed, 2),
        "events_published": engine.published,
        "signatures": {"verified": receiver.verified, "invalid": receiver.bad_signatures},
        "duplicates_received": receiver.duplicates,
        "event_types": events,
        "webhooks": webhooks,
        "pipelines": pipelines.summary(),
        "data_dir": str(data_dir) if data_dir is not None else None,
    }


def _latency_cells(row: Mapping[str, Any]) -> list[str]:
    return [format_ms(row[f"p{q}_ms"]) for q in (50, 95, 99)]


def render_summary(summary: Mapping[str, Any], *, as_json: bool = False) -> str:
    """The report as text tables (or JSON)."""
    if as_json:
        return json.dumps(summary, indent=2)
    latency = ("p50 ms", "p95 ms", "p99 ms")
    type_rows = [
        [r["type"], r["events"], r["deliveries"], r["retried"], *_latency_cells(r)]
        for r in summary["event_types"]
    ]
    hook_rows = [
        [
            r["webhook"],
            r["expected"],
            r["success"],
            r["failed"],
            r["attempts"],
            r["failed_on_purpose"],
            *_latency_cells(r),
        ]
        for r in summary["webhooks"]
    ]
    pipes = summary["pipelines"]
    dreams = ", ".join(f"{n} {outcome}" for outcome, n in sorted(pipes["dream_sessions"].items()))
    moves = ", ".join(f"{k} {n}" for k, n in pipes["tier_moves"].items()) or "none"
    signatures = summary["signatures"]
    lines = [
        "",
        table(
            ("event type", "events", "delivered", "retried", *latency),
            type_rows,
            title="Per event type (latency: publish -> acknowledged by the receiver, retries "
            "included)",
        ),
        "",
        table(
            (
                "webhook",
                "deliveries",
                "succeeded",
                "failed",
                "attempts",
                "failed on purpose",
                *latency,
            ),
            hook_rows,
            title="Per webhook",
        ),
        "",
        "Pipelines",
        f"  dream_sessions:       {dreams or 'none'}",
        f"  contradiction_watch:  {pipes['contradictions_unresolved_after_1s']} contradictions "
        "unresolved after 1 s",
        f"  tier_flow:            {moves}",
        "",
        f"{summary['events_published']} events in {summary['elapsed_seconds']} s; signatures "
        f"verified {signatures['verified']}, invalid {signatures['invalid']}; duplicates "
        f"received {summary['duplicates_received']}",
    ]
    if summary.get("data_dir"):
        lines.append(f"webhooks and delivery store kept in {summary['data_dir']}")
    if summary["ok"]:
        lines.append("OK: every delivery succeeded and every signature verified")
    else:
        lines += ["FAILED:", *(f"  - {problem}" for problem in summary["problems"])]
    return "\n".join(lines)
