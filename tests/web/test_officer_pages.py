"""The credit officer's read pages: the queue (urgency order, filters, paging, counts per state) and the case
(account, positions, charts, proposals with their explanation, schedule and value, the timeline), each in a fixed
number of queries whatever it shows. The book is made by the real services: sweeps, feasibility, the rules."""

from __future__ import annotations

import html
import io
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client, TestCase, override_settings
from django.utils import timezone

from accounts.models import Client as AccountClient
from accounts.models import ClientGroup, Instrument, MarginAccount, Price, WebhookEndpoint
from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Case, CaseState, Notification, NotificationKind, Proposal
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.conversation import contact_log, note_add, promise_make
from restructuring.services.documents import document_upload_by_officer
from restructuring.services.feasibility import terms_value
from restructuring.services.negotiation.proposals import proposal_draft
from restructuring.services.notifications import notification_enqueue
from restructuring.terms import Terms
from rules.models import RuleSet, RuleSetStatus
from tests.documents import PDF
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import policy_in_force, signed_in, staff_user

pytestmark = [
    pytest.mark.django_db,
]

FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)
TERMS = {"term_months": 6, "kind": "level"}


# ------------------------------------------------------------------------------------ shared with the others


def swept() -> None:
    """A sweep, then the cases it moves; the margin calls' feasibility and the rules run on commit, in process."""
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)


def proposed_case(code: str = "CALL") -> Case:
    """10 BTC at 100 on a 750 loan, swept under the default rules: PROPOSED, with the concentration proposal
    pending approval (debt 750)."""
    if not Instrument.objects.filter(symbol="BTC").exists():
        btc()
    if not RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).exists():
        policy_in_force()
    margin_account = account(code, Instrument.objects.get(symbol="BTC"), band="margin_call")
    swept()
    case = Case.objects.get(account=margin_account)
    assert case.state == CaseState.PROPOSED
    return case


