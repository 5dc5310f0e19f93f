"""The bus across real OS processes on a real nats-server: sharing, SIGKILL, server restarts."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.nats import NatsServer

# Run as a module: a script's own folder goes first on sys.path, and tests/helpers/nats.py
# would then hide the nats package.
CHILD = "tests.helpers.nats_child"
ROOT = Path(__file__).parent.parent.parent

pytestmark = pytest.mark.slow


class Child:
    """One ``nats_child.py`` process; closing its stdin ends a subscriber cleanly."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", CHILD, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def wait_for_line(self, prefix: str, timeout: float = 30.0) -> str:
        """The next stdout line starting with ``prefix``; fails after ``timeout`` seconds."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    continue
                line = stdout.readline().decode()
                if not line:
                    break
                if line.startswith(prefix):
                    return line.strip()
        raise AssertionError(f"no {prefix!r} line from the child within {timeout}s")

    def finish(self, timeout: float = 20.0) -> int:
        """Close stdin and wait for the exit code (killed after ``timeout`` seconds)."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def children() -> Iterator[Callable[..., Child]]:
    """A factory of child processes, every one killed after the test."""
    started: list[Child] = []

    def start(*args: str) -> Child:
        child = Child(*args)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _stats(out: Path) -> dict[str, Any]:
    path = Path(f"{out}.stats.json")
    try:
        loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return loaded


class TestAcrossProcesses:
    def test_publish_in_one_process_subscribers_in_two_others(
        self, tmp_path: Path, server: NatsServer, children: Callable[..., Child]
    ) -> None:
        """Every event published in one process reaches the live subscribers of two other
        processes, each in publish order."""
        outs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
        subs = [children("subscribe", server.url, "memory.*", str(out)) for out in outs]
        for sub in subs:
            sub.wait_for_line("READY")
        published = tmp_path / "published.jsonl"
        publisher = children("publish", server.url, "200", str(published))
        publisher.wait_for_line("DONE")
        assert publisher.finish() == 0
        ids = [r["id"] for r in _records(published)]
        assert len(ids) == 200
        _wait(lambda: all(len(_records(out)) >= 200 for out in outs), 20, "200 events each")
        for sub in subs:
            assert sub.finish() == 0
        for out in outs:
            assert [r["id"] for r in _records(out)] == ids

    def test_durable_name_shares_work_between_processes(
        self, tmp_path: Path, server: NatsServer, children: Callable[..., Child]
    ) -> None:
        """Two processes with the same durable name split the events: each handled once,
        by one of them, and both take part."""
        out = tmp_path / "handled.jsonl"
        workers = [
            children(
                "subscribe", server.url, "memory.>", str(out), "--durable", "w", "--delay", "0.01"
            )
            for _ in range(2)
        ]
        for worker in workers:
            worker.wait_for_line("READY")
        published = tmp_path / "published.jsonl"
        children("publish", server.url, "200", str(published)).wait_for_line("DONE")
        ids = {r["id"] for r in _records(published)}
        _wait(lambda: {r["id"] for r in _records(out)} >= ids, 40, "every event handled")
        for worker in workers:
            assert worker.finish() == 0
        handled = _records(out)
        assert len(handled) == len(ids) == 200
        by_pid: dict[int, int] = {}
        for record in handled:
            by_pid[record["pid"]] = by_pid.get(record["pid"], 0) + 1
        assert len(by_pid) == 2, by_pid

    def test_sigkill_mid_stream_then_restart_loses_no_event(
        self, tmp_path: Path, server: NatsServer, children: Callable[..., Child]
    ) -> None:
        """A durable subscriber killed with SIGKILL in the middle of an event gets that event
        again after its restart, and every later one; the redelivery is counted."""
        out = tmp_path / "handled.jsonl"
        args = ("subscribe", server.url, "memory.created", str(out), "--durable", "crash")
        first = children(*args, "--stall-at", "40", "--delivery-timeout", "2")
        first.wait_for_line("READY")
        published = tmp_path / "published.jsonl"
        children("publish", server.url, "100", str(published)).wait_for_line("DONE")
        first.wait_for_line("STALLED")
        first.kill()
        before = {r["n"] for r in _records(out)}
        assert before == set(range(40))
        second = children(*args, "--delivery-timeout", "2")
        second.wait_for_line("READY")
        ids = {r["id"] for r in _records(published)}
        _wait(lambda: {r["id"] for r in _records(out)} >= ids, 40, "every event handled")
        _wait(
            lambda: bool(_stats(out).get("durable")) and _stats(out)["durable"][0]["redelivered"],
            10,
            "the redelivery to show in the stats",
        )
        assert second.finish() == 0
        after = [r["n"] for r in _records(out) if r["n"] not in before]
        assert sorted(after) == list(range(40, 100))  # 40 again, after its ack_wait
        assert _stats(out)["durable"][0]["redelivered"] >= 1

    def test_server_restart_mid_stream_loses_no_published_event(
        self, tmp_path: Path, server: NatsServer, children: Callable[..., Child]
    ) -> None:
        """nats-server restarted while events flow: every event whose publish returned reaches
        the durable subscriber of another process, and the live one too."""
        durable_out, live_out = tmp_path / "durable.jsonl", tmp_path / "live.jsonl"
        durable = children(
            "subscribe", server.url, "memory.created", str(durable_out), "--durable", "d"
        )
        live = children("subscribe", server.url, "memory.created", str(live_out))
        durable.wait_for_line("READY")
        live.wait_for_line("READY")
        published = tmp_path / "published.jsonl"
        publisher = children("publish", server.url, "300", str(published), "--interval", "0.01")
        _wait(lambda: len(_records(published)) >= 60, 30, "the first 60 publishes")
        server.restart()
        publisher.wait_for_line("DONE", timeout=60)
        stored = {r["id"] for r in _records(published) if "id" in r}
        assert len(stored) >= 250  # publish retried through the restart
        _wait(lambda: {r["id"] for r in _records(durable_out)} >= stored, 40, "durable")
        _wait(lambda: {r["id"] for r in _records(live_out)} >= stored, 40, "live")
        assert durable.finish() == 0
        assert live.finish() == 0
        live_ids = [r["id"] for r in _records(live_out)]
        assert len(live_ids) == len(set(live_ids))  # the live feed resumed without repeats


class TestDemo:
    def test_demo_over_nats_runs_engine_and_subscribers_in_two_processes(self) -> None:
        """`mnemo-events demo --nats` starts a local nats-server, publishes from an engine
        process and delivers every event's webhooks from another."""
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from mnemo_events.cli import main; sys.exit(main(sys.argv[1:]))",
                "demo",
                "--nats",
                "--events",
                "150",
                "--rate",
                "0",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=ROOT,
            check=False,
        )
        summary = json.loads(done.stdout)
        assert done.returncode == 0, summary
        assert summary["engine_pid"] != summary["subscriber_pid"]
        assert summary["events_published"] == summary["events_received"] == 150
        assert summary["deliveries"]["audit"]["success"] == 150
        assert summary["signatures"]["invalid"] == 0
