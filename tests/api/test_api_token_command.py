"""`manage.py api_token`: operations make a client's token (shown once), list and revoke it; staff tokens only for
staff; old idempotency records purged. And the documentation: the schema and its interactive page are public."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiToken
from core.models import IdempotencyRecord
from tests.api.conftest import Api, World, staff_user


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("api_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_a_token_made_by_the_command_works_until_it_is_revoked(world: World) -> None:
    secret, note = _run("create", "--client", world.a.code, "--days", "7", "--name", "treasury")
    secret = secret.strip()
    token = ApiToken.objects.get(client=world.a, name="treasury")
    assert secret.startswith(f"wo_{token.prefix}_")
    assert "shown only now" in note
    assert timedelta(days=6, hours=23) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert Api(secret).get("/api/v1/accounts/").status_code == 200

    listing, _ = _run("list", "--client", world.a.code)
    assert f"wo_{token.prefix}  client {world.a.code}  live" in listing
    assert secret not in listing

    revoked, _ = _run("revoke", secret)  # the whole token names it too

    assert revoked.strip() == f"revoked wo_{token.prefix}"
    assert Api(secret).get("/api/v1/accounts/").json()["error"]["code"] == "token_revoked"


@pytest.mark.django_db
def test_revoke_all_of_a_client_leaves_other_clients_alone(world: World) -> None:
    _run("revoke", "--client", world.a.code, "--all")

    assert world.api("client_a").get("/api/v1/accounts/").status_code == 401
    assert world.api("client_b").get("/api/v1/accounts/").status_code == 200


@pytest.mark.django_db
def test_staff_tokens_are_for_staff_and_lifetimes_are_bounded(world: World) -> None:
    client_user = staff_user("cleo", "client")

    with pytest.raises(CommandError, match="not a member of staff"):
        _run("create", "--user", client_user.username)
    with pytest.raises(CommandError, match="at most 366 days"):
        _run("create", "--client", world.a.code, "--days", "1000")
    with pytest.raises(CommandError, match="no client"):
        _run("create", "--client", "C-NOBODY")
    secret, _ = _run("create", "--user", world.operator.username, "--days", "1")
    assert Api(secret.strip()).get(f"/api/v1/operations/sweeps/{world.sweep.pk}/").status_code == 200


@pytest.mark.django_db
def test_old_idempotency_records_are_purged(world: World) -> None:
    now = timezone.now()
    for key, age in (("old", timedelta(days=8)), ("new", timedelta(days=1))):
        IdempotencyRecord.objects.create(
            scope="client:1", key=key, request_hash="0" * 64, method="POST", path="/", created_at=now - age
        )

    out, _ = _run("purge-idempotency", "--days", "7")

    assert out.strip() == "deleted 1 idempotency records older than 7 days"
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


@pytest.mark.django_db
def test_the_schema_and_its_interactive_page_are_public(settings: Any) -> None:
    # the pages link static files: without `collectstatic`'s manifest in tests
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    api = Api(None)

    schema = api.get("/api/schema/?format=json")
    docs = api.get("/api/docs/")

    assert schema.status_code == 200
    document = json.loads(schema.content)
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert "manage.py api_token create" in document["components"]["securitySchemes"]["token"]["description"]
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
