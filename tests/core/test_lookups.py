"""The `__any` lookup (core/lookups.py): the rows `__in` selects, with the list sent as one parameter."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Client, ClientGroup

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups() -> list[ClientGroup]:
    made = [ClientGroup.objects.create(code=f"G{i}", name=f"group {i}") for i in range(4)]
    for i, group in enumerate(made):
        Client.objects.create(code=f"C{i}", name=f"client {i}", group=group if i % 2 else None)
    return made


def test_any_selects_what_in_selects(groups: list[ClientGroup]) -> None:
    # given some ids, one of them missing from the table
    ids = [groups[0].pk, groups[2].pk, 10**9]

    # then __any, on a key and through a foreign key, selects the rows __in does
    assert set(ClientGroup.objects.filter(pk__any=ids)) == set(ClientGroup.objects.filter(pk__in=ids))
    assert set(Client.objects.filter(group_id__any=[g.pk for g in groups])) == set(
        Client.objects.filter(group_id__in=[g.pk for g in groups])
    )
    assert set(Client.objects.filter(group__any=[groups[1].pk])) == {Client.objects.get(code="C1")}
    assert list(ClientGroup.objects.filter(pk__any=(g.pk for g in groups[:2])).order_by("pk")) == groups[:2]


def test_an_empty_list_matches_nothing_and_its_negation_everything(groups: list[ClientGroup]) -> None:
    assert not ClientGroup.objects.filter(pk__any=[]).exists()
    assert ClientGroup.objects.exclude(pk__any=[]).count() == len(groups)


def test_a_string_is_refused(groups: list[ClientGroup]) -> None:
    with pytest.raises(TypeError, match="takes a list of values, not str"):
        list(ClientGroup.objects.filter(code__any="G1"))


@pytest.mark.postgres
def test_on_postgresql_the_list_is_one_array_parameter(groups: list[ClientGroup]) -> None:
    # given 10,000 ids
    ids = [groups[3].pk, *range(10**9, 10**9 + 9_999)]

    # when
    with CaptureQueriesContext(connection) as queries:
        found = list(ClientGroup.objects.filter(pk__any=ids))

    # then one row, found with ANY over an array, not ten thousand placeholders
    assert found == [groups[3]]
    (query,) = queries.captured_queries
    assert "= ANY(" in query["sql"]
    assert " IN (" not in query["sql"]


def test_none_in_the_list_matches_nothing_and_does_not_blank_a_negation(groups: list[ClientGroup]) -> None:
    # `x = ANY('{1,NULL}')` is NULL for every other x: kept, it would make the exclude below return nothing
    assert list(ClientGroup.objects.filter(pk__any=[groups[0].pk, None])) == [groups[0]]
    assert ClientGroup.objects.exclude(pk__any=[groups[0].pk, None]).count() == len(groups) - 1
    assert not ClientGroup.objects.filter(pk__any=[None]).exists()


def test_a_queryset_is_refused(groups: list[ClientGroup]) -> None:
    # a subquery belongs in __in; here it would be read into model instances first
    with pytest.raises(TypeError, match="takes a list of values, not Query"):
        list(Client.objects.filter(group__any=ClientGroup.objects.all()))
