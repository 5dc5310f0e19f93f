"""A real webhook receiver for the tests: an aiohttp app on 127.0.0.1.

It answers each path from a script of replies (then 200), records every request, and checks
every signature with verifiers we did not write: ``stripe.WebhookSignature.verify_header`` for
``X-MnemoCore-Signature`` and ``standardwebhooks.Webhook.verify`` for the Standard Webhooks
headers.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import standardwebhooks
import stripe
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult


async def serve_on_loopback(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on 127.0.0.1 at a free port: its runner (to clean up) and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port: int = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return runner, port


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0
    gate: asyncio.Event | None = None
    """When set, the answer waits until the test opens the gate."""


@dataclass
class Received:
    """One recorded request."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    stripe_ok: bool | None
    standard_ok: bool | None

    @property
    def delivery_id(self) -> str:
        """The ``X-MnemoCore-Delivery`` header."""
        return self.headers.get("X-MnemoCore-Delivery", "")

    @property
    def attempt(self) -> int:
        """The ``X-MnemoCore-Attempt`` header."""
        return int(self.headers.get("X-MnemoCore-Attempt", "0"))


def stripe_verifies(body: bytes, header: str | None, secret: str, tolerance: int = 300) -> bool:
    """Whether Stripe's own verifier accepts the header."""
    try:
        return bool(stripe.WebhookSignature.verify_header(body, header, secret, tolerance))
    except stripe.SignatureVerificationError:
        return False


def standard_verifies(body: bytes, headers: dict[str, str], secret: str) -> bool:
    """Whether the ``standardwebhooks`` package's verifier accepts the headers."""
    try:
        standardwebhooks.Webhook(secret).verify(body, headers, json_parse=False)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


class StaticResolver(AbstractResolver):
    """A DNS stand-in: names map to fixed addresses; unknown names do not resolve."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise OSError(f"{host} does not resolve")
        return [
            ResolveResult(
                hostname=host,
                host=ip,
                port=port,
                family=socket.AF_INET6 if ":" in ip else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for ip in self.table[host]
        ]

    async def close(self) -> None:
        self.closed = True


class Receiver:
    """Records and verifies requests; ``script()`` sets the answers per path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.secrets: dict[str, str] = {}
        self.standard_secrets: dict[str, str] = {}
        self._scripts: dict[str, list[Reply]] = defaultdict(list)
        self._default: dict[str, Reply] = {}
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self.port = await serve_on_loopback(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, path: str = "/hook") -> str:
        """The full URL of a path on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply, then: Reply | None = None) -> None:
        """Answer the next requests to ``path`` with ``replies``, then with ``then`` (200)."""
        self._scripts[path].extend(replies)
        if then is not None:
            self._default[path] = then

    def on(self, path: str) -> list[Received]:
        """The requests received on ``path``."""
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, path: str | None = None, within: float = 10.0) -> None:
        """Wait until ``count`` requests (on ``path``, if given) arrived."""

        def _enough() -> bool:
            seen = self.requests if path is None else self.on(path)
            return len(seen) >= count

        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(_enough)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        headers = dict(request.headers)
        stripe_ok = standard_ok = None
        if path in self.secrets:
            stripe_ok = stripe_verifies(
                body, headers.get("X-MnemoCore-Signature"), self.secrets[path]
            )
        if path in self.standard_secrets:
            standard_ok = standard_verifies(body, headers, self.standard_secrets[path])
        self.requests.append(
            Received(path, headers, body, time.monotonic(), stripe_ok, standard_ok)
        )
        async with self._arrived:
            self._arrived.notify_all()
        script = self._scripts.get(path)
        reply = script.pop(0) if script else self._default.get(path, Reply())
        if reply.gate is not None:
            await reply.gate.wait()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return web.Response(status=reply.status, headers=reply.headers, body=reply.body)


def delivery_ids(requests: Iterable[Received]) -> set[str]:
    """The distinct delivery ids among requests."""
    return {r.delivery_id for r in requests}


def json_bodies(requests: Iterable[Received]) -> list[Any]:
    """The decoded JSON bodies."""
    import json

    return [json.loads(r.body) for r in requests]


async def eventually(check: Any, within: float = 10.0, every: float = 0.01) -> Any:
    """Poll ``check()`` (sync or async) until it returns something truthy; return that."""
    async with asyncio.timeout(within):
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return result
            await asyncio.sleep(every)
