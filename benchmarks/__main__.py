"""``python -m benchmarks``: run the cases, print the tables, write BENCHMARKS.md.

By default a full run of every case writes ``BENCHMARKS.md`` at the project root and the
figures in README.md's Performance section; a
``--quick`` run or a ``--cases`` selection writes nothing unless ``--output`` is given, so a
partial check never overwrites the published figures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks._harness import CaseResult
from benchmarks._machine import describe
from benchmarks._payloads import FULL, QUICK
from benchmarks._report import (
    markdown,
    readme_summary,
    replace_readme_block,
    text_case,
    text_targets,
    to_json,
)
from benchmarks._suite import CASES, run_suite

_ROOT = Path(__file__).resolve().parent.parent
_DEFAULT_OUTPUT = _ROOT / "BENCHMARKS.md"
_README = _ROOT / "README.md"


def _case_numbers(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected case numbers like 1,2,4; got {text!r}"
        ) from None
    unknown = sorted(set(numbers) - set(CASES))
    if unknown or not numbers:
        raise argparse.ArgumentTypeError(
            f"unknown case(s) {unknown or text!r}; the cases are {sorted(CASES)}"
        )
    return sorted(set(numbers))


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    cases = "; ".join(f"{number}: {title}" for number, (title, _) in CASES.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=f"Benchmark mnemo-events against its peers. Cases: {cases}.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument(
        "--repeat", type=_positive, default=5, help="timed repetitions after the warm-up (5)"
    )
    parser.add_argument(
        "--cases", type=_case_numbers, default=sorted(CASES), help="e.g. 1,2,4 (default all)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="Markdown report path (default BENCHMARKS.md, only for a full run of all cases)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the run as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; returns the process exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(args_list)
    command = shlex.join(["python", "-m", "benchmarks", *args_list])
    sizes = QUICK if args.quick else FULL
    output: Path | None = args.output
    if output is None and not args.quick and args.cases == sorted(CASES):
        output = _DEFAULT_OUTPUT
    machine = describe()

    def show(result: CaseResult) -> None:
        print(text_case(result), end="\n\n", flush=True)

    print(f"{command}\n" + ", ".join(f"{k}: {v}" for k, v in machine.items()), end="\n\n")
    results = run_suite(args.cases, sizes, args.repeat, on_done=show)
    print(text_targets(results))
    if output is not None:
        run = (
            f"{'quick (smoke) sizes' if args.quick else 'full sizes'}, {args.repeat} timed "
            f"repetition(s) per contender after {sizes.warmup} warm-up round(s)"
        )
        output.write_text(markdown(results, machine, command, run), encoding="utf-8")
        print(f"\nwrote {output}")
        if output == _DEFAULT_OUTPUT:  # the published run also refreshes the README's figures
            summary = readme_summary(results, machine, command)
            readme = _README.read_text(encoding="utf-8")
            _README.write_text(replace_readme_block(readme, summary), encoding="utf-8")
            print(f"updated the Performance section of {_README}")
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(results, machine, command), indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
