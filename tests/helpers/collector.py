"""A subscriber that records what it receives, for tests of the bus."""

from __future__ import annotations

import asyncio

from mnemo_events.event import Event

__all__ = ["Collector"]


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
