"""Small hostile requests against the service: each is a 4xx naming the problem, never a 500.

The inputs are the exact ones of the hardening issue (items 2 and 12): a non-UTF-8
``Authorization`` header, a 100,000-deep body, a 5,000-digit integer, ``?limit=²``,
``grace_seconds`` of ``1e400`` and ``1e999``, an 850-deep array.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web

from mnemo_events.logging import configure_logging
from tests.helpers.receiver import Receiver
from tests.helpers.served import (
    AUTH,
    hardened_settings,
    http_request,
    port_of,
    raw_request,
    served,
)

MEMORY = {"memory_id": "mem_1", "content": "the cat is called Miso", "tier": "hot"}


class Service:
    """A served service, a client session, and one registered webhook."""

    def __init__(self, url: str, app: web.Application, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.app = app
        self.session = session
        self.port = port_of(url)
        self.webhook: dict[str, Any] = {}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One request with the API key; the status and the decoded JSON body."""
        async with self.session.request(method, self.url + path, headers=AUTH, **kwargs) as r:
            raw = await r.read()
            return r.status, json.loads(raw) if raw else None


@pytest.fixture
async def service(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Service]:
    """A running service (default body limit) with one webhook registered."""
    async with served(hardened_settings(tmp_path)) as (url, app), aiohttp.ClientSession() as s:
        running = Service(url, app, s)
        status, hook = await running.call(
            "POST", "/webhooks", json={"url": receiver.url("/hook"), "events": ["memory.*"]}
        )
        assert status == 201, hook
        running.webhook = hook
        yield running


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _event_with(raw_value: bytes) -> bytes:
    return b'{"type": "memory.created", "data": {"memory_id": "m", "content": ' + raw_value + b"}}"


BODIES = [
    # (label, raw body, status, a substring of the problem)
    ("100,000-deep array", _nested(100_000), 400, "nests deeper than 100 levels"),
    ("850-deep array", _nested(850), 400, "nests deeper than 100 levels"),
    ("850-deep event data", b'{"type": "memory.created", "data": {"x": ' + _nested(850) + b"}}",
     400, "nests deeper than 100 levels"),
    ("5,000-digit integer", _event_with(b"9" * 5000), 400, "an integer of 5000 digits"),
    ("negative 5,000-digit integer", _event_with(b"-" + b"9" * 5000), 400,
     "an integer of 5000 digits"),
    ("1e400", _event_with(b"1e400"), 400, "1e400 is out of range"),
    ("1e999", _event_with(b"1e999"), 400, "1e999 is out of range"),
    ("NaN", _event_with(b"NaN"), 400, "NaN is not JSON"),
    ("-Infinity", _event_with(b"-Infinity"), 400, "-Infinity is not JSON"),
    ("lone surrogate", _event_with(b'"\\ud800"'), 422, "lone surrogate (\\ud800)"),
]  # fmt: skip


class TestBodies:
    @pytest.mark.parametrize(
        ("label", "body", "status", "problem"), BODIES, ids=[row[0] for row in BODIES]
    )
    async def test_publish_refuses_the_body_naming_the_problem(
        self, service: Service, label: str, body: bytes, status: int, problem: str
    ) -> None:
        """POST /events with a hostile body is a 4xx naming the problem; nothing is published."""
        got, answer = await raw_request(service.port, http_request("POST", "/events", body))
        assert (got, answer["status"]) == (status, status), answer
        assert any(problem in p for p in answer["problems"]), answer["problems"]
        _, history = await service.call("GET", "/events")
        assert history["count"] == 0

    @pytest.mark.parametrize("number", [b"1e400", b"1e999"])
    async def test_an_infinite_grace_period_is_refused_and_the_old_secret_is_not_kept(
        self, service: Service, tmp_path: Path, number: bytes
    ) -> None:
        """rotate-secret with grace_seconds 1e400 or 1e999 is a 400; nothing rotates and
        webhooks.json holds no Infinity."""
        path = f"/webhooks/{service.webhook['id']}/rotate-secret"
        body = b'{"grace_seconds": ' + number + b"}"
        got, answer = await raw_request(service.port, http_request("POST", path, body))
        assert got == 400
        assert f"{number.decode()} is out of range" in answer["detail"]
        _, shown = await service.call("GET", f"/webhooks/{service.webhook['id']}")
        assert shown["rotating_secrets"] == 0
        assert "Infinity" not in (tmp_path / "webhooks.json").read_text(encoding="utf-8")

    async def test_a_grace_period_beyond_thirty_days_is_refused(self, service: Service) -> None:
        """A finite but absurd grace period (1e300 s) is a 422 naming the bound."""
        status, answer = await service.call(
            "POST",
            f"/webhooks/{service.webhook['id']}/rotate-secret",
            json={"grace_seconds": 1e300},
        )
        assert status == 422
        assert "grace_seconds: expected 0 to 2592000 seconds" in answer["problems"][0]

    async def test_a_lone_surrogate_description_is_refused(
        self, service: Service, receiver: Receiver, tmp_path: Path
    ) -> None:
        """Registering with "description": "\\ud800" is a 422; later registrations still work."""
        body = (
            b'{"url": "' + receiver.url("/other").encode() + b'", "events": ["x.*"], '
            b'"description": "\\ud800"}'
        )
        got, answer = await raw_request(service.port, http_request("POST", "/webhooks", body))
        assert got == 422
        assert "lone surrogate" in answer["detail"]
        status, _ = await service.call(
            "POST", "/webhooks", json={"url": receiver.url("/other"), "events": ["x.*"]}
        )
        assert status == 201


