"""The service's event stream on JetStream: ids carry stream sequences, and a client that
reconnects with ``Last-Event-ID`` resumes from the stream, also after a service restart."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from mnemo_events.config import Settings
from mnemo_events.remote import RemoteStream
from mnemo_events.server._sse import SSE_STATS
from mnemo_events.server._sse_jetstream import parse_sse_id, sse_id
from tests.helpers.nats import NatsServer, free_port
from tests.helpers.service import API_KEY, AUTH, Service, running_service, service_settings

ROOT = Path(__file__).resolve().parent.parent.parent
CHILD = "tests.helpers.nats_child"
PACED = ("--interval", "0.02")


def _settings(tmp_path: Path, url: str, **server: Any) -> Settings:
    """Service settings on the JetStream stream at ``url`` with a short in-process history."""
    base = service_settings(tmp_path, **server).model_dump()
    base["events"].update(transport=url, history_size=5, validation="off")
    return Settings.model_validate(base)


@pytest.fixture
async def service(tmp_path: Path, server: NatsServer) -> AsyncIterator[Service]:
    """A service on the stream, keeping only 5 events in its in-process history."""
    async with running_service(_settings(tmp_path, server.url)) as running:
        yield running


Message = tuple[str, str, dict[str, Any]]
"""One server-sent message: its id, its event name and its decoded data."""


async def _read(
    service: Service,
    count: int,
    *,
    last_id: str | None = None,
    pattern: str = "memory.*",
    first: asyncio.Event | None = None,
) -> list[Message]:
    """The first ``count`` messages of one connection to the stream (at most 20 s);
    ``first`` is set once the first one came."""
    headers = {**AUTH, "Accept": "text/event-stream"}
    if last_id is not None:
        headers["Last-Event-ID"] = last_id
    messages: list[Message] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(20):
        async with service.session.get(
            f"{service.url}/events/stream", params={"pattern": pattern}, headers=headers
        ) as response:
            assert response.status == 200
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                    continue
                if "data" in fields:
                    messages.append(
                        (fields.get("id", ""), fields["event"], json.loads(fields["data"]))
                    )
                    if first is not None:
                        first.set()
                    if len(messages) == count:
                        return messages
                fields = {}
    return messages


async def _publish(service: Service, first: int, count: int) -> list[str]:
    """Publish ``memory.created {"n": first..}`` through the service's bus; their ids."""
    ids = []
    for n in range(first, first + count):
        ids.append((await service.bus.publish("memory.created", {"n": n})).id)
    return ids


class TestIds:
    @pytest.mark.parametrize(
        ("raw", "parsed"),
        [
            ("evt_ab@12", ("evt_ab", 12)),
            ("evt_ab", ("evt_ab", None)),
            ("evt_ab@", ("evt_ab@", None)),
            ("@12", ("@12", None)),
            ("evt_ab@1x", ("evt_ab@1x", None)),
            ("evt_ab@١٢", ("evt_ab@١٢", None)),  # Arabic-Indic digits are not a sequence
            ("a@b@7", ("a@b", 7)),
        ],
    )
    def test_an_id_is_the_event_id_and_an_optional_sequence(
        self, raw: str, parsed: tuple[str, int | None]
    ) -> None:
        """A Last-Event-ID splits into the event id and the stream sequence after the last
        '@' (decimal ASCII digits only); anything else is a plain event id."""
        assert parse_sse_id(raw) == parsed
        if parsed[1] is not None:
            assert sse_id(*parsed) == raw


