"""``/metrics`` (Prometheus text, or JSON on ``Accept: application/json``) and ``/healthz``.

Built on ``prometheus_client`` with one :class:`~prometheus_client.CollectorRegistry` per
service (never the global one), so two services in one process, or two tests, never share a
series. Names follow one scheme: ``mnemo_events_<component>_<what>[_<unit>][_total]``.

- Histograms (aggregatable across instances, unlike mean or p95 gauges): webhook attempt and
  delivery latency per webhook id, handler latency per event type, HTTP request duration by
  method, route template and status code.
- Counters per webhook id and outcome, fed by every attempt result.
- Gauges and counters read from the bus and the manager at scrape time.
- Process metrics (``process_start_time_seconds``, CPU, memory, file descriptors) and the
  Python platform and GC collectors.

Label values are bounded: an event type with no registered schema is counted as
``unregistered`` (a caller posting ``junk.t12345`` types cannot create a series each), an
unmatched path as route ``unmatched``, an unusual HTTP method as ``other``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.registry import Collector

from mnemo_events._log import logger
from mnemo_events.bus import _subscription
from mnemo_events.schemas import is_registered
from mnemo_events.server._state import SERVICE
from mnemo_events.webhooks import _delivery

if TYPE_CHECKING:
    from mnemo_events.bus._subscription import SubscriptionActor
    from mnemo_events.event import Event
    from mnemo_events.server._state import Service
    from mnemo_events.webhooks._metrics import AttemptResult
    from mnemo_events.webhooks._outcome import DeliveryJob

__all__ = [
    "METRICS",
    "ServiceMetrics",
    "bounded_type",
    "metrics_middleware",
    "prometheus_text",
    "routes",
]

_log = logger("server")
_PREFIX = "mnemo_events"
UNREGISTERED = "unregistered"
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# Seconds: from a fast in-process handler (0.1 ms) to a webhook retried for minutes.
_FAST_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_DELIVERY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600)

routes = web.RouteTableDef()


def bounded_type(event_type: str) -> str:
    """The label value of an event type: itself when registered, else ``unregistered``."""
    return event_type if is_registered(event_type) else UNREGISTERED


class _Snapshot(Collector):
    """Bus and manager figures read at scrape time (the handler refreshes ``stats``)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.bus: Mapping[str, Any] = {}

    def collect(self) -> Iterator[Metric]:
        bus = self.bus
        hooks = self.service.webhooks.get_metrics()
        yield _gauge("up", "1 while the event bus is running.", bus.get("running"))
        yield _counter(
            "bus_events_published", "Events accepted by the bus.", bus.get("total_published")
        )
        calls = CounterMetricFamily(
            f"{_PREFIX}_bus_handler_calls", "Handler calls, by outcome.", labels=["outcome"]
        )
        calls.add_metric(["delivered"], float(bus.get("total_delivered") or 0))
        calls.add_metric(["error"], float(bus.get("total_errors") or 0))
        yield calls
        by_type: dict[str, float] = {}
        for event_type, count in (bus.get("events_by_type") or {}).items():
            label = bounded_type(str(event_type))
            by_type[label] = by_type.get(label, 0.0) + float(count)
        events = CounterMetricFamily(
            f"{_PREFIX}_bus_events",
            "Events dispatched, by event type (types without a schema share 'unregistered').",
            labels=["type"],
        )
        for label, count in sorted(by_type.items()):
            events.add_metric([label], count)
        yield events
        yield _gauge("bus_subscriptions", "Active subscriptions.", bus.get("subscriptions_active"))
        yield _gauge(
            "bus_queue_events", "Events waiting in the bus mailbox.", bus.get("queue_size")
        )
        registered = hooks.get("webhooks") or {}
        webhooks = GaugeMetricFamily(
            f"{_PREFIX}_webhooks", "Registered webhooks, by state.", labels=["state"]
        )
        total, enabled = registered.get("total", 0), registered.get("enabled", 0)
        webhooks.add_metric(["enabled"], float(enabled))
        webhooks.add_metric(["disabled"], float(total - enabled))
        yield webhooks
        deliveries = hooks.get("deliveries") or {}
        open_ = GaugeMetricFamily(
            f"{_PREFIX}_webhook_deliveries_open",
            "Deliveries not finished yet, by status.",
            labels=["status"],
        )
        for status in ("pending", "retrying"):
            open_.add_metric([status], float(deliveries.get(status) or 0))
        yield open_
        yield _gauge(
            "webhook_attempts_in_flight", "HTTP attempts in flight.", hooks.get("in_flight")
        )
        yield _gauge("stream_clients", "Clients on /events/stream.", self.service.stream_clients)


def _gauge(name: str, help_text: str, value: Any) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{_PREFIX}_{name}", help_text, value=float(value or 0))


def _counter(name: str, help_text: str, value: Any) -> CounterMetricFamily:
    return CounterMetricFamily(f"{_PREFIX}_{name}", help_text, value=float(value or 0))


