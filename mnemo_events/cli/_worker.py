"""``worker``: one member of a webhook group on JetStream, delivering until SIGTERM or Ctrl-C.

::

    mnemo-events worker --transport nats://127.0.0.1:4222 [--takeover-seconds 30]

The worker shares the group's registry, records and work with every other ``worker`` and
``serve`` on the same stream (see "Webhook workers on JetStream" in the README). On SIGTERM it
stops taking work, lets running attempts finish for ``webhooks.stop_timeout`` seconds, and
hands every delivery it still holds back to the group.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from mnemo_events.config import Settings, group_transport

__all__ = ["run_worker"]


def _settings(args: argparse.Namespace, settings: Settings) -> Settings:
    raw = settings.model_dump()
    if args.transport:
        raw["webhooks"]["transport"] = args.transport
    if args.takeover_seconds is not None:
        raw["webhooks"]["takeover_seconds"] = args.takeover_seconds
    return Settings.model_validate(raw)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """``worker``: run one group member until SIGTERM or Ctrl-C (exit 2 without a transport)."""
    settings = _settings(args, settings)
    transport = group_transport(settings)
    if transport is None:
        print(
            "mnemo-events worker: no JetStream transport: give --transport nats://host:4222 "
            "(or set webhooks.transport or events.transport)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_work(settings, transport))


async def _work(settings: Settings, transport: object) -> int:
    from mnemo_events.webhook_manager import WebhookManager

    manager = WebhookManager(config=settings.webhooks, transport=transport)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await manager.start()
        group = manager.group
        assert group is not None
        member = group.member
        print(
            f"mnemo-events worker: member {member.owner if member else '?'} of the webhook group "
            f"on {group.transport.servers} (stream {group.transport.config.stream}, takeover "
            f"{settings.webhooks.takeover_seconds:g} s); Ctrl-C or SIGTERM to stop",
            flush=True,
        )
        await stopping.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
        await manager.stop()
    print("mnemo-events worker: stopped", flush=True)
    return 0
