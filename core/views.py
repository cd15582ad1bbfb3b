"""The compliance reviewer's pages, all read-only: search the audit trail, export it, verify its chain, and print
a case's whole history. Each page makes a fixed number of queries, whatever the number of events it shows.

Events "of a case" are the case's own, its proposals', installments' and feasibility reports', and whatever was
recorded on its account while the case was open (top-ups, plans...): the search by case and the printable history
use the same set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from django import forms
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.models import MarginAccount
from core.access import staff_view
from core.audit import audit_verify
from core.export import audit_csv_rows
from core.models import AuditEvent
from restructuring.models import Approval, Case, FeasibilityReport, Installment, Proposal

PAGE_SIZE = 50
CASE = "restructuring.case"
# An event recorded in the transaction that closes a case carries the clock of its own append, a little after the
# case's closed_at: the account's events this close after the close are still the case's.
CLOSING_SLACK = timedelta(minutes=1)


# ---------------------------------------------------------------------------------------------- reading


def _case_events_q(case: Case, proposal_ids: list[int] | None = None) -> Q:
    """The events of a case (module docstring), as one filter."""
    proposals: Any = proposal_ids if proposal_ids is not None else Proposal.objects.filter(case_id=case.pk).values("pk")
    window = Q(account_id=case.account_id, created_at__gte=case.opened_at)
    if case.closed_at is not None:
        window &= Q(created_at__lte=case.closed_at + CLOSING_SLACK)
    return (
        Q(object_type=CASE, object_id=case.pk)
        | Q(object_type="restructuring.proposal", object_id__in=proposals)
        | Q(
            object_type="restructuring.feasibilityreport",
            object_id__in=FeasibilityReport.objects.filter(case_id=case.pk).values("pk"),
        )
        | Q(
            object_type="restructuring.installment",
            object_id__in=Installment.objects.filter(proposal__case_id=case.pk).values("pk"),
        )
        | window
    )


@dataclass(frozen=True)
class PayloadItem:
    key: str
    text: str
    block: bool  # nested: shown as indented JSON


@dataclass(frozen=True)
class EventRow:
    event: AuditEvent
    payload: list[PayloadItem]

    @property
    def actor(self) -> str:
        return self.event.actor.get_username() if self.event.actor is not None else self.event.system_actor


def readable(data: Any) -> list[PayloadItem]:
    """A JSON object as key/value rows: scalars as text, nested values as indented JSON."""
    if not isinstance(data, dict):
        return [PayloadItem("", json.dumps(data, indent=2, ensure_ascii=False), True)]
    items = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, dict | list):
            items.append(PayloadItem(key, json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False), True))
        else:
            items.append(PayloadItem(key, "null" if value is None else str(value), False))
    return items


def _rows(events: list[AuditEvent]) -> list[EventRow]:
    return [EventRow(event=e, payload=readable(e.payload)) for e in events]


_WHEN = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"})


class AuditSearchForm(forms.Form):
    case = forms.IntegerField(required=False, min_value=1, label="Case")
    account = forms.CharField(required=False, max_length=64, label="Account (code or id)")
    actor = forms.CharField(required=False, max_length=150, label="Actor (user or system)")
    action = forms.CharField(
        required=False, max_length=100, label="Action", help_text="or its start: case. finds every case event"
    )
    since = forms.DateTimeField(required=False, label="From (UTC)", widget=_WHEN)
    until = forms.DateTimeField(required=False, label="Before (UTC)", widget=_WHEN)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "must be after From")
        return data

    def events(self) -> QuerySet[AuditEvent]:
        """The events matching the (valid) form: at most one query here, for a case or an account code."""
        data = self.cleaned_data
        events = AuditEvent.objects.all()
        if data.get("case"):
            case = Case.objects.filter(pk=data["case"]).first()
            events = events.filter(
                _case_events_q(case) if case is not None else Q(object_type=CASE, object_id=data["case"])
            )
        if account := (data.get("account") or "").strip():
            ids = list(MarginAccount.objects.filter(code=account).values_list("pk", flat=True))
            if account.isdigit():  # the trail outlives accounts: an id is searched even if none has it now
                ids.append(int(account))
            events = events.filter(account_id__in=ids)
        if actor := (data.get("actor") or "").strip():
            events = events.filter(Q(actor__username__iexact=actor) | Q(system_actor__iexact=actor))
        if action := (data.get("action") or "").strip():
            events = events.filter(action__startswith=action.lower())
        if data.get("since"):
            events = events.filter(created_at__gte=data["since"])
        if data.get("until"):
            events = events.filter(created_at__lt=data["until"])
        return events


@dataclass(frozen=True)
class Page:
    """Keyset paging over sequence, newest first: `before` shows the events older than it, `after` the newer."""

    rows: list[EventRow]
    older: int | None  # the `before` of the next older page, None at the oldest
    newer: int | None  # the `after` of the next newer page, None at the newest


def _page(events: QuerySet[AuditEvent], *, before: int | None, after: int | None) -> Page:
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
    return Page(
        rows=_rows(shown),
        older=shown[-1].sequence if shown and more_older else None,
        newer=shown[0].sequence if shown and more_newer else None,
    )


def _int_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name, "")
    return int(value) if value.isdigit() else None


# ------------------------------------------------------------------------------------------------ views


@require_GET
@staff_view("core.view_auditevent")
def audit_search(request: HttpRequest) -> HttpResponse:
    form = AuditSearchForm(request.GET)  # every field is optional: no filter is the whole trail
    page = None
    filters = request.GET.copy()
    for key in ("before", "after"):
        filters.pop(key, None)
    if form.is_valid():
        page = _page(form.events(), before=_int_param(request, "before"), after=_int_param(request, "after"))
    return render(request, "compliance/audit.html", {"form": form, "page": page, "filters": filters.urlencode()})


@require_GET
@staff_view("core.view_auditevent")
def audit_export(request: HttpRequest) -> HttpResponse:
    form = AuditSearchForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()),
            status=400,
            content_type="text/plain",
        )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response = StreamingHttpResponse(audit_csv_rows(form.events()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return cast(HttpResponse, response)  # staff_view is typed for HttpResponse; Django serves either


@require_POST
@staff_view("core.view_auditevent")
def audit_verify_view(request: HttpRequest) -> HttpResponse:
    started = timezone.now()
    result = audit_verify()
    context = {"result": result, "checked_at": started, "seconds": (timezone.now() - started).total_seconds()}
    template = "compliance/_verify_result.html" if request.htmx else "compliance/verify.html"  # type: ignore[attr-defined]
    return render(request, template, context)


@require_GET
@staff_view("core.view_auditevent", "restructuring.view_case", "restructuring.view_proposal")
def case_history(request: HttpRequest, case_id: int) -> HttpResponse:
    """Everything about one case on one printable page: the case, its proposals with their terms and approvals,
    and every event (module docstring), oldest first."""
    case = get_object_or_404(Case.objects.select_related("account__client"), pk=case_id)
    proposals = list(
        Proposal.objects.filter(case_id=case.pk)
        .select_related("made_by")
        .prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.select_related("approver").order_by("created_at"))
        )
        .order_by("round", "rank", "pk")
    )
    events = list(
        AuditEvent.objects.filter(_case_events_q(case, [p.pk for p in proposals]))
        .select_related("actor")
        .order_by("sequence")
    )
    return render(
        request,
        "compliance/case_history.html",
        {
            "case": case,
            "proposals": [(p, readable(p.terms)) for p in proposals],
            "rows": _rows(events),
            "printed_at": timezone.now(),
        },
    )
