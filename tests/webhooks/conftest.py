"""Fixtures of the webhook tests on NATS JetStream (the group, its KV registry and store)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.js import JetStreamContext

from tests.helpers.nats import NatsServer, connect_jetstream


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream, stopped after the test."""
    with NatsServer(tmp_path / "js") as started:
        yield started


@pytest.fixture
async def connection(server: NatsServer) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on its own connection, closed after the test."""
    nc, js = await connect_jetstream(server.url)
    yield js
    await nc.close()