LIMITS = ["²", "٣", "1" * 5000, "1e3", " 5", "0x10", "+", ""]


class TestParameters:
    @pytest.mark.parametrize("value", LIMITS)
    async def test_limit_of_history_must_be_ascii_digits(
        self, service: Service, value: str
    ) -> None:
        """?limit= on /events is a 400 naming limit for anything but ASCII digits in range."""
        status, answer = await service.call("GET", "/events", params={"limit": value})
        assert status == 400
        assert "'limit' must be an integer from 0 to 10000" in answer["detail"]

    @pytest.mark.parametrize("value", LIMITS)
    async def test_limit_of_deliveries_must_be_ascii_digits(
        self, service: Service, value: str
    ) -> None:
        """?limit=² on a webhook's deliveries is a 400 naming limit (it was a 500)."""
        path = f"/webhooks/{service.webhook['id']}/deliveries"
        status, answer = await service.call("GET", path, params={"limit": value})
        assert status == 400
        assert "'limit' must be an integer from 1 to 10000" in answer["detail"]


class TestAuthorization:
    async def test_a_non_utf8_bearer_is_a_401(self, service: Service) -> None:
        """'Authorization: Bearer \\xff' as raw bytes is a 401 'invalid API key', not a 500."""
        request = http_request("GET", "/events", headers={"Authorization": b"Bearer \xff"})
        status, answer = await raw_request(service.port, request)
        assert status == 401
        assert answer["detail"] == "invalid API key"

    async def test_the_right_key_in_raw_bytes_passes(self, service: Service) -> None:
        """The raw-request helper's own key is accepted (the 401 above is about the bytes)."""
        status, _ = await raw_request(service.port, http_request("GET", "/events"))
        assert status == 200


SECRET_LOCAL = "whsec_local-variable-that-must-not-be-logged"


class TestUnexpectedErrorLogs:
    @pytest.mark.parametrize("json_logs", [True, False])
    async def test_a_500_is_logged_without_locals_or_message(
        self, tmp_path: Path, json_logs: bool
    ) -> None:
        """An unexpected error is logged with its type and stack, never a local variable or
        its message, with JSON logs and with the console renderer (rich when installed)."""
        stream = io.StringIO()
        configure_logging(json=json_logs, level="info", stream=stream)

        async def _boom(request: web.Request) -> web.Response:
            hidden = SECRET_LOCAL  # a local the renderer would print with show_locals
            raise RuntimeError(f"failure holding {hidden}")

        try:
            settings = hardened_settings(tmp_path)
            extra = lambda a: a.router.add_get("/boom", _boom)  # noqa: E731
            async with (
                served(settings, extra=extra) as (url, _),
                aiohttp.ClientSession() as session,
                session.get(url + "/boom", headers=AUTH) as r,
            ):
                body = await r.text()
                assert r.status == 500
        finally:
            structlog.reset_defaults()  # the configuration other tests expect
        logged = stream.getvalue()
        assert "server.unhandled_error" in logged
        assert "RuntimeError" in logged
        assert "_boom" in logged  # the stack is there
        assert SECRET_LOCAL not in logged
        assert SECRET_LOCAL not in body
