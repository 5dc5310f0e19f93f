"""A real ``mnemo-events`` service on 127.0.0.1 for tests: settings in tmp_path, fast retries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from mnemo_events.config import Settings
from mnemo_events.event_bus import EventBus
from mnemo_events.server import create_app
from mnemo_events.server._state import SERVICE
from mnemo_events.webhook_manager import WebhookManager

API_KEY = "ops-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def service_settings(
    tmp_path: Path,
    *,
    api_key: str | None = API_KEY,
    max_attempts: int = 2,
    stop_timeout: float = 1.0,
    **server: Any,
) -> Settings:
    """Settings for a test service: files in tmp_path, loopback webhooks, fast retries;
    ``server`` adds or overrides keys of the ``server`` section."""
    return Settings.model_validate(
        {
            "events": {"delivery_timeout": 2.0},
            "webhooks": {
                "persistence_path": str(tmp_path / "webhooks.json"),
                "delivery_store_path": str(tmp_path / "deliveries.sqlite3"),
                "allow_private_networks": True,
                "stop_timeout": stop_timeout,
                "default_retry": {
                    "max_attempts": max_attempts,
                    "base_delay_seconds": 0.01,
                    "max_delay_seconds": 0.02,
                    "timeout_seconds": 2.0,
                },
            },
            "server": {"api_key": api_key, **server},
        }
    )


class Service:
    """A running service and a client session to call it."""

    def __init__(self, app: web.Application, url: str, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.url = url
        self.session = session

    @property
    def bus(self) -> EventBus:
        """The service's bus."""
        return self.app[SERVICE].bus

    @property
    def webhooks(self) -> WebhookManager:
        """The service's webhook manager."""
        return self.app[SERVICE].webhooks

    async def call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> tuple[int, Any]:
        """One authorised request asking for JSON; the status and the decoded body."""
        sent = {**AUTH, "Accept": "application/json", **(headers or {})}
        async with self.session.request(method, self.url + path, headers=sent, **kwargs) as r:
            raw = await r.read()
            return r.status, json.loads(raw) if raw else None

    async def text(self, path: str, accept: str | None = None) -> tuple[str, str]:
        """GET ``path`` as text; the Content-Type and the body."""
        headers = {**AUTH, **({"Accept": accept} if accept is not None else {})}
        async with self.session.get(self.url + path, headers=headers) as r:
            assert r.status == 200, await r.text()
            return r.headers["Content-Type"], await r.text()


@asynccontextmanager
async def running_service(
    settings: Settings, *, port: int = 0, **kwargs: Any
) -> AsyncIterator[Service]:
    """Run ``create_app(settings)`` on 127.0.0.1 until the block ends."""
    app = create_app(settings, **kwargs)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as session:
            yield Service(app, url, session)
    finally:
        await runner.cleanup()
