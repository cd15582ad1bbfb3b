"""The queue: open cases, most urgent first, filtered (django-filter), sorted and paged (django-tables2), with the
count of cases in each state and a column chooser."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET
from django_tables2 import RequestConfig
from django_tables2.rows import BoundRows

from accounts.models import HealthBand
from core.access import staff_view
from restructuring.selectors.desk import ME, MINE_IF_ON_TEAM, NONE, TEAM, Workloads, default_assignee, workloads
from restructuring.selectors.queue import (
    QUEUE_PAGE_SIZE,
    queue_count,
    queue_filterset,
    queue_keys,
    queue_officers,
    queue_page,
    queue_state_counts,
)
from restructuring.selectors.queue_filters import open_case_states
from restructuring.views.queue_table import DECISION_COLUMNS, OPTIONAL_COLUMNS, QueueTable

# Query parameters that are not filters: they neither count as "filtered" nor leave the state tabs.
VIEW_PARAMETERS = ("page", "sort", "show")
ASSIGNEE_TABS = (
    (ME, gettext_lazy("My cases"), "restructuring.draft_proposal"),
    (TEAM, gettext_lazy("Team"), "restructuring.assign_case"),
    (NONE, gettext_lazy("Unassigned"), "restructuring.assign_case"),
    ("", gettext_lazy("All open"), "restructuring.draft_proposal"),
)


def _assignee_tabs(request: HttpRequest, current: str, loads: Workloads, kept: list[tuple[str, str]]) -> list[dict]:
    """The desk's tabs: an officer's "My cases" (their default) and every case; a senior's "Team" and
    "Unassigned" besides. Each with its count of open cases (from the workloads, read once) and its link, which
    keeps the other filters and the sort."""
    user = request.user
    counts = {
        ME: loads.officer(user.get_username()).open,
        TEAM: loads.my_team.open,
        NONE: loads.unassigned.open,
        "": loads.total.open,
    }
    active = ME if current == MINE_IF_ON_TEAM else current
    others = [(k, v) for k, v in kept if k not in ("assignee", "state")]
    return [
        {
            "value": value,
            "label": label,
            "count": counts[value],
            "active": active == value,
            "query": urlencode([*others, ("assignee", value)]),
        }
        for value, label, permission in ASSIGNEE_TABS
        if user.has_perm(permission)
    ]


class CountedPaginator(Paginator):
    """A paginator told how many cases there are (the state tabs' counts say it already: `queue_count`), so that
    it does not count them again: with 10,000 open cases under a search, the count was a query of 25 ms."""

    def __init__(self, object_list: Any, per_page: int, *args: Any, count: int, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.__dict__["count"] = count  # Paginator.count is a cached_property: this is its value


@staff_view("restructuring.view_case")
@require_GET
def queue(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    data = request.GET.copy()
    if "assignee" not in data:  # an officer's queue opens on their own cases (restructuring/selectors/desk.py)
        data["assignee"] = default_assignee(request.user)  # type: ignore[arg-type]
    filterset = queue_filterset(data, request)
    filterset.form.is_valid()  # a bad value in one filter drops that filter only
    state = filterset.form.cleaned_data.get("state") or ""
    shown = [c for c in request.GET.getlist("show") if c in OPTIONAL_COLUMNS]
    counts = queue_state_counts(filterset)
    # the table sorts and pages the cases on their sort keys alone; the page's rows are then read whole (queue_page)
    table = QueueTable(queue_keys(filterset), shown=shown, now=now)
    paginate = {"per_page": QUEUE_PAGE_SIZE, "paginator_class": CountedPaginator, "count": queue_count(counts, state)}
    RequestConfig(request, paginate=paginate).configure(table)
    rows = queue_page(table.page.object_list.data, now)
    bands = dict(HealthBand.choices)
    for record in rows:
        record.band_label = bands.get(record.risk_band or "", record.risk_band or "")  # type: ignore[attr-defined]
    table.page.object_list = BoundRows(data=rows, table=table)
    loads = workloads(now, request.user)  # type: ignore[arg-type]
    filters = {k: v for k, v in request.GET.items() if k not in VIEW_PARAMETERS and v}
    kept = [(k, v) for k in request.GET for v in request.GET.getlist(k) if k != "page" and v]
    without_state = [(k, v) for k, v in kept if k != "state"]
    context = {
        "form": filterset.form,
        "table": table,
        "page": table.page,
        "officers": queue_officers(),
        "columns_optional": [(c, QueueTable.base_columns[c].verbose_name, c in shown) for c in OPTIONAL_COLUMNS],
        "decision_columns": DECISION_COLUMNS,
        "state_tabs": [
            {"value": value, "label": label, "count": counts.get(value, 0), "active": state == value}
            for value, label in open_case_states()
        ],
        "state": state,
        "assignee_tabs": _assignee_tabs(request, filterset.form.data.get("assignee", ""), loads, kept),
        "loads": loads,
        "my_cases": filterset.form.data.get("assignee") in ("me", MINE_IF_ON_TEAM),
        # an officer's default ("my cases if on a team, else every case") stays the default when the form is sent
        "my_cases_value": MINE_IF_ON_TEAM if filterset.form.data.get("assignee") == MINE_IF_ON_TEAM else "me",
        "total_open": sum(counts.values()),
        "query": urlencode(kept),
        "query_without_state": urlencode(without_state),
        "filtered": bool(filters),
    }
    partial = getattr(request, "htmx", None) and request.htmx.target == "queue-results"  # type: ignore[attr-defined]
    template = "restructuring/_queue_results.html" if partial else "restructuring/queue.html"
    return render(request, template, context)
