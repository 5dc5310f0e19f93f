"""Cases 1 and 2: dispatch to one synchronous, then one ``async def``, subscriber.

Our bus is timed end to end: from the first ``publish`` until its handler has run for the
last event (actor hops included). Synchronous peers deliver inside ``emit``/``on_next``, so
their loop ends when the handler has run. Rates are published events per second.
"""

from __future__ import annotations

import time

from benchmarks._contenders import (
    BlinkerTrial,
    BusTrial,
    PyeeAsyncTrial,
    PyeeTrial,
    QueueTrial,
    SubjectTrial,
)
from benchmarks._harness import CaseResult, Contender, Target, measure, rows_from
from benchmarks._payloads import Sizes, batch_items, payloads

__all__ = [
    "BLINKER",
    "CASE_2_BEST",
    "OURS_ASYNC",
    "OURS_ASYNC_BATCH",
    "OURS_BATCH",
    "OURS_PUBLISH",
    "OURS_STRICT",
    "PYEE",
    "PYEE_ASYNC",
    "QUEUE",
    "SUBJECT",
    "case_1",
    "case_2",
]

OURS_PUBLISH = "mnemo-events publish (validation off)"
OURS_BATCH = "mnemo-events publish_batch (validation off)"
OURS_STRICT = "mnemo-events publish (validation strict, the default)"
SUBJECT = "reactivex Subject.on_next"
PYEE = "pyee EventEmitter.emit"
BLINKER = "blinker Signal.send"

OURS_ASYNC = "mnemo-events publish (validation off)"
OURS_ASYNC_BATCH = "mnemo-events publish_batch (validation off)"
PYEE_ASYNC = "pyee AsyncIOEventEmitter.emit"
QUEUE = "asyncio.Queue(10,000) producer -> consumer task"

CASE_2_BEST = 3.41
"""Case 2's best earlier figure (BENCHMARKS.md at 7afc1bc): issue 10 allows no regression
(issue 7's goal was 2x)."""


async def case_1(sizes: Sizes, repeat: int) -> CaseResult:
    """Dispatch to one synchronous subscriber: our bus vs Subject, pyee and blinker."""
    started = time.perf_counter()
    count = sizes.dispatch
    prepared = payloads(count)
    batches = batch_items(prepared, sizes.batch_size)
    contenders = [
        Contender(OURS_PUBLISH, lambda: BusTrial(prepared), count),
        Contender(OURS_BATCH, lambda: BusTrial(prepared, batches=batches), count),
        Contender(OURS_STRICT, lambda: BusTrial(prepared, validation="strict"), count),
        Contender(SUBJECT, lambda: SubjectTrial(prepared), count),
        Contender(PYEE, lambda: PyeeTrial(prepared), count),
        Contender(BLINKER, lambda: BlinkerTrial(prepared), count),
    ]
    samples = await measure(contenders, events=count, repeat=repeat, warmup=sizes.warmup)
    result = CaseResult(
        1,
        "Dispatch to one synchronous subscriber",
        rows=rows_from(1, samples, events=count, baseline=SUBJECT),
    )
    result.targets = [
        Target.ratio(
            1, "publish >= 0.3x Subject.on_next", result.row(OURS_PUBLISH), result.row(SUBJECT), 0.3
        ),
        Target.ratio(
            1,
            "publish, validation strict (the default), >= 0.3x Subject.on_next (issue 10)",
            result.row(OURS_STRICT),
            result.row(SUBJECT),
            0.3,
        ),
        Target.ratio(
            1,
            "publish_batch >= 1x pyee EventEmitter.emit",
            result.row(OURS_BATCH),
            result.row(PYEE),
            1.0,
        ),
    ]
    result.notes = [
        f"{count:,} `memory.created` events per repetition, one subscriber that counts "
        "deliveries (the same counting handler for every contender).",
        "Our bus: from the first publish until the handler ran for the last event; peers "
        "deliver inside the call. Ratios are against the bare Subject.",
        f"publish_batch rows publish {sizes.batch_size:,}-event batches of prepared "
        '`{"type", "data"}` items; the strict row checks each payload against its schema.',
    ]
    result.seconds = time.perf_counter() - started
    return result


async def case_2(sizes: Sizes, repeat: int) -> CaseResult:
    """Dispatch to one ``async def`` subscriber: our bus vs pyee's asyncio emitter, a queue."""
    started = time.perf_counter()
    count = sizes.dispatch
    prepared = payloads(count)
    batches = batch_items(prepared, sizes.batch_size)
    contenders = [
        Contender(OURS_ASYNC, lambda: BusTrial(prepared, is_async=True), count),
        Contender(
            OURS_ASYNC_BATCH, lambda: BusTrial(prepared, batches=batches, is_async=True), count
        ),
        Contender(PYEE_ASYNC, lambda: PyeeAsyncTrial(prepared), count),
        Contender(QUEUE, lambda: QueueTrial(prepared), count),
    ]
    samples = await measure(contenders, events=count, repeat=repeat, warmup=sizes.warmup)
    result = CaseResult(
        2,
        "Dispatch to one async def subscriber",
        rows=rows_from(2, samples, events=count, baseline=PYEE_ASYNC),
    )
    result.targets = [
        Target.ratio(
            2,
            f"publish >= {CASE_2_BEST}x pyee AsyncIOEventEmitter (issue 10: no regression)",
            result.row(OURS_ASYNC),
            result.row(PYEE_ASYNC),
            CASE_2_BEST,
        )
    ]
    result.notes = [
        f"{count:,} events per repetition, timed until every handler coroutine completed "
        "(pyee: `wait_for_complete()`, which schedules one task per event).",
        "The queue pair is the hand-written alternative: a bounded asyncio.Queue, one "
        "consumer task awaiting the handler. Ratios are against pyee's AsyncIOEventEmitter.",
        f"The publish_batch row publishes {sizes.batch_size:,}-event batches.",
    ]
    result.seconds = time.perf_counter() - started
    return result
