"""``GET /events/stream``: retry hint, resuming with Last-Event-ID, stalled clients cut off."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mnemo_events.config import Settings
from mnemo_events.event import Event
from mnemo_events.server import create_app
from mnemo_events.server._sse import (
    GAP_EVENT,
    RESUME_EVENT,
    RETRY_MILLISECONDS,
    SSE_STATS,
)
from mnemo_events.server._state import SERVICE
from tests.helpers.receiver import eventually

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


class Service:
    """A service on 127.0.0.1 with a client session."""

    def __init__(self, app: web.Application, runner: web.AppRunner) -> None:
        self.app = app
        self.runner = runner
        self.port = int(runner.addresses[0][1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = aiohttp.ClientSession()

    async def publish(self, events: list[dict[str, Any]]) -> list[str]:
        """Publish through the real bus; the new events' ids, in order."""
        published = await self.app[SERVICE].bus.publish_batch(events)
        return [event.id for event in published]


def _settings(tmp_path: Path, **server: Any) -> Settings:
    return Settings.model_validate(
        {
            "events": {"history_size": 50_000},
            "webhooks": {
                "persistence_path": str(tmp_path / "webhooks.json"),
                "delivery_store_path": str(tmp_path / "deliveries.sqlite3"),
            },
            "server": {"api_key": API_KEY, **server},
        }
    )


@pytest.fixture
async def service(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    """A running service; ``@pytest.mark.parametrize('service', [{...}], indirect=True)``
    passes server settings."""
    server: dict[str, Any] = dict(getattr(request, "param", {}))
    grace = server.pop("shutdown_timeout", 2.0)
    app = create_app(_settings(tmp_path, **server))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=grace)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    running = Service(app, runner)
    yield running
    await running.session.close()
    await runner.cleanup()