def text(response: Any) -> str:
    """The page's visible text, tags dropped and spaces collapsed."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _usd(amount: Decimal) -> str:
    """An amount of USD as an English reader writes it: -$114.97."""
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def queue_case_ids(response: Any) -> list[int]:
    return [int(i) for i in re.findall(r'<td><a href="/cases/(\d+)/">#', response.content.decode())]


@pytest.fixture
def officer() -> User:
    return staff_user("alice", CREDIT_OFFICER)


@pytest.fixture
def web(officer: User) -> Client:
    return signed_in(officer)


# -------------------------------------------------------------------------------------------------- queue


def _eth() -> Instrument:
    instrument = Instrument.objects.create(
        symbol="ETH",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        haircut=Decimal("0.1"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.05"),
        average_daily_volume=Decimal("1000"),
    )
    Price.objects.create(instrument=instrument, time=timezone.now() - timedelta(minutes=5), price=Decimal(100))
    return instrument


def _queue_book() -> dict[str, Case]:
    """Four open cases: two margin calls on BTC (shortfalls 250 and 600), one on ETH in a client group, and a
    warning (no call, no deadline)."""
    bitcoin, ether = btc(), _eth()
    account("CALL", bitcoin, band="margin_call")
    account("CRIT", bitcoin, band="critical")
    grouped = account("GRP", ether, band="margin_call")
    account("WARN", bitcoin, band="warning")
    group = ClientGroup.objects.create(code="OWNER1", name="One owner")
    grouped.client.group = group
    grouped.client.save(update_fields=["group"])
    swept()
    return {c.account.code: c for c in Case.objects.select_related("account")}


def test_the_queue_lists_open_cases_by_deadline_then_shortfall_then_expected_loss(web: Client) -> None:
    cases = _queue_book()
    # given: the same deadline for CALL and CRIT (CRIT's shortfall is larger), an earlier one for GRP
    deadline = timezone.now() + timedelta(hours=5)
    Case.objects.filter(pk__in=[cases["CALL"].pk, cases["CRIT"].pk]).update(deadline=deadline)
    Case.objects.filter(pk=cases["GRP"].pk).update(deadline=deadline - timedelta(hours=1))

    response = web.get("/queue/?show=deadline")  # the deadline column is behind the column chooser

    assert response.status_code == 200
    assert queue_case_ids(response) == [cases[c].pk for c in ("GRP", "CRIT", "CALL", "WARN")]
    page = text(response)
    assert "4 open cases" in page
    assert "Warning 1" in page
    assert "Margin call 3" in page
    assert "in 4h 59m" in page or "in 5h 0m" in page  # CRIT and CALL's deadline, compactly


def test_equal_deadlines_and_shortfalls_go_by_expected_loss(web: Client) -> None:
    instrument = btc()
    account("TEN", instrument, band="critical")
    account("LESS", instrument, band="critical", quantity="9.5")  # less to sell: a larger expected loss
    swept()
    by_code = {c.account.code: c for c in Case.objects.select_related("account")}
    Case.objects.update(deadline=timezone.now() + timedelta(hours=3), call_amount=Decimal(250))
    losses = {code: c.feasibility_reports.get().expected_loss for code, c in by_code.items()}
    assert losses["LESS"] > losses["TEN"]

    assert queue_case_ids(web.get("/queue/")) == [by_code["LESS"].pk, by_code["TEN"].pk]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=warning", ["WARN"]),
        ("state=margin_call", ["GRP", "CRIT", "CALL"]),
        ("band=critical", ["CRIT"]),
        ("asset=eth", ["GRP"]),
        ("asset=BTC", ["CRIT", "CALL", "WARN"]),
        ("group=owner1", ["GRP"]),
        ("q=crit", ["CRIT"]),
        ("q=C-WARN", ["WARN"]),
        ("state=margin_call&asset=BTC", ["CRIT", "CALL"]),
        ("state=nonsense", ["GRP", "CRIT", "CALL", "WARN"]),  # a bad value drops that filter only
    ],
)
def test_the_queue_filters(web: Client, query: str, expected: list[str]) -> None:
    cases = _queue_book()
    Case.objects.filter(pk=cases["GRP"].pk).update(deadline=timezone.now() + timedelta(hours=1))

    response = web.get(f"/queue/?{query}")

    assert queue_case_ids(response) == [cases[code].pk for code in expected]


def test_the_state_counts_follow_the_other_filters(web: Client) -> None:
    _queue_book()

    page = text(web.get("/queue/?asset=BTC&state=warning"))

    assert "all open 3" in page  # BTC holders, every state
    assert "Warning 1" in page
    assert "Margin call 2" in page
    assert "Proposed 0" in page


def test_the_officer_filter_finds_the_cases_an_officer_drafted_or_approved(officer: User, web: Client) -> None:
    case = proposed_case("MINE")
    other = proposed_case("OTHER")
    proposal_draft(case_id=case.pk, terms=TERMS, actor=officer)

    assert queue_case_ids(web.get("/queue/?officer=alice")) == [case.pk]
    assert sorted(queue_case_ids(web.get("/queue/"))) == sorted([case.pk, other.pk])


def test_the_queue_pages_by_fifty(web: Client) -> None:
    instrument = btc()
    for k in range(53):
        account(f"W{k:02}", instrument, band="warning")
    swept()

    first, second = web.get("/queue/"), web.get("/queue/?page=2")

    assert len(queue_case_ids(first)) == 50
    assert len(queue_case_ids(second)) == 3
    assert "page 1 of 2 (53 cases)" in text(first)
    assert set(queue_case_ids(first)).isdisjoint(queue_case_ids(second))


def test_the_queue_counts_what_its_filters_leave_from_the_state_counts(web: Client) -> None:
    """The pager's total is the state tabs' count (no COUNT query of its own): the filtered state's, or the sum."""
    instrument = btc()
    for k in range(55):
        account(f"W{k:02}", instrument, band="warning")
    account("M0", instrument, band="margin_call")
    account("M1", instrument, band="margin_call")
    swept()

    assert "page 1 of 2 (57 cases)" in text(web.get("/queue/"))
    assert "page 1 of 2 (55 cases)" in text(web.get("/queue/?state=warning"))
    assert "page 1 of 2 (55 cases)" in text(web.get("/queue/?q=w"))
    assert "page 2 of 2 (55 cases)" in text(web.get("/queue/?state=warning&q=w&page=2"))
    assert len(queue_case_ids(web.get("/queue/?state=warning&q=w&page=2"))) == 5
    assert queue_case_ids(web.get("/queue/?state=margin_call&q=w")) == []
    page = text(web.get("/queue/?state=margin_call"))
    assert len(queue_case_ids(web.get("/queue/?state=margin_call"))) == 2
    assert "page 1 of" not in page  # one page: no pager


