"""A service served by ``run_server`` on 127.0.0.1 in the test's loop (as ``serve`` runs it),
a real ``mnemo-events serve`` process with its config file, and raw HTTP helpers for
hostile-input tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from mnemo_events.config import Settings
from mnemo_events.server import create_app, run_server
from tests.helpers.service import service_settings

API_KEY = "hostile-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def hardened_settings(tmp_path: Path, **server: Any) -> Settings:
    """Settings for a test service: files in tmp_path, loopback webhooks, fast retries."""
    return service_settings(
        tmp_path, api_key=API_KEY, stop_timeout=0.5, host="127.0.0.1", port=0, **server
    )


def serve_config(
    root: Path,
    api_key: str,
    *,
    max_attempts: int = 50,
    base_delay: float = 0.05,
    max_delay: float = 0.2,
) -> str:
    """A ``config.yaml`` for a ``mnemo-events serve`` process: files in ``root``, loopback
    webhooks, a short stop timeout, any free port."""
    return (
        "webhooks:\n"
        f"  persistence_path: {root}/webhooks.json\n"
        f"  delivery_store_path: {root}/deliveries.sqlite3\n"
        "  allow_private_networks: true\n"
        "  stop_timeout: 0.2\n"
        f"  default_retry: {{max_attempts: {max_attempts}, base_delay_seconds: {base_delay}, "
        f"max_delay_seconds: {max_delay}}}\n"
        "server:\n"
        "  port: 0\n"
        f"  api_key: {api_key}\n"
    )


async def start_serve(
    config: Path,
    *flags: str,
    env: Mapping[str, str] | None = None,
    stderr: int = asyncio.subprocess.PIPE,
) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``mnemo-events serve --config config *flags`` and wait (up to 30 s) for the URL
    it says it listens on; the caller stops the process (killed here if it never listens)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mnemo_events", "serve", "--config", str(config), *flags,
        stdout=asyncio.subprocess.PIPE, stderr=stderr, env=None if env is None else dict(env),
    )  # fmt: skip
    assert proc.stdout is not None
    seen = b""
    try:
        async with asyncio.timeout(30):
            while True:  # log lines may come first
                line = await proc.stdout.readline()
                assert line, f"serve exited before listening: {seen!r}"
                seen += line
                found = re.search(r"listening on (http://\S+)", line.decode())
                if found:
                    return proc, found.group(1)
    except BaseException:  # never leave a half-started serve behind
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise


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
