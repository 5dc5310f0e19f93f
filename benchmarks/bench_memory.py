"""Case 7: resident memory after many events, each run in a fresh Python process.

The child process builds a default ``EventBus()`` (history bound 1,000, strict validation,
mailbox 10,000) with one synchronous subscriber, publishes ``first`` events, waits until all
were handled, collects garbage and reads its resident set size; then the same after ``total``
events. The growth between the two readings must stay small: nothing may grow with the
event count. Run the child alone with ``python -m benchmarks.bench_memory FIRST TOTAL``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import BenchmarkError, CaseResult, Row, Tally, Target
from benchmarks._payloads import EVENT_TYPE, Sizes, payload
from mnemo_events.event_bus import EventBus

__all__ = ["case_7", "resident_mb"]

_ROOT = Path(__file__).resolve().parent.parent
_CHILD_TIMEOUT = 1_800.0


def resident_mb() -> float:
    """This process's resident set size in MB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak_kb * (1 if sys.platform == "darwin" else 1024) / 1e6


async def _publish_and_read(first: int, total: int) -> dict[str, Any]:
    bus = EventBus()
    tally = Tally()
    bus.subscribe(EVENT_TYPE, tally.sink())
    await bus.start()
    gc.collect()
    readings = {"start_mb": resident_mb()}
    published = 0
    started = time.perf_counter()
    for key, checkpoint in (("first_mb", first), ("total_mb", total)):
        tally.expect(checkpoint - published)
        publish = bus.publish
        while published < checkpoint:
            await publish(EVENT_TYPE, payload(published))
            published += 1
        await tally.wait()
        gc.collect()
        readings[key] = resident_mb()
    seconds = time.perf_counter() - started
    history = len(await bus.get_history(limit=10**9))
    await bus.shutdown()
    return {**readings, "events": published, "seconds": seconds, "history": history}


def _run_child(first: int, total: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.bench_memory", str(first), str(total)]
    done = subprocess.run(
        command, cwd=_ROOT, capture_output=True, text=True, timeout=_CHILD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise BenchmarkError(f"memory child failed ({done.returncode}): {done.stderr[-2000:]}")
    reading: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return reading


def case_7(sizes: Sizes, repeat: int) -> CaseResult:
    """Resident memory after ``first`` and ``total`` events, in ``memory_runs`` processes."""
    started = time.perf_counter()
    first, total = sizes.memory_checkpoints
    runs = [_run_child(first, total) for _ in range(min(repeat, sizes.memory_runs))]
    growth = tuple(run["total_mb"] - run["first_mb"] for run in runs)
    rows = [
        Row(7, "", "RSS with the bus started, before publishing", "MB", _col(runs, "start_mb")),
        Row(7, "", f"RSS after {first:,} events", "MB", _col(runs, "first_mb")),
        Row(7, "", f"RSS after {total:,} events", "MB", _col(runs, "total_mb")),
        Row(7, "", f"growth from {first:,} to {total:,} events", "MB", growth),
    ]
    result = CaseResult(7, "Memory with the default history bound", rows=rows)
    result.targets = [
        Target(
            7,
            f"growth {first:,} -> {total:,} events < 10 MB",
            rows[-1].median,
            10.0,
            at_least=False,
            unit=" MB",
        ),
    ]
    rate = sum(run["events"] / run["seconds"] for run in runs) / len(runs)
    result.notes = [
        f"{len(runs)} fresh process(es): a default `EventBus()` (history 1,000, strict "
        "validation), one counting subscriber, `await publish` per event, garbage collected "
        "before each reading of /proc/self/statm.",
        f"History held {runs[-1]['history']:,} events at the end; the runs published "
        f"{rate:,.0f} events/s on average.",
    ]
    result.seconds = time.perf_counter() - started
    return result


def _col(runs: list[dict[str, Any]], key: str) -> tuple[float, ...]:
    return tuple(float(run[key]) for run in runs)


def _main(argv: list[str]) -> None:
    first, total = (int(arg) for arg in argv)
    if not 0 < first <= total:
        raise SystemExit(f"usage: python -m benchmarks.bench_memory FIRST TOTAL (got {argv})")
    sys.stdout.write(json.dumps(asyncio.run(_publish_and_read(first, total))) + "\n")


if __name__ == "__main__":
    _main(sys.argv[1:])
