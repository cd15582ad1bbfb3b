"""The compliance reviewer's reads of the audit trail: the search (by case, account, actor, action and time),
keyset paging over it, and a case's whole history. Each makes a fixed number of queries, whatever the number of
events it finds. The events "of a case" are restructuring.selectors.events' (the officer's case page lists the
same)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import MarginAccount
from core.audit_catalogue import Audience
from core.models import AuditEvent
from restructuring.audit_events import CASE_OBJECT
from restructuring.models import Approval, Case, Proposal
from restructuring.selectors.events import case_events, case_events_q

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilters:
    case: int | None = None
    account: str = ""  # an account's code, or an id
    actor: str = ""  # a username or a system actor
    action: str = ""  # an action or its start ("case." finds every case event)
    since: datetime | None = None
    until: datetime | None = None  # excluded


def audit_events_search(filters: AuditFilters) -> QuerySet[AuditEvent]:
    """The events matching the filters: at most one query here, for a case or an account code."""
    events = AuditEvent.objects.all()
    if filters.case:
        case = Case.objects.filter(pk=filters.case).first()
        events = events.filter(
            case_events_q(case, Audience.COMPLIANCE)
            if case is not None
            else Q(object_type=CASE_OBJECT, object_id=filters.case)
        )
    if account := filters.account.strip():
        ids = list(MarginAccount.objects.filter(code=account).values_list("pk", flat=True))
        if account.isdigit():  # the trail outlives accounts: an id is searched even if none has it now
            ids.append(int(account))
        events = events.filter(account_id__in=ids)
    if actor := filters.actor.strip():
        events = events.filter(Q(actor__username__iexact=actor) | Q(system_actor__iexact=actor))
    if action := filters.action.strip():
        events = events.filter(action__startswith=action.lower())
    if filters.since:
        events = events.filter(created_at__gte=filters.since)
    if filters.until:
        events = events.filter(created_at__lt=filters.until)
    return events


@dataclass(frozen=True)
class EventPage:
    """Keyset paging over sequence, newest first: `before` shows the events older than it, `after` the newer."""

    events: list[AuditEvent]
    older: int | None  # the `before` of the next older page, None at the oldest
    newer: int | None  # the `after` of the next newer page, None at the newest


def audit_page(events: QuerySet[AuditEvent], *, before: int | None, after: int | None) -> EventPage:
    events = events.select_related("actor")
    if after is not None:
        chunk = list(events.filter(sequence__gt=after).order_by("sequence")[: PAGE_SIZE + 1])
        more_newer = len(chunk) > PAGE_SIZE
        shown = list(reversed(chunk[:PAGE_SIZE]))
        more_older = bool(shown) and events.filter(sequence__lt=shown[-1].sequence).exists()
    else:
        events_older = events.filter(sequence__lt=before) if before is not None else events
        chunk = list(events_older.order_by("-sequence")[: PAGE_SIZE + 1])
        shown = chunk[:PAGE_SIZE]
        more_older = len(chunk) > PAGE_SIZE
        more_newer = before is not None and bool(shown) and events.filter(sequence__gt=shown[0].sequence).exists()
    return EventPage(
        events=shown,
        older=shown[-1].sequence if shown and more_older else None,
        newer=shown[0].sequence if shown and more_newer else None,
    )


@dataclass(frozen=True)
class CaseHistory:
    case: Case
    proposals: list[Proposal]  # oldest round first, with their approvals and makers
    events: list[AuditEvent]  # oldest first


def case_history_load(case_id: int) -> CaseHistory:
    """Everything about one case for its printable history: the case, its proposals with their approvals, and
    every event of the case (restructuring.selectors.events)."""
    case = get_object_or_404(Case.objects.select_related("account__client"), pk=case_id)
    proposals = list(
        Proposal.objects.filter(case_id=case.pk)
        .select_related("made_by")
        .prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.select_related("approver").order_by("created_at"))
        )
        .order_by("round", "rank", "pk")
    )
    return CaseHistory(case=case, proposals=proposals, events=list(case_events(case, Audience.COMPLIANCE)))
