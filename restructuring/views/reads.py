"""Read paths of the officer pages: the queue and the case, each in a fixed number of queries whatever the number
of rows (the tests count them). They would sit in restructuring/selectors.py; they live here while that module
belongs to another change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, DecimalField, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.shortcuts import get_object_or_404
from django.utils import timezone

from accounts.models import LoanStatus, MarginLoan, Position, Price, RiskSnapshot, RiskState
from core.models import AuditEvent
from core.money import currency_quantum
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring import feasibility
from restructuring.models import (
    OPEN_STATES,
    Approval,
    Case,
    FeasibilityReport,
    Installment,
    Proposal,
    ProposalKind,
    ProposalState,
)
from restructuring.queue_filters import QueueFilterSet
from restructuring.schedules import ScheduleError
from restructuring.selectors import RESTRUCTURED_STATES
from restructuring.services.controls import approval_flags
from restructuring.services.feasibility import report_facts, terms_price
from restructuring.sla import sla_annotate
from restructuring.terms import Terms, TermsError, terms_hash, terms_lines

QUEUE_PAGE_SIZE = 50
SNAPSHOTS_SHOWN = 400  # the most recent risk snapshots drawn on the case's history chart

_MONEY = DecimalField(max_digits=28, decimal_places=8)
_RATIO = DecimalField(max_digits=20, decimal_places=8)

# ------------------------------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters by name (restructuring/queue_filters.py says what each means)."""

    state: str = ""
    band: str = ""
    officer: str = ""
    asset: str = ""
    group: str = ""
    search: str = ""
    assignee: str = ""

    def data(self) -> dict[str, str]:
        names = {"search": "q"}
        return {names.get(k, k): v for k, v in self.__dict__.items() if v}


def queue_filterset(data: Mapping[str, Any], request: Any = None) -> QueueFilterSet:
    """The queue's filters bound to a query string, over the open cases (no query run)."""
    return QueueFilterSet(data, queryset=Case.objects.filter(state__in=OPEN_STATES), request=request)


def cases_for_queue(filters: QueueFilters | QueueFilterSet, now: datetime | None = None) -> QuerySet[Case]:
    """Open cases, most urgent first: the nearest deadline, then the largest shortfall, then the largest expected
    loss of the latest feasibility report. Each row carries its figures as annotations (one query for a page), its
    assignee, and its SLA clock (restructuring/sla.py): what it waits for, since when, against which target."""
    filterset = queue_filterset(filters.data()) if isinstance(filters, QueueFilters) else filters
    return queue_annotate(filterset.qs, now or timezone.now()).order_by(
        F("deadline").asc(nulls_last=True),
        F("shortfall").desc(nulls_last=True),
        F("expected_loss").desc(nulls_last=True),
        "pk",
    )


def queue_page(cases: QuerySet[Case], page: QuerySet[Case]) -> list[Case]:
    """The rows of one page of the queue, with every annotation and related row: `page` is the page's slice of the
    same cases ordered and cut without the joins the columns need (a "deferred join": PostgreSQL sorts the open
    cases on their sort keys alone, then joins client, group, assignee and team for the page's rows only). One
    query, as a subquery: with 10,000 open cases it halves the page's time (bench/desk.py)."""
    return list(cases.filter(pk__in=page.values("pk")).order_by(*page.query.order_by))


