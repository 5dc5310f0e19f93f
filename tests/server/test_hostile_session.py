"""A hostile session against a real ``serve`` process leaks no secret (hardening issue, item 2).

The session sends wrong and non-UTF-8 keys, hostile bodies, webhooks with credentials in
their headers and URL, rotations, and deliveries that fail; then every byte the service
wrote (stdout and stderr, with JSON logs at debug level, and with the console renderer)
and every response body is searched for the API key, the signing secrets, the receiver
header values and the URL password. The only place a signing secret may appear is the
``secret`` field of the register and rotate-secret responses, which show it once by design.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers.receiver import Receiver, Reply, eventually
from tests.helpers.served import (
    API_KEY,
    http_request,
    port_of,
    raw_request,
    serve_config,
    start_serve,
)

RECEIVER_TOKEN = "rcv-token-Zq8vB1xT"
RECEIVER_KEY = "rcv-apikey-Hj3kL9pQ"
RECEIVER_COOKIE = "session=rcv-cookie-Wm4nR7sD"
URL_PASSWORD = "url-pass-Tg5yU2iO"
GIVEN_SECRET = "whsec_given-inline-secret-Aa1Bb2Cc3Dd4"
ROTATED_SECRET = "whsec_rotated-given-Ee5Ff6Gg7Hh8"


class Session:
    """Calls to the service, keeping every response body for the search."""

    def __init__(self, client: aiohttp.ClientSession, port: int) -> None:
        self.client = client
        self.port = port
        self.bodies: list[str] = []
        self.shown_once: list[str] = []
        """Secrets the register and rotate responses show by design."""

    async def call(
        self, method: str, path: str, *, key: str | None = API_KEY, **kwargs: Any
    ) -> tuple[int, Any]:
        """One request; the body is recorded (without a shown-once secret field)."""
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        async with self.client.request(method, path, headers=headers, **kwargs) as r:
            text = await r.text()
        body = json.loads(text) if text and r.content_type == "application/json" else None
        shows_secret = r.status in (200, 201) and method == "POST" and path.startswith("/webhooks")
        if (
            shows_secret
            and isinstance(body, dict)
            and body.get("secret") not in (None, "whsec_****")
        ):
            self.shown_once.append(body.pop("secret"))
            text = json.dumps(body)
        self.bodies.append(text)
        return r.status, body

    async def raw(self, request: bytes) -> int:
        """A raw request (bytes aiohttp's client would not send); its body is recorded."""
        status, body = await raw_request(self.port, request)
        self.bodies.append(json.dumps(body))
        return status


async def _hostile_session(session: Session, receiver: Receiver) -> str:
    """Everything an attacker or a careless operator tries; returns the last webhook id."""
    for key in ("wrong", API_KEY + "x", "", API_KEY[:-1]):
        status, _ = await session.call("GET", "/webhooks", key=key)
        assert status == 401
    assert await session.raw(http_request("GET", "/events", headers={
        "Authorization": b"Bearer \xff" + API_KEY.encode()})) == 401  # fmt: skip
    assert await session.raw(http_request("GET", "/events", headers={
        "Authorization": b"Bearer \xff\xfe\xfd"})) == 401  # fmt: skip
    for body in (b"[" * 100_000 + b"]" * 100_000, b"[" * 850 + b"]" * 850,
                 b'{"type": "memory.created", "data": {"n": ' + b"9" * 5000 + b"}}",
                 b'{"type": "memory.created", "data": {"n": 1e999}}', b"{nope"):  # fmt: skip
        assert await session.raw(http_request("POST", "/events", body)) == 400
    receiver.script("/creds", then=Reply(500))  # every delivery fails, and is retried
    status, headers_hook = await session.call(
        "POST",
        "/webhooks",
        json={
            "url": receiver.url("/creds"),
            "events": [">"],
            # With a webhook file, credential headers are secret references (MnemoCore's rule),
            # resolved from the service's environment at send time.
            "headers": {
                "Authorization": "env:RCV_AUTHORIZATION",
                "X-Api-Key": "env:RCV_API_KEY",
                "Cookie": "env:RCV_COOKIE",
            },
            "secret": GIVEN_SECRET,
        },
    )
    assert status == 201, headers_hook
    status, plain_hook = await session.call(
        "POST", "/webhooks", json={"url": receiver.url("/plain"), "events": [">"]}
    )
    assert status == 201, plain_hook
    url_with_password = receiver.url("/userinfo").replace("://", f"://user:{URL_PASSWORD}@")
    for refused in (
        {"url": url_with_password, "events": [">"]},  # URL credentials: refused (422)
        {"url": url_with_password, "events": [">"],
         "headers": {"Authorization": f"Bearer {RECEIVER_TOKEN}"}},
        {"url": receiver.url("/x"), "events": [">"],  # a plaintext credential header
         "headers": {"X-Api-Key": RECEIVER_KEY}},
    ):  # fmt: skip
        status, _ = await session.call("POST", "/webhooks", json=refused)
        assert status == 422
    for hook in (headers_hook, plain_hook):
        status, _ = await session.call(
            "POST", f"/webhooks/{hook['id']}/rotate-secret", json={"grace_seconds": 60}
        )
        assert status == 200
        await session.call("POST", f"/webhooks/{hook['id']}/rotate-secret", data=b'{"grace')
        await session.call(
            "POST",
            f"/webhooks/{hook['id']}/rotate-secret",
            json={"secret": ROTATED_SECRET, "grace_seconds": 0},
        )
        await session.call("PATCH", f"/webhooks/{hook['id']}", json={"url": "ftp://x/"})
    for n in range(5):
        status, _ = await session.call(
            "POST",
            "/events",
            json={"type": "gap.detected", "data": {"gap_id": f"g{n}", "query": "q"}},
        )
        assert status == 202
    await receiver.wait_for(10, "/creds")
    await receiver.wait_for(5, "/plain")
    await session.call("GET", "/webhooks")
    for hook in (headers_hook, plain_hook):
        await session.call("GET", f"/webhooks/{hook['id']}")
        _, found = await session.call("GET", f"/webhooks/{hook['id']}/deliveries")
        for delivery in found["deliveries"][:3]:
            await session.call("GET", f"/deliveries/{delivery['id']}")
        await session.call("POST", f"/webhooks/{hook['id']}/replay-failed")
    await session.call("GET", "/metrics")
    await session.call("GET", "/events?limit=²")
    return str(headers_hook["id"])


RECEIVER_ENV = {
    "RCV_AUTHORIZATION": f"Bearer {RECEIVER_TOKEN}",
    "RCV_API_KEY": RECEIVER_KEY,
    "RCV_COOKIE": RECEIVER_COOKIE,
}


@pytest.mark.slow
@pytest.mark.parametrize("flags", [("--json-logs",), ()], ids=["json-logs", "console"])
async def test_no_secret_appears_in_any_output(
    tmp_path: Path, receiver: Receiver, flags: tuple[str, ...]
) -> None:
    """After a hostile session, no log line, stderr byte or response body holds the API key,
    a signing secret, a receiver header value or a URL password."""
    config = tmp_path / "config.yaml"
    config.write_text(
        serve_config(tmp_path, API_KEY, max_attempts=2, base_delay=0.01, max_delay=0.02),
        encoding="utf-8",
    )
    proc, url = await start_serve(
        config, "--log-level", "debug", *flags, env={**os.environ, **RECEIVER_ENV}
    )
    try:
        async with aiohttp.ClientSession(url) as client:
            session = Session(client, port_of(url))
            webhook_id = await _hostile_session(session, receiver)
            _, found = await session.call("GET", f"/webhooks/{webhook_id}/deliveries")
            await eventually(lambda: len(receiver.on("/creds")) >= 10)
            assert found["count"] >= 5
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    # The receiver did get the credentials: the search below is not vacuous.
    sent = receiver.on("/creds")[0].headers
    assert sent["X-Api-Key"] == RECEIVER_KEY
    assert sent["Authorization"] == f"Bearer {RECEIVER_TOKEN}"
    secrets = {
        "the API key": API_KEY,
        "the given secret": GIVEN_SECRET,
        "the rotated given secret": ROTATED_SECRET,
        "a receiver token": RECEIVER_TOKEN,
        "a receiver key": RECEIVER_KEY,
        "a receiver cookie": RECEIVER_COOKIE.split("=", 1)[1],
        "a URL password": URL_PASSWORD,
        **{f"shown-once secret {n}": s for n, s in enumerate(session.shown_once)},
    }
    assert len(session.shown_once) >= 4  # two registered, two rotated at least
    outputs = {
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace"),
        "responses": "\n".join(session.bodies),
    }
    assert "server.unhandled_error" not in outputs["stdout"] + outputs["stderr"]
    leaks = [
        f"{what} in {where}"
        for what, secret in secrets.items()
        for where, text in outputs.items()
        if secret in text or secret.removeprefix("whsec_") in text
    ]
    assert leaks == []
