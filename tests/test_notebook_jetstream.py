"""The JetStream notebook runs headless against a real nats-server fed by another process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.helpers.nats import NatsServer
from tests.helpers.notebooks import run_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "jetstream_live.ipynb"
BEFORE_ATTACH = 30
"""Events the publisher has stored before the notebook starts."""
# Appended to the notebook in memory only: what the kernel saw, for the assertions.
SUMMARY_CELL = """\
import json as _json
print("SUMMARY " + _json.dumps({
    "kernel_pid": os.getpid(),
    "live": [[e.id, e.metadata.get("pid")] for e in live],
    "past": [e.id for e in past],
    "before": [e.id for e in before],
}))
"""


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def publisher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """A real nats-server and a publisher process storing 20 events a second in its stream
    (at most 2,000), with the server's URL in the environment the kernel inherits."""
    out = tmp_path / "published.jsonl"
    with NatsServer(tmp_path / "js") as server:
        command = ["publish", server.url, "2000", str(out), "--interval", "0.05"]
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.nats_child", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            deadline = time.monotonic() + 30
            while len(_records(out)) < BEFORE_ATTACH:
                assert process.poll() is None, "the publisher exited"
                assert time.monotonic() < deadline, "the publisher stored too little in 30 s"
                time.sleep(0.05)
            monkeypatch.setenv("MNEMO_EVENTS_EVENTS_TRANSPORT", server.url)
            yield process, out
        finally:
            process.kill()
            process.wait(10)


def test_committed_without_outputs() -> None:
    """The notebook is committed with outputs and execution counts stripped."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_notebook_watches_and_replays_another_process(
    kernel_of_this_python: str, publisher: tuple[subprocess.Popen[bytes], Path]
) -> None:
    """Run headless, the notebook shows live events that the publisher process stored, and
    its replay holds every event stored before it attached, in stream order."""
    process, out = publisher
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    notebook.cells.append(nbformat.v4.new_code_cell(SUMMARY_CELL))  # type: ignore[no-untyped-call]
    outputs, text = run_notebook(notebook, NOTEBOOK.parent, kernel_of_this_python)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    summary = json.loads(text.split("SUMMARY ", 1)[1].splitlines()[0])
    published = [r["id"] for r in _records(out) if "id" in r]

    shown = re.search(r"(\d+) live events in (\d+) refreshes", text)
    assert shown is not None
    assert int(shown.group(1)) == len(summary["live"]) >= 20
    assert int(shown.group(2)) >= 2  # the table was updated in place while they came
    assert f"published by pid {process.pid} (this kernel is pid {summary['kernel_pid']})" in text
    live_ids = [event_id for event_id, _ in summary["live"]]
    assert {pid for _, pid in summary["live"]} == {process.pid} != {summary["kernel_pid"]}
    first = published.index(live_ids[0])
    assert live_ids == published[first : first + len(live_ids)]  # live: in order, none missed
    assert first >= BEFORE_ATTACH  # from attach on, not replayed

    past = summary["past"]
    assert past == published[: len(past)]  # the whole stream so far, in stream order
    assert len(summary["before"]) >= BEFORE_ATTACH
    assert summary["before"] == published[: len(summary["before"])]
    assert set(live_ids) <= set(past)  # the replay came after the live cell
    observed = re.search(r"replayed as an observable: (\d+) events", text)
    assert observed is not None
    assert int(observed.group(1)) >= len(past)  # read later, up to a later end
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the events-per-second plot of the replay
    tables = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert tables
    assert all(f"<td>{process.pid}</td>" in table for table in tables)
