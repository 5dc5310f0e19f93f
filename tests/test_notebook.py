"""The exploration notebook runs headless from top to bottom, so it never rots."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from tests.helpers.notebooks import run_notebook

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "explore_live_events.ipynb"
API_KEY = "notebook-key-0123456789"
SERVE_CONFIG = """\
webhooks:
  persistence_path: {root}/webhooks.json
  delivery_store_path: {root}/deliveries.sqlite3
server:
  port: 0
  api_key: {key}
"""


def test_committed_without_outputs() -> None:
    """The notebook is committed with outputs and execution counts stripped."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def _publish(url: str, stop: threading.Event, sent: list[int]) -> None:
    """Post a memory event and a gap event every 20 ms until told to stop (at most 60 s)."""
    deadline = time.monotonic() + 60
    n = 0
    while not stop.is_set() and time.monotonic() < deadline:
        batch = [
            {
                "type": "memory.created",
                "data": {"memory_id": f"m{n}", "content": "c", "tier": "hot"},
            },
            {"type": "gap.detected", "data": {"gap_id": f"g{n}", "query": "q"}},
        ]
        request = urllib.request.Request(
            url + "/events",
            data=json.dumps(batch).encode(),
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # 127.0.0.1 only
            assert response.status == 202
        sent.append(len(batch))
        n += 1
        stop.wait(0.02)


@pytest.fixture
def live_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real `mnemo-events serve` process and a publisher thread posting to it; its URL and
    key are in the environment the kernel inherits."""
    config = tmp_path / "config.yaml"
    config.write_text(SERVE_CONFIG.format(root=tmp_path, key=API_KEY), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mnemo_events", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    stop = threading.Event()
    sent: list[int] = []
    publisher: threading.Thread | None = None
    try:
        assert proc.stdout is not None
        found = None
        for _ in range(50):  # log lines may come first
            line = proc.stdout.readline()
            assert line, "serve exited before listening"
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                break
        assert found is not None
        url = found.group(1)
        publisher = threading.Thread(target=_publish, args=(url, stop, sent), daemon=True)
        publisher.start()
        monkeypatch.setenv("MNEMO_EVENTS_URL", url)
        monkeypatch.setenv("MNEMO_EVENTS_API_KEY", API_KEY)
        yield url
    finally:
        stop.set()
        if publisher is not None:
            publisher.join(10)
        proc.terminate()
        proc.wait(20)
        if proc.stdout is not None:
            proc.stdout.close()
    assert sum(sent) > 40  # the publisher ran while the notebook read the stream


@pytest.mark.slow
def test_every_cell_runs(kernel_of_this_python: str, live_service: str) -> None:
    """Executing every cell in a fresh kernel raises nothing; the key outputs are there,
    including the live events read from a running service."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    outputs, text = run_notebook(notebook, NOTEBOOK.parent, kernel_of_this_python)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # the rates plot, the dream-session plots, the remote rates
    assert "dream sessions" in text
    assert "memories settled" in text
    assert f"20 live events from {live_service}" in text
    remote = re.search(r"remote observable: (\d+) events in 2 s", text)
    assert remote is not None
    assert int(remote.group(1)) > 10
    assert not [o for o in outputs if o.get("output_type") == "error"]
