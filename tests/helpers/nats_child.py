"""The child processes of the JetStream process tests (some are SIGKILLed).

Run as a module from the repository root (a script run would put ``tests/helpers`` first on
``sys.path``, where ``nats.py`` hides the nats package)::

    python -m tests.helpers.nats_child publish <url> <count> <out> [--interval S]
        [--publish-timeout S]
    python -m tests.helpers.nats_child subscribe <url> <pattern> <out> [--durable NAME]
        [--delay S] [--stall-at N] [--delivery-timeout S]

``publish`` publishes ``count`` events ``memory.created {"n": i}`` (metadata ``{"pid": <its
pid>}``) on a bus with the JetStream transport and appends one JSON line per event whose
``publish`` returned (``{"id", "n"}``), or
``{"error", "n"}`` when it raised; it prints ``DONE`` at the end. ``subscribe`` prints ``READY``
once subscribed, appends ``{"id", "n", "pid"}`` for every event its handler finishes (before
the handler returns, so before the acknowledgement), and keeps ``<out>.stats.json`` up to
date with the subscription's figures. With ``--stall-at N`` the handler of event ``n == N``
prints ``STALLED`` and hangs: the test kills the process there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from mnemo_events.config import RetryConfig
from mnemo_events.event import Event
from mnemo_events.event_bus import EventBus


def _append(out: Path, record: dict[str, Any]) -> None:
    with out.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()


async def publish(args: argparse.Namespace) -> None:
    """Publish ``count`` events, recording each one whose publish returned."""
    out = Path(args.out)
    bus = EventBus(transport=args.url, validation="off", publish_timeout=args.publish_timeout)
    source = {"pid": os.getpid()}
    async with bus:
        for n in range(args.count):
            try:
                event = await bus.publish("memory.created", {"n": n}, source)
            except Exception as err:
                _append(out, {"error": f"{type(err).__name__}: {err}", "n": n})
            else:
                _append(out, {"id": event.id, "n": n})
            if args.interval:
                await asyncio.sleep(args.interval)
    print("DONE", flush=True)


async def subscribe(args: argparse.Namespace) -> None:
    """Subscribe, record every handled event, and run until killed or stdin closes."""
    out = Path(args.out)
    stats = Path(f"{args.out}.stats.json")
    pid = os.getpid()
    retry = RetryConfig(max_attempts=5, base_delay_seconds=0.05, max_delay_seconds=0.2)
    bus = EventBus(transport=args.url, validation="off", delivery_timeout=args.delivery_timeout)

    async def handler(event: Event) -> None:
        n = event.data["n"]
        if n == args.stall_at:
            print("STALLED", n, flush=True)
            await asyncio.sleep(3600)
        if args.delay:
            await asyncio.sleep(args.delay)
        _append(out, {"id": event.id, "n": n, "pid": pid})

    async with bus:
        if args.durable:
            sub_id = bus.subscribe(args.pattern, handler, durable=args.durable, retry=retry)
        else:
            sub_id = bus.subscribe(args.pattern, handler)
        print("READY", flush=True)
        loop = asyncio.get_running_loop()
        closed = loop.run_in_executor(None, sys.stdin.read)
        while not closed.done():
            figures = (await bus.get_stats())["transport"]
            durable = [d for d in figures["durables"] if d["id"] == sub_id]
            text = json.dumps({"transport": figures, "durable": durable})
            await asyncio.to_thread(stats.write_text, text)
            await asyncio.wait([closed], timeout=0.2)


def main() -> None:
    """Parse the arguments and run one mode."""
    parser = argparse.ArgumentParser()
    modes = parser.add_subparsers(dest="mode", required=True)
    pub = modes.add_parser("publish")
    pub.add_argument("url")
    pub.add_argument("count", type=int)
    pub.add_argument("out")
    pub.add_argument("--interval", type=float, default=0.0)
    pub.add_argument("--publish-timeout", type=float, default=10.0)
    sub = modes.add_parser("subscribe")
    sub.add_argument("url")
    sub.add_argument("pattern")
    sub.add_argument("out")
    sub.add_argument("--durable")
    sub.add_argument("--delay", type=float, default=0.0)
    sub.add_argument("--stall-at", type=int, default=-1)
    sub.add_argument("--delivery-timeout", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(publish(args) if args.mode == "publish" else subscribe(args))


if __name__ == "__main__":
    main()
