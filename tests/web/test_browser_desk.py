"""Issue 17, the desk in a real browser (Debian's Chromium, Playwright, a live server): the queue at 1280 px shows
its decision columns without any horizontal scroll, sorts by time in state; at 390 px the header and navigation
wrap and neither the queue nor the case page scrolls sideways (a wide table scrolls inside its own box); a senior
bulk-reassigns an officer's cases.
Screenshots go to artifacts/screenshots/desk-*.png."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from core.models import AuditEvent
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Case, Team, TeamMembership
from tests.web.helpers import staff_user
from tests.web.test_browser import SCREENSHOTS, _book, _plain_http, _sign_in, browser_type_launch_args  # noqa: F401

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

DECISION_HEADERS = (
    "Case",
    "Client",
    "State",
    "Band",
    "Debt",
    "Shortfall",
    "Expected loss",
    "Recommended",
    "Assignee",
    "In state / SLA",
    "Waits for",
)

PAGE_OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def _sideways(page: Page, selector: str) -> int:
    """How far the element scrolls sideways (0: it shows all of its content)."""
    return int(page.eval_on_selector(selector, "e => e.scrollWidth - e.clientWidth"))


def test_the_queue_fits_1280_and_390_px_and_sorts_by_time_in_state(page: Page, live_server: Any) -> None:
    case = _book()
    alice = staff_user("alice", CREDIT_OFFICER)
    now = timezone.now()
    for k, other in enumerate(Case.objects.order_by("pk")):
        Case.objects.filter(pk=other.pk).update(assignee=alice, state_changed_at=now - timedelta(hours=3 * k + 1))
    base = live_server.url

    page.set_viewport_size({"width": 1280, "height": 900})
    _sign_in(page, base, alice)
    expect(page.locator("table.queue tbody tr")).to_have_count(3)
    for header in DECISION_HEADERS:
        expect(page.locator("table.queue thead th", has_text=header).first).to_be_visible()
    assert page.evaluate(PAGE_OVERFLOW) == 0
    assert _sideways(page, "#queue-results .scroll") == 0  # every decision column on screen, no scrolling
    table_right = page.eval_on_selector("table.queue", "e => e.getBoundingClientRect().right")
    assert table_right <= 1280
    page.screenshot(path=SCREENSHOTS / "desk-queue-1280.png", full_page=True)

    # sorting by time in state, longest first: a header click, answered by htmx
    page.locator("table.queue thead th[data-column=in_state] a").click()
    page.wait_for_url("**sort=in_state**")
    page.locator("table.queue thead th[data-column=in_state] a").click()
    page.wait_for_url("**sort=-in_state**")
    oldest = Case.objects.order_by("state_changed_at").first()
    assert oldest is not None
    expect(page.locator("table.queue tbody tr").first).to_contain_text(f"#{oldest.pk}")

    # 390 px: the header wraps, nothing scrolls sideways but the table's own box
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/queue/")
    expect(page.locator("table.queue tbody tr")).to_have_count(3)
    assert page.evaluate(PAGE_OVERFLOW) == 0
    header = page.eval_on_selector(
        "header.top", "e => [e.scrollWidth, e.clientWidth, e.getBoundingClientRect().height]"
    )
    assert header[0] <= header[1]
    page.screenshot(path=SCREENSHOTS / "desk-queue-390.png", full_page=True)
    page.goto(f"{base}/cases/{case.pk}/")
    expect(page.locator("h1")).to_contain_text(f"Case #{case.pk}")
    assert page.evaluate(PAGE_OVERFLOW) == 0
    page.screenshot(path=SCREENSHOTS / "desk-case-390.png", full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/cases/{case.pk}/")
    assert page.evaluate(PAGE_OVERFLOW) == 0
    page.screenshot(path=SCREENSHOTS / "desk-case-1280.png", full_page=True)


def test_a_senior_bulk_reassigns_alices_cases_to_bob(page: Page, live_server: Any) -> None:
    _book()
    sam = staff_user("sam", SENIOR_CREDIT_OFFICER)
    team = Team.objects.create(name="Desk A", senior=sam)
    alice, bob = staff_user("alice", CREDIT_OFFICER), staff_user("bob", CREDIT_OFFICER)
    for officer in (alice, bob):
        TeamMembership.objects.create(team=team, user=officer)
    Case.objects.update(assignee=alice, team=team)
    base = live_server.url
    page.set_viewport_size({"width": 1280, "height": 900})
    _sign_in(page, base, sam)

    page.goto(f"{base}/queue/?assignee=alice")
    expect(page.locator("table.queue tbody tr")).to_have_count(3)
    page.locator("[data-pick-all]").check()  # every case on the page (static/workout/queue.js)
    page.select_option("#bulk select[name=action]", "reassign")
    page.select_option("#bulk select[name=to]", "bob")
    page.fill("#bulk input[name=reason]", "alice on leave")
    page.get_by_role("button", name="Apply to the selected cases").click()

    expect(page.locator(".messages")).to_contain_text("3 cases done")
    page.screenshot(path=SCREENSHOTS / "desk-bulk-reassigned-1280.png", full_page=True)
    assert set(Case.objects.values_list("assignee__username", flat=True)) == {"bob"}
    assert AuditEvent.objects.filter(action="case.reassign", actor=sam).count() == 3
