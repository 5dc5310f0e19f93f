"""The argument parser of ``mnemo-events``: one subcommand per job, each with ``--help``."""

from __future__ import annotations

import argparse
from typing import Any

from mnemo_events.cli._nats import add_transport_options

__all__ = ["DEFAULT_LEVELS", "build_parser"]

_DESCRIPTION = """\
The event system of a cognitive-memory engine: an event bus, reactive pipelines and
signed, retried, durable webhooks.

Start with `mnemo-events demo`: it runs the whole system on this machine for a few seconds.
"""

_EPILOG = """\
Every command reads config.yaml (or --config PATH, or the file named by MNEMO_EVENTS_CONFIG);
MNEMO_EVENTS_<SECTION>_<KEY> environment variables override single keys, for example
MNEMO_EVENTS_SERVER_PORT=9000. Run `mnemo-events COMMAND --help` for a command's options.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _share(text: str) -> float:
    value = _non_negative(text)
    if value > 0.9:
        raise argparse.ArgumentTypeError(f"expected a share from 0 to 0.9, got {text}")
    return value


def _common(default_level: str, *, top: bool = False) -> argparse.ArgumentParser:
    """The common options, accepted before the command and after it.

    After the command they default to SUPPRESS, so a value given before the command is kept
    (argparse copies a subcommand's defaults over the top-level ones otherwise); ``main``
    fills in what neither gave (:data:`DEFAULT_LEVELS`).
    """
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    unset: dict[str, Any] = {} if top else {"default": argparse.SUPPRESS}
    group.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $MNEMO_EVENTS_CONFIG, else ./config.yaml if present, "
        "else built-in defaults)",
        **unset,
    )
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error", "critical"),
        help=f"show log lines at this level and above (default: {default_level})",
        **unset,
    )
    group.add_argument(
        "--json-logs",
        action="store_true",
        help="write log lines as JSON, one object per line",
        **unset,
    )
    return common


DEFAULT_LEVELS = {"serve": "info", "listen": "info", "worker": "info"}
"""Log level of each command when ``--log-level`` is not given (others: ``warning``)."""


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        parents=[_common("warning")],
        help="run the whole system end to end for a few seconds (start here)",
        description="Run a bus, a webhook manager with its SQLite store, a local receiver "
        "that checks every signature and fails a share of requests so retries happen, a "
        "simulated memory engine emitting all 15 event types, and a few pipelines. Prints "
        "live progress, then a summary per event type and per webhook. Exits 0 only if every "
        "delivery finally succeeded and every signature verified.",
    )
    demo.add_argument(
        "--events", type=_positive_int, default=2000, metavar="N", help="events to emit (2000)"
    )
    demo.add_argument(
        "--rate",
        type=_non_negative,
        default=200.0,
        metavar="PER_SECOND",
        help="events per second; 0 emits as fast as the bus accepts (200)",
    )
    demo.add_argument(
        "--error-share",
        type=_share,
        default=0.2,
        metavar="SHARE",
        help="share of deliveries the receiver fails at first (500, 503 or a time-out) "
        "before accepting a retry (0.2)",
    )
    demo.add_argument(
        "--seed", type=int, default=7, help="seed of the simulation and the receiver (7)"
    )
    demo.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the webhook file and the delivery store here (default: a temporary directory "
        "removed at the end)",
    )
    demo.add_argument(
        "--timeout",
        type=_non_negative,
        default=60.0,
        metavar="SECONDS",
        help="give up waiting for deliveries after this long (60)",
    )
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_transport_options(demo, local_server=True)


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        parents=[_common("info")],
        help="run the HTTP service (events, live stream, webhooks, metrics)",
        description="Serve the bus and the webhook manager over HTTP, configured from "
        "config.yaml. Every route but /healthz needs 'Authorization: Bearer <key>' when "
        "server.api_key resolves to a key (default: the MNEMO_EVENTS_API_KEY environment "
        "variable); without a key the service only binds to loopback. SIGTERM or Ctrl-C drains: "
        "accepted events are delivered or left pending in the delivery store. The routes are "
        "described by GET /openapi.json.",
    )
    serve.add_argument("--host", help="address to bind (default: server.host, 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, help="port to bind, 0 for any free one (default: server.port, 8080)"
    )
    add_transport_options(serve, local_server=False)


def _add_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "worker",
        parents=[_common("info")],
        help="run one webhook worker of a group on NATS JetStream",
        description="Deliver webhooks as one member of a group on NATS JetStream: every worker "
        "and serve on the same stream shares the registry, the delivery records and the work, "
        "and each delivery is attempted by one member at a time. SIGTERM or Ctrl-C stops "
        "taking work and hands unfinished deliveries back to the group.",
    )
    add_transport_options(worker, local_server=False)
    worker.add_argument(
        "--takeover-seconds",
        type=float,
        help="seconds after which a dead worker's deliveries are taken over "
        "(default: webhooks.takeover_seconds, 30)",
    )


def _add_schemas(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schemas = commands.add_parser(
        "schemas",
        help="list the event types, show a payload schema, export the OpenAPI document",
        description="The payload schemas of the registered event types. Each action takes "
        "the common options (--config, --log-level, --json-logs).",
    )
    actions = schemas.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser(
        "list",
        parents=[_common("warning")],
        help="the event types with their required fields",
        description="List every registered event type with its required and optional fields.",
    )
    show = actions.add_parser(
        "show",
        parents=[_common("warning")],
        help="the JSON Schema of one event type",
        description="Print the JSON Schema (draft 2020-12) of one event type's payload.",
    )
    show.add_argument("event_type", metavar="EVENT_TYPE", help="e.g. memory.created")
    export = actions.add_parser(
        "export",
        parents=[_common("warning")],
        help="the OpenAPI 3.1 document",
        description="Print the OpenAPI 3.1 document describing what each webhook receives "
        "(with --service, also the HTTP routes of `mnemo-events serve`).",
    )
    export.add_argument("--service", action="store_true", help="include the service's routes")
    export.add_argument("--output", "-o", metavar="FILE", help="write to FILE, not stdout")


def _add_verify(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = commands.add_parser(
        "verify",
        parents=[_common("warning")],
        help="check a webhook signature against a payload and a secret",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Check an X-MnemoCore-Signature header against the exact body a webhook\n"
        "received and the webhook's secret. Exits 0 when the signature is valid, 1 otherwise.",
        epilog="example:\n"
        "  mnemo-events verify --payload body.json --secret env:WEBHOOK_SECRET \\\n"
        "      --signature 't=1709150400,v1=5257a869e7ec...'\n",
    )
    verify.add_argument(
        "--payload", required=True, metavar="FILE", help="file with the raw body ('-': stdin)"
    )
    verify.add_argument(
        "--secret", required=True, help="the webhook secret, or env:NAME to read it from NAME"
    )
    verify.add_argument(
        "--signature", required=True, metavar="HEADER", help="the X-MnemoCore-Signature value"
    )
    verify.add_argument(
        "--tolerance",
        type=_non_negative,
        default=300.0,
        metavar="SECONDS",
        help="accept timestamps this far from now; 0 skips the time check (300)",
    )


def _add_tail(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tail = commands.add_parser(
        "tail",
        parents=[_common("warning")],
        help="print the live event stream of a running `mnemo-events serve`",
        description="Connect to GET /events/stream of a running service and print each event "
        "as it is published. Stops on Ctrl-C, after --count events, or when the service stops.",
    )
    tail.add_argument(
        "--url",
        help="base URL of the service (default: http://<server.host>:<server.port> from config)",
    )
    tail.add_argument(
        "--pattern", default=">", help="event type or pattern, e.g. 'memory.*' (default: all)"
    )
    tail.add_argument(
        "--api-key",
        metavar="KEY",
        help="bearer key, or env:NAME (default: server.api_key from config)",
    )
    tail.add_argument("--count", type=_positive_int, metavar="N", help="exit after N events")
    tail.add_argument("--json", action="store_true", help="print each event as one JSON line")


def _service_options() -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("service options")
    group.add_argument(
        "--url",
        help="base URL of the service (default: $MNEMO_EVENTS_URL, else "
        "http://<server.host>:<server.port> from config)",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help="bearer key, or env:NAME (default: server.api_key from config, by default the "
        "MNEMO_EVENTS_API_KEY variable)",
    )
    group.add_argument("--json", action="store_true", help="print the service's JSON answer")
    return options


def _add_webhooks(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    webhooks = commands.add_parser(
        "webhooks",
        help="manage the webhooks of a running `mnemo-events serve`",
        description="List, register, change, test and repair the webhooks of a running "
        "service, and inspect or resend their deliveries. Each action takes the common and "
        "service options (--url, --api-key, --json). Exit 0 done, 1 the service refused or "
        "could not be reached, 2 bad usage.",
    )
    actions = webhooks.add_subparsers(dest="action", metavar="ACTION", required=True)
    parents = [_common("warning"), _service_options()]

    def action(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, parents=parents, help=help_text, description=description)

    listed = action("list", "every webhook", "List the webhooks, secrets masked.")
    listed.add_argument("--enabled-only", action="store_true", help="leave disabled ones out")
    show = action("show", "one webhook and its health", "Show a webhook and its delivery counts.")
    show.add_argument("webhook_id", metavar="WEBHOOK_ID")
    add = action(
        "add",
        "register a webhook",
        "Register a webhook; its secret is printed once (generated unless --secret is given).",
    )
    add.add_argument("url_to_add", metavar="URL", help="where deliveries are POSTed")
    add.add_argument(
        "--events",
        action="append",
        required=True,
        metavar="PATTERNS",
        help="event types or patterns, comma-separated or repeated (memory.*,dream.>)",
    )
    update = action("update", "change a webhook", "Change some fields of a webhook.")
    update.add_argument("webhook_id", metavar="WEBHOOK_ID")
    update.add_argument(
        "--endpoint", dest="new_url", metavar="URL", help="a new endpoint URL to deliver to"
    )
    update.add_argument("--events", action="append", metavar="PATTERNS", help="new patterns")
    state = update.add_mutually_exclusive_group()
    state.add_argument(
        "--enable",
        dest="enabled",
        action="store_const",
        const=True,
        help="enable (also after it was disabled for failures)",
    )
    state.add_argument("--disable", dest="enabled", action="store_const", const=False)
    for parser in (add, update):
        parser.add_argument("--description", help="a note for operators")
        parser.add_argument(
            "--header",
            action="append",
            metavar="NAME=VALUE",
            help="a header sent with every delivery (repeat for more)",
        )
        parser.add_argument(
            "--max-attempts",
            type=_positive_int,
            metavar="N",
            help="attempts in all, retries included",
        )
    add.add_argument("--secret", help="the signing secret (default: generated)")
    add.add_argument(
        "--scheme",
        choices=("mnemocore", "standard", "both"),
        help="signature headers to send (default: the service's)",
    )
    delete = action(
        "delete", "remove a webhook", "Remove a webhook; unfinished deliveries end as failed."
    )
    delete.add_argument("webhook_id", metavar="WEBHOOK_ID")
    rotate = action(
        "rotate",
        "rotate the signing secret",
        "Replace the secret; the old one keeps signing for the grace period.",
    )
    rotate.add_argument("webhook_id", metavar="WEBHOOK_ID")
    rotate.add_argument(
        "--grace",
        type=_non_negative,
        default=86400.0,
        metavar="SECONDS",
        help="how long the old secret still signs (86400)",
    )
    rotate.add_argument("--secret", help="the new secret (default: generated)")
    test = action(
        "test",
        "send a signed sample event to one webhook",
        "Send a signed sample event of a chosen type to this webhook only (a real, recorded "
        "delivery), wait for its outcome and print every attempt. Exit 0 when it succeeded.",
    )
    test.add_argument("webhook_id", metavar="WEBHOOK_ID")
    test.add_argument(
        "--type", default="memory.created", metavar="EVENT_TYPE", help="(memory.created)"
    )
    test.add_argument("--data", metavar="JSON", help="the payload (default: a schema sample)")
    test.add_argument("--wait", type=_non_negative, default=30.0, metavar="SECONDS", help="(30)")
    test.add_argument("--no-wait", action="store_true", help="print the delivery id and exit")
    deliveries = action(
        "deliveries",
        "a webhook's deliveries, or one delivery's attempts",
        "With a webhook id, its deliveries newest first; with a delivery id (dlv_...), that "
        "delivery and every attempt.",
    )
    deliveries.add_argument("target", metavar="WEBHOOK_ID|DELIVERY_ID")
    deliveries.add_argument(
        "--status", choices=("pending", "retrying", "success", "failed"), help="only this status"
    )
    deliveries.add_argument("--limit", type=_positive_int, default=20, help="(20)")
    redeliver = action(
        "redeliver", "send one finished delivery again", "Send a finished delivery again."
    )
    redeliver.add_argument("delivery_id", metavar="DELIVERY_ID")
    replay = action(
        "replay", "send a webhook's failed deliveries again", "Send every failed delivery again."
    )
    replay.add_argument("webhook_id", metavar="WEBHOOK_ID")


def _status_list(text: str) -> list[int]:
    codes: list[int] = []
    for item in text.split(","):
        try:
            code = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected status codes like 500,200, got {text!r}"
            ) from None
        if not 200 <= code <= 599:
            raise argparse.ArgumentTypeError(f"expected codes from 200 to 599, got {code}")
        codes.append(code)
    return codes


def _add_listen(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listen = commands.add_parser(
        "listen",
        parents=[_common("info")],
        help="receive webhook deliveries locally: verify, print, answer",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The receiving team's side: a local HTTP receiver that checks every "
        "delivery's signature\n(X-MnemoCore-Signature, and the Standard Webhooks headers when "
        "sent), prints it and\nanswers with the status codes you choose. A bad signature is "
        "answered 401. Exits 0\nafter --count deliveries (or on Ctrl-C) if every signature "
        "verified, else 1.",
        epilog="example:\n"
        "  mnemo-events listen --port 9000 --secret env:WEBHOOK_SECRET --status 503,200\n"
        "  mnemo-events webhooks add http://127.0.0.1:9000/hook --events 'memory.*'\n",
    )
    listen.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    listen.add_argument("--port", type=int, default=9000, help="port to bind, 0 for any (9000)")
    listen.add_argument(
        "--secret",
        required=True,
        action="append",
        help="the webhook secret, or env:NAME; repeat to accept several (a rotation)",
    )
    listen.add_argument(
        "--status",
        type=_status_list,
        default=[200],
        metavar="CODES",
        help="answer verified deliveries with these codes in turn, the last repeated: "
        "503,200 fails each first request (200)",
    )
    listen.add_argument(
        "--tolerance",
        type=_non_negative,
        default=300.0,
        metavar="SECONDS",
        help="accept timestamps this far from now (300)",
    )
    listen.add_argument("--count", type=_positive_int, metavar="N", help="exit after N requests")
    listen.add_argument("--json", action="store_true", help="print each delivery as JSON")
    listen.add_argument(
        "--quiet", action="store_true", help="print one line per delivery, not the payload"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``mnemo-events`` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="mnemo-events",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common("warning, info for serve and listen", top=True)],
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_demo(commands)
    _add_serve(commands)
    _add_worker(commands)
    _add_schemas(commands)
    _add_verify(commands)
    _add_tail(commands)
    _add_webhooks(commands)
    _add_listen(commands)
    return parser
