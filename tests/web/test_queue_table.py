"""Issue 17: the queue as a table (django-tables2 over django-filter): the decision columns by default, the rest
behind a column chooser, every column sortable (`?sort=<column>`, `-` descending), the assignee filter, and the
same number of queries however it is sorted or filled."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from core.roles import CREDIT_OFFICER
from restructuring.models import Case
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import _queue_book, queue_case_ids, text

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
    """The 14 of the plain queue (tests/web/test_officer_pages.py), whatever the sort and the columns shown."""
    _queue_book()
    for query in ("sort=-debt", "sort=in_state&show=deadline&show=to_approve&show=group", "sort=-waits_for"):
        with django_assert_num_queries(14):
            assert len(queue_case_ids(web.get(f"/queue/?{query}"))) == 4
