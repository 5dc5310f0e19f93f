"""``mnemo_events.remote``: a running service's live events as an async iterator and an
observable, with the API key, resuming with Last-Event-ID."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from mnemo_events.config import Settings
from mnemo_events.event import Event
from mnemo_events.exceptions import RemoteStreamError
from mnemo_events.remote import RemoteStream, observe_remote
from mnemo_events.server import create_app
from mnemo_events.server._sse import SSE_STATS
from mnemo_events.server._state import SERVICE
from tests.helpers.receiver import eventually

API_KEY = "test-key-0123456789"


class Service:
    """A service on 127.0.0.1."""

    def __init__(self, app: web.Application, runner: web.AppRunner) -> None:
        self.app = app
        self.runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def publish(self, events: list[dict[str, Any]]) -> list[str]:
        """Publish through the real bus; the ids in order."""
        return [e.id for e in await self.app[SERVICE].bus.publish_batch(events)]

    def clients(self) -> int:
        """Connected stream clients."""
        return self.app[SERVICE].stream_clients


@pytest.fixture
async def service(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    """A running service with an API key (server settings from an indirect parameter)."""
    server: dict[str, Any] = getattr(request, "param", {})
    settings = Settings.model_validate(
        {
            "events": {"history_size": 50_000},
            "webhooks": {
                "persistence_path": str(tmp_path / "webhooks.json"),
                "delivery_store_path": str(tmp_path / "deliveries.sqlite3"),
            },
            "server": {"api_key": API_KEY, **server},
        }
    )
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield Service(app, runner)
    await runner.cleanup()


def _batch(count: int, start: int = 0, pad: int = 0) -> list[dict[str, Any]]:
    return [{"type": "load.tick", "data": {"n": start + i, "pad": "x" * pad}} for i in range(count)]


async def _take(events: AsyncIterator[Event], count: int, seconds: float = 10) -> list[Event]:
    got: list[Event] = []
    async with asyncio.timeout(seconds):
        async for event in events:
            got.append(event)
            if len(got) == count:
                break
    return got


class TestRemoteStream:
    async def test_yields_matching_events_as_events(self, service: Service) -> None:
        """The iterator yields the service's events matching the pattern, as Event objects."""
        async with RemoteStream(service.url, api_key=API_KEY, pattern="load.*") as events:
            first = asyncio.ensure_future(_take(events, 3))
            await eventually(lambda: service.clients() == 1)
            ids = await service.publish([*_batch(2), {"type": "other.x"}, *_batch(1, 2)])
            got = await first
        assert [e.id for e in got] == [ids[0], ids[1], ids[3]]
        assert [e.data["n"] for e in got] == [0, 1, 2]
        assert all(isinstance(e, Event) and e.type == "load.tick" for e in got)
        await eventually(lambda: service.clients() == 0)

    async def test_a_closed_stream_stays_closed(self, service: Service) -> None:
        """After aclose() iteration ends instead of reconnecting, and the service sees the
        client leave."""
        events = RemoteStream(service.url, api_key=API_KEY)
        first = asyncio.ensure_future(_take(events, 1))
        await eventually(lambda: service.clients() == 1)
        await service.publish(_batch(1))
        await first
        await events.aclose()
        assert [e async for e in events] == []
        await eventually(lambda: service.clients() == 0)

    async def test_a_wrong_key_raises_at_once(self, service: Service) -> None:
        """A 401 is not retried: the iterator raises RemoteStreamError naming the status,
        and the key is not in the message."""
        events = RemoteStream(service.url, api_key="wrong-key-0000000000")
        with pytest.raises(RemoteStreamError, match="401") as caught:
            await _take(events, 1, seconds=5)
        assert "wrong-key" not in str(caught.value)

    async def test_unreachable_service_gives_up_after_max_reconnects(self) -> None:
        """With nothing listening and max_reconnects=0 the first failure raises."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        events = RemoteStream(f"http://127.0.0.1:{port}", max_reconnects=0)
        with pytest.raises(RemoteStreamError, match="1 attempts"):
            await _take(events, 1, seconds=5)

    async def test_an_expired_last_event_id_counts_a_gap_and_goes_on(
        self, service: Service
    ) -> None:
        """Resuming from an id the history no longer holds counts a gap, then streams live."""
        async with RemoteStream(service.url, api_key=API_KEY, last_event_id="evt_gone") as s:
            first = asyncio.ensure_future(_take(s, 1))
            await eventually(lambda: service.clients() == 1)
            ids = await service.publish(_batch(1))
            got = await first
            assert s.gaps == 1
        assert [e.id for e in got] == ids

    @pytest.mark.parametrize("service", [{"stream_queue_size": 8}], indirect=True)
    async def test_a_client_cut_off_for_falling_behind_resumes_without_a_loss(
        self, service: Service
    ) -> None:
        """A consumer that pauses until the service cuts it off reconnects with
        Last-Event-ID by itself and still gets every event once, in order."""
        stats = service.app[SSE_STATS]
        async with RemoteStream(service.url, api_key=API_KEY, pattern="load.*") as events:
            first = asyncio.ensure_future(_take(events, 1))
            await eventually(lambda: service.clients() == 1)
            published = await service.publish(_batch(1))
            got = await first
            async with asyncio.timeout(30):  # the consumer pauses: the socket fills
                for round_ in range(200):
                    published += await service.publish(_batch(100, 1 + round_ * 100, pad=2048))
                    await asyncio.sleep(0.01)
                    if stats.stalled:
                        break
            assert stats.stalled == 1
            got += await _take(events, len(published) - 1, seconds=30)
            assert events.reconnects == 1
        assert [e.id for e in got] == published
        assert stats.resumed == 1


class TestObserveRemote:
    async def test_observable_delivers_events_and_dispose_disconnects(
        self, service: Service
    ) -> None:
        """Subscribing opens a stream, each event reaches on_next, disposing closes it."""
        seen: list[Event] = []
        subscription = observe_remote(service.url, api_key=API_KEY).subscribe(seen.append)
        try:
            await eventually(lambda: service.clients() == 1)
            ids = await service.publish(_batch(5))
            await eventually(lambda: len(seen) == 5)
        finally:
            subscription.dispose()
        assert [e.id for e in seen] == ids
        await eventually(lambda: service.clients() == 0)

    async def test_a_raising_observer_does_not_end_the_stream(self, service: Service) -> None:
        """An on_next that raises is reported and the next events still arrive."""
        seen: list[int] = []
        failures: list[Exception] = []

        def on_next(event: Event) -> None:
            seen.append(event.data["n"])
            if event.data["n"] == 0:
                raise RuntimeError("observer bug")

        observable = observe_remote(service.url, api_key=API_KEY, on_observer_error=failures.append)
        subscription = observable.subscribe(on_next)
        try:
            await eventually(lambda: service.clients() == 1)
            await service.publish(_batch(3))
            await eventually(lambda: len(seen) == 3)
        finally:
            subscription.dispose()
        assert seen == [0, 1, 2]
        assert [str(f) for f in failures] == ["observer bug"]

    async def test_a_refused_stream_reaches_on_error(self, service: Service) -> None:
        """A 401 ends the observable with RemoteStreamError in on_error."""
        errors: list[Exception] = []
        subscription = observe_remote(service.url).subscribe(on_error=errors.append)
        try:
            await eventually(lambda: len(errors) == 1)
        finally:
            subscription.dispose()
        assert isinstance(errors[0], RemoteStreamError)
