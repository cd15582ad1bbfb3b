"""No write off the record, for the operations API: a book upload, a prices upload and a sweep request each leave
an `operation.<name>` audit event (and its Operation) naming the token's user, in the transaction of the change;
a refused call (400) leaves none, and a replayed one (same Idempotency-Key) no second one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User

from accounts.models import MarginAccount, Price, Sweep
from accounts.services.api_tokens import api_token_create
from accounts.services.book_import import book_import
from core.audit import audit_verify
from core.models import AuditEvent, Operation
from tests.api.conftest import OPERATOR_PERMISSIONS, Api, staff_user

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
BOOK = (EXAMPLES / "book.json").read_bytes()
PRICES = (EXAMPLES / "prices.csv").read_bytes()


@pytest.fixture
def operator() -> User:
    user = staff_user("olivia", "credit_officer")
    user.user_permissions.add(*Permission.objects.filter(codename__in=OPERATOR_PERMISSIONS))
    return user


@pytest.fixture
def api(operator: User) -> Api:
    return Api(api_token_create(user_id=operator.pk).secret)


def _last_sequence() -> int:
    return AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0


def _recorded(after: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(sequence__gt=after).order_by("sequence"))


def _assert_one_operation(after: int, name: str, operator: User) -> Operation:
    (event,) = _recorded(after)
    op = Operation.objects.get(pk=event.object_id)
    assert (event.action, event.object_type, event.actor_id, event.system_actor) == (
        f"operation.{name}",
        "core.operation",
        operator.pk,
        "",
    )
    assert (op.name, op.channel, op.actor_id, op.system_actor) == (name, "api", operator.pk, "")
    assert (event.payload["arguments"], event.payload["outcome"]) == (op.arguments, op.outcome)
    assert audit_verify().ok
    return op


def test_a_book_upload_is_an_event_naming_the_user(api: Api, operator: User) -> None:
    after = _last_sequence()

    response = api.upload("/api/v1/operations/book/", "book.json", BOOK)

    assert response.status_code == 200, response.content
    op = _assert_one_operation(after, "book_import", operator)
    assert op.arguments == {"file": "book.json", "bytes": len(BOOK), "file_sha256": hashlib.sha256(BOOK).hexdigest()}
    assert op.outcome["accounts"] == {"created": 4, "updated": 0, "deleted": 0}
    assert MarginAccount.objects.count() == 4


def test_a_refused_book_upload_leaves_no_event(api: Api) -> None:
    after, operations = _last_sequence(), Operation.objects.count()

    response = api.upload("/api/v1/operations/book/", "book.json", b'{"accounts": [{"code": 1}]}')

    assert response.status_code == 400
    assert _recorded(after) == []
    assert Operation.objects.count() == operations
    assert not MarginAccount.objects.exists()


def test_a_prices_upload_is_an_event_naming_the_user(api: Api, operator: User) -> None:
    book_import(path=EXAMPLES / "book.json")
    after = _last_sequence()

    response = api.upload("/api/v1/operations/prices/", "prices.csv", PRICES)

    assert response.status_code == 200, response.content
    op = _assert_one_operation(after, "prices_import", operator)
    assert op.outcome["prices"]["created"] == Price.objects.count() > 0
    assert op.arguments["file_sha256"] == hashlib.sha256(PRICES).hexdigest()


def test_a_refused_prices_upload_leaves_no_event(api: Api) -> None:
    after = _last_sequence()

    response = api.upload("/api/v1/operations/prices/", "prices.csv", b"instrument,time,price\nNOPE,x,1\n")

    assert response.status_code == 400
    assert _recorded(after) == []
    assert not Operation.objects.exists()


def test_a_sweep_request_is_an_event_naming_the_user_once_per_key(api: Api, operator: User) -> None:
    book_import(path=EXAMPLES / "book.json")
    after = _last_sequence()

    first = api.post("/api/v1/operations/sweeps/", {"shards": 2}, key="sweep-1")
    replay = api.post("/api/v1/operations/sweeps/", {"shards": 2}, key="sweep-1")

    assert (first.status_code, replay.status_code) == (202, 202)
    assert replay.headers["Idempotent-Replayed"] == "true"
    op = _assert_one_operation(after, "sweep_start", operator)
    sweep = Sweep.objects.get()
    assert (op.arguments, op.outcome) == ({"shards": 2}, {"sweep_id": sweep.pk, "status": sweep.status})


def test_a_refused_sweep_request_leaves_no_event(api: Api) -> None:
    after = _last_sequence()

    response = api.post("/api/v1/operations/sweeps/", {"shards": 0})

    assert response.status_code == 400
    assert _recorded(after) == []
    assert not Sweep.objects.exists()
    assert not Operation.objects.exists()
