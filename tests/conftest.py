"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import structlog

from mnemo_events._log import library_level, set_library_level
from mnemo_events.event_bus import EventBus, reset_event_bus
from tests.helpers.collector import Collector
from tests.helpers.receiver import Receiver


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
