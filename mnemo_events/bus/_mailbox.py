"""A bounded FIFO mailbox for one consumer task and many producers.

Lighter than ``asyncio.Queue`` on the hot path (a deque and at most one waiter future), and
not bound to one event loop: waiters are created on the loop that waits, so an actor can be
restarted on a new loop with its backlog intact.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from typing import Generic, TypeVar

from mnemo_events.bus._aio import wake

__all__ = ["Mailbox"]

_T = TypeVar("_T")


class Mailbox(Generic[_T]):
    """FIFO with an optional capacity; ``put`` waits for room, ``wait`` for an item."""

    __slots__ = ("_getter", "_items", "_limit", "_putters")

    def __init__(self, capacity: int | None = None) -> None:
        self._items: deque[_T] = deque()
        self._limit = sys.maxsize if capacity is None else capacity
        """The capacity; unbounded is the largest size a deque can reach anyway."""
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)

    def put_nowait(self, item: _T) -> bool:
        """Append ``item`` if there is room; False when full."""
        return self.offer(item) >= 0

    def offer(self, item: _T) -> int:
        """Append ``item`` if there is room and return the new depth; -1 when full."""
        items = self._items
        if len(items) >= self._limit:
            return -1
        items.append(item)
        if self._getter is not None:
            wake(self._getter)
            self._getter = None
        return len(items)

    async def put(self, item: _T, max_wait: float) -> bool:
        """Append ``item``, waiting up to ``max_wait`` seconds for room; False on time-out."""
        if self.put_nowait(item):
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._putters.append(waiter)
            try:
                async with asyncio.timeout(remaining):
                    await waiter
            except TimeoutError:
                return self.put_nowait(item)
            finally:
                if waiter in self._putters:
                    self._putters.remove(waiter)
            if self.put_nowait(item):
                return True

    def extend(self, items: list[_T]) -> None:
        """Append several items, ignoring the capacity (for unbounded mailboxes)."""
        self._items.extend(items)
        if self._getter is not None:
            wake(self._getter)
            self._getter = None

    def take(self, limit: int) -> list[_T]:
        """Take up to ``limit`` of the oldest items and let waiting producers in."""
        items = self._items
        count = min(limit, len(items))
        if count == len(items):  # all of it, the usual case: copied and cleared in C
            taken = list(items)
            items.clear()
        elif count == 1:  # an async handler's actor takes one at a time
            taken = [items.popleft()]
        else:
            popleft = items.popleft
            taken = [popleft() for _ in range(count)]
        putters = self._putters
        if putters:
            for _ in range(min(len(taken), len(putters))):
                wake(putters.popleft())
        return taken

    def put_back(self, items: list[_T]) -> None:
        """Return items taken but not handled to the front, in their order."""
        self._items.extendleft(reversed(items))

    async def wait(self) -> None:
        """Wait until the mailbox holds an item (one consumer at a time)."""
        if self._items:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._getter = waiter
        try:
            await waiter
        finally:
            if self._getter is waiter:
                self._getter = None

    def clear(self) -> int:
        """Drop every item; returns how many were dropped."""
        count = len(self._items)
        self._items.clear()
        while self._putters:
            wake(self._putters.popleft())
        return count
