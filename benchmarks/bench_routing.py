"""Case 4: routing scale, one matching subscription among 1 to 10,000 distinct patterns.

Two variants: every other pattern a distinct literal type (``memory.other00042``), or a
distinct wildcard pattern (``scope00042.*`` and ``scope00043.>`` alternately); the matching
subscription (``memory.created``) is subscribed last. Each trial publishes one event during
its untimed set-up, so building the route of a new event type (one pattern test per
subscription, once per type) is not timed; the timed part is steady-state dispatch.
"""

from __future__ import annotations

import time
from functools import partial

from benchmarks._contenders import BusTrial
from benchmarks._harness import CaseResult, Contender, Target, measure, rows_from
from benchmarks._payloads import Sizes, payloads

__all__ = ["LITERAL", "WILDCARD", "case_4", "literal_patterns", "row_name", "wildcard_patterns"]

LITERAL = "literal patterns"
WILDCARD = "wildcard patterns"


def row_name(subscriptions: int) -> str:
    """The row of one subscription count."""
    return f"{subscriptions:,} subscription" + ("" if subscriptions == 1 else "s")


def literal_patterns(count: int) -> list[str]:
    """``count`` distinct literal patterns, none matching ``memory.created``."""
    return [f"memory.other{index:05d}" for index in range(count)]


def wildcard_patterns(count: int) -> list[str]:
    """``count`` distinct wildcard patterns, none matching ``memory.created``."""
    return [
        f"scope{index:05d}.*" if index % 2 == 0 else f"scope{index:05d}.>" for index in range(count)
    ]


async def case_4(sizes: Sizes, repeat: int) -> CaseResult:
    """Events per second as non-matching subscriptions pile up, literal then wildcard."""
    started = time.perf_counter()
    count = sizes.routing_events
    prepared = payloads(count)
    result = CaseResult(4, "Routing scale: one matching subscription among many")
    for group, make_patterns in ((LITERAL, literal_patterns), (WILDCARD, wildcard_patterns)):
        contenders = [
            Contender(
                row_name(total),
                partial(BusTrial, prepared, patterns=make_patterns(total - 1), prime=True),
                count,
                group,
            )
            for total in sizes.routing_subscriptions
        ]
        samples = await measure(contenders, events=count, repeat=repeat, warmup=sizes.warmup)
        reference = row_name(sizes.routing_subscriptions[0])
        result.rows.extend(rows_from(4, samples, events=count, baseline=reference))
    largest = sizes.routing_subscriptions[-1]
    first = row_name(sizes.routing_subscriptions[0])
    for group in (LITERAL, WILDCARD):
        result.targets.append(
            Target.ratio(
                4,
                f"{row_name(largest)} ({group}) >= 0.5x {first}",
                result.row(row_name(largest), group),
                result.row(first, group),
                0.5,
            )
        )
    result.notes = [
        f"{count:,} `memory.created` events per repetition through `publish` (validation off); "
        "a fresh bus per repetition with the given number of subscriptions, one matching.",
        "Ratios are against the 1-subscription bus of the same variant. Route building for "
        "the first event of a type happens in the untimed set-up.",
    ]
    result.seconds = time.perf_counter() - started
    return result