def test_the_queue_makes_the_same_queries_for_4_cases_as_for_a_full_page(
    web: Client, django_assert_num_queries: Any
) -> None:
    """Session, user, device, groups, two permission reads, the officers of the filter, the counts per state
    (which give the page's count too), the workloads per officer and team, the page itself, the session's save
    (3): 13, however many rows."""
    _queue_book()
    with django_assert_num_queries(13):
        assert len(queue_case_ids(web.get("/queue/?asset=BTC&q=C"))) == 3
    instrument = Instrument.objects.get(symbol="BTC")
    for k in range(60):
        account(f"W{k:02}", instrument, band="warning")
    swept()
    with django_assert_num_queries(13):
        assert len(queue_case_ids(web.get("/queue/"))) == 50


def test_the_filters_answer_htmx_with_the_results_only(web: Client) -> None:
    _queue_book()

    response = web.get("/queue/?state=warning", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="queue-results")

    body = response.content.decode()
    assert "<html" not in body
    assert "<table" in body
    assert len(queue_case_ids(response)) == 1


# --------------------------------------------------------------------------------------------------- case


def test_the_case_page_shows_the_account_feasibility_and_the_proposals_explained(web: Client) -> None:
    case = proposed_case()
    proposal = Proposal.objects.get(case=case)

    response = web.get(f"/cases/{case.pk}/")

    assert response.status_code == 200
    page = text(response)
    body = response.content.decode()
    # the account, its loan and its position at the latest price (10 BTC at 100)
    assert "Debt $750.00" in page
    assert "Cash $0.00" in page
    assert re.search(r"BTC Spot asset 10 90 100 \$1,000.00", page)
    # the charts: server-rendered SVG, no script
    for chart in ("chart-risk-history", "chart-loss-curve", "chart-recovery"):
        figure = body.split(f'id="{chart}"')[1].split("</figure>")[0]
        assert "<svg" in figure
        assert "<script" not in figure
    assert "maintenance requirement" in body.split('id="chart-loss-curve"')[1]
    # the proposal: value, terms, the rules that fired with the facts they read, the schedule
    assert f"concentration #{proposal.pk}" in page
    assert "Pending approval" in page
    assert f"${proposal.expected_pv:,.2f}" in page
    assert "collateral to add 300.00" in page
    assert "reduce BTC 50%" in page
    assert "concentrated_collateral → demand_collateral (amount 300.0)" in page
    assert "concentration_top1 = 1" in page
    assert "shortfall = 250" in page
    assert "Repayment schedule: 12 installments" in page
    assert "restructured before: 0 times" in page
    # the timeline: the case's events, and its feasibility report's (recorded by account)
    timeline = page.split("Timeline")[1]
    for action in ("case.open", "case.margin_call", "feasibility.report", "case.propose"):
        assert action in timeline
    # an officer's actions on a pending proposal
    assert f'action="/proposals/{proposal.pk}/approve/"' in body
    assert f'action="/cases/{case.pk}/liquidate/"' in body


