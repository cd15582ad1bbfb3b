"""The officer's queue: open cases, most urgent first, filtered, each row with its figures, in one query per page
(the tests count them)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, DecimalField, Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from accounts.models import LoanStatus, MarginLoan, Position
from restructuring.models import (
    OPEN_STATES,
    Approval,
    Case,
    CaseState,
    FeasibilityReport,
    Proposal,
    ProposalKind,
    ProposalState,
)
from restructuring.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.selectors.desk import cases_by_assignee, queue_sla

QUEUE_PAGE_SIZE = 50

_MONEY = DecimalField(max_digits=28, decimal_places=8)
_RATIO = DecimalField(max_digits=20, decimal_places=8)


@dataclass(frozen=True)
class QueueFilters:
    state: str = ""
    band: str = ""
    officer: str = ""  # a username: cases where that officer drafted, edited or approved a proposal
    asset: str = ""  # an instrument symbol held (directly, or as the underlying of a derivative held)
    group: str = ""  # a client group's code
    search: str = ""  # account code, client code or name
    # The desk (restructuring/selectors/desk.py): "me", a username, "none" or "team", read for `user_id`; and
    # only the cases past their SLA target.
    assignee: str = ""
    user_id: int | None = None
    sla_breached: bool = False


def cases_for_queue(filters: QueueFilters) -> QuerySet[Case]:
    """Open cases, most urgent first: the nearest deadline, then the largest shortfall, then the largest expected
    loss of the latest feasibility report. Each row carries its figures as annotations (one query for a page)."""
    return _queue_filtered(filters, with_state=True).order_by(
        F("deadline").asc(nulls_last=True),
        F("shortfall").desc(nulls_last=True),
        F("expected_loss").desc(nulls_last=True),
        "pk",
    )


def queue_state_counts(filters: QueueFilters) -> dict[str, int]:
    """Open cases per state under every filter but the state's own (what each state tab would show)."""
    rows = (
        _queue_filtered(filters, with_state=False, annotate=False)
        .order_by()
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


def _queue_filtered(filters: QueueFilters, *, with_state: bool, annotate: bool = True) -> QuerySet[Case]:
    cases = Case.objects.filter(state__in=OPEN_STATES)
    if with_state and filters.state:
        cases = cases.filter(state=filters.state)
    if filters.band:
        cases = cases.filter(account__risk__band=filters.band)
    if filters.group:
        cases = cases.filter(account__client__group__code__iexact=filters.group)
    if filters.search:
        term = filters.search
        cases = cases.filter(
            Q(account__code__icontains=term)
            | Q(account__client__code__icontains=term)
            | Q(account__client__name__icontains=term)
        )
    if filters.asset:
        symbol = filters.asset
        held = Position.objects.filter(account_id=OuterRef("account_id")).exclude(quantity=0)
        cases = cases.filter(
            Exists(held.filter(Q(instrument__symbol__iexact=symbol) | Q(instrument__underlying__symbol__iexact=symbol)))
        )
    if filters.officer:
        made = Proposal.objects.filter(case_id=OuterRef("pk"), made_by__username=filters.officer)
        approved = Approval.objects.filter(proposal__case_id=OuterRef("pk"), approver__username=filters.officer)
        cases = cases.filter(Exists(made) | Exists(approved))
    if filters.assignee:
        cases = cases_by_assignee(cases, filters.assignee, filters.user_id)
    if filters.sla_breached:
        cases = queue_sla(cases, timezone.now(), breached_only=True)
    if not annotate:
        return cases
    latest = FeasibilityReport.objects.filter(case_id=OuterRef("pk")).order_by("-created_at", "-pk")
    debt = (
        MarginLoan.objects.filter(account_id=OuterRef("account_id"), status=LoanStatus.ACTIVE)
        .annotate(owed=F("principal") + F("accrued_interest"))
        .values("owed")[:1]
    )
    pending = Proposal.objects.filter(case_id=OuterRef("pk"), state=ProposalState.PENDING_APPROVAL).order_by()
    waiting = pending.values("case_id").annotate(n=Count("pk")).values("n")
    flagged = pending.filter(flagged_proposals()).values("case_id").annotate(n=Count("pk")).values("n")
    if not filters.sla_breached:  # the SLA clock on every row, sortable by `sla_due_at`
        cases = queue_sla(cases, timezone.now())
    return cases.select_related("account__client__group", "assignee").annotate(
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
    )


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


def open_case_states() -> list[tuple[str, str]]:
    return [(s.value, s.label) for s in CaseState if s in OPEN_STATES]
