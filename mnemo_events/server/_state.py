"""What every handler of the service shares: settings, the bus, the webhook manager, counters."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mnemo_events.config import ServerConfig, Settings
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import ConfigError
from mnemo_events.webhook_manager import WebhookManager

__all__ = ["SERVICE", "Service", "is_loopback", "resolve_api_key"]


@dataclass(eq=False)
class Service:
    """The state of one running service (one per ``create_app``)."""

    settings: Settings
    bus: EventBus
    webhooks: WebhookManager
    api_key: str | None
    owns_bus: bool
    owns_webhooks: bool
    responses: Counter[int] = field(default_factory=Counter)
    """Responses sent, by status code."""
    started_at: float = field(default_factory=time.monotonic)
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the service shuts down: live streams end."""
    stream_clients: int = 0
    openapi: dict[str, Any] | None = None

    def server_metrics(self) -> dict[str, Any]:
        """Request counters of this service."""
        return {
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
            "responses_total": sum(self.responses.values()),
            "responses_by_status": {str(code): n for code, n in sorted(self.responses.items())},
            "stream_clients": self.stream_clients,
        }


SERVICE = web.AppKey("mnemo_events.service", Service)


def resolve_api_key(server: ServerConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key ``server.api_key`` designates, inline or ``env:NAME``; None when unset."""
    ref = server.api_key
    if ref is None:
        return None
    if ref.startswith("env:"):
        env = os.environ if environ is None else environ
        return env.get(ref[4:]) or None
    return ref or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(server: ServerConfig, api_key: str | None) -> None:
    """Refuse a bind beyond loopback without an API key.

    Raises:
        ConfigError: no key is configured and ``server.host`` is not a loopback address.
    """
    if api_key is not None or is_loopback(server.host):
        return
    ref = server.api_key
    where = (
        f"server.api_key names the environment variable {ref[4:]}, which is not set"
        if ref and ref.startswith("env:")
        else "server.api_key is empty"
    )
    raise ConfigError(
        f"refusing to serve on {server.host!r} without an API key: {where}. Set one, or "
        "bind to 127.0.0.1 (server.host)"
    )
