"""The whole journey on the real stack (issue 8): PostgreSQL, Redis, a Celery worker and beat, gunicorn, all real
processes (tests/e2e/stack.py), with Chromium for the officers and compliance and the HTTP API for the client.

Operations load the default rules, import a book and its prices and shock BTC with the commands; the beat's sweep
opens a margin call, feasibility and the rules propose terms on the worker; officer A (limit 5,000 on a debt of
11,000) drafts terms of her own that she may not approve herself, approves the rules' proposal, and the page says
a second approval is needed; senior officer B approves and sends the offer; the client counter-proposes through
the API (a request out of bounds is refused first); the worker values the new round; the officers approve the
client's terms and offer them; each offer's agreement is a PDF the client and the officer download alike, and the
first one's hash is refused for the new offer; the client accepts naming the new agreement, with an Idempotency-Key
sent twice (one effect, the same answer);
A executes the restructuring and records the first installment; compliance verifies the audit chain and exports
the case, every hash of the export recomputed. Screenshots: artifacts/screenshots/e2e-*.png.

The book is small and built so that each figure is known: 100 BTC at 100 and 160 ETH at 50 against a loan of
11,000 (maintenance 30%, initial 35%): healthy at 1.30; BTC -25% leaves equity 4,500 against a maintenance of 4,650,
a margin call for 925 (to the initial 5,425), 8.4% of the debt: the default rules' one-year extension with a tenth
off the rate (12 months at 0.072).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import BrowserContext, Page, expect

from accounts.models import HealthBand, LoanStatus, MarginAccount, MarginLoan, RiskState
from core.audit import audit_verify
from core.export import COLUMNS, TEXT_COLUMNS
from core.models import AuditEvent, IdempotencyRecord
from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import (
    Approval,
    ApprovalLimit,
    Case,
    CaseState,
    FeasibilityReport,
    Installment,
    InstallmentStatus,
    Proposal,
    ProposalSource,
    ProposalState,
)
from tests.audit_export_verifier import verifier
from tests.e2e.conftest import SCREENSHOTS
from tests.e2e.stack import ClientApi, Stack, sign_in, wait_until
from tests.web.helpers import staff_user

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.celery_worker,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

CALLED, BYSTANDER = "ACC-E2E-1", "ACC-E2E-2"
CLIENT_CODE = "C-E2E-1"
CLIENT_ACTOR = f"client:{CLIENT_CODE}"
BOOK = {
    "clients": [
        {"code": CLIENT_CODE, "name": "Journey Trading Ltd", "credit_tier": "B"},
        {"code": "C-E2E-2", "name": "Bystander Holdings", "credit_tier": "A"},
    ],
    "instruments": [
        {
            "symbol": "BTC",
            "kind": "spot",
            "initial_rate": "0.35",
            "maintenance_rate": "0.30",
            "haircut": "0.10",
            "scenario_class": "crypto",
            "average_daily_volume": "50000",
            "daily_volatility": "0.03",
        },
        {
            "symbol": "ETH",
            "kind": "spot",
            "initial_rate": "0.35",
            "maintenance_rate": "0.30",
            "haircut": "0.10",
            "scenario_class": "crypto",
            "average_daily_volume": "200000",
            "daily_volatility": "0.035",
        },
    ],
    "accounts": [
        {
            "code": CALLED,
            "client": CLIENT_CODE,
            "cash": "0",
            "loan": {"principal": "11000.00", "rate_annual": "0.08"},
            "positions": [
                {"instrument": "BTC", "quantity": "100", "entry_price": "95"},
                {"instrument": "ETH", "quantity": "160", "entry_price": "48"},
            ],
        },
        {
            "code": BYSTANDER,
            "client": "C-E2E-2",
            "cash": "20000",
            "loan": {"principal": "1000.00", "rate_annual": "0.06"},
            "positions": [{"instrument": "ETH", "quantity": "100", "entry_price": "45"}],
        },
    ],
}


def _prices_csv(at: datetime) -> str:
    return f"instrument,time,price,implied_volatility\nBTC,{at.isoformat()},100,\nETH,{at.isoformat()},50,\n"


def _trail(object_type: str, object_id: int) -> list[tuple[str, str, str, str]]:
    """(action, who, from, to) of an object's audit events, oldest first."""
    events = AuditEvent.objects.filter(object_type=object_type, object_id=object_id).select_related("actor")
    return [
        (e.action, e.actor.username if e.actor else e.system_actor, e.from_state, e.to_state)
        for e in events.order_by("sequence")
    ]


