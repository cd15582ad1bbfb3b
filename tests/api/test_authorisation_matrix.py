"""The authorisation matrix (RELIABILITY.md: broken object-level and function-level authorisation, tokens):
every operation of the generated OpenAPI document x every role, on the caller's own object and on another
client's, with the status each must get. An operation added to the API without a row here fails
`test_the_matrix_covers_every_operation_of_the_schema`.

Roles: no token; an expired and a revoked token (of client A); client A on its own objects and on client B's;
an operations user (staff, with the import and sweep permissions); a compliance officer (staff, read-only, none
of those permissions). Each request runs in a savepoint rolled back afterwards, so the next starts from the same
world.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.urls import URLPattern
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from config import api_urls
from core.models import AuditEvent
from tests.api.conftest import Api, World
from tests.documents import PDF

BOOK = b'{"clients": [{"code": "C-NEW", "name": "New client"}]}'
PRICES = b"instrument,time,price,implied_volatility\nBTC,2026-11-01T00:00:00Z,101,\n"


@dataclass(frozen=True)
class Row:
    policy: str  # "client": a client's own objects; "operator": operations staff; "token": any token's own
    ok: int  # the status of an allowed caller on its own object
    target: str | None = None  # which object the path's parameter names
    body: Callable[[World, str], Any] | None = None  # (world, "own" | "foreign") -> JSON body
    upload: tuple[str, bytes] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # False: the request names nothing of a client's (a new webhook endpoint), so there is no other client's
    # object to be refused
    foreign: bool = True


def _top_up(world: World, whose: str) -> dict[str, Any]:
    account = world.a_account if whose == "own" else world.b_account
    return {"account": account.pk, "amount": "25.00", "reference": "wire 1"}


def _webhook(world: World, whose: str) -> dict[str, Any]:
    return {"url": "https://hooks.client.example/new", "event_types": ["margin_call", "offer"]}


def _promise(world: World, whose: str) -> dict[str, Any]:
    return {"amount": "100.00", "due": timezone.localdate().isoformat(), "method": "bank_transfer"}


def _document(world: World, whose: str) -> dict[str, Any]:
    """The form's fields beside the file: on the caller's case, or on another client's (not found)."""
    return {"kind": "proof_of_funds", "case": (world.a_case if whose == "own" else world.b_case).pk}


MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/api/v1/accounts/"): Row("client", 200),
    ("GET", "/api/v1/accounts/{id}/"): Row("client", 200, "account"),
    ("GET", "/api/v1/accounts/{id}/positions/"): Row("client", 200, "account"),
    ("GET", "/api/v1/accounts/{id}/loan/"): Row("client", 200, "account"),
    ("GET", "/api/v1/cases/"): Row("client", 200),
    ("GET", "/api/v1/cases/{id}/"): Row("client", 200, "case"),
    ("GET", "/api/v1/cases/{id}/promises/"): Row("client", 200, "case"),
    ("POST", "/api/v1/cases/{id}/promises/"): Row("client", 201, "case", _promise),
    ("GET", "/api/v1/cases/{id}/messages/"): Row("client", 200, "case"),
    ("GET", "/api/v1/offers/"): Row("client", 200),
    ("GET", "/api/v1/offers/{id}/"): Row("client", 200, "offer"),
    ("POST", "/api/v1/offers/{id}/accept/"): Row("client", 200, "offer", lambda w, _: {}),
    ("POST", "/api/v1/offers/{id}/decline/"): Row("client", 200, "offer", lambda w, _: {"reason": "too dear"}),
    ("POST", "/api/v1/offers/{id}/counter/"): Row("client", 201, "offer", lambda w, _: {"term_months": 18}),
    ("GET", "/api/v1/offers/{id}/agreement/"): Row("client", 200, "offer"),
    ("GET", "/api/v1/documents/"): Row("client", 200),
    ("POST", "/api/v1/documents/"): Row("client", 201, None, _document, upload=("funds.pdf", PDF)),
    ("GET", "/api/v1/documents/{id}/"): Row("client", 200, "document"),
    ("GET", "/api/v1/documents/{id}/content/"): Row("client", 200, "document"),
    ("GET", "/api/v1/top-ups/"): Row("client", 200),
    ("POST", "/api/v1/top-ups/"): Row("client", 201, None, _top_up),
    ("GET", "/api/v1/top-ups/{id}/"): Row("client", 200, "top_up"),
    ("GET", "/api/v1/webhooks/"): Row("client", 200),
    ("POST", "/api/v1/webhooks/"): Row("client", 201, None, _webhook, foreign=False),
    ("GET", "/api/v1/webhooks/{id}/"): Row("client", 200, "webhook"),
    ("POST", "/api/v1/webhooks/{id}/rotate/"): Row("client", 200, "webhook", lambda w, _: {}),
    ("POST", "/api/v1/webhooks/{id}/disable/"): Row("client", 200, "webhook", lambda w, _: {}),
    ("POST", "/api/v1/webhooks/{id}/enable/"): Row("client", 200, "webhook_disabled", lambda w, _: {}),
    ("GET", "/api/v1/webhooks/{id}/deliveries/"): Row("client", 200, "webhook"),
    ("GET", "/api/v1/events/"): Row("token", 200),
    ("GET", "/api/v1/tokens/"): Row("token", 200),
    ("GET", "/api/v1/tokens/{prefix}/"): Row("token", 200, "token"),
    ("DELETE", "/api/v1/tokens/{prefix}/"): Row("token", 200, "token"),
    ("POST", "/api/v1/operations/book/"): Row("operator", 200, upload=("book.json", BOOK)),
    ("POST", "/api/v1/operations/prices/"): Row("operator", 200, upload=("prices.csv", PRICES)),
    ("POST", "/api/v1/operations/sweeps/"): Row("operator", 202, body=lambda w, _: {}),
    ("GET", "/api/v1/operations/sweeps/{id}/"): Row("operator", 200, "sweep"),
}

# (role, whose objects): the token used, and what it must get for each policy
ROLES = [
    ("anonymous", "own"),
    ("expired", "own"),
    ("revoked", "own"),
    ("client_a", "own"),
    ("client_a", "foreign"),
    ("operator", "own"),
    ("compliance", "own"),
]


def expected(row: Row, role: str, whose: str) -> int:
    if role in ("anonymous", "expired", "revoked"):
        return 401
    if row.policy == "token":
        return row.ok if whose == "own" else 404
    if row.policy == "client":
        if role != "client_a":
            return 403  # staff are not clients
        return row.ok if whose == "own" else 404  # another's object: not found, never forbidden, never data
    assert row.policy == "operator"
    return row.ok if role == "operator" else 403


def _object_id(world: World, target: str, role: str, whose: str) -> str:
    if target == "token":
        return world.prefixes["client_b" if whose == "foreign" else role] if role in world.prefixes else "00000000"
    if target == "sweep":
        return str(world.sweep.pk)
    own = {
        "account": world.a_account,
        "case": world.a_case,
        "offer": world.a_offer,
        "top_up": world.a_top_up,
        "document": world.a_document,
    }
    foreign = {
        "account": world.b_account,
        "case": world.b_case,
        "offer": world.b_offer,
        "top_up": world.b_top_up,
        "document": world.b_document,
    }
    own |= {"webhook": world.a_webhook, "webhook_disabled": world.a_webhook_disabled}
    foreign |= {"webhook": world.b_webhook, "webhook_disabled": world.b_webhook_disabled}
    return str((own if whose == "own" else foreign)[target].pk)


def _request(api: Api, world: World, method: str, template: str, row: Row, role: str, whose: str) -> Any:
    path = template
    if row.target is not None:
        path = template.replace("{id}", "{x}").replace("{prefix}", "{x}")
        path = path.replace("{x}", _object_id(world, row.target, role, whose))
    if method == "GET":
        return api.get(path)
    if method == "DELETE":
        return api.delete(path)
    if row.upload is not None:
        return api.upload(path, *row.upload, fields=row.body(world, whose) if row.body else None)
    assert row.body is not None
    return api.post(path, row.body(world, whose))


