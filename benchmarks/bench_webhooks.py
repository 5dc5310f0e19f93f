"""Webhook delivery speed: the WebhookManager against a bare aiohttp POST loop.

The contenders send the same pre-built events (``Event.to_json()`` bytes) to the same local
aiohttp receiver, which runs in its own process so that its work does not share the sender's
event loop. The manager signs every request (HMAC-SHA256) and records every delivery and
attempt in a SQLite file; the bare loop only POSTs, from ``concurrency`` tasks over one
``ClientSession``. The manager gets ``max_in_flight_per_endpoint = concurrency``, and runs
once fed by ``deliver`` and once through ``EventBus.publish``. The last contender is the bare
loop doing the manager's duties and nothing else (each delivery committed to the SQLite store
before its attempt, signed headers, a timeout, the attempt recorded after): an upper bound for
any design of the manager on the same machine.

Throughput is events divided by the time from the first publish to the receiver's last
arrival. Latency is publish-to-receipt per event (the receiver stamps arrivals with
``time.monotonic()``, a clock shared by the processes of one machine); all events are
published at once, so it includes queueing. The manager's trial learns that every delivery
has ended from the manager's attempt-observer hook, so nothing polls ``get_metrics()`` while
it runs (each call sorts the latency window: about 20,000 instructions per delivery by
callgrind, counted against the manager when it polled every 5 ms).

``python -m benchmarks.bench_webhooks [--events N] [--concurrency C] [--profile]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from benchmarks._payloads import EVENT_TYPE, payload
from mnemo_events.config import RetryConfig, WebhooksConfig
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.webhook_manager import WebhookManager
from mnemo_events.webhooks import _delivery
from mnemo_events.webhooks._metrics import AttemptResult
from mnemo_events.webhooks._outcome import DeliveryJob, attempt_rows, new_delivery_id
from mnemo_events.webhooks._sender import Prepared, Sender
from mnemo_events.webhooks._store import DeliveryStore
from mnemo_events.webhooks.models import Webhook

__all__ = ["run"]

MANAGER = "WebhookManager (signed, SQLite store)"
MANAGER_BUS = "WebhookManager via EventBus.publish"
BARE = "bare aiohttp ClientSession.post loop"
DUTIES = "bare loop + the manager's duties, no pipeline"
_DUTIES_SECRET = "whsec_benchmark-only-0123456789"
_ROOT = Path(__file__).resolve().parent.parent


# -- the receiver, in its own process ---------------------------------------------------------


def _serve() -> None:
    """Run the receiver until stdin closes; print the port first."""
    arrivals: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        stamp = time.monotonic()
        event_id = json.loads(body)["id"]
        arrivals.setdefault(event_id, stamp)
        return web.Response(text="ok")

    async def collect(request: web.Request) -> web.Response:
        taken = dict(arrivals)
        arrivals.clear()
        return web.json_response(taken)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_get("/arrivals", collect)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None
        print(server.sockets[0].getsockname()[1], flush=True)  # type: ignore[attr-defined]
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


class _Receiver:
    """The receiver process (a plain subprocess: works whatever the caller's __main__ is)."""

    def __init__(self) -> None:
        code = "from benchmarks.bench_webhooks import _serve; _serve()"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/hook"

    async def arrivals(self, session: aiohttp.ClientSession) -> dict[str, float]:
        async with session.get(f"http://127.0.0.1:{self.port}/arrivals") as resp:
            found: dict[str, float] = await resp.json()
            return found

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


# -- the contenders ---------------------------------------------------------------------------


def _events(count: int, offset: int) -> list[Event]:
    return [Event.create(EVENT_TYPE, payload(offset + n)) for n in range(count)]


async def _bare(url: str, events: list[Event], concurrency: int) -> dict[str, float]:
    published: dict[str, float] = {}
    queue: asyncio.Queue[Event] = asyncio.Queue()
    for event in events:
        queue.put_nowait(event)
    headers = {"Content-Type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            event = queue.get_nowait()
            async with session.post(url, data=event.to_json(), headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"bare loop got HTTP {resp.status}")

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        for event in events:
            published[event.id] = start
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return published


async def _duties(url: str, events: list[Event], concurrency: int) -> dict[str, float]:
    """The bare loop doing what the manager must do per delivery, and nothing else, with the
    manager's own parts: the delivery committed to a real :class:`DeliveryStore` before its
    attempt, the attempt sent by the manager's :class:`Sender` (signed headers, timeout, no
    redirects, the answer read and classified), and its rows recorded after. No actor, no Rx
    pipeline, no metrics: an upper bound for any design of the manager.
    """
    published: dict[str, float] = {}
    webhook = Webhook(id="wh_duties", url=url, events=(EVENT_TYPE,), secret=_DUTIES_SECRET)
    prepared = Prepared(webhook, allow_private_networks=True)
    queue: asyncio.Queue[DeliveryJob] = asyncio.Queue()

    async def worker(sender: Sender, store: DeliveryStore) -> None:
        while not queue.empty():
            job = queue.get_nowait()
            assert job.persisted is not None
            await asyncio.shield(job.persisted)
            started = time.time()
            response = await sender.send(prepared, job.delivery_id, job.event_type, job.body, 1)
            if not response.ok:
                raise RuntimeError(f"the duties loop got {response.error}")
            store.record_attempt(
                *attempt_rows(job, 1, started, time.time(), "success", None, response)
            )

    with tempfile.TemporaryDirectory(prefix="mnemo-bench-") as folder:
        store = DeliveryStore(Path(folder) / "deliveries.sqlite3")
        await store.open()
        jar = aiohttp.DummyCookieJar()
        try:
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), cookie_jar=jar
            ) as session:
                sender = Sender(session, body_limit=WebhooksConfig().response_body_limit)
                start = time.monotonic()
                for event in events:
                    published[event.id] = start
                    job = DeliveryJob(
                        delivery_id=new_delivery_id(),
                        webhook_id=webhook.id,
                        event_id=event.id,
                        event_type=event.type,
                        body=event.to_json(),
                    )
                    job.persisted = store.add_delivery(
                        job.delivery_id, job.webhook_id, job.event_id, job.event_type, job.body,
                        time.time(),
                    )  # fmt: skip
                    queue.put_nowait(job)
                await asyncio.gather(*(worker(sender, store) for _ in range(concurrency)))
            await store.flush()
        finally:
            await store.close()
    return published


