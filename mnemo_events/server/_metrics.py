"""``/metrics`` (JSON, or Prometheus text on ``Accept: text/plain``) and ``/healthz``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from mnemo_events.server._state import SERVICE

__all__ = ["PROMETHEUS_CONTENT_TYPE", "prometheus_text", "routes"]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PREFIX = "mnemo_events_"

routes = web.RouteTableDef()

_Sample = tuple[Mapping[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class _Exposition:
    """Prometheus text exposition format 0.0.4, one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[_Sample]) -> None:
        rows = [(labels, value) for labels, value in samples if value is not None]
        if not rows:
            return
        full = _PREFIX + name
        self.lines += [f"# HELP {full} {help_text}", f"# TYPE {full} {kind}"]
        for labels, value in rows:
            label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            shown = repr(value) if value != int(value) else str(int(value))
            self.lines.append(f"{full}{{{label_text}}} {shown}" if labels else f"{full} {shown}")

    def one(self, name: str, kind: str, help_text: str, value: Any) -> None:
        number = _number(value)
        if number is not None:
            self.family(name, kind, help_text, [({}, number)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _labelled(values: Mapping[str, Any], label: str, keys: Iterable[str]) -> list[_Sample]:
    samples: list[_Sample] = []
    for key in keys:
        number = _number(values.get(key))
        if number is not None:
            samples.append(({label: key}, number))
    return samples


def prometheus_text(
    bus: Mapping[str, Any], webhooks: Mapping[str, Any], server: Mapping[str, Any]
) -> str:
    """The service's metrics in the Prometheus text format."""
    out = _Exposition()
    out.one("up", "gauge", "1 while the event bus is running.", bus.get("running"))
    out.one(
        "uptime_seconds",
        "gauge",
        "Seconds since the service started.",
        server.get("uptime_seconds"),
    )
    out.one(
        "bus_published_total", "counter", "Events accepted by the bus.", bus.get("total_published")
    )
    out.one(
        "bus_delivered_total",
        "counter",
        "Handler calls that succeeded.",
        bus.get("total_delivered"),
    )
    out.one(
        "bus_errors_total",
        "counter",
        "Handler calls that raised or timed out.",
        bus.get("total_errors"),
    )
    out.one("bus_subscriptions", "gauge", "Active subscriptions.", bus.get("subscriptions_active"))
    out.one("bus_queue_size", "gauge", "Events waiting in the bus mailbox.", bus.get("queue_size"))
    by_type = bus.get("events_by_type") or {}
    out.family(
        "bus_events_total",
        "counter",
        "Events dispatched, by event type.",
        [({"type": str(key)}, float(value)) for key, value in sorted(by_type.items())],
    )
    registered = webhooks.get("webhooks") or {}
    out.one("webhooks_registered", "gauge", "Registered webhooks.", registered.get("total"))
    out.one("webhooks_enabled", "gauge", "Enabled webhooks.", registered.get("enabled"))
    deliveries = webhooks.get("deliveries") or {}
    out.one(
        "webhook_deliveries_total",
        "counter",
        "Deliveries queued since start.",
        deliveries.get("total"),
    )
    out.family(
        "webhook_deliveries_finished_total",
        "counter",
        "Deliveries finished since start, by outcome.",
        _labelled(deliveries, "outcome", ("success", "failed")),
    )
    out.family(
        "webhook_deliveries_open",
        "gauge",
        "Deliveries not finished yet, by status.",
        _labelled(deliveries, "status", ("pending", "retrying")),
    )
    attempts = webhooks.get("attempts") or {}
    out.one("webhook_attempts_total", "counter", "HTTP attempts made.", attempts.get("total"))
    out.one(
        "webhook_attempts_failed_total",
        "counter",
        "HTTP attempts that failed.",
        attempts.get("failed"),
    )
    out.one("webhook_in_flight", "gauge", "HTTP attempts in flight.", webhooks.get("in_flight"))
    latency = webhooks.get("latency_ms") or {}
    for stat, name in (
        ("mean", "webhook_latency_mean_seconds"),
        ("p95", "webhook_latency_p95_seconds"),
    ):
        number = _number(latency.get(stat))
        if number is not None:
            out.one(name, "gauge", f"Attempt latency, {stat} of recent attempts.", number / 1000)
    out.family(
        "http_responses_total",
        "counter",
        "HTTP responses sent by the service, by status code.",
        [
            ({"code": code}, float(n))
            for code, n in (server.get("responses_by_status") or {}).items()
        ],
    )
    out.one("stream_clients", "gauge", "Clients on /events/stream.", server.get("stream_clients"))
    return out.text()


def _wants_text(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "").lower()
    return "text/plain" in accept or "application/openmetrics-text" in accept


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Bus, webhook and service metrics: JSON, or Prometheus text on ``Accept: text/plain``."""
    service = request.app[SERVICE]
    bus = await service.bus.get_stats()
    webhooks = service.webhooks.get_metrics()
    server = service.server_metrics()
    if _wants_text(request):
        body = prometheus_text(bus, webhooks, server)
        return web.Response(body=body.encode(), headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})
    return web.json_response({"bus": bus, "webhooks": webhooks, "server": server})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """200 while the bus (and its transport's server) and the webhook manager run, else 503;
    needs no API key."""
    service = request.app[SERVICE]
    bus_ok = service.bus.is_running
    webhooks_ok = service.webhooks.is_running or not service.settings.webhooks.enabled
    transport = service.bus.transport
    connected = transport.state.value != "disconnected"  # a JetStream server went away
    healthy = bus_ok and webhooks_ok and connected and not service.closing.is_set()
    body = {
        "status": "ok" if healthy else "unavailable",
        "bus": service.bus.state.value,
        "transport": {"name": transport.name, "state": transport.state.value},
        "webhooks": "running" if service.webhooks.is_running else "stopped",
    }
    return web.json_response(body, status=200 if healthy else 503)
