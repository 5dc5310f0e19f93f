"""The measuring instrument: counting sinks, contenders, interleaved timed repetitions.

Every contender of a case receives the same prepared payloads and the same counting sink, is
set up fresh (untimed) before each repetition, timed with :func:`time.perf_counter` (and
:func:`time.process_time` alongside) from the first publish until its sink has counted every
expected delivery, then torn down (untimed) and checked: a contender that lost an event
fails the run instead of looking fast.
Repetitions are interleaved across contenders, with the starting contender rotated each round,
so a noisy neighbour on a shared machine slows every contender alike.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DELIVERY_DEADLINE",
    "BenchmarkError",
    "CaseResult",
    "Contender",
    "Row",
    "Samples",
    "Tally",
    "Target",
    "Trial",
    "measure",
]

DELIVERY_DEADLINE = 600.0
"""A generous bound on one repetition, so a lost event fails the run instead of hanging it."""


class BenchmarkError(RuntimeError):
    """A contender delivered the wrong number of events, or never finished."""


class Tally:
    """Counts deliveries across one or more sinks and resolves a future at the target.

    Every contender's handlers go through the same ``count += 1; compare`` body, so the
    handler's own cost is equal for all.
    """

    __slots__ = ("_done", "count", "target")

    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self._done: asyncio.Future[None] | None = None

    def expect(self, deliveries: int) -> None:
        """Arm the tally: done after ``deliveries`` more (call inside the running loop)."""
        self.target = self.count + deliveries
        self._done = asyncio.get_running_loop().create_future()

    def hit(self) -> None:
        """Count one delivery."""
        self.count += 1
        if self.count == self.target and self._done is not None:
            self._done.set_result(None)

    async def wait(self, deadline: float = DELIVERY_DEADLINE) -> None:
        """Wait until the target is reached; raises BenchmarkError after ``deadline`` s."""
        if self._done is None or self.count >= self.target:
            return
        try:
            async with asyncio.timeout(deadline):
                await self._done
        except TimeoutError:
            raise BenchmarkError(
                f"only {self.count} of {self.target} deliveries after {deadline}s"
            ) from None

    def sink(self) -> Callable[[Any], None]:
        """A fresh synchronous one-argument handler counting into this tally."""
        return _Sink(self)

    def async_sink(self) -> Callable[[Any], Awaitable[None]]:
        """A fresh ``async def`` one-argument handler counting into this tally."""
        return _AsyncSink(self)

    def blinker_receiver(self) -> Callable[..., None]:
        """A fresh blinker receiver, ``(sender, event=...)``, counting into this tally."""
        return _BlinkerReceiver(self)


# Distinct objects per subscriber: pyee keys handlers by identity, so one shared callable
# registered ten times would count as one listener.
class _Sink:
    __slots__ = ("tally",)

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def __call__(self, event: Any) -> None:
        self.tally.hit()


class _AsyncSink:
    __slots__ = ("tally",)

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    async def __call__(self, event: Any) -> None:
        self.tally.hit()


class _BlinkerReceiver:
    __slots__ = ("__weakref__", "tally")

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def __call__(self, sender: Any, event: Any = None) -> None:
        self.tally.hit()


class Trial:
    """One set-up contender: ``run`` is timed, ``close`` is not.

    Subclasses build everything in ``__init__`` or :meth:`open` and return from :meth:`run`
    only when every delivery has been counted.
    """

    tally: Tally

    async def open(self) -> None:
        """Untimed set-up that needs the running loop (start a bus, prime a route)."""

    async def run(self) -> None:
        """Publish the prepared events and wait until all were handled (timed)."""
        raise NotImplementedError

    async def close(self) -> None:
        """Untimed tear-down: stop buses, cancel tasks."""


@dataclass(frozen=True, slots=True)
class Contender:
    """A named way of doing the case's work, and its expected deliveries per repetition."""

    name: str
    make: Callable[[], Trial]
    deliveries: int
    group: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """One line of a result table: a contender's samples and what to compare them with."""

    case: int
    group: str
    name: str
    unit: str
    """``events/s`` (higher is better), ``MB`` or ``ms`` (lower is better)."""
    samples: tuple[float, ...]
    baseline: str | None = None
    """The name of the row in the same case and group this one is divided by."""
    events: int = 0
    """Events per repetition (0 when not a rate)."""
    cpu_samples: tuple[float, ...] = ()
    """The same rates by this process's CPU time (empty when not a rate)."""

    @property
    def cpu_median(self) -> float | None:
        """The median rate by CPU time, if measured."""
        return statistics.median(self.cpu_samples) if self.cpu_samples else None

    @property
    def median(self) -> float:
        """The median sample."""
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        """The smallest sample."""
        return min(self.samples)

    @property
    def high(self) -> float:
        """The largest sample."""
        return max(self.samples)


