"""Fixtures shared by the whole suite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from webhook_receiver import Receiver

from mnemo_events._log import library_level, set_library_level
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus, reset_event_bus
from mnemo_events.webhook_manager import WebhookManager

MakeManager = Callable[..., Awaitable[WebhookManager]]


@pytest.fixture(autouse=True)
def _isolated_globals(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with no shared bus, no config from the environment, quiet logs."""
    monkeypatch.delenv("MNEMO_EVENTS_CONFIG", raising=False)
    level = library_level()
    reset_event_bus()
    yield
    reset_event_bus()
    set_library_level(level)


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


@contextlib.asynccontextmanager
async def started_managers(tmp_path: Path, *, shared_store: bool) -> AsyncIterator[MakeManager]:
    """A factory of started managers on files in tmp_path (loopback allowed), stopped after.

    With ``shared_store`` every manager uses one delivery store (to test resuming), else
    each gets its own. ``path=`` overrides the webhook file; other keywords are settings.
    """
    made: list[WebhookManager] = []

    async def _make(**settings: Any) -> WebhookManager:
        store = "deliveries.sqlite3" if shared_store else f"deliveries{len(made)}.sqlite3"
        settings.setdefault("allow_private_networks", True)
        settings.setdefault("delivery_store_path", tmp_path / store)
        settings.setdefault("stop_timeout", 0.5)
        manager = WebhookManager(settings.pop("path", tmp_path / "webhooks.json"), **settings)
        made.append(manager)
        await manager.start()
        return manager

    try:
        yield _make
    finally:
        for manager in made:
            await manager.stop()


class Collector:
    """A subscriber that records what it receives and lets a test wait for a count."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        for count, waiter in self._waiters:
            if len(self.events) >= count and not waiter.done():
                waiter.set_result(None)

    @property
    def types(self) -> list[str]:
        """The received event types, in order."""
        return [event.type for event in self.events]

    async def wait_for(self, count: int, within: float = 5.0) -> list[Event]:
        """Wait until ``count`` events arrived (fails the test after ``within`` seconds)."""
        if len(self.events) < count:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append((count, waiter))
            async with asyncio.timeout(within):
                await waiter
        return self.events


@pytest.fixture
def collector() -> Callable[[], Collector]:
    """A factory of collecting subscribers."""
    return Collector
