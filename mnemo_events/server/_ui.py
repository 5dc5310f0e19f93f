"""What ``create_app`` adds beyond the JSON API: the resumable event stream, the dashboard at
``/`` and the API reference at ``/docs``.

One entry point, so the application factory registers them with one line.
"""

from __future__ import annotations

from aiohttp import web

from mnemo_events.server import _dashboard, _docs, _sse

__all__ = ["install"]


def install(app: web.Application) -> None:
    """Add ``GET /events/stream``, ``/``, ``/ui/{name}`` and ``/docs`` to ``app``."""
    _sse.setup(app)
    _dashboard.setup(app)
    _docs.setup(app)