class ServiceMetrics:
    """The Prometheus registry of one service and the instruments that feed it."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.snapshot = _Snapshot(service)
        self.registry.register(self.snapshot)
        reg = self.registry
        self.http_duration = Histogram(
            f"{_PREFIX}_http_request_duration_seconds",
            "HTTP requests served, by method, route template and status code.",
            ["method", "route", "code"],
            buckets=_HTTP_BUCKETS,
            registry=reg,
        )
        self.handler_duration = Histogram(
            f"{_PREFIX}_bus_handler_duration_seconds",
            "Handler call durations, by event type.",
            ["type"],
            buckets=_FAST_BUCKETS,
            registry=reg,
        )
        self.attempt_duration = Histogram(
            f"{_PREFIX}_webhook_attempt_duration_seconds",
            "HTTP attempt durations, by webhook id.",
            ["webhook_id"],
            buckets=_FAST_BUCKETS,
            registry=reg,
        )
        self.delivery_duration = Histogram(
            f"{_PREFIX}_webhook_delivery_duration_seconds",
            "Seconds from queueing a delivery to its final outcome (retries included), by "
            "webhook id and outcome.",
            ["webhook_id", "outcome"],
            buckets=_DELIVERY_BUCKETS,
            registry=reg,
        )
        self.attempts = Counter(
            f"{_PREFIX}_webhook_attempts",
            "Webhook attempts, by webhook id and outcome (success, retry, failed).",
            ["webhook_id", "outcome"],
            registry=reg,
        )
        self.deliveries = Counter(
            f"{_PREFIX}_webhook_deliveries",
            "Deliveries finished, by webhook id and outcome (success, failed).",
            ["webhook_id", "outcome"],
            registry=reg,
        )
        self._known_actors: set[str] = set()
        self._refreshed_at = 0.0
        self.observer_errors = 0

    # -- observers, installed while the service runs ---------------------------------------

    def install(self) -> None:
        """Start observing this service's handler calls and webhook attempts."""
        _subscription.HANDLER_OBSERVERS.append(self.on_handler)
        _delivery.ATTEMPT_OBSERVERS.append(self.on_attempt)

    def uninstall(self) -> None:
        """Stop observing (idempotent)."""
        if self.on_handler in _subscription.HANDLER_OBSERVERS:
            _subscription.HANDLER_OBSERVERS.remove(self.on_handler)
        if self.on_attempt in _delivery.ATTEMPT_OBSERVERS:
            _delivery.ATTEMPT_OBSERVERS.remove(self.on_attempt)

    def _owns_actor(self, actor_id: str) -> bool:
        if actor_id in self._known_actors:
            return True
        now = time.monotonic()
        if now - self._refreshed_at < 1.0:
            return False
        self._refreshed_at = now
        self._known_actors = {info.id for info in self.service.bus.list_subscriptions()}
        return actor_id in self._known_actors

    def on_handler(self, actor: SubscriptionActor, event: Event, seconds: float) -> None:
        """One handler call of this service's bus took ``seconds``."""
        try:
            if self._owns_actor(actor.id):
                self.handler_duration.labels(bounded_type(event.type)).observe(seconds)
        except Exception as err:  # an observer must never break the bus
            self._observer_failed(err)

    def on_attempt(self, job: DeliveryJob, result: AttemptResult) -> None:
        """One attempt (or an unattempted end) of one of this service's webhooks."""
        try:
            if not self._owns_webhook(result.webhook_id):
                return
            webhook_id = result.webhook_id
            if result.attempted:
                self.attempts.labels(webhook_id, result.outcome).inc()
                if result.latency_ms is not None:
                    self.attempt_duration.labels(webhook_id).observe(result.latency_ms / 1000)
            if result.outcome != "retry":
                self.deliveries.labels(webhook_id, result.outcome).inc()
                elapsed = time.monotonic() - job.queued_at
                self.delivery_duration.labels(webhook_id, result.outcome).observe(elapsed)
        except Exception as err:  # an observer must never break a delivery
            self._observer_failed(err)

    def _owns_webhook(self, webhook_id: str) -> bool:
        return self.service.webhooks.get_webhook(webhook_id) is not None

    def _observer_failed(self, err: Exception) -> None:
        self.observer_errors += 1
        _log.error("server.metrics_observer_failed", error=repr(err))

    # -- HTTP ------------------------------------------------------------------------------

    def observe_request(self, method: str, route: str, code: int, seconds: float) -> None:
        """One HTTP request was answered."""
        shown = method if method in _METHODS else "other"
        self.http_duration.labels(shown, route, str(code)).observe(seconds)


METRICS = web.AppKey("mnemo_events.metrics", ServiceMetrics)


def prometheus_text(registry: CollectorRegistry) -> str:
    """The registry's metrics in the Prometheus text format 0.0.4."""
    return generate_latest(registry).decode("utf-8")


def _route_of(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None or request.match_info.http_exception is not None:
        return "unmatched"
    return resource.canonical


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def metrics_middleware(metrics: ServiceMetrics) -> Any:
    """Time every request into the HTTP histogram (outermost, so it sees final codes)."""

    @web.middleware
    async def _timed(request: web.Request, handler: _Handler) -> web.StreamResponse:
        began = time.perf_counter()
        code = 500
        try:
            response = await handler(request)
            code = response.status
            return response
        except web.HTTPException as exc:
            code = exc.status
            raise
        finally:
            metrics.observe_request(
                request.method, _route_of(request), code, time.perf_counter() - began
            )

    return _timed


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "").lower()
    return "application/json" in accept


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text (OpenMetrics when asked for), or JSON on ``Accept: application/json``."""
    service = request.app[SERVICE]
    bus = await service.bus.get_stats()
    if _wants_json(request):
        webhooks = service.webhooks.get_metrics()
        server = service.server_metrics()
        return web.json_response({"bus": bus, "webhooks": webhooks, "server": server})
    collected = request.app[METRICS]
    collected.snapshot.bus = bus
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(collected.registry), headers={"Content-Type": content_type})


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
