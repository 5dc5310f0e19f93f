"""Case 5: ``publish_batch`` of 1,000 events, against the same events published one by one."""

from __future__ import annotations

import time

from benchmarks._contenders import BusTrial
from benchmarks._harness import CaseResult, Contender, Row, measure, rows_from
from benchmarks._payloads import Sizes, batch_items, payloads

__all__ = ["BATCH_OFF", "BATCH_STRICT", "SINGLE_OFF", "SINGLE_STRICT", "case_5"]

BATCH_OFF = "publish_batch (validation off)"
BATCH_STRICT = "publish_batch (validation strict)"
SINGLE_OFF = "publish one by one (validation off)"
SINGLE_STRICT = "publish one by one (validation strict)"
_PER_BATCH = "ms per batch"


async def case_5(sizes: Sizes, repeat: int) -> CaseResult:
    """Batches until every event was handled by one synchronous subscriber."""
    started = time.perf_counter()
    count = sizes.batches * sizes.batch_size
    prepared = payloads(count)
    batches = batch_items(prepared, sizes.batch_size)
    contenders = [
        Contender(BATCH_OFF, lambda: BusTrial(prepared, batches=batches), count),
        Contender(SINGLE_OFF, lambda: BusTrial(prepared), count),
        Contender(
            BATCH_STRICT, lambda: BusTrial(prepared, batches=batches, validation="strict"), count
        ),
        Contender(SINGLE_STRICT, lambda: BusTrial(prepared, validation="strict"), count),
    ]
    samples = await measure(contenders, events=count, repeat=repeat, warmup=sizes.warmup)
    rates = rows_from(5, samples, events=count, baseline=None)
    baselines = {BATCH_OFF: SINGLE_OFF, BATCH_STRICT: SINGLE_STRICT}
    result = CaseResult(5, f"publish_batch of {sizes.batch_size:,} events")
    for row in rates:
        result.rows.append(
            Row(
                5,
                "",
                row.name,
                row.unit,
                row.samples,
                baselines.get(row.name),
                row.events,
                row.cpu_samples,
            )
        )
    for name in (BATCH_OFF, BATCH_STRICT):
        per_batch = tuple(sizes.batch_size / rate * 1e3 for rate in result.row(name).samples)
        result.rows.append(Row(5, _PER_BATCH, f"{name}, one call", "ms", per_batch))
    result.notes = [
        f"{sizes.batches} batches of {sizes.batch_size:,} `memory.created` events per "
        "repetition, timed until one synchronous subscriber handled them all.",
        "Ratios are against the same events published one `await publish` at a time; "
        "'ms per batch' is the batch size divided by each repetition's rate.",
    ]
    result.seconds = time.perf_counter() - started
    return result
