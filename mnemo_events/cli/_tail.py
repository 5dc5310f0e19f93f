"""``tail``: print the live stream of a running ``mnemo-events serve``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp

from mnemo_events.config import Settings
from mnemo_events.server import resolve_api_key

__all__ = ["format_event", "read_sse", "run_tail"]


async def read_sse(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, str]]:
    """The messages of a ``text/event-stream`` body, as field dicts (comments skipped)."""
    fields: dict[str, str] = {}
    async for raw in content:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if fields:
                yield fields
                fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        fields[name] = f"{fields[name]}\n{value}" if name in fields else value


def format_event(event: dict[str, Any]) -> str:
    """One event as a line: time, type, id, and the payload as compact JSON."""
    stamp = str(event.get("published_at", ""))
    try:
        shown = datetime.fromisoformat(stamp).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        shown = stamp
    data = json.dumps(event.get("data", {}), separators=(",", ":"), ensure_ascii=False)
    return f"{shown}  {event.get('type', '?'):<24} {event.get('id', '?')}  {data}"


def _base_url(args: argparse.Namespace, settings: Settings) -> str:
    if args.url:
        return str(args.url).rstrip("/")
    host = settings.server.host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{f'[{host}]' if ':' in host else host}:{settings.server.port}"


def _api_key(args: argparse.Namespace, settings: Settings) -> str | None:
    if args.api_key:
        overridden = settings.server.model_copy(update={"api_key": args.api_key})
        return resolve_api_key(overridden)
    return resolve_api_key(settings.server)


async def _tail(args: argparse.Namespace, settings: Settings) -> int:
    url = f"{_base_url(args, settings)}/events/stream"
    key = _api_key(args, settings)
    headers = {"Accept": "text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    seen = 0
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(url, params={"pattern": args.pattern}, headers=headers) as response,
    ):
        if response.status != 200:
            detail = await response.text()
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("detail", detail)
            print(f"mnemo-events tail: {url} answered {response.status}: {detail}", file=sys.stderr)
            return 1
        print(f"connected to {url} (pattern {args.pattern})", file=sys.stderr, flush=True)
        async for message in read_sse(response.content):
            raw = message.get("data")
            if raw is None:
                continue
            event = json.loads(raw)
            print(json.dumps(event, ensure_ascii=False) if args.json else format_event(event))
            sys.stdout.flush()
            seen += 1
            if args.count is not None and seen >= args.count:
                return 0
    print("mnemo-events tail: the service closed the stream", file=sys.stderr)
    return 0


def run_tail(args: argparse.Namespace, settings: Settings) -> int:
    """``tail``: exit 0 on Ctrl-C, ``--count`` events or the end of the stream; 1 on errors."""
    try:
        return asyncio.run(_tail(args, settings))
    except KeyboardInterrupt:
        return 0
    except aiohttp.ClientConnectionError as err:
        print(
            f"mnemo-events tail: cannot connect ({err}); is `mnemo-events serve` running?",
            file=sys.stderr,
        )
        return 1
