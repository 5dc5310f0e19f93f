"""The ``mnemo-events`` command: ``demo``, ``serve``, ``schemas``, ``verify``, ``tail``,
``webhooks`` (an operator's client of a running service) and ``listen`` (a local receiver).

The CLI is the one place that prints and configures logging; the library does neither.
Exit codes: 0 success, 1 the command's check failed (``verify``, ``demo``, ``tail``),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from mnemo_events.cli._parser import DEFAULT_LEVELS, build_parser
from mnemo_events.config import Settings, load_config
from mnemo_events.exceptions import (
    ConfigError,
    DeliveryStoreCorruptError,
    WebhookPersistenceError,
)

__all__ = ["main"]

_Command = Callable[[argparse.Namespace, Settings], int]


def _command(name: str) -> _Command:
    # Imported on use: only the chosen command's own modules load.
    if name == "demo":
        from mnemo_events.cli._demo import run_demo

        return run_demo
    if name == "tail":
        from mnemo_events.cli._tail import run_tail

        return run_tail
    if name == "webhooks":
        from mnemo_events.cli._webhooks import run_webhooks

        return run_webhooks
    if name == "listen":
        from mnemo_events.cli._listen import run_listen

        return run_listen
    from mnemo_events.cli import _commands

    commands: dict[str, _Command] = {
        "schemas": _commands.run_schemas,
        "serve": _commands.run_serve,
        "verify": _commands.run_verify,
        "worker": _commands.run_worker,
    }
    return commands[name]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mnemo-events`` with ``argv`` (default: the process arguments); the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from mnemo_events import __version__

        print(f"mnemo-events {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    from mnemo_events.logging import configure_logging

    level = args.log_level or DEFAULT_LEVELS.get(args.command, "warning")
    from mnemo_events.cli._render import LogStream

    # Whole lines only, never written onto the demo's progress line.
    configure_logging(json=args.json_logs, level=level, stream=LogStream(sys.stderr))  # type: ignore[arg-type]
    try:
        settings = load_config(args.config)
        return _command(args.command)(args, settings)
    except (ConfigError, DeliveryStoreCorruptError, WebhookPersistenceError) as err:
        # Bad settings, a damaged delivery store or an unreadable webhook file: the operator's
        # to fix, named in one line (the files are left as they are).
        print(f"mnemo-events {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
