"""The officer's day in a real browser (Debian's Chromium driven by Playwright against a live server): sign in with
the authenticator's code, find the case in the queue, approve as an officer whose limit is too small (the page
says a second approval is needed), approve as a senior officer, see the proposal approved, send the offer, see the
case offered. Screenshots of the main pages are saved to artifacts/screenshots/.

The book is made by the real services: a sweep opens the case, a price move and a second sweep issue the margin
call, feasibility values it and the default rules propose terms."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from playwright.sync_api import Page, expect

from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Approval, ApprovalLimit, Case, CaseState, Proposal, ProposalState
from restructuring.services.negotiation.proposals import proposal_edit, proposal_submit
from rules.services import DEFAULT_RULES, ruleset_load
from tests.restructuring.helpers import account, btc, price_set
from tests.web.helpers import PASSWORD, current_code, staff_user
from tests.web.test_officer_pages import swept

# Playwright's sync API runs an event loop in the test thread, and the session's database setup may come after it
# starts: Django refuses the ORM under a running loop unless told (set on import, before any fixture runs).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.browser,  # skipped without Chromium, an error under CI (tests/conftest.py)
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": str(CHROMIUM), "headless": True, "args": ["--no-sandbox"]}


@pytest.fixture(scope="session", autouse=True)
def _plain_http() -> Iterator[None]:
    """Plain HTTP for the live server. Session-scoped and autouse, so it is in force before the live server starts:
    the security middleware reads its settings once, when the server loads it."""
    with override_settings(
        SECURE_SSL_REDIRECT=False,
        SECURE_HSTS_SECONDS=0,
        SESSION_COOKIE_SECURE=False,
        CSRF_COOKIE_SECURE=False,
    ):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        yield


@pytest.fixture(autouse=True)
def _no_policy_violations(page: Page) -> Iterator[None]:
    """Chromium reports what the Content-Security-Policy refused (an inline script or handler, a style, a frame)
    on the console: every page these tests visit must run whole under the policy."""
    refused: list[str] = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    yield
    assert not refused, refused


def _book() -> Case:
    """10 BTC on a 750 loan: at 110 a warning, at 100 a margin call with the rules' concentration proposal
    (debt 750); two more accounts in the queue around it."""
    ruleset_load(DEFAULT_RULES, publish=True)
    instrument = btc("110")
    called = account("ACC-BROWSER", instrument, band="margin_call")
    account("ACC-OTHER", instrument, band="warning")
    account("ACC-THIRD", instrument, band="critical")
    swept()
    price_set("100")
    swept()
    case = Case.objects.get(account=called)
    assert case.state == CaseState.PROPOSED
    return case


def _sign_in(page: Page, base: str, user: User, *, landing: str = "**/queue/**", password: str = PASSWORD) -> None:
    page.goto(f"{base}/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", password)
    page.fill("#id_otp_token", current_code(user))
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    devices = page.locator("#id_otp_device option:not([value=''])")
    if "/login/" in page.url and devices.count():
        # django-otp 1.7 asks which authenticator the code is from when the form does not say (it has not used
        # the code yet, so the same one is still good)
        page.select_option("#id_otp_device", index=1)
        page.fill("#id_password", password)
        page.fill("#id_otp_token", current_code(user))
        page.click("main button[type=submit]")
    page.wait_for_url(landing)


def _sign_out(page: Page) -> None:
    page.click("form.signout button")
    page.wait_for_url("**/login/**")


def test_two_officers_approve_a_proposal_above_the_first_ones_limit(page: Page, live_server: Any) -> None:
    case = _book()
    proposal = Proposal.objects.get(case=case)
    alice = staff_user("alice", CREDIT_OFFICER)
    ApprovalLimit.objects.create(user=alice, currency="USD", amount=Decimal(500))  # the debt is 750
    sam = staff_user("sam", SENIOR_CREDIT_OFFICER)
    base = live_server.url
    page.set_viewport_size({"width": 1400, "height": 900})

    # the officer signs in and finds the case in the queue
    page.goto(f"{base}/login/")
    page.screenshot(path=SCREENSHOTS / "login.png")
    _sign_in(page, base, alice)
    expect(page.locator("table.queue tbody tr")).to_have_count(3)
    page.screenshot(path=SCREENSHOTS / "queue.png", full_page=True)
    page.fill("input[name=q]", "browser")  # htmx filters as one types
    expect(page.locator("table.queue tbody tr")).to_have_count(1)
    page.screenshot(path=SCREENSHOTS / "queue-filtered.png")
    page.click(f"table.queue a[href='/cases/{case.pk}/'] >> nth=0")
    expect(page.locator("h1")).to_contain_text(f"Case #{case.pk}")
    expect(page.locator("#chart-loss-curve svg")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "case.png", full_page=True)

    # the model flags the proposal (the client has no cash): the warning sits by the button, which needs a reason
    card = page.locator(f"#proposal-{proposal.pk}")
    expect(card.locator(".flags")).to_contain_text("the model marks it unaffordable")
    card.locator("input[name=override_reason]").fill("the client's other assets, known to the desk")
    # her approval is recorded, but her limit does not cover 750: a second approval is needed
    card.get_by_role("button", name="Approve").click()
    expect(page.locator(".messages")).to_contain_text("a second approval is needed")
    expect(page.locator(f"#proposal-{proposal.pk} .needs")).to_contain_text("limit covers $750.00")
    expect(page.locator(f"#proposal-{proposal.pk} [data-proposal-state]")).to_have_text("Pending approval")
    page.screenshot(path=SCREENSHOTS / "case-second-approval-needed.png", full_page=True)
    assert Proposal.objects.get(pk=proposal.pk).state == ProposalState.PENDING_APPROVAL

    # the senior officer approves: the proposal is approved
    _sign_out(page)
    _sign_in(page, base, sam)
    page.goto(f"{base}/cases/{case.pk}/")
    page.locator(f"#proposal-{proposal.pk} input[name=override_reason]").fill("pledged collateral elsewhere")
    page.locator(f"#proposal-{proposal.pk}").get_by_role("button", name="Approve").click()
    expect(page.locator(".messages")).to_contain_text(f"Proposal {proposal.pk} approved")
    expect(page.locator(f"#proposal-{proposal.pk} [data-proposal-state]")).to_have_text("Approved")
    assert Proposal.objects.get(pk=proposal.pk).state == ProposalState.APPROVED

    # and sends the offer: the case is offered
    page.locator(f"#proposal-{proposal.pk}").get_by_role("button", name="Send offer").click()
    # sending draws the agreement's PDF; the first drawing of this test server's process also loads WeasyPrint and
    # the fonts (gunicorn's workers do that before their first request: config/gunicorn.py)
    expect(page.locator("#case-state")).to_have_text("Offered", timeout=20_000)
    page.screenshot(path=SCREENSHOTS / "case-offered.png", full_page=True)
    assert Case.objects.get(pk=case.pk).state == CaseState.OFFERED

    # the terms form with a preview (nothing stored)
    page.goto(f"{base}/queue/?state=offered")
    expect(page.locator("table.queue tbody tr")).to_have_count(1)
    other = Case.objects.exclude(pk=case.pk).filter(state=CaseState.PROPOSED).first()
    if other is not None:
        page.goto(f"{base}/cases/{other.pk}/proposals/new/")
        page.fill("#id_new-term_months", "9")
        page.get_by_role("button", name="Preview schedule and value").click()
        expect(page.locator("#terms-preview")).to_contain_text("Preview on the current market")
        page.screenshot(path=SCREENSHOTS / "proposal-form-preview.png", full_page=True)


def test_the_approve_form_refuses_after_another_officers_edit_and_shows_the_new_terms(
    page: Page, live_server: Any
) -> None:
    # given bob reading the case, its proposal at version 1
    case = _book()
    proposal = Proposal.objects.get(case=case)
    alice = staff_user("alice", CREDIT_OFFICER)
    bob = staff_user("bob", CREDIT_OFFICER)
    base = live_server.url
    page.set_viewport_size({"width": 1400, "height": 900})
    _sign_in(page, base, bob)
    page.goto(f"{base}/cases/{case.pk}/")
    card = page.locator(f"#proposal-{proposal.pk}")
    expect(card.get_by_role("button", name="Approve version 1")).to_be_visible()

    # when alice, elsewhere, forgives 50 of the principal and submits, and bob then approves what he read
    proposal_edit(proposal_id=proposal.pk, terms={**proposal.terms, "principal_haircut": "50"}, actor=alice)
    proposal_submit(proposal_id=proposal.pk, actor=alice)
    card.locator("input[name=override_reason]").fill("the client's other assets")
    card.get_by_role("button", name="Approve").click()

    # then nothing is approved: the message says the terms changed and shows them, and the page shows version 2
    expect(page.locator(".messages")).to_contain_text("changed since you loaded it")
    expect(page.locator(".messages")).to_contain_text("principal haircut 50")
    expect(card.locator("table.facts")).to_contain_text("principal haircut")
    expect(card.get_by_role("button", name="Approve version 2")).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "case-stale-approval-refused.png", full_page=True)
    assert not Approval.objects.filter(proposal=proposal).exists()
    assert Proposal.objects.get(pk=proposal.pk).state == ProposalState.PENDING_APPROVAL


def test_compliance_prints_a_case_history_under_the_content_security_policy(page: Page, live_server: Any) -> None:
    # given a case with its history, and a compliance reviewer
    case = _book()
    reviewer = staff_user("carla", COMPLIANCE)
    base = live_server.url

    # when she opens the case's history and presses Print (the browser's print dialog stubbed out)
    _sign_in(page, base, reviewer)
    page.goto(f"{base}/audit/cases/{case.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Case {case.pk}")
    # (a function expression would be called by evaluate itself: install the stub from inside one)
    page.evaluate("() => { window.print = () => { window.printed = (window.printed || 0) + 1; }; }")
    page.get_by_role("button", name="Print").click()

    # then the page's own script printed it: the button needs no inline handler, which the policy would refuse
    assert page.evaluate("window.printed") == 1
