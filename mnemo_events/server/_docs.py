"""``GET /docs``: the OpenAPI document rendered for people, by a script in the package.

The page (``static/docs.html`` and ``docs.js``) reads ``/openapi.json`` with the API key the
dashboard keeps in ``sessionStorage`` (or asks for it) and lists every route with its
parameters, request body, responses and schemas. Nothing comes from a CDN: the
Content-Security-Policy allows this origin only.
"""

from __future__ import annotations

from aiohttp import web

from mnemo_events.server._dashboard import page

__all__ = ["setup"]


async def docs(request: web.Request) -> web.FileResponse:
    """The API reference page."""
    return page("docs.html")


def setup(app: web.Application) -> None:
    """Add ``/docs`` to ``app`` (its script is among the dashboard's files under ``/ui/``)."""
    app.router.add_get("/docs", docs, name="docs")