def _parse(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    return fields


async def _messages(response: aiohttp.ClientResponse, count: int) -> list[dict[str, str]]:
    """The next ``count`` messages of a stream (comments skipped), within 5 s."""
    found: list[dict[str, str]] = []
    block: list[str] = []
    async with asyncio.timeout(5):
        while len(found) < count:
            line = (await response.content.readline()).decode()
            if not line:
                break
            if line.strip():
                block.append(line.rstrip("\n"))
                continue
            fields = _parse("\n".join(block))
            block = []
            if fields:
                found.append(fields)
    return found


def _batch(count: int, start: int = 0, pad: int = 0) -> list[dict[str, Any]]:
    return [{"type": "load.tick", "data": {"n": start + i, "pad": "x" * pad}} for i in range(count)]


class TestRetryAndResume:
    async def test_first_event_carries_retry(self, service: Service) -> None:
        """The first message of a stream tells the client how long to wait to reconnect."""
        async with service.session.get(service.url + "/events/stream", headers=AUTH) as stream:
            await stream.content.readline()
            await service.publish(_batch(2))
            first, second = await _messages(stream, 2)
        assert first["retry"] == str(RETRY_MILLISECONDS)
        assert "retry" not in second

    async def test_last_event_id_resumes_the_missed_events_from_history(
        self, service: Service
    ) -> None:
        """A client that reconnects with Last-Event-ID gets the 3 events it missed, in order,
        then the live ones, each once."""
        url = service.url + "/events/stream?pattern=load.*"
        async with service.session.get(url, headers=AUTH) as stream:
            await stream.content.readline()
            (seen,) = await service.publish(_batch(1))
            (message,) = await _messages(stream, 1)
        assert message["id"] == seen
        missed = await service.publish([*_batch(2, 1), {"type": "other.x"}, *_batch(1, 3)])
        missed = [missed[0], missed[1], missed[3]]  # other.x does not match the pattern
        headers = {**AUTH, "Last-Event-ID": seen}
        async with service.session.get(url, headers=headers) as stream:
            replayed = await _messages(stream, 3)
            live = await service.publish(_batch(1, 4))
            after = await _messages(stream, 1)
        assert [m["id"] for m in replayed] == missed
        assert [json.loads(m["data"])["data"]["n"] for m in replayed] == [1, 2, 3]
        assert [m["id"] for m in after] == live
        stats = service.app[SSE_STATS]
        assert (stats.resumed, stats.replayed, stats.gaps) == (1, 3, 0)

    async def test_unknown_last_event_id_says_there_is_a_gap(self, service: Service) -> None:
        """A Last-Event-ID no longer in the history is answered with a gap notice first,
        then the live events."""
        headers = {**AUTH, "Last-Event-ID": "evt_gone"}
        async with service.session.get(service.url + "/events/stream", headers=headers) as s:
            (gap,) = await _messages(s, 1)
            live = await service.publish(_batch(1))
            (message,) = await _messages(s, 1)
        assert gap["event"] == GAP_EVENT
        assert json.loads(gap["data"])["last_event_id"] == "evt_gone"
        assert message["id"] == live[0]
        assert service.app[SSE_STATS].gaps == 1

    async def test_malformed_last_event_id_is_a_400(self, service: Service) -> None:
        """A Last-Event-ID that cannot be an event id is refused, naming the header."""
        headers = {**AUTH, "Last-Event-ID": "x" * 300}
        async with service.session.get(service.url + "/events/stream", headers=headers) as r:
            body = await r.json()
        assert r.status == 400
        assert "Last-Event-ID" in body["detail"]


async def _raw_stream(port: int) -> socket.socket:
    """A stream opened on a socket with a tiny receive buffer, read up to its first comment;
    the caller then stops reading, as a stalled client does."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    request = (
        "GET /events/stream?pattern=load.* HTTP/1.0\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {API_KEY}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    async with asyncio.timeout(5):
        while b": streaming" not in head:
            chunk = await loop.sock_recv(sock, 4096)
            assert chunk, head
            head += chunk
    return sock


async def _read_to_eof(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    body = b""
    async with asyncio.timeout(20):
        while chunk := await loop.sock_recv(sock, 65536):
            body += chunk
    return body


class TestStalledClient:
    @pytest.mark.parametrize("service", [{"stream_queue_size": 8}], indirect=True)
    async def test_stalled_client_is_cut_off_and_resumes_without_a_loss(
        self, service: Service
    ) -> None:
        """A client that stops reading is disconnected once its queue of 8 is full, with a
        last message naming the last event it was sent; resuming from it with Last-Event-ID
        yields every later event in order, none lost, none twice."""
        sock = await _raw_stream(service.port)
        stats = service.app[SSE_STATS]
        published: list[str] = []
        try:
            async with asyncio.timeout(30):
                for round_ in range(200):  # ~2 KiB events until the socket buffers are full
                    published += await service.publish(_batch(100, round_ * 100, pad=2048))
                    await asyncio.sleep(0.01)
                    if stats.stalled:
                        break
            assert stats.stalled == 1
            body = (await _read_to_eof(sock)).decode()
        finally:
            sock.close()
        blocks = [_parse(b) for b in body.split("\n\n")]
        messages = [b for b in blocks if b]
        *events, last = messages
        assert last["event"] == RESUME_EVENT
        resume = json.loads(last["data"])
        assert "Last-Event-ID" in resume["detail"]
        sent = [m["id"] for m in events]
        assert sent == published[: len(sent)]  # in order, nothing skipped
        assert resume["last_event_id"] == last["id"] == sent[-1]
        assert len(sent) < len(published)
        await eventually(lambda: service.app[SERVICE].stream_clients == 0)

        headers = {**AUTH, "Last-Event-ID": resume["last_event_id"]}
        url = service.url + "/events/stream?pattern=load.*"
        async with service.session.get(url, headers=headers) as stream:
            rest = await _messages(stream, len(published) - len(sent))
        assert sent + [m["id"] for m in rest] == published

    @pytest.mark.parametrize(
        "service", [{"stream_queue_size": 100_000, "shutdown_timeout": 30.0}], indirect=True
    )
    async def test_shutdown_does_not_wait_for_a_client_that_does_not_read(
        self, service: Service
    ) -> None:
        """With a stream blocked on a full socket (its queue not yet full), stopping the
        service ends within seconds, well before aiohttp's 30 s shutdown timeout: the
        connection is closed, not drained."""
        sock = await _raw_stream(service.port)
        try:
            for round_ in range(50):  # 10 MiB: more than the socket buffers hold
                await service.publish(_batch(100, round_ * 100, pad=2048))
            await asyncio.sleep(0.2)
            assert service.app[SSE_STATS].stalled == 0
            loop = asyncio.get_running_loop()
            started = loop.time()
            await service.runner.cleanup()
            assert loop.time() - started < 8
        finally:
            sock.close()


class TestHealthyClients:
    async def test_a_stream_sees_every_event_of_a_burst_larger_than_its_queue(
        self, service: Service
    ) -> None:
        """A client that keeps reading gets all of a 3,000-event burst (queue 1,000)."""
        async with service.session.get(
            service.url + "/events/stream?pattern=load.*", headers=AUTH
        ) as stream:
            await stream.content.readline()
            published = await service.publish(_batch(3000))
            got = await _messages(stream, 3000)
        assert [m["id"] for m in got] == published
        assert service.app[SSE_STATS].stalled == 0

    async def test_a_client_leaving_mid_burst_is_not_an_error(
        self, service: Service, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A client that disconnects while events are still being written ends its stream
        quietly: no error is logged and the client count goes back to 0."""
        async with service.session.get(service.url + "/events/stream", headers=AUTH) as stream:
            await stream.content.readline()
            await service.publish(_batch(3000, pad=512))
            await _messages(stream, 1)
        await eventually(lambda: service.app[SERVICE].stream_clients == 0)
        await asyncio.sleep(0.1)
        assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


def test_event_names_of_control_messages_cannot_be_event_types() -> None:
    """The control messages' names contain a colon, which no event type may contain."""
    for name in (RESUME_EVENT, GAP_EVENT):
        with pytest.raises(ValueError, match="type"):
            Event.create(name, {})
