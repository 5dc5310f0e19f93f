"""Case 9: a webhook group on JetStream with 1, 2 and 3 workers, against the single-process
manager, in the same run.

Every contender delivers the same number of events to one webhook on the same local aiohttp
receiver, which runs in its own process (``benchmarks.bench_webhooks``'s receiver). The
single-process contender is case 6's ``WebhookManager via EventBus.publish`` (in-memory bus,
SQLite store, signed). A group contender is N ``mnemo-events worker`` processes on one
local nats-server (started for the case): this process publishes the events to the stream
with ``publish_batch`` (1,000 at a time); the group fans them out (a record and a work
message per delivery, in JetStream KV and the work stream), takes the work with a lease per
delivery, attempts, records and acknowledges. Every worker gets
``max_in_flight_per_endpoint = concurrency``; every webhook has ``max_attempts=1``.

The rate is deliveries over the time from the first publish to the receiver's last arrival
(workers are started and ready before the clock starts). Repetitions rotate the contenders'
order. The machine's cores are shared by the publisher, the workers, nats-server and the
receiver: on a 2-core machine a third worker adds processes, not cores.

Run alone: ``python -m benchmarks.bench_webhook_group [--events N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from benchmarks._harness import CaseResult, Row
from benchmarks._payloads import EVENT_TYPE, Sizes, payload
from benchmarks.bench_webhooks import _manager, _Receiver
from mnemo_events.cli._nats import local_nats_server
from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus
from mnemo_events.webhook_manager import WebhookManager

__all__ = ["SINGLE", "case_9", "group_name"]

SINGLE = "single-process WebhookManager (SQLite)"
_ROOT = Path(__file__).resolve().parent.parent
_GROUP = "deliveries per second"
_EVENTS_LIMIT = 5_000


def group_name(workers: int) -> str:
    """The row name of a group of ``workers`` workers."""
    return f"group on JetStream, {workers} worker{'s' if workers > 1 else ''}"


def _start_workers(url: str, count: int, concurrency: int) -> list[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNEMO_EVENTS_")}
    env |= {
        "MNEMO_EVENTS_CONFIG": str(_ROOT / "config.yaml"),
        "MNEMO_EVENTS_WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
        "MNEMO_EVENTS_WEBHOOKS_MAX_IN_FLIGHT_PER_ENDPOINT": str(concurrency),
        "MNEMO_EVENTS_WEBHOOKS_STOP_TIMEOUT": "1",
    }
    workers = []
    for _ in range(count):
        process = subprocess.Popen(
            [sys.executable, "-m", "mnemo_events", "worker", "--transport", url],
            cwd=_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()
        if "member" not in line:
            process.kill()
            process.wait()
            raise RuntimeError(f"a worker did not start: {line!r}")
        workers.append(process)
    return workers


def _stop_workers(workers: list[subprocess.Popen[str]]) -> None:
    for process in workers:
        process.send_signal(signal.SIGTERM)
    for process in workers:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


async def _group(
    url: str, receiver: _Receiver, count: int, workers: int, concurrency: int
) -> float:
    """Deliveries per second of a group of ``workers`` on ``count`` events."""
    admin = WebhookManager(transport=url, allow_private_networks=True)
    hook = await admin.register_webhook(
        receiver.url, [EVENT_TYPE], retry_config=RetryConfig(max_attempts=1)
    )
    processes = await asyncio.to_thread(_start_workers, url, workers, concurrency)
    try:
        items = [(EVENT_TYPE, payload(n)) for n in range(count)]
        arrived: dict[str, float] = {}
        async with (
            EventBus(transport=url, validation="off") as bus,
            aiohttp.ClientSession() as http,
        ):
            await receiver.arrivals(http)  # forget earlier arrivals
            start = time.monotonic()
            sent: list[Event] = []
            for first in range(0, count, 1_000):
                sent += await bus.publish_batch(items[first : first + 1_000])
            wanted = {event.id for event in sent}
            deadline = time.monotonic() + 300
            while not wanted <= set(arrived):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{len(wanted - set(arrived))} deliveries never arrived")
                await asyncio.sleep(0.05)
                arrived |= await receiver.arrivals(http)
        return count / (max(arrived[i] for i in wanted) - start)
    finally:
        await asyncio.to_thread(_stop_workers, processes)
        await admin.delete_webhook(hook.id)
        await admin.stop()


async def _single(receiver: _Receiver, count: int, concurrency: int) -> float:
    events = [Event.create(EVENT_TYPE, payload(n)) for n in range(count)]
    published = await _manager(receiver.url, events, concurrency, via_bus=True)
    async with aiohttp.ClientSession() as http:
        arrived = await receiver.arrivals(http)
    start = min(published.values())
    return count / (max(arrived[i] for i in published) - start)


async def case_9(sizes: Sizes, repeat: int) -> CaseResult:
    """The group with 1, 2 and 3 workers against the single-process manager."""
    started = time.perf_counter()
    count = min(sizes.webhook_events, _EVENTS_LIMIT)
    concurrency = sizes.webhook_concurrency
    names = [SINGLE, *(group_name(n) for n in (1, 2, 3))]
    samples: dict[str, list[float]] = {name: [] for name in names}
    receiver = _Receiver()
    try:
        with local_nats_server() as url:
            if sizes.warmup:
                await _single(receiver, min(count, 200), concurrency)
                await _group(url, receiver, min(count, 200), 1, concurrency)
            for round_number in range(repeat):
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    if name == SINGLE:
                        rate = await _single(receiver, count, concurrency)
                    else:
                        rate = await _group(url, receiver, count, int(name.split()[3]), concurrency)
                    samples[name].append(rate)
    finally:
        receiver.close()
    result = CaseResult(9, "Webhook group on JetStream: 1, 2 and 3 workers")
    result.rows = [
        Row(
            9,
            _GROUP,
            name,
            "events/s",
            tuple(samples[name]),
            SINGLE if name != SINGLE else None,
            count,
        )
        for name in names
    ]
    result.notes = [
        f"{count:,} events to one webhook per repetition, max_in_flight_per_endpoint "
        f"{concurrency} per worker, {repeat} repetition(s); method in "
        "`benchmarks/bench_webhook_group.py`. Workers, nats-server, the receiver and the "
        "publisher share this machine's cores.",
    ]
    result.seconds = time.perf_counter() - started
    return result


def main() -> None:
    """Run the case alone and print its rows."""
    from benchmarks._payloads import FULL

    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=FULL.webhook_events)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = dataclasses.replace(FULL, webhook_events=args.events)
    report = asyncio.run(case_9(sizes, args.repeat))
    for row in report.rows:
        print(f"{row.name:45} {row.median:10.1f} {row.unit}  samples {row.samples}")


if __name__ == "__main__":
    main()
