"""`serve` refuses to start on a damaged delivery store or webhook file: one line, exit 2."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

API_KEY = "start-refusal-key-0123456789"


def _serve(tmp_path: Path, store: Path, registry: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text(
        "webhooks:\n"
        f"  persistence_path: {registry}\n"
        f"  delivery_store_path: {store}\n"
        "server:\n"
        "  port: 0\n"
        f"  api_key: {API_KEY}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMO_EVENTS_")}
    return subprocess.run(
        [sys.executable, "-m", "mnemo_events", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize(
    "content", [b"", b"this is not a database\n" * 100], ids=["0-byte", "text"]
)
def test_a_damaged_store_is_exit_2_naming_the_file(tmp_path: Path, content: bytes) -> None:
    """A 0-byte or non-SQLite delivery store stops `serve` with one line naming the file and
    exit 2; the file is left byte for byte as it was."""
    store = tmp_path / "deliveries.sqlite3"
    store.write_bytes(content)
    before = _digest(store)
    done = _serve(tmp_path, store, tmp_path / "webhooks.json")
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(store) in done.stderr
    assert _digest(store) == before


@pytest.mark.slow
def test_a_bad_pattern_in_the_webhook_file_is_exit_2(tmp_path: Path) -> None:
    """A webhook file holding the pattern `cor.>.x` stops `serve` with exit 2 naming the file,
    and the file is not rewritten."""
    registry = tmp_path / "webhooks.json"
    registry.write_text(
        json.dumps(
            {
                "format": "mnemo-events.webhooks",
                "version": 1,
                "webhooks": [
                    {
                        "id": "wh_0123456789abcdef01234567",
                        "url": "http://127.0.0.1:9/h",
                        "events": ["cor.>.x"],
                        "secret": "whsec_" + "a" * 32,
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    before = _digest(registry)
    done = _serve(tmp_path, tmp_path / "deliveries.sqlite3", registry)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(registry) in done.stderr
    assert "'cor.>.x'" in done.stderr
    assert _digest(registry) == before
