"""Issue 17, the desk in a real browser (Debian's Chromium, Playwright, a live server): the queue at 1280 px shows
its decision columns without any horizontal scroll, sorts by time in state; at 390 px the header and navigation
wrap and neither the queue nor the case page scrolls sideways (a wide table scrolls inside its own box); and the
issue's journey from the demo: alice's day (her cases, sorted by time in state, a call with a promise to pay, a
partial payment), the clock keeping and breaking promises, a senior bulk-reassigning her cases to bob.
Screenshots go to artifacts/screenshots/desk-*.png."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from core.models import AuditEvent
from core.money import money_text
from core.roles import CREDIT_OFFICER
from demo.management.commands.demo_users import DEMO_PASSWORD
from restructuring.models import (
    OPEN_STATES,
    Case,
    CaseState,
    Installment,
    PromiseStatus,
    PromiseToPay,
    Proposal,
    ProposalKind,
    ProposalState,
)
from restructuring.services.assignment import case_reassign
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from restructuring.services.promises import promises_track
from tests.web.helpers import policy_in_force, staff_user
from tests.web.test_browser import (  # noqa: F401
    SCREENSHOTS,
    _book,
    _plain_http,
    _sign_in,
    _sign_out,
    browser_type_launch_args,
)

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


def _no_sideways_scroll(page: Page) -> None:
    """The page itself never scrolls sideways (a wide table scrolls inside its own box)."""
    widths = page.evaluate("() => [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], widths


def _demo_desk(sam: User) -> Case:
    """The demo as `make demo` builds it (tests/demo/test_demo_desk.py), on a small book: a published policy, the
    demo book swept (its margin calls valued and proposed on), the demo's staff (alice and bob on sam's team, the
    open cases balanced over them), and alice's and bob's conversations on their cases. Then sam restructures one
    proposed case (approve, offer, the client accepts, execute) and gives it to alice: the case she takes a payment
    on."""
    with override_settings(DEBUG=True, WORKOUT_FEASIBILITY_PATHS=300):
        call_command("demo_setup", "--accounts", "120", stdout=StringIO())
        call_command("demo_users", stdout=StringIO())
        for officer in ("alice", "bob"):
            call_command("demo_conversation", "--actor", officer, "--cases", "3", stdout=StringIO())
    proposal = (
        Proposal.objects.filter(
            state=ProposalState.PENDING_APPROVAL, case__state=CaseState.PROPOSED, kind=ProposalKind.RESTRUCTURE
        )
        .exclude(case__promises__status=PromiseStatus.OPEN)
        .order_by("pk")
        .first()
    )
    assert proposal is not None
    done = proposal_approve(
        proposal_id=proposal.pk, actor=sam, version=proposal.version, override_reason="the client's other assets"
    )
    assert done.proposal.state == ProposalState.APPROVED, done
    offer_send(proposal_id=proposal.pk, actor=sam, version=proposal.version)
    offer_accept(proposal_id=proposal.pk, client_id=proposal.case.account.client_id)
    proposal_execute(proposal_id=proposal.pk, actor=sam, version=proposal.version)
    case = Case.objects.select_related("assignee").get(pk=proposal.case_id)
    assert case.state == CaseState.RESTRUCTURED
    if case.assignee is None or case.assignee.username != "alice":
        case_reassign(case_id=case.pk, to="alice", actor=sam, reason="the restructured book is alice's")
    # the demo's cases were all opened by one sweep: alice's are spread over the last day, so that time in state sorts
    now = timezone.now()
    for k, pk in enumerate(Case.objects.filter(assignee__username="alice").order_by("pk").values_list("pk", flat=True)):
        Case.objects.filter(pk=pk).update(state_changed_at=now - timedelta(hours=2 * k + 1))
    return case


def test_the_officer_s_day_from_the_demo(page: Page, live_server: Any) -> None:
    """Issue 17's journey: (1) alice sees her cases, sorts them by time in state, logs a call with a promise to pay
    and records a partial payment; (2) the clock moves on: her promise is kept, the promises nobody paid are broken
    and their cases wait for her follow-up; (3) sam bulk-reassigns alice's cases to bob; (4) screenshots at 1280 and
    390 px, and no page scrolls sideways."""
    sam_user = User.objects.create_user("sam")  # demo_users gives him his role, password and authenticator
    policy_in_force()  # its author and publisher are two people: sam's approval completes its proposals
    case = _demo_desk(sam_user)
    alice, sam = User.objects.get(username="alice"), User.objects.get(username="sam")
    base = live_server.url
    hers = set(Case.objects.filter(state__in=OPEN_STATES, assignee=alice).values_list("pk", flat=True))
    assert 3 < len(hers) <= 50

    # (1) alice's queue opens on her cases
    page.set_viewport_size({"width": 1280, "height": 900})
    _sign_in(page, base, alice, password=DEMO_PASSWORD)
    expect(page.locator("nav.tabs.desk a.active")).to_contain_text("My cases")
    expect(page.locator("table.queue tbody tr")).to_have_count(len(hers))
    shown = {
        int(h.split("/")[2])
        for h in page.locator("table.queue tbody td:nth-child(2) a").evaluate_all(
            "links => links.map(a => a.getAttribute('href'))"
        )
    }
    assert shown == hers
    _no_sideways_scroll(page)
    assert _sideways(page, "#queue-results .scroll") == 0  # every decision column on screen, with the demo's names
    page.screenshot(path=SCREENSHOTS / "desk-journey-alice-queue-1280.png", full_page=True)

    # ... sorts them by time in state, the longest waiting first
    page.locator("table.queue thead th[data-column=in_state] a").click()
    page.wait_for_url("**sort=in_state**")
    page.locator("table.queue thead th[data-column=in_state] a").click()
    page.wait_for_url("**sort=-in_state**")
    oldest = Case.objects.filter(pk__in=hers).order_by("state_changed_at").first()
    assert oldest is not None
    expect(page.locator("table.queue tbody tr").first).to_contain_text(f"#{oldest.pk}")

    # ... logs a call in which the client promises part of the first installment
    first = Installment.objects.filter(proposal__case=case).order_by("number").first()
    assert first is not None
    part = (first.total / 2).quantize(Decimal("0.01"))
    due = timezone.localdate() + timedelta(days=3)
    page.goto(f"{base}/cases/{case.pk}/")
    expect(page.locator("#case-owner")).to_contain_text("assigned to alice")
    call = page.locator(f"form[action='/cases/{case.pk}/contacts/']")
    call.locator("select[name=channel]").select_option("call")
    call.locator("select[name=direction]").select_option("outbound")
    call.locator("select[name=outcome]").select_option("promise")
    call.locator("input[name=person]").fill("the client's treasurer")
    call.locator("textarea[name=summary]").fill("Half of the first installment by Friday, the rest with the second.")
    call.locator("input[name=promise_amount]").fill(str(part))
    call.locator("input[name=promise_due]").fill(due.isoformat())
    call.locator("select[name=promise_method]").select_option("bank_transfer")
    call.locator("button[type=submit]").click()
    expect(page.locator(".messages")).to_contain_text("Call logged")
    expect(page.locator("#open-promise")).to_contain_text(money_text(part, case.account.base_currency, locale="en"))
    promise = PromiseToPay.objects.get(case=case, status=PromiseStatus.OPEN)
    assert (promise.amount, promise.due, promise.made_by_id) == (part, due, alice.pk)

    # ... and records the partial payment when it arrives: allocated, the installment partly paid
    row = page.locator("#schedule tr[data-installment='1']")
    row.locator("input[name=amount]").fill(str(part))
    row.locator("button[type=submit]").click()
    expect(page.locator(".messages")).to_contain_text("installment 1 partly paid")
    expect(page.locator("#schedule tr[data-installment='1']")).to_have_attribute("data-status", "partly_paid")
    page.screenshot(path=SCREENSHOTS / "desk-journey-partial-payment-1280.png", full_page=True)

    # (2) the clock: a month on, the promise paid is kept; those of the demo nobody paid are broken
    still_open = set(PromiseToPay.objects.filter(status=PromiseStatus.OPEN).values_list("pk", flat=True))
    tracked = promises_track(now=timezone.now() + timedelta(days=30))
    assert (tracked.kept, tracked.broken) == (1, len(still_open) - 1)
    assert PromiseToPay.objects.get(pk=promise.pk).status == PromiseStatus.KEPT
    page.reload()
    expect(page.locator("#promises tbody tr").first).to_contain_text("Kept")
    broken = PromiseToPay.objects.filter(status=PromiseStatus.BROKEN, case__assignee=alice).first()
    assert broken is not None  # the demo had alice take promises on her cases
    page.goto(f"{base}/cases/{broken.case_id}/")
    expect(page.locator("#follow-up")).to_contain_text("A promise was broken")
    expect(page.locator("#case-sla")).to_contain_text("Broken promise not followed up")
    page.goto(f"{base}/queue/?q={broken.case.account.code}")
    expect(page.locator("table.queue tbody tr").first).to_contain_text("Broken promise not followed up")
    _sign_out(page)

    # (3) sam gives all of alice's open cases to bob from the queue, in one bulk action
    hers = set(Case.objects.filter(state__in=OPEN_STATES, assignee=alice).values_list("pk", flat=True))
    _sign_in(page, base, sam, password=DEMO_PASSWORD)
    page.goto(f"{base}/queue/?assignee=alice")
    expect(page.locator("table.queue tbody tr")).to_have_count(len(hers))
    page.locator("[data-pick-all]").check()  # every case on the page (static/workout/queue.js)
    page.select_option("#bulk select[name=action]", "reassign")
    page.select_option("#bulk select[name=to]", "bob")
    page.fill("#bulk input[name=reason]", "alice on leave")
    page.get_by_role("button", name="Apply to the selected cases").click()
    expect(page.locator(".messages")).to_contain_text(f"{len(hers)} cases done")
    assert not Case.objects.filter(state__in=OPEN_STATES, assignee=alice).exists()
    assert set(Case.objects.filter(pk__in=hers).values_list("assignee__username", flat=True)) == {"bob"}
    moved = AuditEvent.objects.filter(action="case.reassign", actor=sam, reason="alice on leave")
    assert sorted(moved.values_list("object_id", flat=True)) == sorted(hers)

    # (4) the senior's queue, the case and the team page at 1280 and 390 px: nothing scrolls sideways but tables
    page.goto(f"{base}/queue/")
    expect(page.locator("nav.tabs.desk a[data-assignee=none]")).to_be_visible()
    expect(page.locator("#workload-officers tr[data-officer=bob]")).to_be_visible()
    _no_sideways_scroll(page)
    assert _sideways(page, "#queue-results .scroll") == 0
    page.screenshot(path=SCREENSHOTS / "desk-journey-sam-queue-1280.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("queue", "/queue/"), ("case", f"/cases/{case.pk}/"), ("team", "/staff/team/")):
        page.goto(f"{base}{path}")
        _no_sideways_scroll(page)
        page.screenshot(path=SCREENSHOTS / f"desk-journey-{name}-390.png", full_page=True)

    # ... and in German, whose words are longer: the decision columns still fit 1280 px
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{base}/queue/")
    page.select_option("form.language select[name=language]", "de")
    page.locator("form.language button").click()
    expect(page.locator(".messages")).to_contain_text("Die Seiten sind jetzt auf Deutsch.")
    expect(page.locator("nav.tabs.desk a[data-assignee=none]")).to_contain_text("Nicht zugewiesen")
    _no_sideways_scroll(page)
    assert _sideways(page, "#queue-results .scroll") == 0
    page.screenshot(path=SCREENSHOTS / "desk-journey-sam-queue-de-1280.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{base}/cases/{case.pk}/")
    _no_sideways_scroll(page)
    page.screenshot(path=SCREENSHOTS / "desk-journey-case-de-390.png", full_page=True)