class TestResumeFromTheStream:
    async def test_ids_carry_the_stream_sequence(self, service: Service) -> None:
        """Each message id is '<event id>@<stream sequence>', the sequence the stream holds
        that event at."""
        reader = asyncio.ensure_future(_read(service, 3))
        await asyncio.sleep(0.3)
        ids = await _publish(service, 0, 3)
        messages = await reader
        assert [m[0] for m in messages] == [
            sse_id(event_id, n + 1) for n, event_id in enumerate(ids)
        ]

    async def test_resume_beyond_the_history_comes_from_the_stream(self, service: Service) -> None:
        """A client reconnecting with the id it saw last gets every later event, in order and
        once each, though far more than the in-process history (5) holds; then live ones."""
        reader = asyncio.ensure_future(_read(service, 3))
        await asyncio.sleep(0.3)
        await _publish(service, 0, 3)
        seen = await reader
        missed = await _publish(service, 3, 60)
        resumed = asyncio.ensure_future(_read(service, 65, last_id=seen[-1][0]))
        await asyncio.sleep(0.5)
        later = await _publish(service, 63, 5)
        messages = await resumed
        assert [m[2]["id"] for m in messages] == missed + later
        assert [m[2]["data"]["n"] for m in messages] == list(range(3, 68))
        assert [parse_sse_id(m[0])[1] for m in messages] == list(range(4, 69))
        stats = service.app[SSE_STATS]
        assert (stats.resumed, stats.gaps, stats.replayed) == (1, 0, 60)

    async def test_live_queue_overflow_during_catch_up_is_read_again(
        self, tmp_path: Path, server: NatsServer
    ) -> None:
        """Events published while a resuming client is caught up, more than its live queue
        holds, reach it all from the stream, in order, none twice: no stall, no gap."""
        settings = _settings(tmp_path, server.url, stream_queue_size=4)
        async with running_service(settings) as service:
            reader = asyncio.ensure_future(_read(service, 1))
            await asyncio.sleep(0.3)
            await _publish(service, 0, 1)
            (first,) = await reader
            await service.bus.publish_batch([("memory.created", {"n": n}) for n in range(1, 3001)])
            under_way = asyncio.Event()
            resumed = asyncio.ensure_future(_read(service, 3200, last_id=first[0], first=under_way))
            await under_way.wait()  # the catch-up (3,000 events) is under way
            await _publish(service, 3001, 200)
            messages = await resumed
            stats = service.app[SSE_STATS]
        assert [m[2]["data"]["n"] for m in messages] == list(range(1, 3201))
        assert stats.stalled == 0
        assert stats.gaps == 0
        assert stats.catch_up_rounds >= 2  # the queue (4) overflowed during the first round

    async def test_resuming_while_the_server_is_away_is_a_503(
        self, service: Service, server: NatsServer
    ) -> None:
        """A client resuming while the JetStream server is away gets a 503 with Retry-After
        in bounded time; with the server back, the same id resumes from the stream."""
        reader = asyncio.ensure_future(_read(service, 1))
        await asyncio.sleep(0.3)
        await _publish(service, 0, 1)
        (first,) = await reader
        await _publish(service, 1, 3)
        await asyncio.to_thread(server.stop)
        headers = {**AUTH, "Accept": "text/event-stream", "Last-Event-ID": first[0]}
        async with asyncio.timeout(15):
            async with service.session.get(
                f"{service.url}/events/stream", headers=headers
            ) as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
                assert "retry with the same Last-Event-ID" in (await response.json())["detail"]
        await asyncio.to_thread(server.start)
        messages = await _read(service, 3, last_id=first[0])
        assert [m[2]["data"]["n"] for m in messages] == [1, 2, 3]

    async def test_an_id_the_stream_does_not_hold_falls_back_to_the_history(
        self, service: Service
    ) -> None:
        """A Last-Event-ID whose sequence holds another event (a recreated stream) is looked
        up by its event id in the history: unknown there, it is a gap, then live events."""
        await _publish(service, 0, 3)
        reader = asyncio.ensure_future(_read(service, 2, last_id="evt_unknown@2"))
        await asyncio.sleep(0.5)
        (live,) = await _publish(service, 3, 1)
        gap, message = await reader
        assert gap[1] == "mnemo:gap"
        assert message[2]["id"] == live
        assert service.app[SSE_STATS].gaps == 1

    async def test_events_the_stream_dropped_are_a_gap(
        self, tmp_path: Path, server: NatsServer
    ) -> None:
        """Resuming after events the stream's limits dropped: a gap naming how many are
        missing, then the oldest events the stream still holds, in order."""
        base = _settings(tmp_path, server.url).model_dump()
        base["events"]["transport"] = {"servers": [server.url], "max_msgs": 10}
        async with running_service(Settings.model_validate(base)) as service:
            reader = asyncio.ensure_future(_read(service, 1))
            await asyncio.sleep(0.3)
            await _publish(service, 0, 1)
            (first,) = await reader
            await _publish(service, 1, 29)  # the stream keeps sequences 21..30
            messages = await _read(service, 11, last_id=first[0])
        gap, *events = messages
        assert gap[1] == "mnemo:gap"
        assert gap[2]["missing"] == 19
        assert [m[2]["data"]["n"] for m in events] == list(range(20, 30))


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class _ServeProcess:
    """`mnemo-events serve --transport <url>` as a real process on a fixed port."""

    def __init__(self, config: Path, url: str, port: int) -> None:
        where = ("--transport", url, "--port", str(port))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mnemo_events", "serve", "--config", str(config), *where],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "MNEMO_EVENTS_API_KEY": API_KEY},
        )
        assert self.process.stdout is not None
        for _ in range(50):  # log lines may come first
            line = self.process.stdout.readline()
            assert line, "serve exited before listening"
            if re.search(r"listening on http://", line):
                return
        raise AssertionError("serve did not say where it listens")

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _start_publisher(url: str, out: Path) -> subprocess.Popen[bytes]:
    """A publisher process storing 300 events, one every 20 ms, recording each one stored."""
    return subprocess.Popen(
        [sys.executable, "-m", CHILD, "publish", url, "300", str(out), *PACED],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def _until(predicate: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_client_resumes_from_the_stream_across_a_service_restart(
    tmp_path: Path, server: NatsServer
) -> None:
    """A publisher process stores events while the service process streaming them to a
    client is killed and started again: the client reconnects with its last id and gets
    every event the publisher stored, in order, none twice, none lost (far more than the
    5 events of the new service's history)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "events:\n  validation: 'off'\n  history_size: 5\nwebhooks:\n"
        f"  persistence_path: {tmp_path}/webhooks.json\n"
        f"  delivery_store_path: {tmp_path}/deliveries.sqlite3\n",
        encoding="utf-8",
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = [await asyncio.to_thread(_ServeProcess, config, server.url, port)]
    published = tmp_path / "published.jsonl"
    publisher: subprocess.Popen[bytes] | None = None
    received: list[str] = []
    markers: list[str] = []
    remote = RemoteStream(base, api_key=API_KEY, max_reconnects=20)

    async def read() -> None:
        async for event in remote:
            (received if event.type == "memory.created" else markers).append(event.id)

    reader = asyncio.ensure_future(read())
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            while not markers:  # the client is connected once it gets a marker
                assert not reader.done()
                body = {"type": "test.marker", "data": {}}
                async with session.post(f"{base}/events", json=body) as response:
                    assert response.status == 202
                await asyncio.sleep(0.2)
        publisher = _start_publisher(server.url, published)
        await _until(lambda: len(received) >= 50, 30, "50 events through the first service")
        services[0].kill()
        killed_at = len(_records(published))
        services.append(await asyncio.to_thread(_ServeProcess, config, server.url, port))
        await _until(lambda: publisher.poll() is not None, 60, "the publisher to finish")
        stored = [r["id"] for r in _records(published) if "id" in r]
        await _until(lambda: len(received) >= len(stored), 30, "every stored event")
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await remote.aclose()
        for running in services:
            running.kill()
        if publisher is not None and publisher.poll() is None:
            publisher.kill()
            publisher.wait(10)
    assert len(stored) == 300
    assert killed_at < 290  # the restart came while the publisher was still at work
    assert received == stored  # in order, none twice, none lost
    assert remote.reconnects >= 1
    assert remote.gaps == 0
    assert parse_sse_id(remote.last_event_id or "")[1] is not None
