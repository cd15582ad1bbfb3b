"""The compliance reviewer's pages, all read-only: search the audit trail, export it, verify its chain, and print
a case's whole history (its events: restructuring.selectors.events, the same the officer's case page lists). Each
page makes a fixed number of queries, whatever the number of events it shows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from core.access import staff_view
from core.audit import audit_verify
from core.export import audit_csv_rows, messages_csv_rows
from core.models import AuditEvent
from restructuring.models import NotificationChannel, NotificationKind, NotificationStatus
from restructuring.selectors.compliance import AuditFilters, audit_events_search, audit_page, case_history_load
from restructuring.selectors.messages import MessageFilters, messages_export_rows, messages_page, messages_search

# ---------------------------------------------------------------------------------------------- reading


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
        """The events matching the (valid) form."""
        data = self.cleaned_data
        return audit_events_search(
            AuditFilters(
                case=data.get("case") or None,
                account=data.get("account") or "",
                actor=data.get("actor") or "",
                action=data.get("action") or "",
                since=data.get("since"),
                until=data.get("until"),
            )
        )


@dataclass(frozen=True)
class Page:
    rows: list[EventRow]
    older: int | None  # the `before` of the next older page, None at the oldest
    newer: int | None  # the `after` of the next newer page, None at the newest


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
        found = audit_page(form.events(), before=_int_param(request, "before"), after=_int_param(request, "after"))
        page = Page(rows=_rows(found.events), older=found.older, newer=found.newer)
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
    and every event of the case, oldest first."""
    history = case_history_load(case_id)
    return render(
        request,
        "compliance/case_history.html",
        {
            "case": history.case,
            "proposals": [(p, readable(p.terms)) for p in history.proposals],
            "rows": _rows(history.events),
            "printed_at": timezone.now(),
        },
    )


# ------------------------------------------------------------------------------------------- the messages sent


def _choices(choices: Sequence[tuple[str, str | Promise]]) -> list[tuple[str, str | Promise]]:
    return [("", gettext_lazy("any")), *choices]


class MessageSearchForm(forms.Form):
    case = forms.IntegerField(required=False, min_value=1, label=gettext_lazy("Case"))
    account = forms.CharField(required=False, max_length=64, label=gettext_lazy("Account (code or id)"))
    kind = forms.ChoiceField(required=False, choices=_choices(NotificationKind.choices), label=gettext_lazy("Message"))
    channel = forms.ChoiceField(
        required=False, choices=_choices(NotificationChannel.choices), label=gettext_lazy("Channel")
    )
    status = forms.ChoiceField(
        required=False, choices=_choices(NotificationStatus.choices), label=gettext_lazy("Status")
    )
    text = forms.CharField(required=False, max_length=200, label=gettext_lazy("Text (subject, body or recipient)"))
    since = forms.DateTimeField(required=False, label=gettext_lazy("From (UTC)"), widget=_WHEN)
    until = forms.DateTimeField(required=False, label=gettext_lazy("Before (UTC)"), widget=_WHEN)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "must be after From")
        return data

    def filters(self) -> MessageFilters:
        data = self.cleaned_data
        return MessageFilters(
            case=data.get("case") or None,
            account=data.get("account") or "",
            kind=data.get("kind") or "",
            channel=data.get("channel") or "",
            status=data.get("status") or "",
            text=data.get("text") or "",
            since=data.get("since"),
            until=data.get("until"),
        )


@require_GET
@staff_view("core.view_auditevent", "restructuring.view_case")
def messages_search_view(request: HttpRequest) -> HttpResponse:
    """Every message sent to clients (and staff's escalations), searched: with what it said, its template version,
    its state and attempts; the export carries each message's record in the audit chain."""
    form = MessageSearchForm(request.GET)
    filters = request.GET.copy()
    filters.pop("before", None)
    page = None
    if form.is_valid():
        page = messages_page(messages_search(form.filters()), before=_int_param(request, "before"))
    return render(request, "compliance/messages.html", {"form": form, "page": page, "filters": filters.urlencode()})


@require_GET
@staff_view("core.view_auditevent", "restructuring.view_case")
def messages_export_view(request: HttpRequest) -> HttpResponse:
    form = MessageSearchForm(request.GET)
    if not form.is_valid():
        return HttpResponse(
            "; ".join(f"{k}: {' '.join(str(e) for e in v)}" for k, v in form.errors.items()),
            status=400,
            content_type="text/plain",
        )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    rows = messages_csv_rows(messages_export_rows(messages_search(form.filters())))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="messages-{stamp}.csv"'
    return cast(HttpResponse, response)
