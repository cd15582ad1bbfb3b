"""The officer's queue: open cases, most urgent first, filtered, each row with its figures, in one query per page
(the tests count them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Case as CaseWhen
from django.db.models import Count, DecimalField, F, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from accounts.models import LoanStatus, MarginLoan
from restructuring.models import (
    OPEN_STATES,
    Case,
    Proposal,
    ProposalKind,
    ProposalState,
)
from restructuring.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.selectors.queue_filters import QueueFilterSet, open_case_states
from restructuring.sla import sla_annotate

QUEUE_PAGE_SIZE = 50

_MONEY = DecimalField(max_digits=28, decimal_places=8)
_RATIO = DecimalField(max_digits=20, decimal_places=8)


@dataclass(frozen=True)
class QueueFilters:
    """The queue's filters by name (restructuring/selectors/queue_filters.py says what each means)."""

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
    """The queue's filters (django-filter) bound to a query string, over the open cases (no query run)."""
    return QueueFilterSet(data, queryset=Case.objects.filter(state__in=OPEN_STATES), request=request)


def cases_for_queue(filters: QueueFilters | QueueFilterSet, now: datetime | None = None) -> QuerySet[Case]:
    """Open cases, most urgent first: the nearest deadline, then the largest shortfall, then the largest expected
    loss of the latest feasibility report. Each row carries its figures as annotations (one query for a page), its
    assignee, and its SLA clock (restructuring/sla.py): what it waits for, since when, against which target."""
    return _queue_rest(queue_keys(filters), now or timezone.now())


def queue_keys(filters: QueueFilters | QueueFilterSet) -> QuerySet[Case]:
    """The queue's cases in urgency order (`cases_for_queue`) with only the figures its orders read: what the
    table sorts and cuts into pages before `queue_page` reads a page's rows whole. The SLA clock, an order of its
    own, is added by the table when it sorts by it (or by the `sla` filter)."""
    filterset = queue_filterset(filters.data()) if isinstance(filters, QueueFilters) else filters
    return _queue_sort_keys(filterset.qs).order_by(
        F("deadline").asc(nulls_last=True),
        F("shortfall").desc(nulls_last=True),
        F("expected_loss").desc(nulls_last=True),
        "pk",
    )


def queue_page(page: QuerySet[Case], now: datetime) -> list[Case]:
    """The rows of one page of the queue, with every annotation and related row: `page` is the page's slice of
    `queue_keys`, ordered and cut without the joins and figures the columns need (a "deferred join": PostgreSQL
    sorts the open cases on their sort keys alone, then joins client, group, assignee and team and works out the
    figures and SLA clocks for the page's rows only). One query, as a subquery: with 10,000 open cases it halves
    the page's time (bench/desk.py); and the sorting query carries none of the rows' annotations, which Django
    would build again for it."""
    return list(queue_annotate(Case.objects.filter(pk__in=page.values("pk")), now).order_by(*page.query.order_by))


def queue_state_counts(filterset: QueueFilterSet) -> dict[str, int]:
    """Open cases per state under every filter but the state's own (what each state tab would show)."""
    data = {k: v for k, v in filterset.data.items() if k != "state"}
    cases = queue_filterset(data, filterset.request).qs.order_by()
    return dict(cases.values("state").annotate(n=Count("pk")).values_list("state", "n"))


def queue_count(counts: Mapping[str, int], state: str) -> int:
    """The cases the queue lists, from its counts per state (`queue_state_counts`, every filter but the state's):
    those of the state filtered on, or all of them. The same number a COUNT of the queue's cases would give,
    without a query of its own."""
    return counts.get(state, 0) if state else sum(counts.values())


def queue_officers() -> list[str]:
    """The usernames the officer and assignee filters offer."""
    return list(
        User.objects.filter(groups__name__in=[CREDIT_OFFICER, SENIOR_CREDIT_OFFICER], is_active=True)
        .order_by("username")
        .values_list("username", flat=True)
        .distinct()
    )


def queue_annotate(cases: QuerySet[Case], now: datetime) -> QuerySet[Case]:
    """The queue's figures of each case, as annotations: band, margin ratio, shortfall, debt, the latest report's
    expected loss, recovery and recommendation (kept on the case: `Case.report_*`; `recommended` is null before a
    report, "" when the report recommends liquidating), the proposals pending approval (and flagged), time in
    state and the SLA clock."""
    return _queue_rest(_queue_sort_keys(cases), now)


def _queue_sort_keys(cases: QuerySet[Case]) -> QuerySet[Case]:
    """The figures the queue's columns sort on (restructuring/views/queue_table.py), but the SLA clock's."""
    debt = (
        MarginLoan.objects.filter(account_id=OuterRef("account_id"), status=LoanStatus.ACTIVE)
        .annotate(owed=F("principal") + F("accrued_interest"))
        .values("owed")[:1]
    )
    return cases.annotate(
        risk_band=F("account__risk__band"),
        risk_margin_ratio=F("account__risk__margin_ratio"),
        shortfall=Coalesce("call_amount", "account__risk__shortfall_initial", output_field=_MONEY),
        debt=Subquery(debt, output_field=_MONEY),
        # the latest report's figures, as the service that stores reports keeps them on the case (no report read)
        expected_loss=F("report_expected_loss"),
        recovery_expected=F("report_recovery_expected"),
        recommended=CaseWhen(When(report_at__isnull=True, then=None), default=F("report_recommended")),
        pending_approval=Coalesce(Subquery(_pending().values("case_id").annotate(n=Count("pk")).values("n")), Value(0)),
        in_state_since=Coalesce("state_changed_at", "opened_at"),
    )


def _queue_rest(cases: QuerySet[Case], now: datetime) -> QuerySet[Case]:
    """The figures the queue shows but does not sort on, the related rows it shows, and the SLA clock."""
    flagged = _pending().filter(flagged_proposals()).values("case_id").annotate(n=Count("pk")).values("n")
    annotated = cases.select_related("account__client__group", "assignee").annotate(
        risk_equity=F("account__risk__equity"),
        flagged_approval=Coalesce(Subquery(flagged), Value(0)),
    )
    # the SLA clock on every row (sortable by `sla_due_at`), unless the `sla` filter annotated it already
    return annotated if "sla_clock" in annotated.query.annotations else sla_annotate(annotated, now)


def _pending() -> QuerySet[Proposal]:
    return Proposal.objects.filter(case_id=OuterRef("pk"), state=ProposalState.PENDING_APPROVAL).order_by()


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


__all__ = [
    "open_case_states"
]  # re-exported: the queue's states are the filters' (restructuring/selectors/queue_filters.py)
