"""The service's webhook routes with hostile and credential-bearing registrations (issue 11).

A real service on 127.0.0.1 and a real receiver: what `GET /webhooks`, `GET /webhooks/{id}`
and the rotate-secret response show, how a lone surrogate is answered, and that no
credential reaches a response body or a log line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from mnemo_events._log import set_library_level
from mnemo_events.config import Settings
from mnemo_events.server import create_app
from tests.helpers.receiver import Receiver

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CREDENTIALS = {
    "Authorization": "Bearer rcv-AUTH-123",
    "Cookie": "session=rcv-COOKIE-456",
    "X-Api-Key": "rcv-KEY-789",
    "X-Session-Token": "rcv-TOKEN-abc",
}


class Service:
    """A running service and a client session calling it; every response body is kept."""

    def __init__(self, runner: web.AppRunner, session: aiohttp.ClientSession) -> None:
        self.runner = runner
        self.session = session
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self.bodies: list[str] = []

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One authenticated request; the status and the decoded JSON body."""
        headers = {**AUTH, **kwargs.pop("headers", {})}
        async with self.session.request(method, self.url + path, headers=headers, **kwargs) as r:
            raw = await r.text()
            self.bodies.append(raw)
            return r.status, json.loads(raw) if raw else None


async def _started(settings: Settings) -> AsyncIterator[Service]:
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    async with aiohttp.ClientSession() as session:
        yield Service(runner, session)
    await runner.cleanup()


def _settings(persistence_path: Path | None, tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "webhooks": {
                "persistence_path": None if persistence_path is None else str(persistence_path),
                "delivery_store_path": str(tmp_path / "deliveries.sqlite3"),
                "allow_private_networks": True,
                "stop_timeout": 1.0,
            },
            "server": {"api_key": API_KEY},
        }
    )


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service with an API key, its webhook file in tmp_path, loopback receivers allowed."""
    async for started in _started(_settings(tmp_path / "webhooks.json", tmp_path)):
        yield started


@pytest.fixture
async def memory_service(tmp_path: Path) -> AsyncIterator[Service]:
    """The same service with its webhooks in memory only, so credential headers are accepted
    in plaintext (with a webhook file they must be secret references)."""
    async for started in _started(_settings(None, tmp_path)):
        yield started


def _leaks(
    texts: Sequence[str], logs: Sequence[Mapping[str, Any]], secrets: list[str]
) -> list[str]:
    everything = "\n".join([*texts, *(repr(entry) for entry in logs)])
    return [secret for secret in secrets if secret in everything]


class TestCredentialsInResponses:
    async def test_listings_and_rotation_mask_receiver_credentials(
        self, memory_service: Service, receiver: Receiver
    ) -> None:
        """`GET /webhooks`, `GET /webhooks/{id}` and the rotate-secret response mask credential
        headers; a URL password is refused (422); no response body nor log line carries one."""
        service = memory_service
        set_library_level("debug")
        with capture_logs() as logs:
            status, made = await service.call(
                "POST",
                "/webhooks",
                json={"url": receiver.url("/h"), "events": ["memory.*"], "headers": CREDENTIALS},
            )
            assert status == 201
            url = f"http://user:rcv-PASSWORD-0@127.0.0.1:{receiver.port}/u"
            status, with_password = await service.call(
                "POST", "/webhooks", json={"url": url, "events": ["memory.*"]}
            )
            assert status == 422
            assert "must not carry credentials" in with_password["detail"]
            listed = (await service.call("GET", "/webhooks"))[1]["webhooks"]
            one = (await service.call("GET", f"/webhooks/{made['id']}"))[1]
            rotated = (
                await service.call("POST", f"/webhooks/{made['id']}/rotate-secret", json={})
            )[1]
            patched = (
                await service.call("PATCH", f"/webhooks/{made['id']}", json={"description": "x"})
            )[1]
        for shown in (made, one, rotated, patched, listed[0]):
            assert shown["headers"] == dict.fromkeys(CREDENTIALS, "****")
        assert len(listed) == 1
        assert rotated["secret"].startswith("whsec_")  # the new secret, shown this once
        secrets = [*CREDENTIALS.values(), "rcv-PASSWORD-0"]
        assert "webhooks.registered" in {entry["event"] for entry in logs}  # the search is real
        assert _leaks(service.bodies, logs, secrets) == []

    async def test_userinfo_with_authorization_is_a_422(
        self, service: Service, receiver: Receiver
    ) -> None:
        """A URL with `user:pass@` (here with an Authorization header too) answers 422 naming the
        credentials, without echoing them."""
        url = f"http://user:rcv-PASSWORD-1@127.0.0.1:{receiver.port}/u"
        status, body = await service.call(
            "POST",
            "/webhooks",
            json={"url": url, "events": ["memory.*"], "headers": {"Authorization": "Basic eA=="}},
        )
        assert status == 422
        assert "must not carry credentials" in json.dumps(body)
        assert _leaks(service.bodies, [], ["rcv-PASSWORD-1", "Basic eA=="]) == []


class TestPoisonedRegistration:
    async def test_lone_surrogate_is_a_422_and_does_not_poison_the_registry(
        self, service: Service, receiver: Receiver, tmp_path: Path
    ) -> None:
        """`"description": "\\ud800"` answers 422; later register and delete answer 201 and 204
        and reach the file."""
        raw = json.dumps({"url": receiver.url(), "events": ["memory.*"]})[:-1]
        raw += ', "description": "\\ud800"}'
        status, body = await service.call(
            "POST", "/webhooks", data=raw, headers={"Content-Type": "application/json"}
        )
        assert status == 422, body
        assert "description" in json.dumps(body)
        assert (await service.call("GET", "/webhooks"))[1]["count"] == 0
        status, kept = await service.call(
            "POST", "/webhooks", json={"url": receiver.url("/k"), "events": ["memory.*"]}
        )
        assert status == 201
        status, gone = await service.call(
            "POST", "/webhooks", json={"url": receiver.url("/g"), "events": ["memory.*"]}
        )
        assert status == 201
        assert (await service.call("DELETE", f"/webhooks/{gone['id']}"))[0] == 204
        stored = json.loads((tmp_path / "webhooks.json").read_text())["webhooks"]
        assert [entry["id"] for entry in stored] == [kept["id"]]
