"""The OpenAPI document and the live service agree (hardening issue, item 13).

A bounded property-based run (schemathesis, every check it has) sends generated requests,
valid and invalid, to every operation of a real service on 127.0.0.1; a response the
document does not allow (status, content type, headers, body), a 5xx, valid data refused or
invalid data accepted fails. One allowance: on the operations whose bodies are checked
beyond what a JSON Schema can say (an event's data against its type's registered schema, a
webhook's secret against its signature scheme, its URL against the address policy), a
schema-valid body may get the documented 422.
Generated webhook URLs are pointed at a receiver on 127.0.0.1 before they are sent, and the
manager's resolver knows no name, so nothing leaves this machine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mnemo_events.server import create_app, run_server, service_openapi
from mnemo_events.webhook_manager import WebhookManager
from tests.helpers.receiver import Receiver, StaticResolver
from tests.helpers.served import AUTH, hardened_settings, served

MAX_EXAMPLES = 8
"""Generated requests per operation and mode: the whole run stays in seconds."""
SEMANTIC_422 = {("POST", "/events"), ("POST", "/webhooks"), ("PATCH", "/webhooks/{webhook_id}"),
                ("POST", "/webhooks/{webhook_id}/rotate-secret"),
                # `data` must fit the chosen event type's own schema, and the webhook its type
                ("POST", "/webhooks/{webhook_id}/test")}  # fmt: skip
"""Operations where a schema-valid body may still be refused with 422 (see above)."""
ACCEPTED = {*range(200, 400), 401, 404, 409}
"""Statuses that count as accepting valid data (schemathesis's own list, less 5xx)."""


class _Threaded:
    """The service and a receiver served by one event loop in a thread (the generated calls
    are blocking ``requests`` calls from the test's thread)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.url = ""
        self.receiver_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="service", daemon=True)

    def __enter__(self) -> _Threaded:
        self._thread.start()
        if not self._ready.wait(20) or self._error is not None:
            raise RuntimeError(f"the service did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:
            self._error = err
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        receiver = web.Application()
        receiver.router.add_route("*", "/{tail:.*}", _accept)
        runner = web.AppRunner(receiver, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.receiver_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        config = hardened_settings(self.tmp_path, max_body_bytes=65536)
        manager = WebhookManager(config=config.webhooks, resolver=StaticResolver({}))
        app = create_app(config, webhook_manager=manager)

        def _ready(url: str) -> None:
            self.url = url
            self._ready.set()

        try:
            await manager.start()
            await run_server(app, "127.0.0.1", 0, on_ready=_ready, stop=self._stop)
        finally:
            await manager.stop()
            await runner.cleanup()


async def _accept(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[_Threaded]:
    """A running service with a receiver, in a thread of its own."""
    with _Threaded(tmp_path) as running:
        yield running


def _loopback_only(case: Any, receiver_url: str) -> None:
    """Point any generated webhook URL at the local receiver, keeping its path."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("url"), str):
        parts = urlsplit(body["url"])
        if parts.hostname not in ("127.0.0.1", None) or parts.scheme not in ("http", "https"):
            body["url"] = receiver_url + (parts.path or "/hook")


def _operations(mode: GenerationMode) -> set[tuple[str, str]]:
    """The operations to run: all but the endless stream (covered by the stream tests) and,
    for invalid data, those that take no input at all (nothing to get wrong)."""
    doc = service_openapi()
    wanted = set()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters" or path == "/events/stream":
                continue
            takes_input = bool(
                operation.get("parameters")
                or item.get("parameters")
                or operation.get("requestBody")
                or operation["security"]
            )
            if mode is GenerationMode.POSITIVE or takes_input:
                wanted.add((method.upper(), path))
    return wanted


def _run_operation(
    operation: Any,
    mode: GenerationMode,
    live: _Threaded,
    session: requests.Session,
    path_parameters: dict[str, str] | None = None,
) -> None:
    """A bounded hypothesis run of one operation, every check applied to each response."""
    key = (operation.method.upper(), operation.path)
    semantic = {422} if key in SEMANTIC_422 else set()
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def _conforms(case: Any) -> None:
        _loopback_only(case, live.receiver_url)
        if not case.meta.is_negative_at(ParameterLocation.HEADER):
            case.headers = {**(case.headers or {}), **AUTH}  # else: a bad or missing key
        response = case.call(base_url=live.url, session=session, timeout=10)
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        if mode is GenerationMode.POSITIVE:
            assert response.status_code in ACCEPTED | semantic, (
                f"{key}: schema-valid request refused with {response.status_code}: "
                f"{response.text[:500]}"
            )

    _conforms()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms_to_the_document(live: _Threaded, mode: GenerationMode) -> None:
    """Generated requests to every operation get only responses the document allows: no
    5xx, documented status codes, content types and bodies, valid data accepted and invalid
    data refused."""
    with requests.Session() as session:
        served = session.get(live.url + "/openapi.json", headers=AUTH, timeout=10)
        assert served.status_code == 200
        registered = session.post(
            live.url + "/webhooks",
            json={"url": live.receiver_url + "/hook", "events": [">"]},
            headers=AUTH,
            timeout=10,
        )
        assert registered.status_code == 201
        existing = {"webhook_id": registered.json()["id"]}
        schema = schemathesis.openapi.from_dict(served.json())
        wanted = _operations(mode)
        seen: set[tuple[str, str]] = set()
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            operation = result.ok()
            key = (operation.method.upper(), operation.path)
            if key not in wanted:
                continue
            seen.add(key)
            _run_operation(operation, mode, live, session)
            if "{webhook_id}" in operation.path and key[0] != "DELETE":
                # Generated ids are unknown (404 before anything else is checked): run the
                # operation on a webhook that exists too.
                _run_operation(operation, mode, live, session, existing)
    assert seen == wanted


def _boundaries(doc: dict[str, Any]) -> list[tuple[str, str, str, str, bool]]:
    """(method, path, parameter, value, accepted?) at and beyond every documented integer
    bound and for an empty string wherever a string parameter has a minimum length."""
    rows = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for param in operation.get("parameters", ()):
                schema, name = param["schema"], param["name"]
                if schema.get("type") == "integer":
                    low, high = schema["minimum"], schema["maximum"]
                    rows += [
                        (method.upper(), path, name, str(low), True),
                        (method.upper(), path, name, str(high), True),
                        (method.upper(), path, name, str(low - 1), False),
                        (method.upper(), path, name, str(high + 1), False),
                    ]
                if schema.get("type") == "string" and "minLength" in schema:
                    rows.append((method.upper(), path, name, "", schema["minLength"] == 0))
    return rows


async def test_documented_bounds_and_optional_bodies_hold(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Every documented integer bound and minimum length is exactly where the service
    draws the line, and a body is required exactly where the document says so."""
    async with (
        served(hardened_settings(tmp_path)) as (url, _),
        aiohttp.ClientSession(url, headers=AUTH) as client,
    ):
        async with client.post(
            "/webhooks", json={"url": receiver.url("/hook"), "events": [">"]}
        ) as r:
            assert r.status == 201
            hook_id = (await r.json())["id"]
        async with client.get("/openapi.json") as r:
            doc = await r.json()
        rows = [row for row in _boundaries(doc) if row[1] != "/events/stream"]
        assert {row[2] for row in rows} >= {"limit", "pattern", "type"}
        for method, path, name, value, accepted in rows:
            async with client.request(
                method, path.replace("{webhook_id}", hook_id), params={name: value}
            ) as r:
                assert (r.status < 300) is accepted, (method, path, name, value, r.status)
        for path, item in doc["paths"].items():
            for method, operation in item.items():
                body = operation.get("requestBody") if isinstance(operation, dict) else None
                if body is None:
                    continue
                async with client.request(method, path.replace("{webhook_id}", hook_id)) as r:
                    assert (r.status < 300) is (not body["required"]), (method, path, r.status)
