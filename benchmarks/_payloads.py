"""Payloads shaped like the engine's ``memory.created`` events, and the suite's sizes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["EVENT_TYPE", "FULL", "QUICK", "Sizes", "batch_items", "payload", "payloads"]

EVENT_TYPE = "memory.created"
_CONTENT = (
    "The user prefers green tea in the morning and switches to coffee after lunch; "
    "mentioned twice during the planning session."
)
_TIERS = ("hot", "warm", "cold")


def payload(index: int) -> dict[str, Any]:
    """The ``memory.created`` payload number ``index`` (valid against its schema)."""
    return {"memory_id": f"mem_{index:010d}", "content": _CONTENT, "tier": _TIERS[index % 3]}


def payloads(count: int) -> list[dict[str, Any]]:
    """``count`` distinct payloads, built before any timing starts."""
    return [payload(index) for index in range(count)]


def batch_items(prepared: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """The payloads as ``publish_batch`` items (``{"type", "data"}``), ``size`` per batch."""
    items = [{"type": EVENT_TYPE, "data": data} for data in prepared]
    return [items[start : start + size] for start in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class Sizes:
    """Events per repetition of each case, and the shapes the cases sweep."""

    dispatch: int
    """Cases 1 and 2."""
    fanout: tuple[tuple[int, int], ...]
    """Case 3: (subscribers, events) pairs."""
    routing_events: int
    routing_subscriptions: tuple[int, ...]
    """Case 4: subscription counts; the first is the reference (1)."""
    batches: int
    """Case 5: batches of ``batch_size`` per repetition."""
    batch_size: int
    webhook_events: int
    webhook_concurrency: int
    memory_checkpoints: tuple[int, int]
    """Case 7: RSS is read after this many events, then after that many in total."""
    memory_runs: int
    """Case 7: fresh processes (each one long; memory varies far less than speed)."""
    warmup: int = 1
    """Untimed rounds before the timed ones (none for the smoke run)."""


FULL = Sizes(
    dispatch=100_000,
    fanout=((10, 20_000), (100, 3_000)),
    routing_events=30_000,
    routing_subscriptions=(1, 10, 100, 1_000, 10_000),
    batches=50,
    batch_size=1_000,
    webhook_events=2_000,
    webhook_concurrency=16,
    memory_checkpoints=(100_000, 1_000_000),
    memory_runs=3,
)

QUICK = Sizes(
    dispatch=200,
    fanout=((10, 50), (100, 5)),
    routing_events=100,
    routing_subscriptions=(1, 10, 100),
    batches=2,
    batch_size=100,
    webhook_events=20,
    webhook_concurrency=4,
    memory_checkpoints=(500, 1_500),
    memory_runs=1,
    warmup=0,
)