async def _manager(
    url: str, events: list[Event], concurrency: int, *, via_bus: bool = False
) -> dict[str, float]:
    published: dict[str, float] = {}
    finished = _Finished(len(events))
    _delivery.ATTEMPT_OBSERVERS.append(finished.on_attempt)
    try:
        with tempfile.TemporaryDirectory(prefix="mnemo-bench-") as folder:
            wm = WebhookManager(
                delivery_store_path=Path(folder) / "deliveries.sqlite3",
                allow_private_networks=True,
                max_in_flight_per_endpoint=concurrency,
            )
            async with wm, EventBus(validation="off", max_queue_size=len(events) + 1) as bus:
                retry = RetryConfig(max_attempts=1)
                await wm.register_webhook(url, [EVENT_TYPE], retry_config=retry)
                if via_bus:
                    wm.attach(bus)
                    start = time.monotonic()
                    for event in events:
                        sent = await bus.publish(event.type, event.data)
                        published[sent.id] = start
                else:
                    start = time.monotonic()
                    for event in events:
                        published[event.id] = start
                        wm.deliver(event)
                await finished.wait()
                failed = wm.get_metrics()["deliveries"]["failed"]
                if failed:
                    raise RuntimeError(f"the manager failed {failed} deliveries")
                await wm.flush()
    finally:
        _delivery.ATTEMPT_OBSERVERS.remove(finished.on_attempt)
    return published


class _Finished:
    """Wakes the trial once every delivery has ended, told by the manager's attempt observer
    hook: no polling of ``get_metrics()`` (each call sorts the latency window) during the run.
    """

    def __init__(self, expected: int) -> None:
        self._left = expected
        self._done = asyncio.Event()

    def on_attempt(self, job: DeliveryJob, result: AttemptResult) -> None:
        if result.outcome != "retry":
            self._left -= 1
            if self._left <= 0:
                self._done.set()

    async def wait(self) -> None:
        await self._done.wait()


Trial = Callable[[str, list[Event], int], Awaitable[dict[str, float]]]


async def _trial(
    receiver: _Receiver, trial: Trial, events: list[Event], concurrency: int
) -> dict[str, float]:
    cpu = time.process_time()
    published = await trial(receiver.url, events, concurrency)
    cpu = time.process_time() - cpu
    async with aiohttp.ClientSession() as session:
        arrived = await receiver.arrivals(session)
    missing = set(published) - set(arrived)
    if missing:
        raise RuntimeError(f"{len(missing)} events never arrived")
    latencies = sorted(arrived[i] - published[i] for i in published)
    begin = min(published.values())
    elapsed = max(arrived.values()) - begin
    return {
        "per_s": len(events) / elapsed,
        "seconds": elapsed,
        "p50_ms": _percentile(latencies, 0.50) * 1e3,
        "p99_ms": _percentile(latencies, 0.99) * 1e3,
        "cpu_us_per_event": cpu / len(events) * 1e6,
    }


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _median_of(samples: list[dict[str, float]]) -> dict[str, Any]:
    keys = ("per_s", "seconds", "p50_ms", "p99_ms", "cpu_us_per_event")
    merged: dict[str, Any] = {key: statistics.median(s[key] for s in samples) for key in keys}
    merged["samples_per_s"] = [round(s["per_s"], 1) for s in samples]
    return merged


