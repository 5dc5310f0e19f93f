"""The benchmark suite: every case runs at tiny sizes and reports well-formed results.

Speed is never asserted here (figures live in BENCHMARKS.md); these tests only keep the
instrument from rotting and check that it refuses to report a contender that lost events.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.__main__ import main
from benchmarks._harness import BenchmarkError, Contender, Tally, Trial, measure
from benchmarks._machine import PACKAGES
from benchmarks._report import README_END, README_START, replace_readme_block
from benchmarks._suite import CASES

ROOT = Path(__file__).resolve().parent.parent
TARGET_CASES = {1, 2, 4, 6, 7, 8}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, str]:
    """One ``python -m benchmarks --quick --repeat 1`` run: its JSON, Markdown and stdout."""
    out = tmp_path_factory.mktemp("benchmarks")
    report, record = out / "BENCHMARKS.md", out / "run.json"
    command = [sys.executable, "-m", "benchmarks", "--quick", "--repeat", "1"]
    command += ["--output", str(report), "--json", str(record)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(record.read_text()), report.read_text(), done.stdout


class TestQuickRun:
    def test_every_case_reports_rows_with_one_sample_each(
        self, quick_run: tuple[dict[str, Any], str, str]
    ) -> None:
        """Each of the seven cases reports rows holding exactly one finite sample per row."""
        record, _, _ = quick_run
        assert [case["number"] for case in record["cases"]] == sorted(CASES)
        for case in record["cases"]:
            assert case["rows"], f"case {case['number']} has no rows"
            for row in case["rows"]:
                assert len(row["samples"]) == 1
                assert all(math.isfinite(value) for value in row["samples"])
                assert row["min"] <= row["median"] <= row["max"]

    def test_rates_are_positive_and_count_their_events(
        self, quick_run: tuple[dict[str, Any], str, str]
    ) -> None:
        """Every events/s row is positive and says how many events each repetition sent."""
        record, _, _ = quick_run
        rates = [r for case in record["cases"] for r in case["rows"] if r["unit"] == "events/s"]
        assert rates
        for row in rates:
            assert row["median"] > 0
            assert row["events"] > 0

    def test_every_baseline_names_a_row_of_the_same_group(
        self, quick_run: tuple[dict[str, Any], str, str]
    ) -> None:
        """A row compared with a baseline gets a ratio, so the baseline row exists."""
        record, _, _ = quick_run
        for case in record["cases"]:
            for row in case["rows"]:
                assert (row["ratio"] is None) == (row["baseline"] is None), row["name"]

    def test_targets_of_issue_7_are_checked(
        self, quick_run: tuple[dict[str, Any], str, str]
    ) -> None:
        """Cases 1, 2, 4, 6 and 7 each check a target, and PASS agrees with the threshold."""
        record, _, _ = quick_run
        with_targets = {case["number"] for case in record["cases"] if case["targets"]}
        assert with_targets == TARGET_CASES
        for case in record["cases"]:
            for target in case["targets"]:
                value, threshold = target["value"], target["threshold"]
                expected = value >= threshold if target["at_least"] else value < threshold
                assert target["passed"] is expected, target["goal"]

    def test_markdown_names_machine_command_targets_and_cases(
        self, quick_run: tuple[dict[str, Any], str, str]
    ) -> None:
        """BENCHMARKS.md records the machine, the command, the targets and every case."""
        record, report, _ = quick_run
        assert record["command"] in report
        assert "## Machine" in report
        assert "## Targets" in report
        for package in PACKAGES:
            assert f"| {package} |" in report
        for number in CASES:
            assert f"## Case {number}:" in report

    def test_printed_tables_list_every_contender(
        self, quick_run: tuple[dict[str, Any], str, str]
    ) -> None:
        """The printed output shows every row and the target summary."""
        record, _, stdout = quick_run
        for case in record["cases"]:
            assert f"Case {case['number']}:" in stdout
            for row in case["rows"]:
                assert row["name"] in stdout
        assert "Targets (issue 7)" in stdout


class _Counted(Trial):
    """A trial that delivers ``delivered`` events, whatever was expected."""

    def __init__(self, delivered: int, log: list[str], name: str) -> None:
        self.tally = Tally()
        self._delivered = delivered
        self._log = log
        self._name = name

    async def run(self) -> None:
        self._log.append(self._name)
        sink = self.tally.sink()
        for _ in range(self._delivered):
            sink(None)


class TestHarness:
    async def test_rounds_interleave_contenders_and_rotate_the_first(self) -> None:
        """Each round runs every contender once, starting one further along each round."""
        log: list[str] = []
        contenders = [Contender(n, functools.partial(_Counted, 3, log, n), 3) for n in "abc"]
        samples = await measure(contenders, events=3, repeat=2, warmup=1)
        assert log == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
        assert {key: len(values.wall) for key, values in samples.items()} == {
            ("", "a"): 2,
            ("", "b"): 2,
            ("", "c"): 2,
        }

    @pytest.mark.parametrize("delivered", [4, 6], ids=["lost_one", "one_extra"])
    async def test_wrong_delivery_count_fails_the_run(self, delivered: int) -> None:
        """A contender that loses or duplicates an event raises instead of being timed."""
        contender = Contender("x", lambda: _Counted(delivered, [], "x"), 5)
        with pytest.raises(BenchmarkError, match="deliveries"):
            await measure([contender], events=5, repeat=1, warmup=0, deadline=0.05)

    async def test_repeat_below_one_is_refused(self) -> None:
        """At least one timed repetition is required."""
        with pytest.raises(ValueError, match="repeat"):
            await measure([], events=1, repeat=0)


class TestCommandLine:
    @pytest.mark.parametrize("argv", [["--cases", "10"], ["--cases", "x"], ["--repeat", "0"]])
    def test_bad_options_are_refused(
        self, argv: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Unknown cases and fewer than one repetition stop the run with a usage error."""
        with pytest.raises(SystemExit) as stopped:
            main(argv)
        assert stopped.value.code == 2
        assert "error" in capsys.readouterr().err


class TestReadmeBlock:
    def test_readme_has_the_markers_the_suite_writes_between(self) -> None:
        """A full run can refresh the README's figures: its markers are there, in order."""
        readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
        updated = replace_readme_block(readme, "| a | table |")
        assert "| a | table |" in updated
        assert updated.index(README_START) < updated.index("| a | table |")
        assert updated.index("| a | table |") < updated.index(README_END)
        assert replace_readme_block(updated, "| b |").count("| a | table |") == 0

    def test_missing_markers_are_refused(self) -> None:
        """Without the markers the suite says so instead of writing anywhere."""
        with pytest.raises(ValueError, match="lacks the markers"):
            replace_readme_block("# no markers here", "x")