def queue_state_counts(filterset: QueueFilterSet) -> dict[str, int]:
    """Open cases per state under every filter but the state's own (what each state tab would show)."""
    data = {k: v for k, v in filterset.data.items() if k != "state"}
    rows = (
        queue_filterset(data, filterset.request)
        .qs.order_by()
        .values("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    return dict(rows)


def queue_officers() -> list[str]:
    """The usernames the officer filter offers."""
    return list(
        User.objects.filter(groups__name__in=[CREDIT_OFFICER, SENIOR_CREDIT_OFFICER], is_active=True)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()
    )


def queue_annotate(cases: QuerySet[Case], now: datetime) -> QuerySet[Case]:
    latest = FeasibilityReport.objects.filter(case_id=OuterRef("pk")).order_by("-created_at", "-pk")
    debt = (
        MarginLoan.objects.filter(account_id=OuterRef("account_id"), status=LoanStatus.ACTIVE)
        .annotate(owed=F("principal") + F("accrued_interest"))
        .values("owed")[:1]
    )
    pending = Proposal.objects.filter(case_id=OuterRef("pk"), state=ProposalState.PENDING_APPROVAL).order_by()
    waiting = pending.values("case_id").annotate(n=Count("pk")).values("n")
    flagged = pending.filter(flagged_proposals()).values("case_id").annotate(n=Count("pk")).values("n")
    annotated = cases.select_related("account__client__group", "assignee").annotate(
        risk_band=F("account__risk__band"),
        risk_margin_ratio=F("account__risk__margin_ratio"),
        risk_equity=F("account__risk__equity"),
        shortfall=Coalesce("call_amount", "account__risk__shortfall_initial", output_field=_MONEY),
        debt=Subquery(debt, output_field=_MONEY),
        expected_loss=Subquery(latest.values("expected_loss")[:1], output_field=_MONEY),
        recovery_expected=Subquery(latest.values("recovery_expected")[:1], output_field=_MONEY),
        recommended=Subquery(latest.values("recommended")[:1]),
        pending_approval=Coalesce(Subquery(waiting), Value(0)),
        flagged_approval=Coalesce(Subquery(flagged), Value(0)),
        in_state_since=Coalesce("state_changed_at", "opened_at"),
    )
    return sla_annotate(annotated, now)


def flagged_proposals() -> Q:
    """The proposals restructuring/services/controls.approval_flags flags, as a filter (the queue counts them in
    SQL; a test holds the two to the same answers): unaffordable, a default probability at or above the setting,
    or worth less to the lender than liquidating now. Liquidations are never flagged."""
    threshold = Decimal(str(settings.WORKOUT_GUARDRAIL_DEFAULT_PROBABILITY))
    probability = Cast(KeyTextTransform("value", "valuation__default_probability"), _RATIO)
    return Q(kind=ProposalKind.RESTRUCTURE) & (
        Q(valuation__affordable=False)
        | Q(GreaterThanOrEqual(probability, Value(threshold, output_field=_RATIO)))
        | Q(expected_pv__lt=F("feasibility_report__liquidation_value"))
    )


# -------------------------------------------------------------------------------------------------- case


@dataclass(frozen=True)
class HeldPosition:
    position: Position
    price: Decimal | None  # the latest price row (options have none: the risk engine prices them)
    notional: Decimal | None  # quantity x contract size x price


@dataclass(frozen=True)
class ScheduleRow:
    number: int
    due: date
    principal: Decimal
    interest: Decimal
    arrears: Decimal
    total: Decimal
    balance: Decimal
    status: str = ""  # executed installments only: due, paid, missed
    paid_amount: Decimal | None = None
    installment_id: int | None = None
    payable: str = ""  # executed installments: the amount due in the currency's places, as the payment form offers it

    @classmethod
    def of(cls, installment: Any, **extra: Any) -> ScheduleRow:
        """A row from an installment: a built schedule's (restructuring.schedules) or a stored Installment."""
        return cls(
            number=installment.number,
            due=installment.due,
            principal=installment.principal,
            interest=installment.interest,
            arrears=installment.arrears,
            total=installment.total,
            balance=installment.balance,
            **extra,
        )


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
        .select_related("made_by", "collateral_demand")
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
    events = list(_case_events(case, [p.pk for p in proposals], list(reports)))
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


def _case_events(case: Case, proposal_ids: list[int], report_ids: list[int]) -> QuerySet[AuditEvent]:
    """The case's own events, its proposals' and reports', and whatever else was recorded on the account while
    the case was open (a top-up, a report of this case named by account)."""
    during = Q(account_id=case.account_id, created_at__gte=case.opened_at)
    if case.closed_at is not None:
        during &= Q(created_at__lte=case.closed_at)
    return (
        AuditEvent.objects.filter(
            Q(object_type="restructuring.case", object_id=case.pk)
            | Q(object_type="restructuring.proposal", object_id__in=proposal_ids)
            | Q(object_type="restructuring.feasibilityreport", object_id__in=report_ids)
            | during
        )
        .select_related("actor")
        .order_by("sequence")
    )


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
        terms_lines=terms_lines(proposal.terms, symbols),
        flags=approval_flags(proposal, report),
    )


def _schedule(proposal: Proposal, report: FeasibilityReport | None, currency: str) -> tuple[list[ScheduleRow], str]:
    """The proposal's repayment schedule: the installments once executed; before, the schedule its terms give on
    the feasibility report it was valued on (the same numbers the valuation used)."""
    installments: list[Installment] = list(proposal.installments.all())
    if installments:
        quantum = currency_quantum(currency)
        return [
            ScheduleRow.of(
                i,
                status=i.status,
                paid_amount=i.paid_amount,
                installment_id=i.pk,
                payable=format(i.total.quantize(quantum), "f"),
            )
            for i in installments
        ], "installments of the executed restructuring"
    if proposal.kind == ProposalKind.LIQUIDATE:
        return [], "a liquidation has no repayment schedule"
    stored = proposal.valuation.get("schedule") if isinstance(proposal.valuation, Mapping) else None
    if stored:
        return [_row(r) for r in stored], "as valued"
    if report is None:
        return [], "not valued on a feasibility report yet"
    try:
        terms = Terms.from_json(proposal.terms)
        facts = report_facts(report)
        params = _params(report.parameters)
        priced = terms_price(facts, proposal.name, terms, params, proposal.created_at.date())
    except (TermsError, ScheduleError, KeyError, TypeError, ValueError) as exc:
        return [], f"no schedule: {exc}"
    note = f"on feasibility report {report.pk}, starting {proposal.created_at:%Y-%m-%d}"
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


def _params(data: Mapping[str, Any]) -> feasibility.Params:
    """The model parameters a report was computed with (what its terms were valued under)."""
    return feasibility.Params(**{**data, "jumps": feasibility.Jumps(**data["jumps"])})
