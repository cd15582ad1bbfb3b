"""Issue 17: the queue as a table (django-tables2 over django-filter): the decision columns by default, the rest
behind a column chooser, every column sortable (`?sort=<column>`, `-` descending), the assignee filter, and the
same number of queries however it is sorted or filled."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django.utils.html import conditional_escape

from accounts.models import Position
from core.money import money_text
from core.roles import CREDIT_OFFICER
from restructuring.models import Case, FeasibilityReport
from restructuring.services.feasibility import feasibility_compute
from restructuring.views.queue_table import OPTIONAL_COLUMNS, QueueTable
from tests.restructuring.helpers import account, btc
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import _queue_book, queue_case_ids, swept, text

pytestmark = [pytest.mark.django_db]

DECISION_HEADERS = [
    "Case",
    "Client",
    "State",
    "Band",
    "Debt",
    "Shortfall",
    "Expected loss",
    "Recommended",
    "Assignee",
    "In state / SLA",
    "Waits for",
]


@pytest.fixture
def alice() -> User:
    return staff_user("alice", CREDIT_OFFICER)


@pytest.fixture
def web(alice: User) -> Client:
    return signed_in(alice)


def headers(response: Any) -> list[str]:
    head = response.content.decode().split("<thead>")[1].split("</thead>")[0]
    return [" ".join(re.sub(r"<[^>]+>|[↑↓]", " ", h).split()) for h in re.findall(r"<th[^>]*>(.*?)</th>", head, re.S)][
        1:
    ]


def test_the_queue_shows_the_decision_columns_and_hides_the_rest_until_chosen(web: Client) -> None:
    _queue_book()

    default = web.get("/queue/")
    chosen = web.get("/queue/?show=deadline&show=group&show=nonsense")

    assert headers(default) == DECISION_HEADERS
    assert "Deadline" in headers(chosen)
    assert "Group" in headers(chosen)
    assert set(DECISION_HEADERS) <= set(headers(chosen))
    assert "Margin call without a proposal" in text(default)  # what it waits for, in words


@pytest.mark.parametrize(
    ("sort", "key", "reverse"),
    [
        ("shortfall", lambda c: c.call_amount or 0, False),
        ("-shortfall", lambda c: c.call_amount or 0, True),
        ("case", lambda c: c.pk, False),
        ("-case", lambda c: c.pk, True),
    ],
)
def test_every_column_sorts(web: Client, sort: str, key: Any, reverse: bool) -> None:
    cases = _queue_book()
    now = timezone.now()
    for k, case in enumerate(sorted(cases.values(), key=lambda c: c.pk)):
        Case.objects.filter(pk=case.pk).update(state_changed_at=now - timedelta(hours=k * 7 % 5 + 1))
    rows = list(Case.objects.filter(pk__in=[c.pk for c in cases.values()]))
    expected = [c.pk for c in sorted(rows, key=lambda c: (key(c), c.pk if not reverse else -c.pk), reverse=reverse)]

    ids = queue_case_ids(web.get(f"/queue/?sort={sort}"))

    if sort.lstrip("-") == "shortfall":  # equal shortfalls: the pk breaks the tie ascending either way
        assert [key(Case.objects.get(pk=i)) for i in ids] == sorted((key(c) for c in rows), reverse=reverse)
    else:
        assert ids == expected


def test_the_rows_cells_are_django_tables2s_own_rendering_of_every_column(web: Client) -> None:
    """QueueTable.page_rows renders each cell once per column's work, not through django-tables2's per-cell path:
    it must give what that path gives, for every column, empty figures included."""
    _queue_book()
    every = "&".join(f"show={c}" for c in OPTIONAL_COLUMNS)
    table = web.get(f"/queue/?{every}").context["table"]
    assert [c.name for c in table.columns] == list(QueueTable.Meta.sequence)

    ours = table.page_rows()
    theirs = [
        (row.record, "".join(_td(column, cell) for column, cell in row.items())) for row in table.page.object_list
    ]

    assert [r.pk for r, _ in ours] == [r.pk for r, _ in theirs]
    assert [cells for _, cells in ours] == [cells for _, cells in theirs]
    # an empty figure (the warning's expected loss: no report) is the column's default, as django-tables2 shows it
    assert f'<td class="num">{table.default}</td>' in "".join(cells for _, cells in ours)


def _td(column: Any, cell: Any) -> str:
    css = (column.attrs.get("td") or {}).get("class")
    return f'<td class="{css}">{conditional_escape(cell)}</td>' if css else f"<td>{conditional_escape(cell)}</td>"


def test_the_queue_sorts_by_the_latest_reports_expected_loss_and_shows_it(web: Client) -> None:
    """Expected loss is the latest feasibility report's, as the service storing reports keeps it on the case;
    cases without a report come last either way."""
    instrument = btc()
    account("TEN", instrument, band="critical")
    account("LESS", instrument, band="critical", quantity="9.5")  # less to sell: a larger expected loss
    account("WARN", instrument, band="warning")  # no margin call: no report
    swept()
    by_code = {c.account.code: c for c in Case.objects.select_related("account")}
    loss = {code: c.report_expected_loss for code, c in by_code.items()}
    assert loss["LESS"] > loss["TEN"]
    assert loss["WARN"] is None

    assert queue_case_ids(web.get("/queue/?sort=-expected_loss")) == [by_code[c].pk for c in ("LESS", "TEN", "WARN")]
    assert queue_case_ids(web.get("/queue/?sort=expected_loss")) == [by_code[c].pk for c in ("TEN", "LESS", "WARN")]

    # when TEN's client sells most of the position and a new report is computed an hour later
    Position.objects.filter(account__code="TEN").update(quantity=Decimal(5))
    (report_id,) = feasibility_compute(
        case_ids=[by_code["TEN"].pk], key="officer-1", now=timezone.now() + timedelta(hours=1)
    )
    latest = FeasibilityReport.objects.get(pk=report_id)
    assert latest.expected_loss > loss["LESS"]

    # then the queue sorts and shows TEN by its new report
    response = web.get("/queue/?sort=-expected_loss")
    assert queue_case_ids(response) == [by_code[c].pk for c in ("TEN", "LESS", "WARN")]
    assert money_text(latest.expected_loss, "USD") in text(response)
    assert money_text(loss["TEN"], "USD") not in text(response)


def test_sorting_by_time_in_state_puts_the_longest_wait_first_when_descending(web: Client) -> None:
    cases = _queue_book()
    now = timezone.now()
    waits = {"CALL": 30, "CRIT": 2, "GRP": 10, "WARN": 5}
    for code, hours in waits.items():
        Case.objects.filter(pk=cases[code].pk).update(state_changed_at=now - timedelta(hours=hours))

    longest = queue_case_ids(web.get("/queue/?sort=-in_state"))
    shortest = queue_case_ids(web.get("/queue/?sort=in_state"))

    assert longest == [cases[c].pk for c in ("CALL", "GRP", "WARN", "CRIT")]
    assert shortest == list(reversed(longest))


def test_sorting_by_what_a_case_waits_for_orders_by_its_sla_due_time_with_or_without_the_sla_filter(
    web: Client,
) -> None:
    """The SLA clock is added to the sort keys only when the queue sorts (or filters) by it: the order holds."""
    cases = _queue_book()
    now = timezone.now()
    waits = {"CALL": 30, "CRIT": 2, "GRP": 26}  # margin calls without a proposal: a 24-hour target
    for code, hours in waits.items():
        Case.objects.filter(pk=cases[code].pk).update(state_changed_at=now - timedelta(hours=hours))

    soonest = queue_case_ids(web.get("/queue/?sort=waits_for"))
    latest = queue_case_ids(web.get("/queue/?sort=-waits_for"))
    breached = queue_case_ids(web.get("/queue/?sla=breached&sort=waits_for"))

    assert soonest == [cases[c].pk for c in ("CALL", "GRP", "CRIT", "WARN")]  # no clock (a warning): last
    assert latest == [cases[c].pk for c in ("CRIT", "GRP", "CALL", "WARN")]
    assert breached == [cases[c].pk for c in ("CALL", "GRP")]


def test_the_assignee_filter_takes_me_none_and_a_username(web: Client, alice: User) -> None:
    cases = _queue_book()
    bob = staff_user("bob", CREDIT_OFFICER)
    Case.objects.filter(pk=cases["CALL"].pk).update(assignee=alice)
    Case.objects.filter(pk=cases["GRP"].pk).update(assignee=bob)

    assert queue_case_ids(web.get("/queue/?assignee=me")) == [cases["CALL"].pk]
    assert queue_case_ids(web.get("/queue/?assignee=bob")) == [cases["GRP"].pk]
    assert sorted(queue_case_ids(web.get("/queue/?assignee=none"))) == sorted([cases["CRIT"].pk, cases["WARN"].pk])
    assert "alice" in text(web.get("/queue/?assignee=me")).split("Waits for")[1]


def test_sorting_and_choosing_columns_cost_no_query(web: Client, django_assert_num_queries: Any) -> None:
    """The 13 of the plain queue (tests/web/test_officer_pages.py), whatever the sort and the columns shown."""
    _queue_book()
    for query in ("sort=-debt", "sort=in_state&show=deadline&show=to_approve&show=group", "sort=-waits_for"):
        with django_assert_num_queries(13):
            assert len(queue_case_ids(web.get(f"/queue/?{query}"))) == 4
