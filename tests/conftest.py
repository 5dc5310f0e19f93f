"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import structlog
from nats.js import JetStreamContext

from mnemo_events._log import library_level, set_library_level
from mnemo_events.event_bus import EventBus, reset_event_bus
from tests.helpers.collector import Collector
from tests.helpers.nats import NatsServer, connect_jetstream
from tests.helpers.receiver import Receiver

_KERNEL_NAME = "mnemo-events-test"


@pytest.fixture(autouse=True)
def _isolated_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no shared bus, no config from the environment, quiet logs, and
    structlog unconfigured (so the library's lines go to the standard library's logging)."""
    monkeypatch.delenv("MNEMO_EVENTS_CONFIG", raising=False)
    level = library_level()
    reset_event_bus()
    yield
    reset_event_bus()
    set_library_level(level)
    structlog.reset_defaults()  # a test that configured structlog leaves nothing behind


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    """A started bus with short time-outs and no schema checks, shut down after the test."""
    async with EventBus(delivery_timeout=1.0, publish_timeout=0.2, validation="off") as started:
        yield started


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that records requests and checks signatures."""
    async with Receiver() as started:
        yield started


@pytest.fixture
def collector() -> Callable[[], Collector]:
    """A factory of collecting subscribers."""
    return Collector


@pytest.fixture
def kernel_of_this_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The name of a Jupyter kernelspec (under tmp_path) that starts ipykernel with this
    interpreter, the test venv's python: what the notebook tests run their notebooks in."""
    spec_dir = tmp_path / "jupyter" / "kernels" / _KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mnemo-events tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")  # silences jupyter_core's path warning
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return _KERNEL_NAME


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream on a free loopback port, stopped after the test."""
    with NatsServer(tmp_path / "js") as started:
        yield started


@pytest.fixture
async def connection(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on its own connection, closed after the test."""
    nc, js = await connect_jetstream(server.url)
    yield js
    await nc.close()
