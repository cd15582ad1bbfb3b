"""The queue: open cases, most urgent first, filtered and paged, with the count of cases in each state."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.models import HealthBand
from core.access import staff_view
from restructuring.forms import QueueFilterForm
from restructuring.selectors.desk import default_assignee
from restructuring.selectors.queue import (
    QUEUE_PAGE_SIZE,
    QueueFilters,
    cases_for_queue,
    open_case_states,
    queue_officers,
    queue_state_counts,
)


@staff_view("restructuring.view_case")
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    states = open_case_states()
    form = QueueFilterForm(request.GET, states=states, bands=HealthBand.choices, officers=queue_officers())
    form.is_valid()  # a bad value in one filter drops that filter only
    data = form.cleaned_data
    filters = QueueFilters(
        state=data.get("state") or "",
        band=data.get("band") or "",
        officer=data.get("officer") or "",
        asset=(data.get("asset") or "").strip(),
        group=(data.get("group") or "").strip(),
        search=(data.get("q") or "").strip(),
        # ?assignee=me|<username>|none|team; absent, an officer's queue is their own cases ("My cases")
        assignee=request.GET.get("assignee", default_assignee(request.user)).strip()[:150],  # type: ignore[arg-type]
        user_id=request.user.pk,
        sla_breached=request.GET.get("sla") == "breached",
    )
    page = Paginator(cases_for_queue(filters), QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    now = timezone.now()
    rows = list(page.object_list)
    bands = dict(HealthBand.choices)
    for case in rows:
        case.deadline_left = deadline_left(case.deadline, now)  # type: ignore[attr-defined]
        case.band_label = bands.get(case.risk_band or "", case.risk_band or "")  # type: ignore[attr-defined]
    page.object_list = rows
    counts = queue_state_counts(filters)
    kept = {k: v for k, v in request.GET.items() if k != "page" and v}
    without_state = {k: v for k, v in kept.items() if k != "state"}
    context = {
        "form": form,
        "page": page,
        "now": now,
        "state_tabs": [
            {"value": value, "label": label, "count": counts.get(value, 0), "active": filters.state == value}
            for value, label in states
        ],
        "total_open": sum(counts.values()),
        "query": urlencode(kept),
        "query_without_state": urlencode(without_state),
        "filtered": bool(kept),
    }
    partial = getattr(request, "htmx", None) and request.htmx.target == "queue-results"  # type: ignore[attr-defined]
    template = "restructuring/_queue_results.html" if partial else "restructuring/queue.html"
    return render(request, template, context)


def deadline_left(deadline: datetime | None, now: datetime) -> str:
    """The time to a deadline in its two largest units: "in 3d 4h", "in 2h 10m", "45m overdue"."""
    if deadline is None:
        return ""
    seconds = (deadline - now).total_seconds()
    minutes = int(abs(seconds) // 60)
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    text = f"{days}d {hours}h" if days else f"{hours}h {minutes}m" if hours else f"{minutes}m"
    return f"in {text}" if seconds >= 0 else f"{text} overdue"
