"""Profile our bus on the workload of case 1 or 2: where the time goes, per event.

``python -m benchmarks.profile_bus [--mode publish|batch|strict|async] [--events N]
[--tool cprofile|pyinstrument] [--top N]`` builds the same trial as the benchmark (one counting
subscriber, prepared ``memory.created`` payloads), runs it once untimed as a warm-up, then
once under the profiler, and prints the functions with the most own time, each with its
share of the profiled run and its cost in microseconds per event, then our own functions by
cumulative time (publish, pump, router, actor stages). cProfile inflates small functions;
pyinstrument (``pip install pyinstrument``) samples instead and shows the call tree.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._contenders import BusTrial
from benchmarks._payloads import batch_items, payloads

__all__ = ["main", "own_time_table", "stage_table"]

_MODES = ("publish", "batch", "strict", "async")


def _trial(mode: str, prepared: list[dict[str, Any]]) -> BusTrial:
    if mode == "batch":
        return BusTrial(prepared, batches=batch_items(prepared, 1_000))
    if mode == "strict":
        return BusTrial(prepared, validation="strict")
    return BusTrial(prepared, is_async=mode == "async")


async def _run_once(trial: BusTrial, events: int) -> float:
    await trial.open()
    trial.tally.expect(events)
    started = time.perf_counter()
    await trial.run()
    await trial.tally.wait()
    elapsed = time.perf_counter() - started
    await trial.close()
    return elapsed


def _short(path: str) -> str:
    return path.rsplit("/site-packages/", 1)[-1].rsplit("/work/main/", 1)[-1]


def own_time_table(stats: pstats.Stats, events: int, top: int) -> list[str]:
    """The ``top`` functions by own time: share of the total, microseconds per event, calls."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    ranked = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:top]
    lines = [f"{'own %':>6} {'us/event':>9} {'calls/event':>11}  function"]
    for (path, line, name), (_, calls, own, _cumulative, _) in ranked:
        lines.append(
            f"{own / total:>6.1%} {own / events * 1e6:>9.2f} {calls / events:>11.2f}  {name} "
            f"({_short(path)}:{line})"
        )
    return lines


def stage_table(stats: pstats.Stats, events: int, top: int) -> list[str]:
    """The ``top`` functions of mnemo_events by cumulative time (their callees included)."""
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw.values())
    ours = [item for item in raw.items() if "mnemo_events" in item[0][0]]
    ranked = sorted(ours, key=lambda item: item[1][3], reverse=True)[:top]
    lines = [f"{'cum %':>6} {'us/event':>9}  function (mnemo_events only, callees included)"]
    for (path, line, name), (*_, cumulative, _) in ranked:
        lines.append(
            f"{cumulative / total:>6.1%} {cumulative / events * 1e6:>9.2f}  {name} "
            f"({_short(path)}:{line})"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Profile one mode and print the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_bus")
    parser.add_argument("--mode", choices=_MODES, default="publish")
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--tool", choices=("cprofile", "pyinstrument"), default="cprofile")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    prepared = payloads(args.events)
    plain = asyncio.run(_run_once(_trial(args.mode, prepared), args.events))
    print(f"{args.mode}: {args.events / plain:,.0f} events/s unprofiled")
    trial = _trial(args.mode, prepared)
    if args.tool == "pyinstrument":
        from pyinstrument import Profiler

        with Profiler(async_mode="disabled") as profiler:
            asyncio.run(_run_once(trial, args.events))
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        return 0
    profile = cProfile.Profile()
    profile.enable()
    asyncio.run(_run_once(trial, args.events))
    profile.disable()
    stats = pstats.Stats(profile)
    print("\n".join(own_time_table(stats, args.events, args.top)), end="\n\n")
    print("\n".join(stage_table(stats, args.events, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
