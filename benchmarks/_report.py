"""Turn case results into the printed table, ``BENCHMARKS.md`` and a JSON record."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmarks._harness import CaseResult, Row, Target

__all__ = [
    "README_END",
    "README_START",
    "format_value",
    "markdown",
    "ratio",
    "readme_summary",
    "replace_readme_block",
    "text_case",
    "text_targets",
    "to_json",
]

_METHOD = (
    "Each case runs in its own asyncio event loop (the default loop, no uvloop) in one "
    "process; case 7 runs in fresh processes.",
    "Every contender gets the same prepared payloads and the same counting handler, and is "
    "set up fresh, untimed, before each repetition; a contender that delivers a different "
    "number of events than expected fails the run.",
    "Untimed warm-up rounds, then the timed repetitions (counts above); each round runs every "
    "contender of the case once, starting one further along each round, so drift on a shared "
    "machine hits all alike.",
    "`gc.collect()` before each timed repetition; timing with `time.perf_counter()`.",
    "Tables show the median and the min-max spread of the repetitions; ratios and targets "
    "use medians. The library's logging stays at its quiet default.",
    "'By CPU time' is the median rate over this process's CPU time (`time.process_time()`) "
    "instead of the wall clock: well above the wall-clock median, it means other processes "
    "took the CPU during the run, and the wall-clock figures understate every contender. "
    "Equal figures do not prove a quiet machine: in a virtual machine, time the host gives "
    "to other guests still counts as this process's CPU time; the min-max spread shows it.",
)


def format_value(value: float, unit: str) -> str:
    """A value with its unit, e.g. ``123,456/s``, ``12.3 MB``, ``1.25 ms``."""
    if unit == "events/s":
        return f"{value:,.0f}/s"
    if unit == "ms":
        return f"{value:,.2f} ms"
    if unit == "MB":
        return f"{value:,.1f} MB"
    return f"{value:,.3g} {unit}"


def _cpu(row: Row) -> str:
    value = row.cpu_median
    return "" if value is None else format_value(value, row.unit)


def _spread(row: Row) -> str:
    if row.unit == "events/s":
        return f"{row.low:,.0f} - {row.high:,.0f}"
    return f"{format_value(row.low, row.unit)} - {format_value(row.high, row.unit)}"


def ratio(row: Row, rows: Sequence[Row]) -> float | None:
    """This row's median over its baseline's (same case and group), if it has one."""
    if row.baseline is None:
        return None
    for other in rows:
        if other.name == row.baseline and other.group == row.group:
            return row.median / other.median
    return None


def _common_baseline(rows: Sequence[Row]) -> str | None:
    """The one baseline every compared row of a group shares, if there is exactly one."""
    names = {row.baseline for row in rows if row.baseline is not None}
    return names.pop() if len(names) == 1 else None


def _ratio_text(row: Row, rows: Sequence[Row], common: str | None) -> str:
    if common is not None and row.name == common:
        return "1.00x (baseline)"
    value = ratio(row, rows)
    if value is None:
        return ""
    return f"{value:.2f}x" if common is not None else f"{value:.2f}x {row.baseline}"


def _group_title(group: str, common: str | None) -> str:
    against = f"ratios against {common}" if common is not None else ""
    return "; ".join(part for part in (group, against) if part)


def _groups(rows: Sequence[Row]) -> list[tuple[str, list[Row]]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    return list(groups.items())


def _target_line(target: Target) -> tuple[str, str, str, str]:
    sign = ">=" if target.at_least else "<"
    shown = f"{target.value:.2f}{target.unit}"
    if target.cpu_value is not None:
        shown += f", by CPU time {target.cpu_value:.2f}{target.unit}"
    goal = f"{sign} {target.threshold:g}{target.unit}"
    return (
        "PASS" if target.passed else "MISS",
        f"case {target.case}",
        target.goal,
        f"{shown} (goal {goal})",
    )


def text_case(result: CaseResult) -> str:
    """One case as a plain-text table."""
    header = ("contender", "median", "min - max", "by CPU time", "ratio")
    lines: list[tuple[str, ...]] = []
    for group, rows in _groups(result.rows):
        common = _common_baseline(rows)
        title = _group_title(group, common)
        if title:
            lines.append((f"[{title}]", "", "", "", ""))
        lines.extend(
            (
                f"  {row.name}" if title else row.name,
                format_value(row.median, row.unit),
                _spread(row),
                _cpu(row),
                _ratio_text(row, result.rows, common),
            )
            for row in rows
        )
    widths = [
        max(len(line[col]) for line in [header, *lines] if not line[0].startswith("["))
        for col in range(4)
    ]
    out = [f"Case {result.number}: {result.title}  ({result.seconds:.1f} s)"]
    for line in [header, *lines]:
        name, median, spread, cpu, against = line
        if name.startswith("["):  # a group title spans the columns
            out.append(f"  {name}")
            continue
        out.append(
            f"  {name:<{widths[0]}}  {median:>{widths[1]}}  {spread:>{widths[2]}}  "
            f"{cpu:>{widths[3]}}  {against}".rstrip()
        )
    return "\n".join(out)


def text_targets(results: Iterable[CaseResult]) -> str:
    """The targets of this run (issue 7, and issue 10 where a goal says so), PASS or MISS."""
    lines = [_target_line(t) for result in results for t in result.targets]
    if not lines:
        return "Targets: none among the cases run"
    width = max(len(line[2]) for line in lines)
    body = [f"  {s}  {case:<7} {goal:<{width}}  {value}" for s, case, goal, value in lines]
    return "\n".join(["Targets (issue 7), on medians:", *body])


def markdown(
    results: Sequence[CaseResult], machine: Mapping[str, str], command: str, run: str
) -> str:
    """The whole ``BENCHMARKS.md`` for one run; ``run`` says sizes and repetitions."""
    out = [
        "# Benchmarks",
        "",
        f"Generated by `{command}` on {machine.get('Date', '?')}. Every figure below comes "
        "from that one run; do not edit this file by hand, rerun the command.",
        "",
        f"Run: {run}.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in machine.items()),
        "",
        "## Targets",
        "",
    ]
    targets = [t for result in results for t in result.targets]
    if targets:
        out += ["| Result | Case | Goal | This run |", "|---|---|---|---|"]
        out += [f"| {s} | {c} | {g} | {v} |" for s, c, g, v in map(_target_line, targets)]
    else:
        out.append("No case with a target was run.")
    for result in results:
        out += ["", f"## Case {result.number}: {result.title}", ""]
        out += [f"- {note}" for note in result.notes]
        for group, rows in _groups(result.rows):
            common = _common_baseline(rows)
            title = _group_title(group, common)
            out += ["", f"**{title[0].upper()}{title[1:]}**", ""] if title else [""]
            with_cpu = any(row.cpu_samples for row in rows)
            with_ratio = any(row.baseline is not None for row in rows)
            head = ["Contender", "Median", "Min - max"]
            head += ["By CPU time"] * with_cpu + ["Ratio"] * with_ratio
            align = ["---", "--:", "--:"] + ["--:"] * with_cpu + ["---"] * with_ratio
            out += [f"| {' | '.join(head)} |", f"|{'|'.join(align)}|"]
            for row in rows:
                cells = [row.name, format_value(row.median, row.unit), _spread(row)]
                cells += [_cpu(row)] * with_cpu
                cells += [_ratio_text(row, result.rows, common)] * with_ratio
                out.append(f"| {' | '.join(cells)} |")
    out += ["", "## Method", "", *(f"- {line}" for line in _METHOD), ""]
    out += ["<details><summary>Every repetition</summary>", ""]
    for result in results:
        for row in result.rows:
            values = ", ".join(format_value(v, row.unit) for v in row.samples)
            where = f"{row.group} / " if row.group else ""
            out.append(f"- case {result.number}, {where}{row.name}: {values}")
    out += ["", "</details>", ""]
    return "\n".join(out)


README_START = "<!-- benchmarks:start (written by python -m benchmarks; do not edit) -->"
README_END = "<!-- benchmarks:end -->"


def readme_summary(results: Sequence[CaseResult], machine: Mapping[str, str], command: str) -> str:
    """The README's Performance block: the run's headline figures and its targets."""
    out = [
        f"From `{command}` on {machine.get('Date', '?')} ({machine.get('CPU', '?')}, "
        f"{machine.get('Cores', '?')} cores, {machine.get('Python', '?')}); "
        "medians, events per second unless a unit is shown:",
        "",
        "| Case | Contender | Median | Ratio |",
        "|---|---|--:|---|",
    ]
    for result in results:
        for group, rows in _groups(result.rows):
            common = _common_baseline(rows)
            where = f" ({group})" if group else ""
            out += [
                f"| {result.number}{where} | {row.name} | {format_value(row.median, row.unit)} | "
                f"{_ratio_text(row, result.rows, common)} |"
                for row in rows
            ]
    out += ["", "| Result | Case | Goal | This run |", "|---|---|---|---|"]
    targets = [t for result in results for t in result.targets]
    out += [f"| {s} | {c} | {g} | {v} |" for s, c, g, v in map(_target_line, targets)]
    return "\n".join(out)


def replace_readme_block(readme: str, block: str) -> str:
    """``readme`` with the text between the benchmark markers replaced by ``block``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md lacks the markers {README_START!r} ... {README_END!r}")
    return f"{readme[: start + len(README_START)]}\n{block}\n{readme[end:]}"


def to_json(
    results: Sequence[CaseResult], machine: Mapping[str, str], command: str
) -> dict[str, Any]:
    """The run as plain data, for comparing runs by script."""
    return {
        "command": command,
        "machine": dict(machine),
        "cases": [
            {
                "number": result.number,
                "title": result.title,
                "seconds": result.seconds,
                "notes": result.notes,
                "rows": [
                    {
                        "group": row.group,
                        "name": row.name,
                        "unit": row.unit,
                        "events": row.events,
                        "samples": list(row.samples),
                        "cpu_samples": list(row.cpu_samples),
                        "cpu_median": row.cpu_median,
                        "median": row.median,
                        "min": row.low,
                        "max": row.high,
                        "baseline": row.baseline,
                        "ratio": ratio(row, result.rows),
                    }
                    for row in result.rows
                ],
                "targets": [
                    {
                        "goal": target.goal,
                        "value": target.value,
                        "threshold": target.threshold,
                        "at_least": target.at_least,
                        "passed": target.passed,
                        "cpu_value": target.cpu_value,
                    }
                    for target in result.targets
                ],
            }
            for result in results
        ],
    }
