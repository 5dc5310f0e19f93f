"""``/``, ``/docs`` and ``/ui/*`` over plain HTTP: open pages, packaged assets, no CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from mnemo_events.config import Settings
from mnemo_events.server import create_app
from mnemo_events.server._dashboard import STATIC_DIR

API_KEY = "test-key-0123456789"
# Any absolute or scheme-relative URL, or a CSS import: the assets must reference none.
EXTERNAL = re.compile(r"""(https?:)?//[\w.-]+\.\w|@import|url\(\s*['"]?(https?:)?//""")


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    """The base URL of a running service with an API key."""
    settings = Settings.model_validate(
        {
            "webhooks": {
                "persistence_path": str(tmp_path / "webhooks.json"),
                "delivery_store_path": str(tmp_path / "deliveries.sqlite3"),
            },
            "server": {"api_key": API_KEY},
        }
    )
    runner = web.AppRunner(create_app(settings), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def _assets() -> list[Path]:
    return sorted(p for p in STATIC_DIR.iterdir() if p.is_file())


class TestPages:
    @pytest.mark.parametrize("path", ["/", "/docs"])
    async def test_page_is_served_without_the_key_and_kept_to_this_origin(
        self, url: str, path: str
    ) -> None:
        """The HTML page answers without a key, with a CSP that allows this origin only."""
        async with aiohttp.ClientSession() as session, session.get(url + path) as response:
            body = await response.text()
        assert response.status == 200
        assert response.content_type == "text/html"
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert "connect-src 'self'" in policy
        assert "unsafe-inline" not in policy
        for src in re.findall(r'(?:src|href)="([^"]+)"', body):
            assert src.startswith("/"), src  # same origin only

    async def test_every_referenced_asset_is_served(self, url: str) -> None:
        """Each script and style sheet the pages name is served from the package."""
        async with aiohttp.ClientSession() as session:
            for page in ("/", "/docs"):
                async with session.get(url + page) as response:
                    body = await response.text()
                for ref in re.findall(r'(?:src|href)="(/ui/[^"]+)"', body):
                    async with session.get(url + ref) as asset:
                        assert asset.status == 200, ref
                        assert (await asset.read()) == (STATIC_DIR / ref[4:]).read_bytes()

    @pytest.mark.parametrize(
        "path", ["/ui/nothing.js", "/ui/index.html", "/ui/..%2F_app.py", "/ui/%2e%2e/_sse.py"]
    )
    async def test_only_the_listed_assets_are_served(self, url: str, path: str) -> None:
        """Unknown names and attempts to leave the folder are never served (404, or 401 for
        a path that leaves /ui/)."""
        target = URL(url + path, encoded=True)  # sent as written, not normalised
        async with aiohttp.ClientSession() as session, session.get(target) as response:
            assert response.status in (401, 404)
            assert "import" not in await response.text()

    async def test_the_data_still_needs_the_key(self, url: str) -> None:
        """Opening the pages opens no data: the API and its document still answer 401."""
        async with aiohttp.ClientSession() as session:
            for path in ("/openapi.json", "/webhooks", "/events/stream"):
                async with session.get(url + path) as response:
                    assert response.status == 401, path

    async def test_docs_route_is_in_the_openapi_document(self, url: str) -> None:
        """The document lists the pages, as open routes."""
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/openapi.json", headers=headers) as response,
        ):
            doc = await response.json()
        for path in ("/", "/docs", "/ui/{name}"):
            assert doc["paths"][path]["get"]["security"] == []


class TestAssets:
    @pytest.mark.parametrize("asset", _assets(), ids=lambda p: p.name)
    def test_no_asset_references_another_origin(self, asset: Path) -> None:
        """No HTML, CSS or JavaScript file names a URL elsewhere (no CDN, no font service)."""
        assert EXTERNAL.findall(asset.read_text(encoding="utf-8")) == []

    def test_the_external_url_check_can_fail(self) -> None:
        """The pattern catches the usual CDN references."""
        for text in (
            '<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist"></script>',
            '<link href="//fonts.googleapis.com/css">',
            "@import 'x.css';",
        ):
            assert EXTERNAL.search(text), text

    def test_no_script_uses_inner_html(self) -> None:
        """Scripts build the DOM from text nodes: service data is never parsed as HTML."""
        for asset in _assets():
            if asset.suffix == ".js":
                assert "innerHTML" not in asset.read_text(encoding="utf-8"), asset.name