def _card(response: Any, proposal_id: int) -> str:
    """The visible text of one proposal's card on the case page."""
    body = response.content.decode()
    article = body.split(f'id="proposal-{proposal_id}"')[1].split("</article>")[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", article)).split())


def test_the_case_page_reads_each_valuation_with_its_error_and_the_models_reasons(web: Client) -> None:
    """Issue 15: the advantage over liquidating with its standard error and whether it is beyond the noise (more
    than two standard errors: the recommendation's rule), the probability of a missed payment for lack of funds, why
    a schedule is unaffordable, and loss capacity in standard deviations of the day's P&L."""
    case = proposed_case()
    proposal = Proposal.objects.get(case=case)
    valuation = proposal.valuation
    advantage, error = Decimal(valuation["advantage"]["value"]), Decimal(valuation["advantage"]["standard_error"])
    verdict = (
        "beats liquidating"
        if advantage > 2 * error
        else ("worse than liquidating" if advantage < -2 * error else "within noise")
    )

    response = web.get(f"/cases/{case.pk}/")

    page = text(response)
    card = _card(response, proposal.pk)
    assert f"Advantage over liquidating {_usd(advantage)} ± {_usd(error)} {verdict}" in card
    assert f"Payment missed for lack of funds {valuation['funding_miss_probability']['value']}" in card
    assert f"Affordable {'yes' if valuation['affordable'] else 'no'}" in card
    for why in valuation["why_not_affordable"]:
        assert why in card
    assert "daily \N{GREEK SMALL LETTER SIGMA} of P&L" in page
    report = case.feasibility_reports.latest("created_at")
    if not report.recommended:
        assert "liquidate (no affordable restructuring beats it by more than two standard errors)" in page


def test_an_unaffordable_proposal_says_why(web: Client) -> None:
    """A schedule the client cannot pay: the card says no, and gives the model's reasons."""
    case = proposed_case()
    drafted = proposal_draft(
        case_id=case.pk,
        terms={"term_months": 1, "kind": "level"},  # the whole 750 within a month, from a client with no means
        actor=staff_user("bob", CREDIT_OFFICER),
    )
    assert drafted.valuation["affordable"] is False
    assert drafted.valuation["why_not_affordable"]

    card = _card(web.get(f"/cases/{case.pk}/"), drafted.pk)
    assert "Affordable no " + drafted.valuation["why_not_affordable"][0] in card


def test_the_schedule_shown_is_the_one_the_proposal_was_valued_on(web: Client) -> None:
    case = proposed_case()
    proposal = Proposal.objects.select_related("feasibility_report__case").get(case=case)
    [valued] = terms_value(
        proposal.feasibility_report,
        [(proposal.name, Terms.from_json(proposal.terms))],
        start=proposal.created_at.date(),
    )
    assert valued.priced is not None

    page = text(web.get(f"/cases/{case.pk}/"))

    rows = re.findall(r"(\d+) (\d{4}-\d\d-\d\d) \$([\d,.]+) \$([\d,.]+) \$([\d,.]+) \$([\d,.]+) \$([\d,.]+)", page)
    expected = [
        (
            str(i.number),
            i.due.isoformat(),
            *(f"{v:,.2f}" for v in (i.principal, i.interest, i.arrears, i.total, i.balance)),
        )
        for i in valued.priced.schedule.installments
    ]
    assert rows == expected
    assert len(rows) == 12
    assert rows[-1][6] == "0.00"


def test_the_case_page_counts_prior_restructurings(web: Client) -> None:
    case = proposed_case()
    Case.objects.create(
        account=case.account,
        state=CaseState.CLOSED,
        opened_at=timezone.now() - timedelta(days=400),
        closed_at=timezone.now() - timedelta(days=30),
    )

    assert "restructured before: 1 time " in text(web.get(f"/cases/{case.pk}/")) + " "


def test_the_case_page_makes_the_same_queries_whatever_it_shows(
    officer: User, web: Client, django_assert_num_queries: Any
) -> None:
    """Session, user, device, groups, two permission reads; the case, risk, loan, positions, snapshots,
    proposals (with their agreements), approvals, installments, reports, prior restructurings, events; the notes,
    contacts, promises and documents (with their officers); the messages sent (with their templates); the session's
    save (3): 27."""
    case = proposed_case()
    with django_assert_num_queries(27):
        assert web.get(f"/cases/{case.pk}/").status_code == 200
    # more proposals (each with its schedule), approvals, events, snapshots, notes, contacts and a promise
    for months in (6, 18, 24):
        proposal_draft(case_id=case.pk, terms={"term_months": months}, actor=officer)
    for k in range(3):
        note_add(case_id=case.pk, text=f"note {k}", actor=officer)
        contact_log(case_id=case.pk, channel="call", direction="outbound", outcome="no_answer", actor=officer)
    promise_make(case_id=case.pk, amount=Decimal("10"), due=timezone.localdate(), method="card", actor=officer)
    for name in ("funds.pdf", "passport.png"):
        document_upload_by_officer(case_id=case.pk, kind="other", file=io.BytesIO(PDF), name=name, actor=officer)
    AccountClient.objects.filter(pk=case.account.client_id).update(email="client@client.example")
    # messages of two kinds, each rendered from its template, sent (their events on the timeline)
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        for kind in (NotificationKind.DEADLINE_REMINDER, NotificationKind.ACCEPTED):
            notification_enqueue(case=case, kind=kind, payload={}, dedupe_key="page")
    swept()
    assert Notification.objects.filter(case=case, status="sent").count() == 2
    with django_assert_num_queries(27):
        response = web.get(f"/cases/{case.pk}/")
    assert text(response).count("Repayment schedule:") == 4


def test_a_case_without_feasibility_says_so(web: Client) -> None:
    account("WARN", btc(), band="warning")
    swept()
    case = Case.objects.get()

    page = text(web.get(f"/cases/{case.pk}/"))

    assert "No feasibility report yet" in page
    assert "No proposal yet" in page
    assert "Draft a proposal" not in page  # a warning is not negotiated


def test_an_unknown_case_is_not_found(web: Client) -> None:
    assert web.get("/cases/999999/").status_code == 404


# ------------------------------------------------------------------------------------------------- access


def test_signed_out_visitors_are_sent_to_sign_in(client: Client) -> None:
    for url in ("/queue/", "/cases/1/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")


def test_clients_may_not_see_the_pages() -> None:
    case = proposed_case()
    customer = signed_in(staff_user("carl", "client"))

    assert customer.get("/queue/").status_code == 403
    assert customer.get(f"/cases/{case.pk}/").status_code == 403


def test_compliance_reads_the_pages_without_any_action() -> None:
    case = proposed_case()
    reviewer = signed_in(staff_user("rita", COMPLIANCE))

    queue, page = reviewer.get("/queue/"), reviewer.get(f"/cases/{case.pk}/")

    assert queue.status_code == 200
    assert page.status_code == 200
    body = page.content.decode()
    assert "concentration" in body
    assert 'method="post"' not in body.split("<main>")[1].split("</main>")[0].replace(
        'class="signout" method="post"', ""
    )
    assert "printable history" in body  # compliance's own page of the case


def test_a_senior_officer_sees_the_same_actions() -> None:
    case = proposed_case()
    senior = signed_in(staff_user("sam", SENIOR_CREDIT_OFFICER))

    body = senior.get(f"/cases/{case.pk}/").content.decode()

    assert "/approve/" in body
    assert "Draft a proposal" in body


def test_the_case_page_never_shows_the_clients_webhook_secret(web: Client) -> None:
    case = proposed_case()
    MarginAccount.objects.filter(pk=case.account_id).update(code="ACC-X")
    now = timezone.now()
    WebhookEndpoint.objects.create(
        client_id=case.account.client_id,
        url="https://hooks.example/x",
        event_types=["*"],
        secret="s3cret",
        created_at=now,
        updated_at=now,
    )

    body = web.get(f"/cases/{case.pk}/").content.decode()
    deliveries = web.get(f"/cases/{case.pk}/webhooks/").content.decode()

    assert "ACC-X" in body
    assert "s3cret" not in body
    assert "s3cret" not in deliveries
