"""The dashboard at ``/`` in a real headless Chromium: key, live events, webhooks, buttons."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright

from mnemo_events.server import create_app
from mnemo_events.server._state import SERVICE
from mnemo_events.webhook_manager import WebhookManager
from tests.helpers.receiver import Receiver, Reply, eventually
from tests.helpers.service import service_settings

API_KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
MEMORY = {"memory_id": "mem_1", "content": "the cat is called Miso", "tier": "hot"}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class Service:
    """A service on 127.0.0.1 and a client session to call it."""

    def __init__(self, app: web.Application, runner: web.AppRunner) -> None:
        self.app = app
        self.runner = runner
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        self.session = aiohttp.ClientSession(headers=AUTH)

    @property
    def webhooks(self) -> WebhookManager:
        """The service's webhook manager."""
        return self.app[SERVICE].webhooks

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request with the key; the decoded JSON body."""
        async with self.session.request(method, self.url + path, json=body) as response:
            assert response.status < 300, await response.text()
            return await response.json()


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """A service with an API key whose webhooks may reach 127.0.0.1, with quick retries."""
    settings = service_settings(tmp_path, api_key=API_KEY)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    running = Service(app, runner)
    yield running
    await running.session.close()
    await runner.cleanup()


def _installed(path: str) -> bool:
    return os.path.exists(path)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (which downloads no browser)."""
    assert _installed(CHROMIUM), "install Debian's chromium (.ci/run does)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        await launched.close()


def assert_not_blank(path: Path) -> None:
    """The screenshot has real content: many colours, not one flat fill."""
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, f"{path} looks blank"


async def _log_in(page: Page, url: str) -> None:
    await page.goto(url + "/")
    await page.wait_for_selector("#login:not([hidden])")
    await page.fill("#key", API_KEY)
    await page.click("#login button[type=submit]")
    await page.wait_for_selector("#app:not([hidden])")
    await page.wait_for_selector("#connection.on")


class TestDashboard:
    async def test_operator_session(
        self, service: Service, receiver: Receiver, browser: Browser, tmp_path: Path
    ) -> None:
        """Log in with the key, see a published event live and filtered, open a failing
        webhook's deliveries and attempts, redeliver, disable and enable it, and take a
        screenshot that is not blank; the key never leaves as part of a URL."""
        receiver.script("/hook", then=Reply(status=500, body=b"receiver is down"))
        hook = await service.call(
            "POST", "/webhooks", {"url": receiver.url("/hook"), "events": ["memory.*"]}
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 1600})
        page = await context.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await _log_in(page, service.url)

        published = await service.call(
            "POST", "/events", {"type": "memory.created", "data": MEMORY}
        )
        event_id = published["event"]["id"]
        row = await page.wait_for_selector(f'#events tr[data-id="{event_id}"]')
        assert row is not None
        assert "memory.created" in await row.inner_text()

        await page.fill("#pattern", "gap.*")
        await page.click("#filter button[type=submit]")
        await page.wait_for_selector("#connection.on")
        await eventually(lambda: service.app[SERVICE].stream_clients == 1)
        hidden = await service.call("POST", "/events", {"type": "memory.created", "data": MEMORY})
        shown = await service.call(
            "POST", "/events", {"type": "gap.detected", "data": {"gap_id": "g1", "query": "q"}}
        )
        await page.wait_for_selector(f'#events tr[data-id="{shown["event"]["id"]}"]')
        assert await page.query_selector(f'#events tr[data-id="{hidden["event"]["id"]}"]') is None

        webhook_row = f'#webhook-table tr[data-webhook="{hook["id"]}"]'
        await page.wait_for_function(
            f"""() => {{
                const cell = document.querySelector('{webhook_row} td.failures');
                return cell && Number(cell.textContent) >= 2;
            }}""",
            timeout=15_000,
        )
        assert (await page.inner_text(f"{webhook_row} td.rate")).strip() == "0.0 %"
        await page.click(f'{webhook_row} button[data-action="deliveries"]')
        deliveries = await service.call("GET", f"/webhooks/{hook['id']}/deliveries?status=failed")
        (first,) = [d for d in deliveries["deliveries"] if d["event_id"] == event_id]
        delivery_row = f'#delivery-table tr[data-delivery="{first["id"]}"]'
        await page.wait_for_selector(f'{delivery_row}[data-status="failed"]')
        await page.click(f'{delivery_row} button[data-action="attempts"]')
        await page.wait_for_selector('#attempt-table tr[data-attempt="2"]')
        codes = await page.eval_on_selector_all(
            "#attempt-table td.code", "cells => cells.map(c => c.textContent)"
        )
        assert codes == ["500", "500"]
        errors = await page.inner_text("#attempt-table")
        assert "ms" in errors  # every attempt shows its latency

        before = len([r for r in receiver.on("/hook") if r.delivery_id == first["id"]])
        await page.click(f'{delivery_row} button[data-action="redeliver"]')
        # Wait for this action's own message (an earlier one may still be showing).
        await page.wait_for_selector(f"#message.ok:has-text('{first['id']} queued again')")
        await eventually(
            lambda: (
                len([r for r in receiver.on("/hook") if r.delivery_id == first["id"]]) >= before + 2
            )
        )
        await page.wait_for_selector('#attempt-table tr[data-attempt="4"]', timeout=15_000)

        def _enabled() -> bool:
            webhook = service.webhooks.get_webhook(hook["id"])
            assert webhook is not None
            return webhook.enabled

        await page.click(f'{webhook_row} button[data-action="disable"]')
        await eventually(lambda: not _enabled())
        await page.wait_for_selector(f'{webhook_row}.disabled button[data-action="enable"]')
        await page.click(f'{webhook_row} button[data-action="enable"]')
        await eventually(_enabled)

        await page.click(f'{webhook_row} button[data-action="replay"]')
        await page.wait_for_selector("#message.ok:has-text('failed deliveries queued again')")

        await _check_test_button(page, receiver, webhook_row)

        painted = await page.evaluate(
            """() => {
                const c = document.getElementById('chart');
                const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
                return n;
            }"""
        )
        assert painted > 500  # axes and at least one line
        shot = tmp_path / "dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert_not_blank(shot)

        stored = await page.evaluate("sessionStorage.getItem('mnemo-events.api-key')")
        assert stored == API_KEY
        assert requested
        assert all(url.startswith(service.url + "/") for url in requested)
        assert not [url for url in requested if API_KEY in url]
        await context.close()

    async def test_a_wrong_key_is_refused_and_not_kept(
        self, service: Service, browser: Browser
    ) -> None:
        """A wrong key shows the refusal and is removed from sessionStorage."""
        page = await browser.new_page()
        await page.goto(service.url + "/")
        await page.fill("#key", "not-the-key-0000000")
        await page.click("#login button[type=submit]")
        await page.wait_for_selector("#login-error:has-text('refused')")
        assert await page.evaluate("sessionStorage.getItem('mnemo-events.api-key')") is None
        assert await page.is_hidden("#app")
        await page.close()


