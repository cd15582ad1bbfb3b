"""Enrolment in a real browser (Chromium, under the Content-Security-Policy): the administrator creates an officer
and copies the link the page shows (the Copy button is this site's script, not an inline handler); the officer opens
it in a browser of their own, reads the key, types their password and the authenticator's code, and lands signed
in on the queue. Screenshots of the staff page and the enrolment page go to artifacts/screenshots/."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import Browser, Page, expect

from core.roles import ADMINISTRATOR, CREDIT_OFFICER
from tests.web.helpers import staff_user

# The browser tests' launch arguments, plain HTTP for the live server and the policy watch (their fixtures).
from tests.web.test_browser import (  # noqa: F401
    SCREENSHOTS,
    _no_policy_violations,
    _plain_http,
    _sign_in,
    browser_type_launch_args,
)

pytestmark = [pytest.mark.postgres, pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_enrols_an_officer_in_the_browser(page: Page, browser: Browser, live_server: Any) -> None:
    ada = staff_user("ada", ADMINISTRATOR)
    base = live_server.url
    page.set_viewport_size({"width": 1400, "height": 900})

    # the administrator lands on the staff page and creates olga, a credit officer
    _sign_in(page, base, ada, landing="**/staff/**")
    page.fill("#id_username", "olga")
    page.select_option("#id_role", CREDIT_OFFICER)
    page.get_by_role("button", name="Create and issue a link").click()
    expect(page.locator("h1")).to_contain_text("olga is created")
    link = page.locator("#enrolment-link").input_value()
    assert link.startswith(f"{base}/enrol/")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    page.goto(f"{base}/staff/")
    page.screenshot(path=SCREENSHOTS / "staff.png", full_page=True)

    # olga opens it in a browser of her own, signed in as nobody
    own = browser.new_context()
    phone = own.new_page()
    phone.goto(link)
    expect(phone.locator("h1")).to_contain_text("Welcome, olga")
    expect(phone.locator(".qr svg")).to_be_visible()
    phone.screenshot(path=SCREENSHOTS / "enrol.png", full_page=True)
    key = base64.b32decode(phone.locator("#authenticator-key").inner_text().replace(" ", ""))
    phone.fill("#id_password", "plum orchard lantern 42")
    phone.fill("#id_password_again", "plum orchard lantern 42")
    phone.fill("#id_code", f"{TOTP(key).token():06d}")
    phone.get_by_role("button", name="Set up my account").click()

    # and is signed in, on the queue
    phone.wait_for_url("**/queue/**")
    expect(phone.locator(".messages")).to_contain_text("Welcome, olga")
    own.close()
