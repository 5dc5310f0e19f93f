"""A service served by ``run_server`` on 127.0.0.1 in the test's loop (as ``serve`` runs it), and
raw HTTP helpers for hostile-input tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from mnemo_events.config import Settings
from mnemo_events.server import create_app, run_server

API_KEY = "hostile-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def hardened_settings(tmp_path: Path, **server: Any) -> Settings:
    """Settings for a test service: files in tmp_path, loopback webhooks, fast retries."""
    return Settings.model_validate(
        {
            "events": {"delivery_timeout": 2.0},
            "webhooks": {
                "persistence_path": str(tmp_path / "webhooks.json"),
                "delivery_store_path": str(tmp_path / "deliveries.sqlite3"),
                "allow_private_networks": True,
                "stop_timeout": 0.5,
                "default_retry": {
                    "max_attempts": 2,
                    "base_delay_seconds": 0.01,
                    "max_delay_seconds": 0.02,
                    "timeout_seconds": 2.0,
                },
            },
            "server": {"api_key": API_KEY, "host": "127.0.0.1", "port": 0, **server},
        }
    )


@contextlib.asynccontextmanager
async def served(
    settings: Settings,
    *,
    extra: Callable[[web.Application], None] | None = None,
    **app_kwargs: Any,
) -> AsyncIterator[tuple[str, web.Application]]:
    """Run the service as ``serve`` does (run_server), yielding its base URL and app.

    ``extra`` may add routes before it starts.
    """
    app = create_app(settings, **app_kwargs)
    if extra is not None:
        extra(app)
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_server(app, "127.0.0.1", 0, on_ready=ready.set_result, stop=stop)
    )
    try:
        async with asyncio.timeout(10):
            url = await asyncio.shield(ready)
        yield url, app
    finally:
        stop.set()
        async with asyncio.timeout(20):
            await task


def port_of(url: str) -> int:
    """The port of a base URL such as ``http://127.0.0.1:8080``."""
    return int(url.rsplit(":", 1)[1])


async def raw_request(port: int, request: bytes, *, within: float = 5.0) -> tuple[int, Any]:
    """Send raw bytes as one HTTP/1.1 request; the status and the decoded JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(within):
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return status, json.loads(body) if body else None


def http_request(
    method: str, path: str, body: bytes = b"", *, headers: dict[str, bytes] | None = None
) -> bytes:
    """A raw HTTP/1.1 request with the test API key unless ``headers`` sets Authorization."""
    fields = {"Host": b"127.0.0.1", "Authorization": f"Bearer {API_KEY}".encode()}
    fields.update(headers or {})
    if body or method in ("POST", "PATCH"):
        fields["Content-Type"] = b"application/json"
        fields["Content-Length"] = str(len(body)).encode()
    fields["Connection"] = b"close"
    head = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
        name.encode() + b": " + value + b"\r\n" for name, value in fields.items()
    )
    return head + b"\r\n" + body