async def _run(n_events: int, concurrency: int, repeat: int) -> dict[str, Any]:
    receiver = _Receiver()
    try:
        contenders: dict[str, Trial] = {
            BARE: _bare,
            MANAGER: _manager,
            MANAGER_BUS: lambda url, events, c: _manager(url, events, c, via_bus=True),
            DUTIES: _duties,
        }
        for trial in contenders.values():  # warm-up: imports, connections, SQLite, caches
            await _trial(receiver, trial, _events(min(50, n_events), 10**8), concurrency)
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in contenders}
        offset = 0
        for _ in range(repeat):
            for name, trial in contenders.items():  # interleaved, so drift hits all alike
                events = _events(n_events, offset)
                offset += n_events
                samples[name].append(await _trial(receiver, trial, events, concurrency))
    finally:
        receiver.close()
    results = {name: _median_of(runs) for name, runs in samples.items()}
    return {
        "n_events": n_events,
        "concurrency": concurrency,
        "repeat": repeat,
        "results": results,
        "ratio": results[MANAGER]["per_s"] / results[BARE]["per_s"],
        "ratio_via_bus": results[MANAGER_BUS]["per_s"] / results[BARE]["per_s"],
        "ratio_duties": results[DUTIES]["per_s"] / results[BARE]["per_s"],
        "cpu_ratio": results[BARE]["cpu_us_per_event"] / results[MANAGER]["cpu_us_per_event"],
    }


def run(n_events: int, concurrency: int, repeat: int | None = None) -> dict[str, Any]:
    """Measure deliveries per second and publish-to-receipt latency of the contenders.

    Returns a dict: ``n_events``, ``concurrency``, ``repeat``, ``results`` (per contender name:
    median ``per_s``, ``seconds``, ``p50_ms``, ``p99_ms``, ``cpu_us_per_event`` and every
    repetition's ``samples_per_s``), ``ratio`` (manager / bare loop, deliveries per second),
    ``ratio_via_bus``, ``ratio_duties`` (the manager's duties without its pipeline, see
    :func:`_duties`) and ``cpu_ratio`` (bare / manager CPU time per event, the sender
    process's). Runs its own event loop; ``repeat`` defaults to 5 (1 below 500 events).
    """
    if repeat is None:
        repeat = 5 if n_events >= 500 else 1
    return asyncio.run(_run(n_events, concurrency, repeat))


def _print(report: dict[str, Any]) -> None:
    print(
        f"{report['n_events']:,} events, concurrency {report['concurrency']}, "
        f"median of {report['repeat']}"
    )
    for name, row in report["results"].items():
        print(
            f"  {name:45s} {row['per_s']:9,.0f}/s   p50 {row['p50_ms']:8.1f} ms   "
            f"p99 {row['p99_ms']:8.1f} ms   cpu {row['cpu_us_per_event']:6.0f} us/event   "
            f"samples {row['samples_per_s']}"
        )
    print(
        f"  manager / bare loop: {report['ratio']:.2f}x   via bus: {report['ratio_via_bus']:.2f}x"
        f"   duties alone: {report['ratio_duties']:.2f}x"
    )


def main() -> None:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument(
        "--profile", action="store_true", help="profile the manager with pyinstrument"
    )
    args = parser.parse_args()
    if args.profile:
        _profile(args.events, args.concurrency)
        return
    _print(run(args.events, args.concurrency, args.repeat))


def _profile(n_events: int, concurrency: int) -> None:
    from pyinstrument import Profiler

    async def _go() -> None:
        receiver = _Receiver()
        try:
            await _trial(receiver, _manager, _events(50, 10**8), concurrency)
            profiler = Profiler(async_mode="disabled")
            profiler.start()
            await _trial(receiver, _manager, _events(n_events, 0), concurrency)
            profiler.stop()
        finally:
            receiver.close()
        print(profiler.output_text(unicode=True, color=False, show_all=False))

    asyncio.run(_go())


if __name__ == "__main__":
    main()
