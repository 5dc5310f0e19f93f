"""Started webhook managers on temporary files, for tests that need one or several."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from mnemo_events.webhook_manager import WebhookManager

__all__ = ["MakeManager", "started_managers"]

MakeManager = Callable[..., Awaitable[WebhookManager]]


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