def _approve(page: Page, proposal: Proposal) -> None:
    """Approve the proposal as the page shows it. Where the model flags it (issue 13's guardrails: unaffordable,
    likely to default, worth less than liquidating) the form asks for the reason for overriding the model, and the
    browser will not send it without one: the officer types it."""
    card = page.locator(f"#proposal-{proposal.pk}")
    reason = card.locator("input[name=override_reason]")
    if reason.count():
        reason.fill("the client's other assets, known to the desk")
    card.get_by_role("button", name="Approve").click()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=SCREENSHOTS / f"e2e-{name}.png", full_page=True)


def test_the_whole_journey_on_the_real_stack(
    new_context: Callable[..., BrowserContext], stack: Stack, tmp_path: Path
) -> None:
    # ---------------------------------------------------------------- operations: rules, book, prices (CLI)
    assert "(published): 20 rules" in stack.manage("rules_load", "--publish")
    book = tmp_path / "book.json"
    book.write_text(json.dumps(BOOK))
    imported = stack.manage("import_book", str(book))
    assert "accounts: 2 created, 0 updated, 0 deleted" in imported
    assert "positions: 3 created, 0 updated, 0 deleted" in imported
    prices = tmp_path / "prices.csv"
    prices.write_text(_prices_csv(timezone.now() - timedelta(hours=1)))
    assert "prices: 2 created, 0 updated" in stack.manage("import_prices", str(prices))
    called = MarginAccount.objects.get(code=CALLED)
    bystander = MarginAccount.objects.get(code=BYSTANDER)

    # the beat's sweep finds both accounts healthy: no case
    def rated_healthy() -> bool:
        bands = dict(RiskState.objects.filter(account__in=[called, bystander]).values_list("account_id", "band"))
        return bands == {called.pk: HealthBand.HEALTHY, bystander.pk: HealthBand.HEALTHY}

    wait_until(rated_healthy, "a beat sweep rating the new book")
    assert RiskState.objects.get(account=called).margin_ratio == Decimal("1.296296")
    assert not Case.objects.exists()
    # From here on no task may fail. (Before, a beat sweep may run between import_book and import_prices and
    # refuse the book for a missing price, as it should.)
    logs_from = {process.name: len(process.log()) for process in stack.processes}

    # ---------------------------------------------------------------- a price shock; the sweep opens the case
    shocked = stack.manage("shock", "BTC", "-25%")
    assert "BTC  100.00000000 -> 75.00000000  -25%" in shocked

    case = wait_until(
        lambda: Case.objects.filter(account=called, state=CaseState.PROPOSED).first(),
        "the sweep's margin call, its feasibility report and the rules' proposal",
    )
    assert case.call_amount == Decimal("925.00")
    assert case.deadline is not None
    assert _trail("restructuring.case", case.pk) == [
        ("case.open", "sweep", "", CaseState.WARNING),
        ("case.margin_call", "sweep", CaseState.WARNING, CaseState.MARGIN_CALL),
        ("case.propose", "rules", CaseState.MARGIN_CALL, CaseState.PROPOSED),
    ]
    assert RiskState.objects.get(account=bystander).band == HealthBand.HEALTHY
    assert not Case.objects.filter(account=bystander).exists()
    [report] = FeasibilityReport.objects.filter(case=case)
    assert (report.trigger, report.debt, report.parameters["paths"]) == ("margin_call", Decimal("11000.00"), 500)
    [rules_offer] = Proposal.objects.filter(case=case)
    assert (rules_offer.source, rules_offer.name, rules_offer.state, rules_offer.round) == (
        ProposalSource.RULES,
        "extension_12m",
        ProposalState.PENDING_APPROVAL,
        1,
    )
    assert rules_offer.terms == {"term_months": 12, "kind": "level", "rate_annual": "0.072000"}
    assert [e["rule"] for e in rules_offer.explanation] == [
        "moderate_shortfall_extension",
        "moderate_shortfall_rate_relief",
    ]
    assert rules_offer.feasibility_report_id == report.pk

    # the client's token (operations CLI); nothing is offered to the client yet
    token = stack.manage("api_token", "create", "--client", CLIENT_CODE, "--days", "1").strip()
    client = ClientApi(stack.url, token)
    cases = client.get("/api/v1/cases/")
    assert cases.status == 200
    assert [(c["id"], c["state"]) for c in cases.body["results"]] == [(case.pk, CaseState.PROPOSED)]
    assert client.get("/api/v1/offers/").body["results"] == []

    # ---------------------------------------------------------------- officers: A (limit 5,000), B (senior)
    alice = staff_user("alice", CREDIT_OFFICER)
    ApprovalLimit.objects.create(user=alice, currency="USD", amount=Decimal(5000))
    sam = staff_user("sam", SENIOR_CREDIT_OFFICER)
    carol = staff_user("carol", COMPLIANCE)
    contexts = {
        name: new_context(base_url=stack.url, viewport={"width": 1400, "height": 900}, accept_downloads=True)
        for name in ("alice", "sam", "carol")
    }
    pages = {name: context.new_page() for name, context in contexts.items()}
    for page in pages.values():
        page.set_default_timeout(15_000)
        stack.pages.append(page)
    a, b, compliance = pages["alice"], pages["sam"], pages["carol"]

    # A signs in (password and authenticator code) and finds the case in the queue
    sign_in(a, alice)
    expect(a.locator("table.queue tbody tr")).to_have_count(1)
    # the queue's row names the case and its client (the account code is on the case page)
    expect(a.locator("table.queue tbody tr")).to_contain_text(f"#{case.pk}")
    expect(a.locator("table.queue tbody tr")).to_contain_text("Journey Trading Ltd")
    _shot(a, "01-queue")
    a.click(f"table.queue a[href='/cases/{case.pk}/'] >> nth=0")
    expect(a.locator("h1")).to_contain_text(f"Case #{case.pk} · {CALLED}")
    expect(a.locator("#case-state")).to_have_text("Proposed")
    expect(a.locator(f"#proposal-{rules_offer.pk}")).to_contain_text("extension_12m")
    expect(a.locator("#chart-loss-curve svg")).to_be_visible()
    _shot(a, "02-case-proposed")

    # A drafts terms of her own (previewed, then stored and submitted): she may not approve them herself
    a.goto(f"/cases/{case.pk}/proposals/new/")
    a.fill("#id_new-name", "officer nine months")
    a.fill("#id_new-term_months", "9")
    a.get_by_role("button", name="Preview schedule and value").click()
    expect(a.locator("#terms-preview")).to_contain_text("Preview on the current market")
    _shot(a, "03-draft-preview")
    a.get_by_role("button", name="Draft proposal").click()
    expect(a.locator(".messages")).to_contain_text("drafted")
    drafted = Proposal.objects.get(case=case, source=ProposalSource.OFFICER)
    assert (drafted.made_by_id, drafted.state, drafted.terms["term_months"]) == (alice.pk, ProposalState.DRAFT, 9)
    a.locator(f"#proposal-{drafted.pk}").get_by_role("button", name="Submit for approval").click()
    expect(a.locator(f"#proposal-{drafted.pk} [data-proposal-state]")).to_have_text("Pending approval")
    _approve(a, drafted)
    expect(a.locator(".messages")).to_contain_text("another officer must approve")
    assert not Approval.objects.filter(proposal=drafted).exists()

    # A approves the rules' proposal: recorded, but 11,000 is above her limit
    _approve(a, rules_offer)
    expect(a.locator(".messages")).to_contain_text("a second approval is needed")
    expect(a.locator(f"#proposal-{rules_offer.pk} .needs")).to_contain_text("limit covers $11,000.00")
    expect(a.locator(f"#proposal-{rules_offer.pk} [data-proposal-state]")).to_have_text("Pending approval")
    _shot(a, "04-second-approval-needed")
    assert list(Approval.objects.filter(proposal=rules_offer).values_list("approver__username", "limit")) == [
        ("alice", Decimal("5000.00"))
    ]
    assert Proposal.objects.get(pk=rules_offer.pk).state == ProposalState.PENDING_APPROVAL

    # B gives the second approval and sends the offer
    sign_in(b, sam)
    b.goto(f"/cases/{case.pk}/")
    _approve(b, rules_offer)
    expect(b.locator(".messages")).to_contain_text(f"Proposal {rules_offer.pk} approved")
    expect(b.locator(f"#proposal-{rules_offer.pk} [data-proposal-state]")).to_have_text("Approved")
    b.locator(f"#proposal-{rules_offer.pk}").get_by_role("button", name="Send offer").click()
    expect(b.locator("#case-state")).to_have_text("Offered")
    expect(b.locator(".messages")).to_contain_text(f"Proposal {rules_offer.pk} offered to the client")
    _shot(b, "05-offered")
    rules_offer.refresh_from_db()
    assert rules_offer.state == ProposalState.OFFERED
    assert rules_offer.counter_bounds == {"max_term_months": 24, "min_rate": "0.052", "min_collateral": "0.00"}

    # ---------------------------------------------------------------- the client counter-proposes (API)
    offers = client.get("/api/v1/offers/?state=offered")
    assert [o["id"] for o in offers.body["results"]] == [rules_offer.pk]
    offer = client.get(f"/api/v1/offers/{rules_offer.pk}/").body
    assert (offer["terms"]["term_months"], offer["terms"]["rate_annual"]) == (12, "0.07200000")
    assert offer["counter_bounds"] == {"max_term_months": 24, "min_rate": "0.05200000", "min_collateral": "0.00"}
    assert (offer["schedule_basis"], len(offer["schedule"])) == ("preview", 12)

    too_long = client.post(f"/api/v1/offers/{rules_offer.pk}/counter/", {"term_months": 36}, key=str(uuid.uuid4()))
    assert too_long.status == 400, too_long.body
    assert too_long.body["error"]["field"] == "term_months"
    assert Proposal.objects.get(pk=rules_offer.pk).state == ProposalState.OFFERED

    countered = client.post(
        f"/api/v1/offers/{rules_offer.pk}/counter/",
        {"term_months": 18, "rate_annual": "0.065"},
        key=str(uuid.uuid4()),
    )
    assert countered.status == 201, countered.body
    counter = Proposal.objects.get(pk=countered.body["id"])
    assert (countered.body["round"], countered.body["source"], countered.body["countered_from"]) == (
        2,
        "client",
        rules_offer.pk,
    )
    assert (counter.state, counter.terms["term_months"], Decimal(counter.terms["rate_annual"])) == (
        ProposalState.PENDING_APPROVAL,
        18,
        Decimal("0.065"),
    )
    assert Proposal.objects.get(pk=rules_offer.pk).state == ProposalState.COUNTERED
    assert Case.objects.get(pk=case.pk).state == CaseState.PROPOSED

    # the worker values the new round: a report on today's book, the rules' proposal of round 2 beside the client's
    round_two = wait_until(
        lambda: Proposal.objects.filter(case=case, round=2, source=ProposalSource.RULES).first(),
        "the counter-offer's follow-up (feasibility and rules) on the worker",
    )
    assert round_two.feasibility_report_id != report.pk
    assert FeasibilityReport.objects.get(pk=round_two.feasibility_report_id).key == f"counter:{rules_offer.pk}"

    # ---------------------------------------------------------------- the officers approve the new round
    a.goto(f"/cases/{case.pk}/")
    expect(a.locator(f"#proposal-{counter.pk}")).to_contain_text("The client's counter-offer")
    _approve(a, counter)
    expect(a.locator(".messages")).to_contain_text("a second approval is needed")
    b.goto(f"/cases/{case.pk}/")
    _approve(b, counter)
    expect(b.locator(".messages")).to_contain_text(f"Proposal {counter.pk} approved")
    b.locator(f"#proposal-{counter.pk}").get_by_role("button", name="Send offer").click()
    expect(b.locator("#case-state")).to_have_text("Offered")
    _shot(b, "06-counter-offered")
    assert Proposal.objects.get(pk=counter.pk).state == ProposalState.OFFERED

    # ---------------------------------------------------------------- each offer's agreement, the same for everyone
    old_pdf = client.get(f"/api/v1/offers/{rules_offer.pk}/agreement/")
    new_pdf = client.get(f"/api/v1/offers/{counter.pk}/agreement/")
    for pdf, offer_id in ((old_pdf, rules_offer.pk), (new_pdf, counter.pk)):
        assert (pdf.status, pdf.headers["Content-Type"]) == (200, "application/pdf")
        assert pdf.raw.startswith(b"%PDF-")
        assert pdf.headers["X-Agreement-SHA256"] == hashlib.sha256(pdf.raw).hexdigest()
        assert client.get(f"/api/v1/offers/{offer_id}/").body["agreement_sha256"] == pdf.headers["X-Agreement-SHA256"]
    new_sha256 = new_pdf.headers["X-Agreement-SHA256"]
    assert new_sha256 != old_pdf.headers["X-Agreement-SHA256"]
    # the officer downloads the same bytes from the case page
    with b.expect_download() as officers_download:
        b.locator(f"#proposal-{counter.pk} .agreement a").click()
    assert Path(officers_download.value.path()).read_bytes() == new_pdf.raw

    # ---------------------------------------------------------------- the client accepts, the key sent twice
    # naming the first offer's agreement: refused, nothing happens
    stale = client.post(
        f"/api/v1/offers/{counter.pk}/accept/",
        {"agreement_sha256": old_pdf.headers["X-Agreement-SHA256"]},
        key=str(uuid.uuid4()),
    )
    assert stale.status == 409, stale.body
    assert stale.body["error"]["code"] == "agreement_mismatch"
    assert Proposal.objects.get(pk=counter.pk).state == ProposalState.OFFERED
    key = str(uuid.uuid4())
    accepted = client.post(f"/api/v1/offers/{counter.pk}/accept/", {"agreement_sha256": new_sha256}, key=key)
    again = client.post(f"/api/v1/offers/{counter.pk}/accept/", {"agreement_sha256": new_sha256}, key=key)
    assert accepted.status == again.status == 200, (accepted.body, again.body)
    assert accepted.body["state"] == ProposalState.ACCEPTED
    assert again.raw == accepted.raw
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in accepted.headers
    assert IdempotencyRecord.objects.filter(key=key).count() == 1
    assert (
        _trail("restructuring.proposal", counter.pk).count(
            ("proposal.accept", CLIENT_ACTOR, ProposalState.OFFERED, ProposalState.ACCEPTED)
        )
        == 1
    )
    assert Case.objects.get(pk=case.pk).state == CaseState.ACCEPTED

    # ---------------------------------------------------------------- A executes; a repayment is booked
    a.goto(f"/cases/{case.pk}/")
    a.locator(f"#proposal-{counter.pk}").get_by_role("button", name="Execute").click()
    expect(a.locator(".messages")).to_contain_text(f"Proposal {counter.pk} executed: the case is restructured")
    expect(a.locator("#case-state")).to_have_text("Restructured")
    loan = MarginLoan.objects.get(account=called, status=LoanStatus.ACTIVE)
    installments = list(Installment.objects.filter(proposal=counter).order_by("number"))
    assert (loan.principal, loan.rate_annual, loan.maturity_date) == (
        Decimal("11000.00"),
        Decimal("0.065"),
        installments[-1].due,
    )
    assert len(installments) == 18
    assert sum(i.principal for i in installments) == Decimal("11000.00")
    executed = AuditEvent.objects.get(action="proposal.execute", object_id=counter.pk)
    assert executed.payload["agreement_sha256"] == new_sha256  # the execution names the agreement accepted
    assert {i.status for i in installments} == {InstallmentStatus.DUE}
    _shot(a, "07-restructured")

    first = installments[0]
    # the restructured case's schedule stands at full width, a record-payment form on each unpaid row
    a.locator("#schedule").get_by_role("button", name="Record payment").first.click()
    # the form offers the amount due in cents (the column keeps eight places)
    paid = first.total.quantize(Decimal("0.01"))
    expect(a.locator(".messages")).to_contain_text(f"Payment of ${paid:,.2f} recorded: installment 1 paid.")
    _shot(a, "08-repayment")
    first.refresh_from_db()
    assert (first.status, first.paid_amount) == (InstallmentStatus.PAID, first.total)
    loan.refresh_from_db()
    assert loan.principal == first.balance
    assert Case.objects.get(pk=case.pk).state == CaseState.RESTRUCTURED
    # the client sees the new loan and the payment
    loan_view = client.get(f"/api/v1/accounts/{called.pk}/loan/").body
    assert (Decimal(loan_view["principal"]), Decimal(loan_view["rate_annual"])) == (first.balance, Decimal("0.065"))
    assert [row["status"] for row in loan_view["schedule"][:2]] == ["paid", "due"]

    # every step is in the trail, once, by whom it was done
    assert _trail("restructuring.case", case.pk) == [
        ("case.open", "sweep", "", CaseState.WARNING),
        ("case.margin_call", "sweep", CaseState.WARNING, CaseState.MARGIN_CALL),
        ("case.propose", "rules", CaseState.MARGIN_CALL, CaseState.PROPOSED),
        ("case.offer", "sam", CaseState.PROPOSED, CaseState.OFFERED),
        ("case.counter", CLIENT_ACTOR, CaseState.OFFERED, CaseState.PROPOSED),
        ("case.rules_proposals", "rules", CaseState.PROPOSED, CaseState.PROPOSED),
        ("case.offer", "sam", CaseState.PROPOSED, CaseState.OFFERED),
        ("case.accept", CLIENT_ACTOR, CaseState.OFFERED, CaseState.ACCEPTED),
        ("case.execute", "alice", CaseState.ACCEPTED, CaseState.RESTRUCTURED),
    ]
    pending, approved, offered = ProposalState.PENDING_APPROVAL, ProposalState.APPROVED, ProposalState.OFFERED
    assert _trail("restructuring.proposal", rules_offer.pk) == [
        ("proposal.approval", "alice", pending, pending),
        ("proposal.approve", "sam", pending, approved),
        ("proposal.offer", "sam", approved, offered),
        ("proposal.counter", CLIENT_ACTOR, offered, ProposalState.COUNTERED),
    ]
    assert _trail("restructuring.proposal", counter.pk) == [
        ("proposal.counter_offer", CLIENT_ACTOR, "", pending),
        ("proposal.approval", "alice", pending, pending),
        ("proposal.approve", "sam", pending, approved),
        ("proposal.offer", "sam", approved, offered),
        ("proposal.accept", CLIENT_ACTOR, offered, ProposalState.ACCEPTED),
        ("proposal.execute", "alice", ProposalState.ACCEPTED, ProposalState.EXECUTED),
    ]
    assert _trail("restructuring.proposal", drafted.pk) == [
        ("proposal.draft", "alice", "", ProposalState.DRAFT),
        ("proposal.submit", "alice", ProposalState.DRAFT, pending),
        # the case restructured by the client's counter takes the proposals still in play with it (issue 13)
        ("proposal.withdraw", "alice", pending, ProposalState.WITHDRAWN),
    ]
    assert _trail("restructuring.proposal", round_two.pk)[-1] == ("proposal.withdraw", "alice", pending, "withdrawn")
    assert _trail("restructuring.installment", first.pk) == [
        ("installment.paid", "alice", InstallmentStatus.DUE, InstallmentStatus.PAID)
    ]

    # ---------------------------------------------------------------- compliance: verify the chain, export
    sign_in(compliance, carol)
    compliance.goto(f"/audit/?case={case.pk}")
    expect(compliance.locator("h1")).to_have_text("Audit trail")
    compliance.get_by_role("button", name="Verify now").click()
    expect(compliance.locator("#verify-result")).to_contain_text("The chain is intact.")
    _shot(compliance, "09-audit-verified")
    assert audit_verify().ok

    with compliance.expect_download() as download_info:
        compliance.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("audit-")
    assert download.suggested_filename.endswith(".csv")
    exported = Path(download.path()).read_text(encoding="utf-8")
    # text columns are JSON strings (docs/audit-export.md): read them decoded
    rows = [
        {k: json.loads(v) if k in TEXT_COLUMNS else v for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(exported))
    ]
    assert rows
    assert list(rows[0]) == list(COLUMNS)
    sequences = [int(r["sequence"]) for r in rows]
    assert sequences == sorted(set(sequences))
    # an outside verifier (docs/verify_audit_export.py, no code of the app) recomputes every hash from the file alone
    assert verifier.verify(io.StringIO(exported)) == (len(rows), [])
    assert {r["account_id"] for r in rows} == {str(called.pk)}
    exported_case = [r["action"] for r in rows if r["object_type"] == "restructuring.case"]
    assert exported_case == [action for action, *_ in _trail("restructuring.case", case.pk)]
    actions = [r["action"] for r in rows]
    assert actions.count("feasibility.report") == 2
    assert actions.count("installment.paid") == 1
    assert actions.count("proposal.accept") == 1

    compliance.goto(f"/audit/cases/{case.pk}/")
    history = compliance.locator("main")
    for action in ("case.open", "case.counter", "proposal.accept", "case.execute", "installment.paid"):
        expect(history).to_contain_text(action)
    _shot(compliance, "10-case-history")

    # ---------------------------------------------------------------- nothing failed behind the scenes
    logs = {process.name: process.log()[logs_from[process.name] :] for process in stack.processes}
    assert " raised " not in logs["worker"], logs["worker"][-5000:]
    assert "Traceback" not in logs["gunicorn"], logs["gunicorn"][-5000:]
    assert '" 500 ' not in logs["gunicorn"], logs["gunicorn"][-5000:]
    for context in contexts.values():
        context.close()
    stack.pages.clear()
