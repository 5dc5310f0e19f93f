"""``GET /``: the operator's dashboard, plain HTML, CSS and JavaScript shipped in the package.

The page and its files under ``/ui/`` are served without the API key: they hold no data. The
page asks for the key once, keeps it in the tab's ``sessionStorage`` and sends it as the
``Authorization`` header on every call (the live stream is read with ``fetch()``, not
``EventSource``, which cannot send headers), so the key never appears in a URL. A
Content-Security-Policy limits the page to this origin: nothing is fetched from elsewhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "openapi_paths", "page", "setup"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The dashboard's files, served under ``/ui/``."""
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""Only this origin's scripts, styles and API; no inline script, no frames."""


def page(name: str) -> web.FileResponse:
    """One of the HTML pages, with the headers that keep it to this origin."""
    return web.FileResponse(
        STATIC_DIR / name,
        headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Only these files are served: a fixed list, so no path from a request reaches the disk.
_FILES = {
    path.name: _TYPES[path.suffix]
    for path in sorted(STATIC_DIR.iterdir())
    if path.suffix in _TYPES and path.is_file()
}


async def dashboard(request: web.Request) -> web.FileResponse:
    """The dashboard page."""
    return page("index.html")


async def asset(request: web.Request) -> web.FileResponse:
    """One of the dashboard's scripts or style sheets."""
    name = request.match_info["name"]
    content_type = _FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.FileResponse(
        STATIC_DIR / name,
        headers={
            "Content-Type": content_type,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        },
    )


def setup(app: web.Application) -> None:
    """Add ``/`` and the static files under ``/ui/`` to ``app``."""
    app.router.add_get("/", dashboard, name="dashboard")
    app.router.add_get("/ui/{name}", asset, name="ui")


def _html(summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [],
        "responses": {"200": {"description": "HTML page.", "content": {"text/html": {}}}},
    }


def openapi_paths() -> dict[str, Any]:
    """The OpenAPI path items of the dashboard, its files and ``/docs`` (no key needed)."""
    files = sorted(_FILES)
    return {
        "/": {"get": {**_html("The dashboard (asks for the API key)"), "operationId": "dashboard"}},
        "/docs": {"get": {**_html("This API, rendered for people"), "operationId": "docs"}},
        "/ui/{name}": {
            "get": {
                "summary": "A script or style sheet of the dashboard",
                "operationId": "dashboardFile",
                "security": [],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": files},
                    }
                ],
                "responses": {
                    "200": {"description": "The file."},
                    "404": {"description": "No such file."},
                },
            }
        },
    }
