"""The HTTP service through a real server on 127.0.0.1: routes, auth, errors, streams, webhooks."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StreamConfig
from openapi_spec_validator import validate

from mnemo_events.config import Settings, load_config
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import ConfigError
from mnemo_events.server import create_app, is_loopback, resolve_api_key
from mnemo_events.server._events import HEARTBEAT_SECONDS
from mnemo_events.server._state import SERVICE
from mnemo_events.webhook_manager import WebhookManager
from tests.helpers.nats import NatsServer
from tests.helpers.receiver import Receiver, Reply, eventually
from tests.helpers.served import serve_config, start_serve
from tests.helpers.service import service_settings

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
JSON = {"Accept": "application/json"}
MEMORY = {"memory_id": "mem_1", "content": "the cat is called Miso", "tier": "hot"}


def make_settings(tmp_path: Path, **server: Any) -> Settings:
    """Settings for a test service (see ``service_settings``), with this module's API key and
    a 4 KiB body limit unless ``server`` says otherwise."""
    return service_settings(tmp_path, **{"api_key": API_KEY, "max_body_bytes": 4096, **server})


class Running:
    """A service listening on 127.0.0.1 and a client session to call it."""

    def __init__(self, app: web.Application, runner: web.AppRunner, session: aiohttp.ClientSession):
        self.app = app
        self.runner = runner
        self.session = session
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    @property
    def bus(self) -> EventBus:
        """The service's bus."""
        return self.app[SERVICE].bus

    async def call(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> tuple[int, Any]:
        """One request; the status and the decoded JSON body (None when empty)."""
        headers = {**(AUTH if auth else {}), **kwargs.pop("headers", {})}
        async with self.session.request(method, self.url + path, headers=headers, **kwargs) as r:
            raw = await r.read()
            return r.status, json.loads(raw) if raw else None


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """A factory of running services (settings from make_settings unless given)."""
    running: list[Running] = []

    async def _start(
        settings: Settings | None = None,
        *,
        extra: Callable[[web.Application], None] | None = None,
        **kwargs: Any,
    ) -> Running:
        app = create_app(settings or make_settings(tmp_path), **kwargs)
        if extra is not None:
            extra(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        service = Running(app, runner, aiohttp.ClientSession())
        running.append(service)
        return service

    yield _start
    for service in running:
        await service.session.close()
        await service.runner.cleanup()


@pytest.fixture
async def service(start: Start) -> Running:
    """A running service with an API key."""
    return await start()


PROTECTED = [
    ("GET", "/events"),
    ("POST", "/events"),
    ("GET", "/events/stream"),
    ("GET", "/webhooks"),
    ("POST", "/webhooks"),
    ("GET", "/webhooks/wh_x"),
    ("PATCH", "/webhooks/wh_x"),
    ("DELETE", "/webhooks/wh_x"),
    ("POST", "/webhooks/wh_x/rotate-secret"),
    ("GET", "/webhooks/wh_x/deliveries"),
    ("POST", "/webhooks/wh_x/replay-failed"),
    ("GET", "/deliveries/dl_x"),
    ("POST", "/deliveries/dl_x/redeliver"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
]


class TestAuth:
    async def test_healthz_needs_no_key(self, service: Running) -> None:
        """/healthz answers without a key and reports the bus and manager running."""
        status, body = await service.call("GET", "/healthz", auth=False)
        assert (status, body) == (
            200,
            {
                "status": "ok",
                "bus": "running",
                "transport": {"name": "memory", "state": "connected"},
                "webhooks": "running",
            },
        )

    @pytest.mark.parametrize(("method", "path"), PROTECTED)
    @pytest.mark.parametrize(
        "header", [None, "Bearer wrong-key", f"Basic {API_KEY}", "Bearer ", API_KEY]
    )
    async def test_every_other_route_refuses_a_missing_or_wrong_key(
        self, service: Running, method: str, path: str, header: str | None
    ) -> None:
        """Without 'Bearer <the key>' every route but /healthz is a 401 with a challenge."""
        headers = {} if header is None else {"Authorization": header}
        async with service.session.request(method, service.url + path, headers=headers) as r:
            body = await r.json()
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert body["status"] == 401
        assert "API key" in body["detail"]

    @pytest.mark.parametrize(("method", "path"), [("GET", "/events"), ("GET", "/metrics")])
    async def test_the_right_key_is_let_through(
        self, service: Running, method: str, path: str
    ) -> None:
        """With the configured key the route answers 200."""
        status, _ = await service.call(method, path, headers=JSON)
        assert status == 200

    async def test_no_key_configured_leaves_loopback_open(
        self, start: Start, tmp_path: Path
    ) -> None:
        """Without a key the service (bound to loopback) serves requests with no header."""
        service = await start(make_settings(tmp_path, api_key=None))
        status, body = await service.call("GET", "/events", auth=False)
        assert (status, body) == (200, {"count": 0, "events": []})

    @pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
    def test_refuses_a_public_bind_without_a_key(self, tmp_path: Path, host: str) -> None:
        """No key and a non-loopback host: create_app refuses, naming the host and the fix."""
        settings = make_settings(tmp_path, api_key="env:MNEMO_TEST_UNSET_KEY", host=host)
        with pytest.raises(ConfigError, match=r"refusing to serve.*MNEMO_TEST_UNSET_KEY"):
            create_app(settings, environ={})

    def test_a_key_from_the_environment_allows_a_public_bind(self, tmp_path: Path) -> None:
        """server.api_key 'env:NAME' reads the key from NAME; then any host is allowed."""
        settings = make_settings(tmp_path, api_key="env:MNEMO_TEST_KEY", host="0.0.0.0")
        app = create_app(settings, environ={"MNEMO_TEST_KEY": "from-env"})
        assert app[SERVICE].api_key == "from-env"

    @pytest.mark.parametrize(
        ("reference", "environ", "expected"),
        [
            ("inline", {}, "inline"),
            ("env:K", {"K": "v"}, "v"),
            ("env:K", {}, None),
            ("env:K", {"K": ""}, None),
            (None, {}, None),
        ],
    )
    def test_resolve_api_key(
        self, tmp_path: Path, reference: str | None, environ: dict[str, str], expected: str | None
    ) -> None:
        """An inline key is itself; env:NAME is the variable's value; unset or empty is None."""
        server = make_settings(tmp_path, api_key=reference).server
        assert resolve_api_key(server, environ) == expected

    @pytest.mark.parametrize(
        ("host", "loopback"),
        [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True),
         ("0.0.0.0", False), ("10.0.0.1", False), ("::", False), ("example.com", False)],
    )  # fmt: skip
    def test_is_loopback(self, host: str, loopback: bool) -> None:
        """Only loopback addresses (and 'localhost') count as local."""
        assert is_loopback(host) is loopback


class TestEvents:
    async def test_publish_one_then_read_history(self, service: Running) -> None:
        """POST /events publishes (202) and the event shows in GET /events."""
        status, body = await service.call(
            "POST", "/events", json={"type": "memory.created", "data": MEMORY, "metadata": {"a": 1}}
        )
        assert status == 202
        event = body["event"]
        assert event["id"].startswith("evt_")
        assert (event["type"], event["data"], event["metadata"]) == (
            "memory.created",
            MEMORY,
            {"a": 1},
        )
        assert "warnings" not in body
        status, history = await service.call("GET", "/events")
        assert status == 200
        assert [e["id"] for e in history["events"]] == [event["id"]]

    @pytest.mark.parametrize("wrap", [lambda items: {"events": items}, lambda items: items])
    async def test_publish_a_batch(self, service: Running, wrap: Callable[[Any], Any]) -> None:
        """A batch ({"events": [...]} or a bare array) is published in order."""
        items = [
            {"type": "memory.created", "data": MEMORY},
            {"type": "gap.detected", "data": {"gap_id": "g1", "query": "who?"}},
        ]
        status, body = await service.call("POST", "/events", json=wrap(items))
        assert (status, body["count"]) == (202, 2)
        assert [e["type"] for e in body["events"]] == ["memory.created", "gap.detected"]

    async def test_an_unregistered_type_is_published_with_a_warning(self, service: Running) -> None:
        """A type with no schema is accepted, and the response suggests the close names."""
        status, body = await service.call("POST", "/events", json={"type": "memory.craeted"})
        assert status == 202
        assert "memory.created" in body["warnings"][0]

    async def test_history_filters_by_type_and_pattern(self, service: Running) -> None:
        """GET /events takes an exact type or a pattern, and a limit."""
        batch = [
            {"type": "memory.created", "data": MEMORY},
            {"type": "memory.deleted", "data": {"memory_id": "mem_1"}},
            {"type": "gap.detected", "data": {"gap_id": "g1", "query": "q"}},
        ]
        await service.call("POST", "/events", json=batch)
        await eventually(lambda: service.bus.get_metrics()["queue_size"] == 0)
        for query, expected in [
            ("?type=memory.deleted", ["memory.deleted"]),
            ("?pattern=memory.*", ["memory.created", "memory.deleted"]),
            ("?pattern=memory.*&limit=1", ["memory.deleted"]),
            ("?limit=0", []),
            ("", ["memory.created", "memory.deleted", "gap.detected"]),
        ]:
            _, body = await service.call("GET", "/events" + query)
            assert [e["type"] for e in body["events"]] == expected, query

    async def test_an_invalid_batch_publishes_nothing(self, service: Running) -> None:
        """One bad item refuses the whole batch (422, the item named) and nothing is published."""
        batch = [{"type": "memory.created", "data": MEMORY}, {"type": "memory.created", "data": {}}]
        status, body = await service.call("POST", "/events", json=batch)
        assert status == 422
        assert any(p.startswith("item 1:") for p in body["problems"])
        _, history = await service.call("GET", "/events")
        assert history["count"] == 0


ERRORS = [
    # (method, path, request kwargs, status, a substring of one problem)
    ("POST", "/events", {"data": b"{not json"}, 400, "not valid JSON"),
    ("POST", "/events", {"data": b""}, 400, "empty"),
    ("POST", "/events", {"data": b"\xff\xfe{}"}, 400, "not UTF-8"),
    ("POST", "/events", {"json": {"type": "memory.created", "data": {}}}, 422, "data.content"),
    ("POST", "/events", {"json": {"type": "memory.created", "data": {"memory_id": 5}}}, 422,
     "data.memory_id"),
    ("POST", "/events", {"json": {"type": "Not A Type!"}}, 422, "Not A Type!"),
    ("POST", "/events", {"json": {"data": MEMORY}}, 422, "type: required"),
    ("POST", "/events", {"json": {"type": "memory.created", "dta": {}}}, 422, "unknown key 'dta'"),
    ("POST", "/events", {"json": {"type": "memory.created", "data": [1]}}, 422,
     "expected an object"),
    ("POST", "/events", {"json": 42}, 422, "expected an array"),
    ("POST", "/events", {"json": []}, 422, "empty"),
    ("POST", "/events", {"json": {"events": [], "x": 1}}, 422, "unknown key 'x'"),
    ("GET", "/events?limit=lots", {}, 400, "limit"),
    ("GET", "/events?limit=-1", {}, 400, "limit"),
    ("GET", "/events?pattern=memory.>.x", {}, 400, "pattern"),
    ("GET", "/events/stream?pattern=a..b", {}, 400, "pattern"),
    ("POST", "/webhooks", {"json": {"events": ["memory.*"]}}, 422, "url: required"),
    ("POST", "/webhooks", {"json": {"url": "http://127.0.0.1:1/h", "events": "memory.*"}}, 422,
     "events: expected an array"),
    ("POST", "/webhooks", {"json": {"url": "http://127.0.0.1:1/h", "events": [1]}}, 422,
     "pattern strings"),
    ("POST", "/webhooks", {"json": {"url": "ftp://127.0.0.1/h", "events": ["memory.*"]}}, 422,
     "ftp"),
    ("POST", "/webhooks", {"json": {"url": "http://127.0.0.1:1/h", "events": ["a..b"]}}, 422,
     "events[0]"),
    ("POST", "/webhooks", {"json": {"url": "http://127.0.0.1:1/h", "events": ["x"],
                                    "enabled": "yes"}}, 422, "enabled: expected a boolean"),
    ("POST", "/webhooks", {"json": {"url": "http://127.0.0.1:1/h", "events": ["x"], "colour": 1}},
     422, "colour: unknown field"),
    ("POST", "/webhooks", {"data": b"[1,"}, 400, "not valid JSON"),
    ("GET", "/webhooks?enabled_only=maybe", {}, 400, "enabled_only"),
    ("GET", "/webhooks/wh_missing", {}, 404, "wh_missing"),
    ("PATCH", "/webhooks/wh_missing", {"json": {"enabled": False}}, 404, "wh_missing"),
    ("DELETE", "/webhooks/wh_missing", {}, 404, "wh_missing"),
    ("POST", "/webhooks/wh_missing/rotate-secret", {}, 404, "wh_missing"),
    ("GET", "/webhooks/wh_missing/deliveries", {}, 404, "wh_missing"),
    ("POST", "/webhooks/wh_missing/replay-failed", {}, 404, "wh_missing"),
    ("GET", "/deliveries/dl_missing", {}, 404, "dl_missing"),
    ("POST", "/deliveries/dl_missing/redeliver", {}, 404, "dl_missing"),
    ("GET", "/no/such/route", {}, 404, "/no/such/route"),
    ("DELETE", "/events", {}, 405, "DELETE"),
    ("POST", "/events", {"data": b"x" * 5000}, 413, "4096"),
]  # fmt: skip


async def _chunks(total: int) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        yield b"[" if sent == 0 else b" " * 1000
        sent += 1 if sent == 0 else 1000


class TestErrors:
    @pytest.mark.parametrize(("method", "path", "kwargs", "status", "problem"), ERRORS)
    async def test_error_status_and_json_body(
        self,
        service: Running,
        method: str,
        path: str,
        kwargs: dict[str, Any],
        status: int,
        problem: str,
    ) -> None:
        """Each bad request gets its status and a JSON body listing what is wrong."""
        got, body = await service.call(method, path, **kwargs)
        assert got == status
        assert body["status"] == status
        assert body["error"]
        assert any(problem in p for p in body["problems"]), body["problems"]
        assert "Traceback" not in json.dumps(body)

    async def test_a_chunked_body_over_the_limit_is_413(self, service: Running) -> None:
        """A body without Content-Length is cut off at server.max_body_bytes with a 413."""
        status, body = await service.call("POST", "/events", data=_chunks(10_000))
        assert status == 413
        assert body["status"] == 413

    async def test_an_unexpected_error_is_a_bare_500(self, start: Start) -> None:
        """A bug in a handler answers 500 with a JSON body that names no internals."""

        async def _boom(request: web.Request) -> web.Response:
            raise RuntimeError("secret internals /etc/passwd")

        service = await start(extra=lambda app: app.router.add_get("/boom", _boom))
        status, body = await service.call("GET", "/boom")
        assert status == 500
        assert "secret internals" not in json.dumps(body)
        assert body["detail"] == "an unexpected error occurred; it was logged by the server"

    async def test_a_full_bus_is_503(self, start: Start, tmp_path: Path) -> None:
        """When the bus mailbox stays full, POST /events answers 503 with Retry-After."""
        bus = EventBus(max_queue_size=1, publish_timeout=0.0)
        service = await start(bus=bus)
        await bus.stop()  # nothing drains the mailbox now
        await service.call("POST", "/events", json={"type": "memory.created", "data": MEMORY})
        async with service.session.post(
            service.url + "/events", json={"type": "memory.created", "data": MEMORY}, headers=AUTH
        ) as r:
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
        await bus.shutdown()

    async def test_an_event_the_stream_refuses_is_503_naming_the_reason(
        self, start: Start, server: NatsServer, connection: JetStreamContext
    ) -> None:
        """An event the JetStream stream refuses (here: it is full and discards new messages)
        answers 503 with Retry-After and the server's reason, not an opaque 500."""
        await connection.add_stream(
            StreamConfig(
                name="MNEMO_EVENTS",
                subjects=["mnemo.>"],
                max_msgs=1,
                discard=DiscardPolicy.NEW,
            )
        )
        bus = EventBus(transport=server.url, validation="off")
        await bus.start()
        service = await start(bus=bus)
        event = {"type": "memory.created", "data": MEMORY}
        status, _ = await service.call("POST", "/events", json=event)
        assert status == 202
        async with service.session.post(service.url + "/events", json=event, headers=AUTH) as r:
            body = await r.json()
            assert r.status == 503
            assert r.headers["Retry-After"] == "1"
        assert "refused event 'memory.created'" in body["detail"]
        assert "maximum messages exceeded" in body["detail"]
        assert f"127.0.0.1:{server.port}" in body["detail"]
        await bus.shutdown()


async def _read_messages(response: aiohttp.ClientResponse, count: int) -> list[dict[str, str]]:
    """The next ``count`` server-sent messages (comments skipped)."""
    messages: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(5):
        while len(messages) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if not line:
                if fields:
                    messages.append(fields)
                    fields = {}
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
    return messages


class TestStream:
    async def test_stream_receives_matching_events(self, service: Running) -> None:
        """GET /events/stream sends each matching event published after connecting, in order."""
        async with service.session.get(
            service.url + "/events/stream", params={"pattern": "memory.*"}, headers=AUTH
        ) as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"] == "text/event-stream"
            assert (await stream.content.readline()).startswith(b": streaming memory.*")
            batch = [
                {"type": "memory.created", "data": MEMORY},
                {"type": "gap.detected", "data": {"gap_id": "g1", "query": "q"}},
                {"type": "memory.deleted", "data": {"memory_id": "mem_1"}},
            ]
            _, published = await service.call("POST", "/events", json=batch)
            messages = await _read_messages(stream, 2)
        ids = [e["id"] for e in published["events"]]
        assert [m["id"] for m in messages] == [ids[0], ids[2]]
        assert [m["event"] for m in messages] == ["memory.created", "memory.deleted"]
        assert json.loads(messages[0]["data"]) == published["events"][0]

    async def test_two_clients_each_get_the_stream(self, service: Running) -> None:
        """Every connected client receives every event; the metrics count the clients."""
        url = service.url + "/events/stream"
        async with (
            service.session.get(url, headers=AUTH) as first,
            service.session.get(url, headers=AUTH) as second,
        ):
            await first.content.readline()
            await second.content.readline()
            _, metrics = await service.call("GET", "/metrics", headers=JSON)
            assert metrics["server"]["stream_clients"] == 2
            await service.call("POST", "/events", json={"type": "memory.created", "data": MEMORY})
            got = [await _read_messages(first, 1), await _read_messages(second, 1)]
        assert got[0] == got[1]
        await eventually(lambda: service.app[SERVICE].stream_clients == 0)

    async def test_shutdown_ends_open_streams(self, start: Start) -> None:
        """Stopping the service ends a connected stream promptly instead of waiting for it."""
        service = await start()
        async with service.session.get(service.url + "/events/stream", headers=AUTH) as stream:
            await stream.content.readline()
            async with asyncio.timeout(HEARTBEAT_SECONDS / 2):
                await service.runner.cleanup()
                assert (await stream.content.read()).strip() == b""  # EOF, no event
        assert not service.bus.is_running


class TestWebhooks:
    async def _register(
        self, service: Running, receiver: Receiver, **fields: Any
    ) -> dict[str, Any]:
        body = {"url": receiver.url("/hook"), "events": ["memory.*"], **fields}
        status, hook = await service.call("POST", "/webhooks", json=body)
        assert status == 201, hook
        receiver.secrets["/hook"] = hook["secret"]
        assert isinstance(hook, dict)
        return hook

    async def test_registered_webhook_receives_signed_deliveries(
        self, service: Running, receiver: Receiver
    ) -> None:
        """A webhook registered over HTTP gets matching events, signed with its secret."""
        hook = await self._register(service, receiver)
        assert hook["secret"].startswith("whsec_")
        assert hook["id"].startswith("wh_")
        await service.call(
            "POST", "/events", json={"type": "gap.detected", "data": {"gap_id": "g", "query": "q"}}
        )
        _, sent = await service.call(
            "POST", "/events", json={"type": "memory.created", "data": MEMORY}
        )
        await receiver.wait_for(1, "/hook")
        request = receiver.on("/hook")[0]
        assert request.stripe_ok is True
        assert json.loads(request.body)["id"] == sent["event"]["id"]

        async def _delivered() -> Any:
            _, found = await service.call("GET", f"/webhooks/{hook['id']}/deliveries")
            return (
                found if found["count"] and found["deliveries"][0]["status"] == "success" else None
            )

        found = await eventually(_delivered)
        assert found["deliveries"][0]["event_id"] == sent["event"]["id"]
        _, one = await service.call("GET", f"/deliveries/{found['deliveries'][0]['id']}")
        assert [a["status_code"] for a in one["attempt_log"]] == [200]
        _, shown = await service.call("GET", f"/webhooks/{hook['id']}")
        assert shown["status"]["deliveries"]["success"] == 1
        assert shown["secret"] == "whsec_****"

    async def test_list_patch_and_delete(self, service: Running, receiver: Receiver) -> None:
        """A webhook can be listed (secret masked), changed, disabled and deleted."""
        hook = await self._register(service, receiver, description="first")
        _, listed = await service.call("GET", "/webhooks")
        assert [(w["id"], w["secret"]) for w in listed["webhooks"]] == [(hook["id"], "whsec_****")]
        status, changed = await service.call(
            "PATCH", f"/webhooks/{hook['id']}", json={"events": ["dream.*"], "enabled": False}
        )
        assert (status, changed["events"], changed["enabled"]) == (200, ["dream.*"], False)
        _, enabled = await service.call("GET", "/webhooks?enabled_only=true")
        assert enabled["count"] == 0
        status, problem = await service.call("PATCH", f"/webhooks/{hook['id']}", json={})
        assert status == 422
        assert "nothing to update" in problem["detail"]
        status, _ = await service.call("DELETE", f"/webhooks/{hook['id']}")
        assert status == 204
        status, _ = await service.call("GET", f"/webhooks/{hook['id']}")
        assert status == 404

    async def test_rotate_secret_signs_with_both_during_grace(
        self, service: Running, receiver: Receiver
    ) -> None:
        """rotate-secret shows a new secret once; deliveries verify with the new and the old."""
        hook = await self._register(service, receiver)
        status, rotated = await service.call(
            "POST", f"/webhooks/{hook['id']}/rotate-secret", json={"grace_seconds": 60}
        )
        assert status == 200
        assert rotated["secret"] != hook["secret"]
        assert rotated["rotating_secrets"] == 1
        await service.call("POST", "/events", json={"type": "memory.created", "data": MEMORY})
        await receiver.wait_for(1, "/hook")
        request = receiver.on("/hook")[0]
        header = request.headers["X-MnemoCore-Signature"]
        from mnemo_events.webhook_manager import WebhookSignature

        assert WebhookSignature.verify(request.body, rotated["secret"], header)
        assert WebhookSignature.verify(request.body, hook["secret"], header)
        status, _ = await service.call("POST", f"/webhooks/{hook['id']}/rotate-secret")
        assert status == 200  # an empty body generates a secret too

    async def test_failed_deliveries_filter_redeliver_and_replay(
        self, service: Running, receiver: Receiver
    ) -> None:
        """A delivery that failed is listed with status=failed and can be sent again."""
        receiver.script("/hook", Reply(500), Reply(500))
        hook = await self._register(service, receiver)
        await service.call("POST", "/events", json={"type": "memory.created", "data": MEMORY})
        path = f"/webhooks/{hook['id']}/deliveries?status=failed"

        async def _failed() -> Any:
            _, found = await service.call("GET", path)
            return found["deliveries"] if found["count"] else None

        failed = await eventually(_failed)
        delivery_id = failed[0]["id"]
        _, ok = await service.call("GET", f"/webhooks/{hook['id']}/deliveries?status=success")
        assert ok["count"] == 0
        status, body = await service.call("POST", f"/deliveries/{delivery_id}/redeliver")
        assert (status, body) == (202, {"delivery_id": delivery_id, "status": "pending"})
        await receiver.wait_for(3, "/hook")
        assert receiver.on("/hook")[2].delivery_id == delivery_id
        _, _found = await eventually(lambda: _status_of(service, delivery_id, "success"))
        status, replayed = await service.call("POST", f"/webhooks/{hook['id']}/replay-failed")
        assert (status, replayed) == (202, {"replayed": 0})
        status, bad = await service.call("GET", f"/webhooks/{hook['id']}/deliveries?status=lost")
        assert status == 400
        assert "status" in bad["detail"]


async def _status_of(service: Running, delivery_id: str, wanted: str) -> tuple[int, Any] | None:
    status, body = await service.call("GET", f"/deliveries/{delivery_id}")
    return (status, body) if body["status"] == wanted else None


class TestOpenAPI:
    async def test_document_is_valid_openapi_31_and_covers_every_route(
        self, service: Running
    ) -> None:
        """/openapi.json validates as OpenAPI 3.1 and documents every route of the app."""
        status, doc = await service.call("GET", "/openapi.json")
        assert status == 200
        validate(doc)
        assert doc["openapi"] == "3.1.0"
        assert len(doc["webhooks"]) == 15
        routes = {
            (route.resource.canonical, route.method.lower())
            for route in service.app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
        documented = {
            (path, method)
            for path, item in doc["paths"].items()
            for method in item
            if method != "parameters"
        }
        assert routes == documented
        assert doc["paths"]["/healthz"]["get"]["security"] == []
        assert doc["paths"]["/events"]["post"]["security"] == [{"bearerAuth": []}]


class TestServeDrain:
    async def test_sigterm_leaves_every_accepted_event_in_the_store(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """After SIGTERM `serve` exits 0 within its stop timeout although attempts hang; every
        event it accepted is left pending in the store, and the next start delivers them."""
        config = tmp_path / "config.yaml"
        config.write_text(serve_config(tmp_path, API_KEY), encoding="utf-8")
        gate = asyncio.Event()  # the receiver holds every request: attempts are in flight
        receiver.script("/hook", then=Reply(gate=gate))
        proc, url = await start_serve(config)
        try:
            async with aiohttp.ClientSession(url, headers=AUTH) as client:
                hook_body = {"url": receiver.url("/hook"), "events": [">"]}
                async with client.post("/webhooks", json=hook_body) as r:
                    hook = await r.json()
                    assert r.status == 201
                batch = [{"type": "gap.detected", "data": {"gap_id": f"g{n}", "query": "q"}}
                         for n in range(200)]  # fmt: skip
                async with client.post("/events", json=batch) as r:
                    assert r.status == 202
                    accepted = {e["id"] for e in (await r.json())["events"]}
            await receiver.wait_for(1, "/hook")
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(20):
                out, err = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            receiver.script("/hook", then=Reply(503))  # the next start sends, and fails
            gate.set()
        assert proc.returncode == 0, err.decode()
        assert "stopped" in out.decode()
        assert "Traceback" not in err.decode()
        settings = load_config(config, environ={})
        manager = WebhookManager(config=settings.webhooks)  # the same store, read back
        await manager.start()
        try:
            history = await manager.get_delivery_history(hook["id"], limit=1000)
        finally:
            await manager.stop()
        assert sorted(d.event_id for d in history) == sorted(accepted)
        assert {d.status.value for d in history} <= {"pending", "retrying"}

        receiver.script("/hook", then=Reply(200))
        manager = WebhookManager(config=settings.webhooks)
        await manager.start()  # resumes the unfinished deliveries
        try:

            async def _all_delivered() -> bool:
                found = await manager.get_delivery_history(hook["id"], status="success", limit=1000)
                return len(found) == len(accepted)

            await eventually(_all_delivered, within=30)
        finally:
            await manager.stop()
