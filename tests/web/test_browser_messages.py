"""Issue 18 in a real browser (Debian's Chromium, Playwright, a live server): an officer edits the offer's email
template (previewing it on the case), submits it; she cannot publish it herself; a senior publishes it; he sends the
offer, and the case's log shows the email rendered from the new version. Screenshots go to
artifacts/screenshots/messages-*.png."""

from __future__ import annotations

import os
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Client
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import CLIENT_NOTIFICATION_KINDS, CaseState, MessageTemplate, Notification, Proposal
from restructuring.services.negotiation.proposals import proposal_approve
from tests.web.helpers import staff_user
from tests.web.test_browser import SCREENSHOTS, _book, _plain_http, _sign_in, _sign_out, browser_type_launch_args  # noqa: F401

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

SUBJECT = "Good news for account {{ account }}"
BODY = (
    "Dear {{ client_name }},\n\nwe can restructure your loan over {{ terms.term_months }} months. The offer stands "
    "until {{ expires_at|datetime }}.\n\n{{ lender_name }}"
)


def test_an_officer_edits_a_template_a_senior_publishes_it_and_the_case_log_shows_a_message_from_it(
    page: Page, live_server: Any
) -> None:
    # given a case whose rules' proposal is approved, its client reachable by email
    case = _book()
    proposal = Proposal.objects.get(case=case)
    Client.objects.filter(pk=case.account.client_id).update(email="treasury@client.example", name="Ada Trading")
    alice = staff_user("alice", CREDIT_OFFICER)
    sam = staff_user("sam", SENIOR_CREDIT_OFFICER)
    bob = staff_user("bob", CREDIT_OFFICER)
    for approver in (bob, staff_user("olga", CREDIT_OFFICER)):  # a command's policy: two approvals
        proposal_approve(proposal_id=proposal.pk, actor=approver, version=1, override_reason="other assets")
    assert Proposal.objects.get(pk=proposal.pk).state == "approved"
    base = live_server.url
    page.set_viewport_size({"width": 1400, "height": 1000})

    # the officer opens the offer's English email among the templates and rewrites it, previewing it on the case
    _sign_in(page, base, alice)
    page.get_by_role("link", name="Messages").click()
    # every client message (15 kinds, the webhook-disabled notice among them) by 3 channels in 2 languages
    expect(page.locator("#message-templates tbody tr")).to_have_count(len(CLIENT_NOTIFICATION_KINDS) * 3 * 2)
    assert len(CLIENT_NOTIFICATION_KINDS) == 15
    page.screenshot(path=SCREENSHOTS / "messages-templates.png", full_page=True)
    page.locator("tr[data-kind=offer][data-channel=email][data-locale=en] a").click()
    expect(page.locator("h1")).to_contain_text("Offer of restructured terms · Email · en")
    page.fill("#id_subject", SUBJECT)
    page.fill("#id_body", BODY)
    page.fill("#id_case", str(case.pk))
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-subject")).to_have_text("Good news for account ACC-BROWSER")
    expect(page.locator("#preview-body")).to_contain_text("Dear Ada Trading,")
    expect(page.locator("#preview-result")).to_contain_text(f"On case {case.pk} for Ada Trading")
    page.screenshot(path=SCREENSHOTS / "messages-template-preview.png", full_page=True)
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator(".messages")).to_contain_text("Draft v2 saved")
    page.get_by_role("button", name="Submit for review").click()
    expect(page.locator(".messages")).to_contain_text("Draft v2 is in review")
    expect(page.locator("#draft h2")).to_contain_text("v2 · In review")
    expect(page.get_by_role("button", name="Publish")).to_have_count(0)  # an officer does not publish

    # the senior, who did not write it, publishes it
    _sign_out(page)
    _sign_in(page, base, sam)
    page.goto(f"{base}/messages/templates/offer/email/en/")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".messages")).to_contain_text("Version 2 is published")
    expect(page.locator("#in-use h2")).to_contain_text("In use · v2")
    expect(page.locator("#versions tr[data-version='1']")).to_contain_text("Retired")
    page.screenshot(path=SCREENSHOTS / "messages-template-published.png", full_page=True)
    published = MessageTemplate.objects.get(kind="offer", channel="email", locale="en", status="published")
    assert (published.version, published.created_by, published.published_by) == (2, alice, sam)

    # and sends the offer: the case's log shows the email as rendered from version 2
    page.goto(f"{base}/cases/{case.pk}/")
    page.locator(f"#proposal-{proposal.pk}").get_by_role("button", name="Send offer").click()
    expect(page.locator("#case-state")).to_have_text("Offered")
    email = Notification.objects.get(case=case, kind="offer", channel="email")
    row = page.locator(f"#message-log tr[data-message='{email.pk}']")
    expect(row).to_contain_text("Good news for account ACC-BROWSER")
    expect(row.locator(".template-version")).to_have_text("en v2")
    row.locator("details summary").click()
    expect(row.locator(".message-body")).to_contain_text("we can restructure your loan over")
    page.locator("#messages").screenshot(path=SCREENSHOTS / "messages-case-log.png")
    assert email.template_id == published.pk
    assert email.subject == "Good news for account ACC-BROWSER"
    assert case.__class__.objects.get(pk=case.pk).state == CaseState.OFFERED
