"""mnemo-events: the event system of a cognitive-memory engine.

An actor-model event bus on RxPY (:class:`EventBus`), typed event schemas, and signed,
retried, durable webhooks (:class:`WebhookManager`). The reference's module paths work too:
``mnemo_events.event_bus``, ``mnemo_events.webhook_manager``, ``mnemo_events.schemas``,
``mnemo_events.integration``.

The public names are listed once, in ``__init__.pyi``. They resolve on first use (PEP 562),
so ``import mnemo_events.event_bus`` does not pay for aiohttp and the webhook manager, and
the CLI starts faster.
"""

from __future__ import annotations

from typing import Any

import lazy_loader

_lazy_getattr, __dir__, _names = lazy_loader.attach_stub(__name__, __file__)

__all__ = sorted([*_names, "__version__"])


def __getattr__(name: str) -> Any:
    if name != "__version__":
        return _lazy_getattr(name)
    from importlib import metadata

    try:
        version = metadata.version("mnemo-events")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        version = "0.0.0+unknown"
    globals()["__version__"] = version
    return version
