"""The API's documentation renders in a real browser (Debian's Chromium driven by Playwright against a live server),
under the site's own Content-Security-Policy: /api/docs/ (Swagger UI) and /api/redoc/ (Redoc) load their assets
from this site, show the operations (the offer's accept among them), and Chromium reports no policy refusal, no
console error and no uncaught exception. (It was a blank page: Swagger UI from a CDN with an inline script.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings
from playwright.sync_api import ConsoleMessage, Page, Request, expect

from tests.web.test_browser import CHROMIUM, SCREENSHOTS

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ACCEPT = "/api/v1/offers/{id}/accept/"


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": str(CHROMIUM), "headless": True, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session", autouse=True)
def _plain_http() -> Iterator[None]:
    """Plain HTTP for the live server, in force before it starts (as tests/web/test_browser.py's)."""
    with override_settings(
        SECURE_SSL_REDIRECT=False, SECURE_HSTS_SECONDS=0, SESSION_COOKIE_SECURE=False, CSRF_COOKIE_SECURE=False
    ):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield


class Watch:
    """What the page does wrong: console errors (a CSP refusal is one), uncaught exceptions, and requests that
    leave this site."""

    def __init__(self, page: Page, base: str) -> None:
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.base = base
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        page.on("request", self._request)
        page.on("response", lambda r: self.errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            self.errors.append(f"{message.type}: {message.text}")

    def _request(self, request: Request) -> None:
        if not request.url.startswith((self.base, "data:", "blob:")):
            self.foreign.append(request.url)

    def assert_clean(self) -> None:
        assert self.errors == [], "\n".join(self.errors)
        assert self.foreign == []


def test_swagger_ui_renders_the_operations_under_the_sites_policy(page: Page, live_server: Any) -> None:
    watch = Watch(page, live_server.url)
    page.set_viewport_size({"width": 1400, "height": 900})

    response = page.goto(f"{live_server.url}/api/docs/")

    assert response is not None
    assert response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    accept = page.locator(f".opblock-summary-path[data-path='{ACCEPT}']")
    expect(accept).to_be_visible(timeout=15_000)
    expect(page.locator(".opblock")).to_have_count(len(_operations(page, live_server.url)))
    accept.click()  # the operation opens, with its description
    expect(page.locator(".opblock.is-open")).to_contain_text("Accept an open offer")
    page.screenshot(path=SCREENSHOTS / "api-docs.png")
    watch.assert_clean()


def test_redoc_renders_the_operations_under_the_sites_policy(page: Page, live_server: Any) -> None:
    watch = Watch(page, live_server.url)
    page.set_viewport_size({"width": 1400, "height": 900})

    response = page.goto(f"{live_server.url}/api/redoc/")

    assert response is not None
    assert response.ok
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_text("Accept an open offer").first).to_be_visible(timeout=15_000)
    expect(page.locator(".api-content")).to_contain_text(ACCEPT)
    expect(page.locator(".api-content")).to_contain_text("Workout API")
    page.screenshot(path=SCREENSHOTS / "api-redoc.png")
    watch.assert_clean()


def _operations(page: Page, base: str) -> list[str]:
    document = page.request.get(f"{base}/api/schema/?format=json").json()
    return [f"{method} {path}" for path, item in document["paths"].items() for method in item]
