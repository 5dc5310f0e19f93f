"""The HTTP service of ``mnemo-events serve``: an aiohttp app around one bus and webhook manager.

::

    from mnemo_events.config import load_config
    from mnemo_events.server import create_app
    app = create_app(load_config("config.yaml"))      # web.run_app(app) or run_server(...)

Routes: ``POST/GET /events``, ``GET /events/stream`` (server-sent events), ``POST/GET
/webhooks``, ``GET/PATCH/DELETE /webhooks/{id}``, ``POST /webhooks/{id}/rotate-secret``,
``GET /webhooks/{id}/deliveries``, ``POST /webhooks/{id}/replay-failed``, ``GET
/deliveries/{id}``, ``POST /deliveries/{id}/redeliver``, ``GET /metrics``, ``GET /healthz``,
``GET /openapi.json``. Every route but ``/healthz`` needs ``Authorization: Bearer <key>`` when
a key is configured.
"""

from __future__ import annotations

from mnemo_events.server._app import create_app, run_server
from mnemo_events.server._metrics import prometheus_text
from mnemo_events.server._openapi import service_openapi
from mnemo_events.server._state import is_loopback, resolve_api_key

__all__ = [
    "create_app",
    "is_loopback",
    "prometheus_text",
    "resolve_api_key",
    "run_server",
    "service_openapi",
]
