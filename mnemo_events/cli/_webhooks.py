"""``webhooks ...``: manage the webhooks of a running service from the shell.

Each action is one or two HTTP calls (see :mod:`mnemo_events.cli._client`). Exit codes: 0
done, 1 the service refused or could not be reached (the reason is printed), 2 bad usage;
``test`` exits 1 also when the test delivery failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from mnemo_events.cli._client import ServiceClient, ServiceError, api_key_of, base_url_of
from mnemo_events.cli._render import format_ms, table
from mnemo_events.config import Settings

__all__ = ["run_webhooks"]

_Action = Callable[[ServiceClient, argparse.Namespace], Awaitable[int]]


def _print_json(document: Any) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def _headers(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    headers: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--header expects NAME=VALUE, got {pair!r}")
        headers[name.strip()] = value
    return headers


def _patterns(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _webhook_lines(hook: dict[str, Any]) -> list[str]:
    state = "enabled" if hook.get("enabled") else f"disabled ({hook.get('disabled_reason')})"
    retry = hook.get("retry_config") or {}
    lines = [
        f"id           {hook['id']}",
        f"url          {hook['url']}",
        f"events       {', '.join(hook.get('events', []))}",
        f"state        {state}",
        f"secret       {hook.get('secret')}",
        f"signature    {hook.get('signature_scheme')}",
        f"retries      {retry.get('max_attempts')} attempts, first delay "
        f"{retry.get('base_delay_seconds')} s, at most {retry.get('max_delay_seconds')} s",
    ]
    if hook.get("description"):
        lines.append(f"description  {hook['description']}")
    if hook.get("headers"):
        shown = ", ".join(f"{k}: {v}" for k, v in hook["headers"].items())
        lines.append(f"headers      {shown}")
    return lines


async def _list(client: ServiceClient, args: argparse.Namespace) -> int:
    params = {"enabled_only": "true"} if args.enabled_only else {}
    found = await client.call("GET", "/webhooks", params=params)
    if args.json:
        _print_json(found)
        return 0
    rows = [
        (
            hook["id"],
            "yes" if hook["enabled"] else "no",
            ", ".join(hook["events"]),
            hook["url"],
            hook.get("description") or "",
        )
        for hook in found["webhooks"]
    ]
    print(table(("id", "enabled", "events", "url", "description"), rows))
    print(f"\n{found['count']} webhooks")
    return 0


async def _show(client: ServiceClient, args: argparse.Namespace) -> int:
    hook = await client.call("GET", f"/webhooks/{args.webhook_id}")
    if args.json:
        _print_json(hook)
        return 0
    print("\n".join(_webhook_lines(hook)))
    status = hook.get("status") or {}
    counts = status.get("deliveries") or {}
    rate = status.get("success_rate")
    shown_rate = f"{rate:.1%}" if isinstance(rate, int | float) else "-"
    print(
        f"deliveries   {counts.get('total', 0)} ({counts.get('success', 0)} succeeded, "
        f"{counts.get('failed', 0)} failed, {counts.get('pending', 0)} pending, "
        f"{counts.get('retrying', 0)} retrying); success rate {shown_rate}; "
        f"{status.get('consecutive_failures', 0)} consecutive failures"
    )
    return 0


async def _add(client: ServiceClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"url": args.url_to_add, "events": _patterns(args.events)}
    for key in ("secret", "description"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.scheme is not None:
        body["signature_scheme"] = args.scheme
    headers = _headers(args.header)
    if headers:
        body["headers"] = headers
    if args.max_attempts is not None:
        body["retry_config"] = {"max_attempts": args.max_attempts}
    hook = await client.call("POST", "/webhooks", body=body)
    if args.json:
        _print_json(hook)
        return 0
    print("\n".join(_webhook_lines(hook)))
    print("\nThe secret is shown this once: store it where the receiver can read it.")
    return 0


async def _update(client: ServiceClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.new_url is not None:
        body["url"] = args.new_url
    events = _patterns(args.events)
    if events is not None:
        body["events"] = events
    if args.enabled is not None:
        body["enabled"] = args.enabled
    if args.description is not None:
        body["description"] = args.description
    headers = _headers(args.header)
    if headers is not None:
        body["headers"] = headers
    if args.max_attempts is not None:
        body["retry_config"] = {"max_attempts": args.max_attempts}
    if not body:
        print(
            "mnemo-events webhooks update: nothing to change; give --endpoint, --events, --enable, "
            "--disable, --description, --header or --max-attempts",
            file=sys.stderr,
        )
        return 2
    hook = await client.call("PATCH", f"/webhooks/{args.webhook_id}", body=body)
    if args.json:
        _print_json(hook)
    else:
        print("\n".join(_webhook_lines(hook)))
    return 0


async def _delete(client: ServiceClient, args: argparse.Namespace) -> int:
    await client.call("DELETE", f"/webhooks/{args.webhook_id}")
    print(f"deleted {args.webhook_id}")
    return 0


async def _rotate(client: ServiceClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"grace_seconds": args.grace}
    if args.secret is not None:
        body["secret"] = args.secret
    hook = await client.call("POST", f"/webhooks/{args.webhook_id}/rotate-secret", body=body)
    if args.json:
        _print_json(hook)
        return 0
    print(f"new secret   {hook['secret']}")
    print(
        f"The old secret still signs for {args.grace:g} s ({hook.get('rotating_secrets', 0)} "
        "old secret(s) in use); the new one is shown this once."
    )
    return 0


def _attempt_rows(delivery: dict[str, Any]) -> list[tuple[object, ...]]:
    return [
        (
            attempt["number"],
            attempt["outcome"],
            attempt.get("status_code") or "-",
            format_ms(attempt.get("latency_ms")),
            attempt.get("error") or "",
        )
        for attempt in delivery.get("attempt_log") or []
    ]


async def _test(client: ServiceClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"event_type": args.type}
    if args.data is not None:
        try:
            body["data"] = json.loads(args.data)
        except json.JSONDecodeError as err:
            print(f"mnemo-events webhooks test: --data is not JSON: {err}", file=sys.stderr)
            return 2
    queued = await client.call("POST", f"/webhooks/{args.webhook_id}/test", body=body)
    delivery_id = queued["delivery_id"]
    if not args.json:
        print(f"sent {queued['event_type']} {queued['event_id']} as delivery {delivery_id}")
    if args.no_wait:
        if args.json:
            _print_json(queued)
        return 0
    deadline = time.monotonic() + args.wait
    delivery = await client.call("GET", f"/deliveries/{delivery_id}")
    while delivery["status"] in ("pending", "retrying") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        delivery = await client.call("GET", f"/deliveries/{delivery_id}")
    if args.json:
        _print_json(delivery)
    else:
        print(table(("attempt", "outcome", "status", "ms", "error"), _attempt_rows(delivery)))
        print(f"\ndelivery {delivery_id}: {delivery['status']}")
    return 0 if delivery["status"] == "success" else 1


async def _deliveries(client: ServiceClient, args: argparse.Namespace) -> int:
    params = {"limit": str(args.limit)}
    if args.status is not None:
        params["status"] = args.status
    if args.target.startswith("dlv_"):  # one delivery, with every attempt
        delivery = await client.call("GET", f"/deliveries/{args.target}")
        if args.json:
            _print_json(delivery)
        else:
            print(f"delivery {delivery['id']}  {delivery['event_type']}  {delivery['status']}")
            print(table(("attempt", "outcome", "status", "ms", "error"), _attempt_rows(delivery)))
        return 0
    found = await client.call("GET", f"/webhooks/{args.target}/deliveries", params=params)
    if args.json:
        _print_json(found)
        return 0
    rows = [
        (
            d["id"],
            d["event_type"],
            d["status"],
            d["attempts"],
            d.get("last_status_code") or "-",
            d.get("last_error") or "",
        )
        for d in found["deliveries"]
    ]
    print(table(("delivery", "event type", "status", "attempts", "last code", "error"), rows))
    print(f"\n{found['count']} deliveries (newest first)")
    return 0


async def _redeliver(client: ServiceClient, args: argparse.Namespace) -> int:
    queued = await client.call("POST", f"/deliveries/{args.delivery_id}/redeliver")
    print(f"delivery {queued['delivery_id']} queued again")
    return 0


async def _replay(client: ServiceClient, args: argparse.Namespace) -> int:
    queued = await client.call("POST", f"/webhooks/{args.webhook_id}/replay-failed")
    print(f"{queued['replayed']} failed deliveries of {args.webhook_id} queued again")
    return 0


_ACTIONS: dict[str, _Action] = {
    "list": _list,
    "show": _show,
    "add": _add,
    "update": _update,
    "delete": _delete,
    "rotate": _rotate,
    "test": _test,
    "deliveries": _deliveries,
    "redeliver": _redeliver,
    "replay": _replay,
}


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    url = base_url_of(args, settings)
    async with ServiceClient(url, api_key_of(args, settings)) as client:
        return await _ACTIONS[args.action](client, args)


def run_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    """``webhooks ACTION``: one operation on a running service."""
    where = f"mnemo-events webhooks {args.action}"
    try:
        return asyncio.run(_run(args, settings))
    except ServiceError as err:
        print(f"{where}: {err}", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except ValueError as err:  # a malformed --header
        print(f"{where}: {err}", file=sys.stderr)
        return 2
    except (aiohttp.ClientError, TimeoutError) as err:
        url = base_url_of(args, settings)
        print(
            f"{where}: cannot reach {url} ({type(err).__name__}: {err}); is `mnemo-events "
            "serve` running there? (--url, MNEMO_EVENTS_URL)",
            file=sys.stderr,
        )
        return 1