async def _check_test_button(page: Page, receiver: Receiver, webhook_row: str) -> None:
    """ "Send test" posts to /webhooks/{id}/test: the dashboard reports success and the
    receiver gets the test event."""
    before = len(receiver.on("/hook"))
    await page.evaluate("document.getElementById('message').className = 'toast'")
    await page.click(f'{webhook_row} button[data-action="test"]')
    await page.wait_for_selector("#message.ok")
    await eventually(lambda: len(receiver.on("/hook")) > before)


class TestDocsPage:
    async def test_docs_render_every_route(
        self, service: Service, browser: Browser, tmp_path: Path
    ) -> None:
        """/docs asks for the key, then lists every route of the OpenAPI document, with
        nothing loaded from another origin."""
        document = await service.call("GET", "/openapi.json")
        expected = sum(
            1 for item in document["paths"].values() for method in item if method != "parameters"
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 1200})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(service.url + "/docs")
        await page.wait_for_selector("#login:not([hidden])")
        await page.fill("#key", API_KEY)
        await page.click("#login button[type=submit]")
        await page.wait_for_selector("#paths .op")
        assert len(await page.query_selector_all("#paths .op")) == expected
        text = await page.inner_text("#paths")
        for path in ("/events/stream", "/webhooks/{webhook_id}/deliveries", "/healthz"):
            assert path in text
        schemas = await page.query_selector_all("#schemas details")
        assert len(schemas) == len(document["components"]["schemas"])
        shot = tmp_path / "docs.png"
        await page.screenshot(path=str(shot))
        assert_not_blank(shot)
        assert all(url.startswith(service.url + "/") for url in requested)
        await page.close()


def test_screenshot_check_rejects_a_blank_image(tmp_path: Path) -> None:
    """The blankness check fails on a one-colour image (so it can fail on a blank page)."""
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 100), "white").save(blank)
    with pytest.raises(AssertionError, match="blank"):
        assert_not_blank(blank)
