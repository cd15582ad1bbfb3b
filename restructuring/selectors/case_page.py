"""The case page's read: everything the officer's page of one case shows, in a fixed number of queries whatever
the number of proposals, approvals, installments, snapshots and events (the tests count them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import DecimalField, OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext

from accounts.models import LoanStatus, MarginLoan, Position, Price, RiskSnapshot, RiskState
from core.audit_catalogue import Audience
from core.models import AuditEvent
from restructuring import feasibility
from restructuring.models import (
    Approval,
    Case,
    Contact,
    Document,
    FeasibilityReport,
    Installment,
    Note,
    Notification,
    PromiseStatus,
    PromiseToPay,
    Proposal,
    ProposalKind,
)
from restructuring.schedules import ScheduleError
from restructuring.selectors.documents import case_documents
from restructuring.selectors.events import case_events
from restructuring.selectors.feasibility import report_facts, report_params
from restructuring.selectors.messages import case_messages
from restructuring.selectors.rule_facts import RESTRUCTURED_STATES
from restructuring.selectors.schedules import ScheduleRow, installment_rows
from restructuring.services.controls import approval_flags
from restructuring.services.feasibility import terms_price
from restructuring.terms import Terms, TermsError, terms_hash, terms_lines

SNAPSHOTS_SHOWN = 400  # the most recent risk snapshots drawn on the case's history chart

_MONEY = DecimalField(max_digits=28, decimal_places=8)


@dataclass(frozen=True)
class HeldPosition:
    position: Position
    price: Decimal | None  # the latest price row (options have none: the risk engine prices them)
    notional: Decimal | None  # quantity x contract size x price


@dataclass(frozen=True)
class ValuationReading:
    """A stored valuation as the officer reads it: each figure with its standard error, whether the advantage over
    liquidating is beyond the simulation's noise (the rule the recommendation applies), and why the model holds the
    schedule unaffordable."""

    expected_pv: Mapping[str, str] | None
    advantage: Mapping[str, str] | None
    default_probability: Mapping[str, str | None] | None
    funding_miss_probability: Mapping[str, str | None] | None
    affordable: bool | None
    why_not_affordable: list[str]
    verdict: str  # "beats" | "noise" | "worse" | "" (no advantage stored)

    @classmethod
    def of(cls, valuation: Mapping[str, Any] | None) -> ValuationReading | None:
        if not valuation:
            return None
        advantage = valuation.get("advantage")
        return cls(
            expected_pv=valuation.get("expected_pv"),
            advantage=advantage,
            default_probability=valuation.get("default_probability"),
            funding_miss_probability=valuation.get("funding_miss_probability"),
            affordable=valuation.get("affordable"),
            why_not_affordable=list(valuation.get("why_not_affordable", ())),
            verdict=_verdict(advantage),
        )


def _verdict(advantage: Mapping[str, str] | None) -> str:
    if not advantage:
        return ""
    estimate = feasibility.Estimate(float(advantage["value"]), float(advantage.get("standard_error") or 0))
    if feasibility.beats_liquidation(estimate):
        return "beats"
    worse = estimate.value < -feasibility.RECOMMEND_BEYOND_STANDARD_ERRORS * estimate.standard_error
    return "worse" if worse else "noise"


@dataclass
class ProposalView:
    proposal: Proposal
    approvals: list[Approval]
    schedule: list[ScheduleRow]
    schedule_note: str  # where the schedule comes from, or why there is none
    schedule_total: Decimal | None
    terms_lines: list[tuple[str, str]]  # the terms as an officer reads them
    flags: list[str] = field(default_factory=list)  # what the model says against approving it (controls.py)
    needs: str = ""  # a pending proposal's missing approvals (set by the page from the audit trail)

    @property
    def valuation(self) -> ValuationReading | None:
        return ValuationReading.of(self.proposal.valuation)

    @property
    def current_hash(self) -> str:
        """The hash of the current terms (what a client's accept may name)."""
        return self.proposal.terms_hash or terms_hash(self.proposal.terms)

    @property
    def valid_approvals(self) -> list[Approval]:
        """Approvals of the current version (an edit voids the others, for good)."""
        return [a for a in self.approvals if a.version == self.proposal.version]

    @property
    def approvals_shown(self) -> list[tuple[Approval, bool]]:
        """Each approval and whether it stands (given to the current version)."""
        return [(a, a.version == self.proposal.version) for a in self.approvals]


@dataclass
class CasePage:
    case: Case
    risk: RiskState | None
    loan: MarginLoan | None
    positions: list[HeldPosition]
    snapshots: Sequence[Mapping[str, Any]]
    report: FeasibilityReport | None  # the latest
    proposals: list[ProposalView]
    prior_restructurings: int
    events: list[AuditEvent]
    debt: Decimal | None = field(default=None)
    # The conversation, newest first: notes, contacts and promises to pay with who wrote or took them.
    notes: list[Note] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    promises: list[PromiseToPay] = field(default_factory=list)
    # The case's documents, newest first, with the officer who uploaded each (none: the client).
    documents: list[Document] = field(default_factory=list)
    # The communication log, newest first: every message to the client (and the staff's escalations), as rendered.
    messages: list[Notification] = field(default_factory=list)

    @property
    def open_promise(self) -> PromiseToPay | None:
        return next((p for p in self.promises if p.status == PromiseStatus.OPEN), None)


def case_page_load(case_id: int) -> CasePage:
    """Everything the case page shows, in a fixed number of queries."""
    case = get_object_or_404(
        Case.objects.select_related("account__client__group", "liquidation_plan"),
        pk=case_id,
    )
    account_id = case.account_id
    risk = RiskState.objects.filter(account_id=account_id).first()
    loan = MarginLoan.objects.filter(account_id=account_id, status=LoanStatus.ACTIVE).first()
    positions = _positions(account_id)
    snapshots = list(
        RiskSnapshot.objects.filter(account_id=account_id)
        .order_by("-computed_at")
        .values(
            "computed_at",
            "equity",
            "maintenance_requirement",
            "initial_requirement",
            "margin_ratio",
            "band",
        )[:SNAPSHOTS_SHOWN]
    )[::-1]
    proposals = list(
        Proposal.objects.filter(case_id=case.pk)
        .select_related("made_by", "collateral_demand", "agreement")
        .prefetch_related("approvals__approver")
        .prefetch_related("installments")
        .order_by("-round", "rank", "pk")
    )
    report_ids = {p.feasibility_report_id for p in proposals} - {None}
    reports = {
        r.pk: r
        for r in FeasibilityReport.objects.filter(
            Q(pk__in=report_ids) | Q(pk=Subquery(_latest_report_id(case.pk)))
        ).order_by("-created_at", "-pk")
    }
    for report in reports.values():
        report.case = case  # every report is this case's: no query to read it back
    latest = max(reports.values(), key=lambda r: (r.created_at, r.pk)) if reports else None
    prior = Case.objects.filter(account_id=account_id, state__in=RESTRUCTURED_STATES).exclude(pk=case.pk).count()
    symbols = {h.position.pk: h.position.instrument.symbol for h in positions}
    events = list(case_events(case, Audience.OFFICER))
    notes = list(Note.objects.filter(case_id=case.pk).select_related("author").order_by("-created_at", "-pk"))
    contacts = list(Contact.objects.filter(case_id=case.pk).select_related("officer").order_by("-created_at", "-pk"))
    promises = list(
        PromiseToPay.objects.filter(case_id=case.pk).select_related("made_by").order_by("-created_at", "-pk")
    )
    documents = list(case_documents(case.pk))
    messages = case_messages(case.pk)
    return CasePage(
        case=case,
        risk=risk,
        loan=loan,
        positions=positions,
        snapshots=snapshots,
        report=latest,
        proposals=[
            _proposal_view(p, reports.get(p.feasibility_report_id or 0), symbols, case.account.base_currency)
            for p in proposals
        ],
        prior_restructurings=prior,
        events=events,
        debt=None if loan is None else loan.principal + loan.accrued_interest,
        notes=notes,
        contacts=contacts,
        promises=promises,
        documents=documents,
        messages=messages,
    )


def _latest_report_id(case_id: int) -> QuerySet[FeasibilityReport, Any]:
    return FeasibilityReport.objects.filter(case_id=case_id).order_by("-created_at", "-pk").values("pk")[:1]


def _positions(account_id: int) -> list[HeldPosition]:
    latest_price = Price.objects.filter(instrument_id=OuterRef("instrument_id")).order_by("-time").values("price")[:1]
    rows = (
        Position.objects.filter(account_id=account_id)
        .exclude(quantity=0)
        .select_related("instrument__underlying")
        .annotate(latest_price=Subquery(latest_price, output_field=_MONEY))
        .order_by("instrument__symbol")
    )
    out = []
    for position in rows:
        price = position.latest_price
        notional = None if price is None else position.quantity * position.instrument.contract_size * price
        out.append(HeldPosition(position=position, price=price, notional=notional))
    return out


def _proposal_view(
    proposal: Proposal, report: FeasibilityReport | None, symbols: Mapping[int, str], currency: str
) -> ProposalView:
    approvals = sorted(proposal.approvals.all(), key=lambda a: (a.created_at, a.pk))
    schedule, note = _schedule(proposal, report, currency)
    total = sum((row.total for row in schedule), Decimal(0)) if schedule else None
    return ProposalView(
        proposal=proposal,
        approvals=approvals,
        schedule=schedule,
        schedule_note=note,
        schedule_total=total,
        terms_lines=terms_lines(proposal.terms, symbols, gettext),
        flags=approval_flags(proposal, report, currency=currency),
    )


def _schedule(proposal: Proposal, report: FeasibilityReport | None, currency: str) -> tuple[list[ScheduleRow], str]:
    """The proposal's repayment schedule: the installments once executed; before, the schedule its terms give on
    the feasibility report it was valued on (the same numbers the valuation used)."""
    installments: list[Installment] = list(proposal.installments.all())
    if installments:
        return installment_rows(installments, currency), gettext("installments of the executed restructuring")
    if proposal.kind == ProposalKind.LIQUIDATE:
        return [], gettext("a liquidation has no repayment schedule")
    stored = proposal.valuation.get("schedule") if isinstance(proposal.valuation, Mapping) else None
    if stored:
        return [_row(r) for r in stored], gettext("as valued")
    if report is None:
        return [], gettext("not valued on a feasibility report yet")
    try:
        terms = Terms.from_json(proposal.terms)
        facts = report_facts(report)
        params = report_params(report.parameters)
        priced = terms_price(facts, proposal.name, terms, params, proposal.created_at.date())
    except (TermsError, ScheduleError, KeyError, TypeError, ValueError) as exc:
        return [], gettext("no schedule: %(problem)s") % {"problem": exc}
    note = gettext("on feasibility report %(report)s, starting %(start)s") % {
        "report": report.pk,
        "start": f"{proposal.created_at:%Y-%m-%d}",
    }
    return [ScheduleRow.of(i) for i in priced.schedule.installments], note


def _row(data: Mapping[str, Any]) -> ScheduleRow:
    return ScheduleRow(
        number=int(data["number"]),
        due=date.fromisoformat(str(data["due"])),
        principal=Decimal(data["principal"]),
        interest=Decimal(data["interest"]),
        arrears=Decimal(data["arrears"]),
        total=Decimal(data["total"]),
        balance=Decimal(data["balance"]),
    )
