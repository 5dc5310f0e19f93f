"""``listen``: the receiving team's side, as ``stripe listen`` is for Stripe.

A local aiohttp receiver that checks the signature of every request (``X-MnemoCore-Signature``,
and the Standard Webhooks headers when present, against each ``--secret``), prints the
delivery, and answers: 401 for a bad or missing signature, else the next code of ``--status``
(the last one repeated), so retries can be provoked on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import os
import signal
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from mnemo_events.config import Settings
from mnemo_events.webhooks.signature import (
    SIGNATURE_HEADER,
    StandardWebhookSignature,
    WebhookSignature,
)

__all__ = ["Listener", "run_listen"]


@dataclass
class Listener:
    """The receiver's state: secrets, the answers to give, what it saw."""

    secrets: list[str]
    statuses: list[int]
    tolerance: float | None
    as_json: bool = False
    quiet: bool = False
    count: int | None = None
    received: int = 0
    invalid: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def verify(self, body: bytes, headers: dict[str, str]) -> tuple[bool, str]:
        """Whether any secret verifies the request, and under which scheme (or why not)."""
        stripe_header = headers.get(SIGNATURE_HEADER)
        has_standard = "webhook-signature" in {k.lower() for k in headers}
        if stripe_header is None and not has_standard:
            return False, "no signature header"
        for secret in self.secrets:
            if stripe_header is not None and WebhookSignature.verify(
                body, secret, stripe_header, self.tolerance
            ):
                return True, "x-mnemocore-signature"
            if has_standard and StandardWebhookSignature.verify(
                body, secret, headers, self.tolerance
            ):
                return True, "standard-webhooks"
        return False, "no signature matches the body and the secret(s)"

    def next_status(self) -> int:
        """The status code for the next verified delivery."""
        index = min(self.received - self.invalid - 1, len(self.statuses) - 1)
        return self.statuses[max(index, 0)]

    async def handle(self, request: web.Request) -> web.Response:
        """Check, print and answer one request."""
        body = await request.read()
        headers = dict(request.headers)
        self.received += 1
        ok, scheme = self.verify(body, headers)
        if not ok:
            self.invalid += 1
        status = self.next_status() if ok else 401
        self._print(request, body, headers, ok, scheme, status)
        if self.count is not None and self.received >= self.count:
            self.done.set()
        if not ok:
            return web.json_response({"error": "invalid signature", "detail": scheme}, status=401)
        return web.json_response({"received": True}, status=status)

    def _print(
        self,
        request: web.Request,
        body: bytes,
        headers: dict[str, str],
        ok: bool,
        scheme: str,
        status: int,
    ) -> None:
        payload: Any
        try:
            payload = json.loads(body)
        except ValueError:
            payload = body.decode("utf-8", "replace")
        event = payload if isinstance(payload, dict) else {}
        record = {
            "received_at": datetime.now(UTC).isoformat(),
            "path": request.path,
            "event_type": headers.get("X-MnemoCore-Event", event.get("type")),
            "event_id": event.get("id"),
            "delivery_id": headers.get("X-MnemoCore-Delivery"),
            "attempt": headers.get("X-MnemoCore-Attempt"),
            "verified": ok,
            "scheme" if ok else "problem": scheme,
            "answered": status,
            "payload": payload,
        }
        if self.as_json:
            print(json.dumps(record, ensure_ascii=False), flush=True)
            return
        stamp = record["received_at"][11:23]
        mark = "verified" if ok else f"INVALID ({scheme})"
        print(
            f"{stamp}  {record['event_type']}  {record['delivery_id']} attempt "
            f"{record['attempt']}  {mark}  -> {status}",
            flush=True,
        )
        if not self.quiet:
            data = event.get("data", payload)
            print(f"    {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}", flush=True)


def _secret(value: str) -> str | None:
    if value.startswith("env:"):
        return os.environ.get(value[4:]) or None
    return value or None


async def _serve(listener: Listener, host: str, port: int) -> None:
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", listener.handle)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, listener.done.set)
    try:
        await web.TCPSite(runner, host, port).start()
        bound = runner.addresses[0][1] if runner.addresses else port
        shown = f"[{host}]" if ":" in host else host
        print(
            f"mnemo-events listen: receiving on http://{shown}:{bound}/ (any path), checking "
            f"signatures with {len(listener.secrets)} secret(s); answers "
            f"{','.join(map(str, listener.statuses))}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        await listener.done.wait()
    finally:
        await runner.cleanup()


def run_listen(args: argparse.Namespace, settings: Settings) -> int:
    """``listen``: exit 0 when every signature verified, 1 otherwise, 2 on bad usage."""
    secrets: list[str] = []
    for value in args.secret:
        secret = _secret(value)
        if secret is None:
            print(f"mnemo-events listen: {value[4:]} is not set or empty", file=sys.stderr)
            return 2
        secrets.append(secret)
    listener = Listener(
        secrets=secrets,
        statuses=list(args.status),
        tolerance=args.tolerance or None,
        as_json=args.json,
        quiet=args.quiet,
        count=args.count,
    )
    try:
        asyncio.run(_serve(listener, args.host, args.port))
    except OSError as err:
        if err.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        print(
            f"mnemo-events listen: cannot listen on {args.host}:{args.port}: "
            f"{err.strerror or err} (choose another with --port)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        pass
    print(
        f"mnemo-events listen: {listener.received} requests, {listener.invalid} with a bad "
        "signature",
        file=sys.stderr,
    )
    return 0 if listener.invalid == 0 else 1