def schema_operations() -> set[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item}


def test_the_matrix_covers_every_operation_of_the_schema() -> None:
    operations = schema_operations()

    assert operations - set(MATRIX) == set(), "an operation without a row in the authorisation matrix"
    assert set(MATRIX) - operations == set(), "a row of the matrix names no operation of the schema"


def test_every_route_of_the_api_is_in_the_schema() -> None:
    """A view left out of the schema (extend_schema(exclude=True)) would be left out of the matrix too."""
    documented = {path for _, path in schema_operations()}
    for pattern in api_urls.urlpatterns:
        assert isinstance(pattern, URLPattern), "the API's routes are flat: a nested include escapes this test"
        if pattern.name == "api-not-found":
            continue
        path = "/api/v1/" + re.sub(
            r"<(?:\w+:)?(\w+)>", lambda m: "{" + ("id" if m[1] == "pk" else m[1]) + "}", str(pattern.pattern)
        )
        assert path in documented, f"{path} is routed but not in the schema (nor in the matrix)"


@pytest.mark.django_db
def test_every_operation_x_every_role_gets_its_status(world: World) -> None:
    failures = []
    for (method, template), row in sorted(MATRIX.items()):
        for role, whose in ROLES:
            if whose == "foreign" and row.target in (None, "sweep") and (row.body is None or not row.foreign):
                continue  # no object of another client's in this request
            want = expected(row, role, whose)
            with transaction.atomic():
                events = AuditEvent.objects.count()
                response = _request(world.api(role), world, method, template, row, role, whose)
                written = AuditEvent.objects.count() - events
                transaction.set_rollback(True)
            # a download's body is its file (an agreement's PDF, a document); every other answer, and every error, JSON
            json_answer = response["Content-Type"].startswith("application/json")
            body = response.json() if json_answer else {"file": response["Content-Type"]}
            if response.status_code != want:
                failures.append(f"{method} {template} as {role} ({whose}): {response.status_code}, want {want}: {body}")
            elif method != "GET" and (written > 0) != (want < 400):
                # every write leaves an audit event (issue 13); a refusal leaves none
                failures.append(f"{method} {template} as {role} ({whose}): {response.status_code} and {written} events")
            elif want >= 400:
                assert json_answer, response["Content-Type"]
                assert set(body) == {"error"}, body  # the one error shape, never data
                assert body["error"]["code"], body
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_lists_hold_only_the_callers_rows(world: World) -> None:
    for role, client in (("client_a", world.a), ("client_b", world.b)):
        api = world.api(role)
        accounts = {a["id"] for a in api.get("/api/v1/accounts/").json()["results"]}
        cases = {c["id"] for c in api.get("/api/v1/cases/").json()["results"]}
        offers = {o["id"] for o in api.get("/api/v1/offers/").json()["results"]}
        top_ups = {t["id"] for t in api.get("/api/v1/top-ups/").json()["results"]}
        tokens = {t["prefix"] for t in api.get("/api/v1/tokens/").json()["results"]}
        webhooks = {w["id"] for w in api.get("/api/v1/webhooks/").json()["results"]}
        documents = {d["id"] for d in api.get("/api/v1/documents/").json()["results"]}

        mine = client == world.a
        assert accounts == {(world.a_account if mine else world.b_account).pk}
        assert cases == {(world.a_case if mine else world.b_case).pk}
        assert offers == {(world.a_offer if mine else world.b_offer).pk}
        assert top_ups == {(world.a_top_up if mine else world.b_top_up).pk}
        assert webhooks == (
            {world.a_webhook.pk, world.a_webhook_disabled.pk}
            if mine
            else {world.b_webhook.pk, world.b_webhook_disabled.pk}
        )
        assert documents == {(world.a_document if mine else world.b_document).pk}
        holders = ("client_a", "expired", "revoked") if mine else ("client_b",)
        assert tokens == {world.prefixes[holder] for holder in holders}
