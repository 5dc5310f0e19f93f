"""The cases by number, and running a selection of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from benchmarks._harness import CaseResult
from benchmarks._payloads import Sizes
from benchmarks.bench_batch import case_5
from benchmarks.bench_dispatch import case_1, case_2
from benchmarks.bench_fanout import case_3
from benchmarks.bench_memory import case_7
from benchmarks.bench_routing import case_4

__all__ = ["CASES", "run_case", "run_suite"]

Runner = Callable[[Sizes, int], CaseResult]
AsyncRunner = Callable[[Sizes, int], Coroutine[Any, Any, CaseResult]]


def _in_fresh_loop(case: AsyncRunner) -> Runner:
    def run(sizes: Sizes, repeat: int) -> CaseResult:
        return asyncio.run(case(sizes, repeat))

    return run


def case_6(sizes: Sizes, repeat: int) -> CaseResult:
    """Webhook delivery, from ``benchmarks.bench_webhooks.run`` (another helper's module)."""
    from benchmarks.bench_webhooks import run as run_webhooks

    started = time.perf_counter()
    report = run_webhooks(sizes.webhook_events, sizes.webhook_concurrency)
    result = _webhook_result(report, repeat)
    result.seconds = time.perf_counter() - started
    return result


def _webhook_result(report: dict[str, Any], repeat: int) -> CaseResult:
    raise NotImplementedError(f"bench_webhooks report not wired yet: {sorted(report)}")


CASES: dict[int, tuple[str, Runner]] = {
    1: ("dispatch, one synchronous subscriber", _in_fresh_loop(case_1)),
    2: ("dispatch, one async def subscriber", _in_fresh_loop(case_2)),
    3: ("fan-out to 10 and 100 subscribers", _in_fresh_loop(case_3)),
    4: ("routing scale, 1 to 10,000 subscriptions", _in_fresh_loop(case_4)),
    5: ("publish_batch of 1,000 events", _in_fresh_loop(case_5)),
    6: ("webhook delivery", case_6),
    7: ("memory after 100,000 and 1,000,000 events", case_7),
}


def run_case(number: int, sizes: Sizes, repeat: int) -> CaseResult:
    """Run one case by its number."""
    try:
        _, runner = CASES[number]
    except KeyError:
        raise ValueError(f"no case {number}; the cases are {sorted(CASES)}") from None
    return runner(sizes, repeat)


def run_suite(
    numbers: Sequence[int],
    sizes: Sizes,
    repeat: int,
    on_done: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run the chosen cases in order, calling ``on_done`` after each."""
    results = []
    for number in numbers:
        result = run_case(number, sizes, repeat)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results