@dataclass(frozen=True, slots=True)
class Target:
    """A goal from issue 7 (or, where its text says so, issue 10), checked on this run's
    medians."""

    case: int
    goal: str
    """The goal in words, e.g. ``publish >= 0.3x Subject.on_next``."""
    value: float
    threshold: float
    at_least: bool = True
    """True: ``value >= threshold`` passes; False: ``value < threshold`` passes."""
    unit: str = "x"
    cpu_value: float | None = None
    """The same ratio on CPU-time medians, shown beside the verdict (which uses wall time)."""

    @classmethod
    def ratio(cls, case: int, goal: str, row: Row, base: Row, threshold: float) -> Target:
        """``row`` median over ``base`` median must reach ``threshold``."""
        cpu_row, cpu_base = row.cpu_median, base.cpu_median
        return cls(
            case,
            goal,
            row.median / base.median,
            threshold,
            cpu_value=cpu_row / cpu_base if cpu_row and cpu_base else None,
        )

    @property
    def passed(self) -> bool:
        """Whether this run met the goal."""
        return self.value >= self.threshold if self.at_least else self.value < self.threshold


@dataclass(slots=True)
class CaseResult:
    """What one case measured."""

    number: int
    title: str
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time of the whole case, set-up included."""

    def row(self, name: str, group: str = "") -> Row:
        """The row called ``name`` in ``group``."""
        for row in self.rows:
            if row.name == name and row.group == group:
                return row
        raise KeyError(f"case {self.number} has no row {name!r} in group {group!r}")


@dataclass(slots=True)
class Samples:
    """One contender's rates: by wall-clock time (the figure) and by this process's CPU time.

    On a shared machine other processes take the CPU in bursts; wall-clock rates then drop
    while CPU-time rates hold, so a gap between the two shows how disturbed a run was (time
    stolen by a hypervisor is not seen: it counts as CPU time).
    """

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


async def measure(
    contenders: Sequence[Contender],
    *,
    events: int,
    repeat: int,
    warmup: int = 1,
    deadline: float = DELIVERY_DEADLINE,
) -> dict[tuple[str, str], Samples]:
    """Events per second of each contender, ``repeat`` samples each after ``warmup`` rounds.

    Each round runs every contender once, starting one further along the list each round;
    each trial is freshly made, collected with :func:`gc.collect`, timed, closed and checked.
    Samples are keyed by ``(group, name)``, in contender order.

    Raises:
        BenchmarkError: a contender handled a different number of events than expected, or
            not all of them within ``deadline`` seconds.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    samples = {(c.group, c.name): Samples() for c in contenders}
    count = len(contenders)
    for round_no in range(warmup + repeat):
        for offset in range(count):
            contender = contenders[(round_no + offset) % count]
            wall, cpu = await _time_one(contender, deadline)
            if round_no >= warmup:
                kept = samples[(contender.group, contender.name)]
                kept.wall.append(events / wall)
                kept.cpu.append(events / max(cpu, 1e-9))
    return samples


async def _time_one(contender: Contender, deadline: float) -> tuple[float, float]:
    trial = contender.make()
    await trial.open()
    tally = trial.tally
    tally.expect(contender.deliveries)
    gc.collect()
    try:
        cpu_started = time.process_time()
        started = time.perf_counter()
        await trial.run()
        await tally.wait(deadline)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        await trial.close()
    if tally.count != tally.target:
        raise BenchmarkError(
            f"{contender.name}: counted {tally.count} deliveries, expected {tally.target}"
        )
    return elapsed, cpu


def rows_from(
    case: int,
    samples: dict[tuple[str, str], Samples],
    *,
    events: int,
    baseline: str | None,
) -> list[Row]:
    """Rate rows in contender order, each compared with ``baseline`` of its group."""
    return [
        Row(
            case=case,
            group=group,
            name=name,
            unit="events/s",
            samples=tuple(values.wall),
            baseline=baseline if baseline != name else None,
            events=events,
            cpu_samples=tuple(values.cpu),
        )
        for (group, name), values in samples.items()
    ]
