"""``POST /webhooks/{id}/test`` through a real service, and the sample payloads it sends."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnemo_events.schemas import list_event_types, validate_event
from mnemo_events.server._operator import sample_payload
from tests.helpers.receiver import Receiver, eventually
from tests.helpers.service import running_service, service_settings


@pytest.mark.parametrize("event_type", list_event_types())
def test_sample_payloads_are_valid(event_type: str) -> None:
    """The sample built from each registered schema passes that schema."""
    ok, errors = validate_event(event_type, sample_payload(event_type))
    assert ok, errors


class TestTestRoute:
    async def test_sends_given_data_to_that_webhook(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        """Given data is sent as is, signed, and the delivery is recorded under the webhook."""
        async with running_service(service_settings(tmp_path)) as service:
            _, hook = await service.call(
                "POST", "/webhooks", json={"url": receiver.url("/a"), "events": ["gap.*"]}
            )
            receiver.secrets["/a"] = hook["secret"]
            data = {"gap_id": "gap_7", "query": "who feeds the cat?"}
            status, queued = await service.call(
                "POST",
                f"/webhooks/{hook['id']}/test",
                json={"event_type": "gap.detected", "data": data},
            )
            assert status == 202, queued
            await receiver.wait_for(1, "/a")
            (request,) = receiver.on("/a")
            assert request.stripe_ok is True
            assert json.loads(request.body)["data"] == data
            assert request.delivery_id == queued["delivery_id"]

            async def _listed() -> bool:
                _, found = await service.call("GET", f"/webhooks/{hook['id']}/deliveries")
                return bool(found["count"] == 1)

            await eventually(_listed)

    async def test_refusals_name_the_problem(self, tmp_path: Path, receiver: Receiver) -> None:
        """Unknown ids, types, patterns, bad data and disabled webhooks are 4xx, never sent."""
        async with running_service(service_settings(tmp_path)) as service:
            _, hook = await service.call(
                "POST", "/webhooks", json={"url": receiver.url("/a"), "events": ["memory.*"]}
            )
            path = f"/webhooks/{hook['id']}/test"
            status, body = await service.call("POST", "/webhooks/wh_none/test", json={})
            assert status == 404
            status, body = await service.call("POST", path, json={"event_type": "memory.create"})
            assert status == 422
            assert "did you mean" in body["problems"][0]
            status, body = await service.call("POST", path, json={"event_type": "dream.started"})
            assert (status, "does not subscribe" in body["detail"]) == (422, True)
            status, body = await service.call(
                "POST", path, json={"event_type": "memory.created", "data": {"memory_id": 1}}
            )
            assert status == 422
            status, body = await service.call("POST", path, json={"surprise": 1})
            assert (status, body["problems"]) == (422, ["surprise: unknown field"])
            status, body = await service.call("POST", path, data=b"")
            assert status == 400
            await service.call("PATCH", f"/webhooks/{hook['id']}", json={"enabled": False})
            status, body = await service.call("POST", path, json={})
            assert status == 409
        assert receiver.on("/a") == []
