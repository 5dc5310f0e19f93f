"""The cases by number, and running a selection of them."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from benchmarks._harness import BenchmarkError, CaseResult, Row, Target
from benchmarks._payloads import Sizes
from benchmarks.bench_batch import case_5
from benchmarks.bench_dispatch import case_1, case_2
from benchmarks.bench_fanout import case_3
from benchmarks.bench_memory import case_7
from benchmarks.bench_nats import case_8
from benchmarks.bench_routing import case_4
from benchmarks.bench_webhook_group import case_9

__all__ = ["CASES", "run_case", "run_suite", "webhook_result"]

Runner = Callable[[Sizes, int], CaseResult]
AsyncRunner = Callable[[Sizes, int], Coroutine[Any, Any, CaseResult]]

_THROUGHPUT = "deliveries per second"
_P50 = "publish-to-receipt latency, p50"
_P99 = "publish-to-receipt latency, p99"


def _in_fresh_loop(case: AsyncRunner) -> Runner:
    def run(sizes: Sizes, repeat: int) -> CaseResult:
        return asyncio.run(case(sizes, repeat))

    return run


def case_6(sizes: Sizes, repeat: int) -> CaseResult:
    """Webhook delivery, measured by ``benchmarks.bench_webhooks.run`` (its own event loop)."""
    from benchmarks import bench_webhooks

    started = time.perf_counter()
    run: Callable[..., dict[str, Any]] = bench_webhooks.run
    options = {"repeat": repeat} if "repeat" in inspect.signature(run).parameters else {}
    report = run(sizes.webhook_events, sizes.webhook_concurrency, **options)
    result = webhook_result(report)
    result.seconds = time.perf_counter() - started
    return result


def webhook_result(report: dict[str, Any]) -> CaseResult:
    """Rows and the target of case 6 from a ``bench_webhooks.run`` report.

    The report holds, per contender, the median ``per_s``, ``p50_ms`` and ``p99_ms`` of its
    repetitions and every repetition's ``samples_per_s``; the bare loop is the one whose name
    starts with "bare".
    """
    try:
        events, concurrency = report["n_events"], report["concurrency"]
        contenders: dict[str, dict[str, Any]] = report["results"]
        bare = next(name for name in contenders if name.lower().startswith("bare"))
        ratio = float(report["ratio"])
    except (KeyError, StopIteration, TypeError, ValueError) as err:
        raise BenchmarkError(f"unexpected bench_webhooks report ({err!r}): {report!r}") from None
    rows = [
        Row(6, _THROUGHPUT, name, "events/s", tuple(figures["samples_per_s"]), bare, events)
        for name, figures in contenders.items()
    ]
    for group, key in ((_P50, "p50_ms"), (_P99, "p99_ms")):
        rows += [Row(6, group, name, "ms", (figures[key],)) for name, figures in contenders.items()]
    manager = next(name for name in contenders if name != bare)
    result = CaseResult(6, "Webhook delivery to a local aiohttp receiver", rows=rows)
    result.targets = [
        Target(6, f"{manager} >= 0.8x {bare} (issue 10)", ratio, 0.8),
    ]
    repeats = report.get("repeat", len(contenders[bare]["samples_per_s"]))
    result.notes = [
        f"{events:,} events per repetition, concurrency {concurrency}, {repeats} repetition(s) "
        "after a warm-up, measured by `benchmarks/bench_webhooks.py` (its docstring has the "
        "method): the receiver runs in its own process on 127.0.0.1.",
        "Throughput: events over the time from the first publish to the last arrival; the "
        "target uses the medians. Latency: publish to receipt with every event published at "
        "once (queueing included); p50 and p99 are medians over the repetitions (no spread).",
    ]
    return result


CASES: dict[int, tuple[str, Runner]] = {
    1: ("dispatch, one synchronous subscriber", _in_fresh_loop(case_1)),
    2: ("dispatch, one async def subscriber", _in_fresh_loop(case_2)),
    3: ("fan-out to 10 and 100 subscribers", _in_fresh_loop(case_3)),
    4: ("routing scale, 1 to 10,000 subscriptions", _in_fresh_loop(case_4)),
    5: ("publish_batch of 1,000 events", _in_fresh_loop(case_5)),
    6: ("webhook delivery", case_6),
    7: ("memory after 100,000 and 1,000,000 events", case_7),
    8: ("NATS JetStream publish and cross-process latency", _in_fresh_loop(case_8)),
    9: ("webhook group on JetStream, 1 to 3 workers", _in_fresh_loop(case_9)),
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
