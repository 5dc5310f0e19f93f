"""Case 3: fan-out to 10 and 100 synchronous subscribers of the same event type."""

from __future__ import annotations

import time
from functools import partial

from benchmarks._contenders import BusTrial, PyeeTrial, SubjectTrial
from benchmarks._harness import CaseResult, Contender, measure, rows_from
from benchmarks._payloads import Sizes, payloads

__all__ = ["OURS", "PYEE", "SUBJECT", "case_3", "group_name"]

OURS = "mnemo-events publish (validation off)"
PYEE = "pyee EventEmitter.emit"
SUBJECT = "reactivex Subject.on_next"


def group_name(subscribers: int) -> str:
    """The table group of one fan-out width."""
    return f"{subscribers} subscribers"


async def case_3(sizes: Sizes, repeat: int) -> CaseResult:
    """Each width is its own interleaved round of our bus, pyee and a bare Subject."""
    started = time.perf_counter()
    result = CaseResult(3, "Fan-out to many subscribers of one event type")
    for subscribers, count in sizes.fanout:
        prepared = payloads(count)
        group = group_name(subscribers)
        deliveries = count * subscribers
        contenders = [
            Contender(
                OURS, partial(BusTrial, prepared, subscribers=subscribers), deliveries, group
            ),
            Contender(
                PYEE, partial(PyeeTrial, prepared, subscribers=subscribers), deliveries, group
            ),
            Contender(
                SUBJECT, partial(SubjectTrial, prepared, subscribers=subscribers), deliveries, group
            ),
        ]
        samples = await measure(contenders, events=count, repeat=repeat, warmup=sizes.warmup)
        result.rows.extend(rows_from(3, samples, events=count, baseline=SUBJECT))
    widths = ", ".join(f"{count:,} events to {k}" for k, count in sizes.fanout)
    result.notes = [
        f"Published events per second ({widths} subscribers per repetition); multiply by the "
        "width for deliveries per second. Every subscriber is a distinct counting handler.",
        "No target in issue 7; ratios are against the bare Subject with as many observers.",
    ]
    result.seconds = time.perf_counter() - started
    return result
