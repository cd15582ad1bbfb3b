"""core.bulk: numpy columns from a query."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from accounts.models import ApiToken, Client, ClientGroup, CreditTier, MarginAccount, WebhookEndpoint
from core import bulk
from core.bulk import bulk_copy, bulk_insert, bulk_update_fields, fetch_columns
from core.encryption import EncryptedSecret


@pytest.mark.django_db
def test_fetch_columns_reads_each_column_as_its_type() -> None:
    # given three rows, one float NULL among them
    float_null = "CAST(NULL AS float8)" if connection.vendor == "postgresql" else "NULL"
    sql = f"SELECT 1, 2.5, 1 = 1 UNION ALL SELECT 2, {float_null}, 1 = 0 UNION ALL SELECT 3, -0.125, 1 = 1 ORDER BY 1"

    # when / then: NULL reads as NaN, the rest exactly
    ids, values, flags = fetch_columns(sql, [], ["int8", "float8", "bool"])
    assert ids.tolist() == [1, 2, 3]
    assert values[0] == 2.5
    assert np.isnan(values[1])
    assert values[2] == -0.125
    assert flags.tolist() == [True, False, True]


def _stored(model: type[Any], pks: list[int], names: list[str]) -> dict[int, tuple[Any, ...]]:
    return {row[0]: row[1:] for row in model.objects.filter(pk__in=pks).values_list("pk", *names)}


def _insert(how: str, model: type[Any], objects: list[Any], key: str = "code") -> None:
    if how == "bulk_insert":
        bulk_insert(model, objects, key=key)
    else:
        bulk_copy(model, objects, key=[key])


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("how", ["bulk_insert", "bulk_copy"])
def test_bulk_insert_stores_what_bulk_create_stores(how: str) -> None:
    # given the same clients and accounts written by Django's bulk_create and by bulk_insert: plain fields
    # (text, a choice, a Decimal, a foreign key), auto_now(_add) times, a generated column (left to the
    # database); and webhook endpoints, for an encrypted secret (its own preparation) and JSON
    group = ClientGroup.objects.create(code="G", name="group")

    def clients(prefix: str) -> list[Client]:
        return [
            Client(
                code=f"{prefix}{i}",
                name=f"client {i}",
                credit_tier=CreditTier.D,
                group=group if i else None,
                external_capacity=Decimal("1234.56789012") * i,
            )
            for i in range(3)
        ]

    reference, inserted = clients("R"), clients("I")
    Client.objects.bulk_create(reference)
    _insert(how, Client, inserted)

    # then every object has its row's id, and the rows hold the same values
    assert [c.pk for c in inserted] == list(
        Client.objects.filter(code__startswith="I").order_by("code").values_list("pk", flat=True)
    )
    names = ["name", "credit_tier", "group_id", "external_capacity", "email"]
    assert list(_stored(Client, [c.pk for c in reference], names).values()) == list(
        _stored(Client, [c.pk for c in inserted], names).values()
    )
    for client in Client.objects.filter(code__startswith="I"):
        assert client.created_at is not None

    def endpoints(clients: list[Client]) -> list[WebhookEndpoint]:
        now = timezone.now()
        return [
            WebhookEndpoint(
                client=client,
                url=f"https://hooks.example/{client.code}",
                event_types=["margin_call", "cured"],
                secret=f"s3cret-{i}",
                created_at=now,
                updated_at=now,
            )
            for i, client in enumerate(clients)
        ]

    reference_endpoints, inserted_endpoints = endpoints(reference), endpoints(inserted)
    WebhookEndpoint.objects.bulk_create(reference_endpoints)
    _insert(how, WebhookEndpoint, inserted_endpoints, key="url")
    stored_endpoints = WebhookEndpoint.objects.filter(client__code__startswith="I").select_related("client")
    assert sorted(e.pk for e in inserted_endpoints) == sorted(e.pk for e in stored_endpoints)
    for endpoint in stored_endpoints:
        secret = endpoint.secret
        assert isinstance(secret, EncryptedSecret)
        assert secret.token.startswith("gAAAAA")  # encrypted on its way in
        assert secret.reveal() == f"s3cret-{endpoint.client.code[1:]}"
        assert endpoint.event_types == ["margin_call", "cured"]

    accounts = [MarginAccount(code=f"A{i}", client=inserted[i], cash=Decimal("10.5") * i) for i in range(3)]
    _insert(how, MarginAccount, accounts)
    stored = {a.code: a for a in MarginAccount.objects.filter(code__startswith="A")}
    for account in accounts:
        row = stored[account.code]
        assert (row.pk, row.cash, row.cash_float) == (account.pk, account.cash, float(account.cash))
        # auto_now_add and auto_now applied, on the object as on the row
        assert (row.created_at, row.updated_at) == (account.created_at, account.updated_at)
        assert account.created_at is not None


@pytest.mark.postgres
@pytest.mark.django_db
def test_values_of_another_type_take_djangos_path() -> None:
    # given a float for a Decimal field and a naive datetime: the plain path would pass them through as they are
    client = Client(code="C", name="c", external_capacity=0.1)
    field = Client._meta.get_field("external_capacity")

    # then they are converted as the ORM converts them
    assert bulk._column_values(field, [client]) == [Decimal("0.1000000000000000055511151231")]
    group = ClientGroup(code="G", name="g")
    assert bulk._column_values(ClientGroup._meta.get_field("code"), [group]) == ["G"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_bulk_update_fields_writes_each_objects_values() -> None:
    # given three clients, updated with a choice, a Decimal and a nullable foreign key, and their webhook
    # endpoints with an encrypted secret
    group = ClientGroup.objects.create(code="G", name="group")
    clients = [Client.objects.create(code=f"C{i}", name=f"c{i}") for i in range(3)]
    now = timezone.now()
    endpoints = [
        WebhookEndpoint.objects.create(
            client=client,
            url="https://hooks.example/x",
            event_types=["*"],
            secret="old",
            created_at=now,
            updated_at=now,
        )
        for client in clients
    ]
    for i, (client, endpoint) in enumerate(zip(clients, endpoints, strict=True)):
        client.credit_tier = CreditTier.A if i else CreditTier.D
        client.external_capacity = Decimal(i) / 8
        client.group = group if i == 1 else None
        endpoint.secret = f"new-{i}"

    # when
    bulk_update_fields(Client, clients, ["credit_tier", "external_capacity", "group"])
    bulk_update_fields(WebhookEndpoint, endpoints, ["secret"])

    # then
    for i, client in enumerate(Client.objects.order_by("code")):
        assert (client.credit_tier, client.external_capacity, client.group_id) == (
            "A" if i else "D",
            Decimal(i) / 8,
            group.pk if i == 1 else None,
        )
        secret = client.webhook_endpoints.get().secret
        assert isinstance(secret, EncryptedSecret)
        assert secret.reveal() == f"new-{i}"


@pytest.mark.django_db
def test_values_django_would_refuse_or_convert_still_go_through_django() -> None:
    # a NaN Decimal (Django refuses it; PostgreSQL would store it) and a bool for an integer (Django converts it)
    with pytest.raises(ValidationError):
        bulk._column_values(Client._meta.get_field("external_capacity"), [Client(external_capacity=Decimal("NaN"))])
    assert bulk._column_values(ApiToken._meta.get_field("client"), [ApiToken(client_id=True)]) == [1]


@pytest.mark.postgres
@pytest.mark.django_db
def test_bulk_inserts_refuse_keys_that_are_not_unique_among_the_objects() -> None:
    twins = [Client(code="SAME", name="one"), Client(code="SAME", name="two")]
    with pytest.raises(ValueError, match="code must be unique among the objects"):
        bulk_insert(Client, twins, key="code")
    with pytest.raises(ValueError, match="code must be unique among the objects"):
        bulk_copy(Client, twins, key=["code"])
    assert not Client.objects.exists()
