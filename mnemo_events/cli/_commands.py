"""``schemas``, ``verify`` and ``serve``: the short commands."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mnemo_events.cli._render import table
from mnemo_events.config import Settings, check_api_key
from mnemo_events.schemas import export_openapi_spec, get_json_schema, list_event_types
from mnemo_events.webhook_manager import WebhookSignature

__all__ = ["run_schemas", "run_serve", "run_verify", "run_worker"]


def _dump(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def run_schemas(args: argparse.Namespace, settings: Settings) -> int:
    """``schemas list|show|export``."""
    if args.action == "list":
        rows = []
        for event_type in list_event_types():
            schema = get_json_schema(event_type)
            required = list(schema.get("required", []))
            optional = [name for name in schema.get("properties", {}) if name not in required]
            rows.append((event_type, ", ".join(required), len(optional)))
        print(table(("event type", "required fields", "optional"), rows))
        print(f"\n{len(rows)} event types; `mnemo-events schemas show TYPE` prints one schema.")
        return 0
    if args.action == "show":
        try:
            schema = get_json_schema(args.event_type)
        except KeyError as err:
            print(f"mnemo-events schemas show: {err.args[0]}", file=sys.stderr)
            return 2
        print(_dump(schema))
        return 0
    if args.service:
        from mnemo_events.server import service_openapi

        document = service_openapi()
    else:
        document = export_openapi_spec()
    text = _dump(document) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output} ({len(document.get('webhooks', {}))} webhook events)")
    else:
        sys.stdout.write(text)
    return 0


def _read_payload(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    return Path(source).read_bytes()


def _secret(value: str) -> str | None:
    if value.startswith("env:"):
        return os.environ.get(value[4:]) or None
    return value


def _timestamp(header: str) -> int | None:
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t" and value.strip().isdigit():
            return int(value.strip())
    return None


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    """``verify``: exit 0 when the signature is valid for the payload and secret, else 1."""
    secret = _secret(args.secret)
    if secret is None:
        print(f"mnemo-events verify: {args.secret[4:]} is not set or empty", file=sys.stderr)
        return 1
    try:
        payload = _read_payload(args.payload)
    except OSError as err:
        print(f"mnemo-events verify: cannot read {args.payload}: {err.strerror}", file=sys.stderr)
        return 1
    tolerance = args.tolerance or None
    if WebhookSignature.verify(payload, secret, args.signature, tolerance=tolerance):
        stamp = _timestamp(args.signature)
        age = f", signed {int(time.time()) - stamp} s ago" if stamp is not None else ""
        print(f"valid: the signature matches this payload and secret{age}")
        return 0
    if WebhookSignature.verify(payload, secret, args.signature, tolerance=None):
        reason = f"the timestamp is more than {args.tolerance:g} s from now (a replay?)"
    elif _timestamp(args.signature) is None:
        reason = "the header is malformed (expected t=<unix seconds>,v1=<hex>)"
    else:
        reason = "no v1 signature matches this payload and secret (tampered body or wrong secret)"
    print(f"invalid: {reason}")
    return 1


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """``serve``: run the HTTP service until SIGTERM or Ctrl-C."""
    from mnemo_events.cli._nats import with_transport
    from mnemo_events.server import create_app, run_server

    settings = with_transport(args, settings)

    changes = {key: value for key in ("host", "port") if (value := getattr(args, key)) is not None}
    if changes:
        raw = settings.model_dump()
        raw["server"].update(changes)
        settings = Settings.model_validate(raw)
    key = _checked_key(settings)  # raises ConfigError: a short or non-printable key
    app = create_app(settings)  # may raise ConfigError: no key and not loopback
    server = settings.server
    auth = "API key required" if key is not None else "no API key: loopback only"

    def _ready(url: str) -> None:
        print(f"mnemo-events serve: listening on {url} ({auth}); Ctrl-C or SIGTERM to stop")
        sys.stdout.flush()

    try:
        asyncio.run(run_server(app, server.host, server.port, on_ready=_ready))
    except OSError as err:
        if err.errno not in _BIND_ERRORS:
            raise
        reason = err.strerror or str(err)
        print(
            f"mnemo-events serve: cannot listen on {server.host}:{server.port}: {reason} "
            "(choose another with --port or server.port)",
            file=sys.stderr,
        )
        return 2
    print("mnemo-events serve: stopped")
    return 0


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """``worker``: one member of a webhook group (see :mod:`mnemo_events.cli._worker`)."""
    from mnemo_events.cli._worker import run_worker as _run

    return _run(args, settings)


_BIND_ERRORS = frozenset({errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES})


def _checked_key(settings: Settings) -> str | None:
    """The service's API key, refused (exit 2) when too short or not printable ASCII."""
    from mnemo_events.server import resolve_api_key

    key = resolve_api_key(settings.server)
    if key is not None:
        ref = settings.server.api_key or ""
        check_api_key(key, ref[4:] if ref.startswith("env:") else "server.api_key")
    return key
