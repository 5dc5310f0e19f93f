"""The engine process of ``demo --nats``: a simulated engine publishing over JetStream.

Run as ``python -m mnemo_events.cli._nats_engine <url> <count> <rate> <seed>``; prints
``PUBLISHED <n>`` once every event is stored in the stream.
"""

from __future__ import annotations

import asyncio
import sys

__all__: list[str] = []


async def _engine_side(url: str, count: int, rate: float, seed: int) -> None:
    from mnemo_events.cli._demo import _emit
    from mnemo_events.event_bus import EventBus
    from mnemo_events.simulation import SimulatedEngine

    async with EventBus(transport=url) as bus:
        engine = SimulatedEngine(bus, seed=seed)
        await _emit(engine, count, rate)
    print("PUBLISHED", engine.published, flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python -m mnemo_events.cli._nats_engine <url> <count> <rate> <seed>")
    asyncio.run(_engine_side(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])))
