"""``/metrics`` through a real service: Prometheus text by default, histograms, bounded labels."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from mnemo_events.event import Event
from tests.helpers.receiver import Receiver, Reply, eventually
from tests.helpers.service import Service, running_service, service_settings

MEMORY = {"memory_id": "mem_1", "content": "the cat is called Miso", "tier": "hot"}


def _families(text: str) -> dict[str, Any]:
    """The exposition parsed by prometheus_client's own parser, by family name."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(families: dict[str, Any], name: str) -> list[Sample]:
    return list(families[name].samples)


def _value(families: dict[str, Any], family: str, sample: str, **labels: str) -> float:
    """The value of the one sample named ``sample`` whose labels include ``labels``."""
    found = [
        s.value
        for s in families[family].samples
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, (sample, labels, families[family].samples)
    return float(found[0])


async def _scrape(service: Service) -> dict[str, Any]:
    content_type, text = await service.text("/metrics")
    assert content_type.startswith("text/plain; version=0.0.4")
    return _families(text)


async def _publish(service: Service, event_type: str, data: dict[str, Any]) -> None:
    status, body = await service.call("POST", "/events", json={"type": event_type, "data": data})
    assert status == 202, body


class TestFormat:
    async def test_prometheus_text_by_default_json_on_request(self, tmp_path: Path) -> None:
        """No Accept (or */*) gives Prometheus text; Accept: application/json gives JSON."""
        async with running_service(service_settings(tmp_path)) as service:
            await _publish(service, "memory.created", MEMORY)
            await eventually(lambda: service.bus.get_metrics()["queue_size"] == 0)
            for accept in (None, "*/*", "text/plain"):
                content_type, text = await service.text("/metrics", accept)
                assert content_type.startswith("text/plain; version=0.0.4"), accept
                families = _families(text)
                assert _value(families, "mnemo_events_up", "mnemo_events_up") == 1
            status, body = await service.call("GET", "/metrics")
            assert status == 200
            assert body["bus"]["total_published"] == 1
            assert body["bus"]["events_by_type"] == {"memory.created": 1}

    async def test_openmetrics_when_asked(self, tmp_path: Path) -> None:
        """Accept: application/openmetrics-text gets the OpenMetrics format, ending in # EOF."""
        async with running_service(service_settings(tmp_path)) as service:
            content_type, text = await service.text(
                "/metrics", "application/openmetrics-text; version=1.0.0"
            )
        assert content_type.startswith("application/openmetrics-text")
        assert text.endswith("# EOF\n")

    async def test_process_metrics_and_one_naming_scheme(self, tmp_path: Path) -> None:
        """Process metrics come with the service's; every service family has one prefix."""
        async with running_service(service_settings(tmp_path)) as service:
            families = await _scrape(service)
        start = _value(families, "process_start_time_seconds", "process_start_time_seconds")
        assert start > 1_600_000_000
        assert "process_resident_memory_bytes" in families
        ours = {n for n in families if not n.startswith(("process_", "python_"))}
        assert ours, families
        assert all(name.startswith("mnemo_events_") for name in ours), ours
        for name in ("mnemo_events_webhooks", "mnemo_events_webhook_attempts"):
            assert name in families  # 'webhooks' by state, not 'webhooks_registered'


class TestHistograms:
    async def test_http_requests_by_method_route_template_and_code(self, tmp_path: Path) -> None:
        """Request durations are a histogram labelled with the route template, not the path."""
        async with running_service(service_settings(tmp_path)) as service:
            for webhook_id in ("wh_a", "wh_b", "wh_c"):
                status, _ = await service.call("GET", f"/webhooks/{webhook_id}")
                assert status == 404
            await service.call("GET", "/no/such/path")
            families = await _scrape(service)
        family = families["mnemo_events_http_request_duration_seconds"]
        assert family.type == "histogram"
        count = _value(
            families,
            "mnemo_events_http_request_duration_seconds",
            "mnemo_events_http_request_duration_seconds_count",
            method="GET",
            route="/webhooks/{webhook_id}",
            code="404",
        )
        assert count == 3
        routes = {s.labels["route"] for s in family.samples}
        assert "unmatched" in routes
        assert not any("wh_" in route or "/no/such" in route for route in routes)

    async def test_handler_latency_per_event_type(self, tmp_path: Path) -> None:
        """Each handler call of the service's bus is observed in the handler histogram."""
        seen: list[Event] = []

        async def slow(event: Event) -> None:
            await asyncio.sleep(0.02)
            seen.append(event)

        async with running_service(service_settings(tmp_path)) as service:
            service.bus.subscribe("memory.*", slow)
            for _ in range(3):
                await _publish(service, "memory.created", MEMORY)
            await eventually(lambda: len(seen) == 3)
            families = await _scrape(service)
        name = "mnemo_events_bus_handler_duration_seconds"
        assert families[name].type == "histogram"
        # Two subscriptions take memory.created: ours and the webhook manager's.
        assert _value(families, name, f"{name}_count", type="memory.created") == 6
        assert _value(families, name, f"{name}_sum", type="memory.created") >= 0.06
        fast = _value(families, name, f"{name}_bucket", type="memory.created", le="0.01")
        assert fast <= 3  # our three calls slept 20 ms each

    async def test_webhook_attempts_and_deliveries_per_webhook(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """Attempts and deliveries are counted and timed per webhook id and outcome."""
        receiver.script("/hook", Reply(status=503), then=Reply(status=200))
        async with running_service(service_settings(tmp_path, max_attempts=3)) as service:
            status, hook = await service.call(
                "POST", "/webhooks", json={"url": receiver.url("/hook"), "events": ["memory.*"]}
            )
            assert status == 201
            await _publish(service, "memory.created", MEMORY)
            await receiver.wait_for(2, "/hook")
            await eventually(
                lambda: service.webhooks.get_metrics()["deliveries"].get("success") == 1
            )
            families = await _scrape(service)
        wid = hook["id"]
        attempts = "mnemo_events_webhook_attempts"
        assert _value(families, attempts, f"{attempts}_total", webhook_id=wid, outcome="retry") == 1
        ok = _value(families, attempts, f"{attempts}_total", webhook_id=wid, outcome="success")
        assert ok == 1
        deliveries = "mnemo_events_webhook_deliveries"
        done = _value(
            families, deliveries, f"{deliveries}_total", webhook_id=wid, outcome="success"
        )
        assert done == 1
        latency = "mnemo_events_webhook_attempt_duration_seconds"
        assert families[latency].type == "histogram"
        assert _value(families, latency, f"{latency}_count", webhook_id=wid) == 2
        whole = "mnemo_events_webhook_delivery_duration_seconds"
        assert _value(families, whole, f"{whole}_count", webhook_id=wid, outcome="success") == 1
        # Deliveries since start come as histograms only, never as mean or p95 gauges.
        assert not any("p95" in name or "mean" in name for name in families)


class TestBoundedLabels:
    async def test_unregistered_types_share_one_label(self, tmp_path: Path) -> None:
        """Posting 40 random unregistered types adds one series, not 40."""
        async with running_service(service_settings(tmp_path)) as service:
            for n in range(40):
                await _publish(service, f"junk.t{12345 + n}", {"n": n})
            await _publish(service, "memory.created", MEMORY)
            await eventually(lambda: service.bus.get_metrics()["queue_size"] == 0)
            families = await _scrape(service)
        samples = [
            s for s in _samples(families, "mnemo_events_bus_events") if s.name.endswith("_total")
        ]
        by_type = {s.labels["type"]: s.value for s in samples}
        assert by_type == {"memory.created": 1, "unregistered": 40}


class TestIsolation:
    async def test_each_service_has_its_own_registry(self, tmp_path: Path) -> None:
        """Two services in one process count separately and leave the global registry alone."""
        async with (
            running_service(service_settings(tmp_path / "a")) as first,
            running_service(service_settings(tmp_path / "b")) as second,
        ):
            seen: list[Event] = []
            first.bus.subscribe("memory.*", seen.append)
            await _publish(first, "memory.created", MEMORY)
            await _publish(first, "memory.created", MEMORY)
            await eventually(lambda: len(seen) == 2)
            one, two = await _scrape(first), await _scrape(second)
        name = "mnemo_events_bus_events_published"
        assert _value(one, name, f"{name}_total") == 2
        assert _value(two, name, f"{name}_total") == 0
        handler = "mnemo_events_bus_handler_duration_seconds"
        assert not any(s.value for s in two[handler].samples if s.name.endswith("_count"))
        global_text = prometheus_client.generate_latest().decode()
        assert "mnemo_events_" not in global_text
