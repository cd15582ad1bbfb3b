"""Promises to pay through the API: POST /api/v1/cases/{id}/promises/ (with an Idempotency-Key: one promise per key,
its first response replayed), the API's number grammar and error shapes, one open promise per case (409), another
client's case not found; the client's timeline shows its promises and the contacts made with it, never the
officers' notes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEvent
from restructuring.models import PromiseToPay
from restructuring.services.conversation import contact_log, note_add
from tests.api.conftest import World
from tests.web.helpers import staff_user

pytestmark = pytest.mark.django_db


def _path(world: World, whose: str = "a") -> str:
    case = world.a_case if whose == "a" else world.b_case
    return f"/api/v1/cases/{case.pk}/promises/"


def _body(**changes: object) -> dict[str, object]:
    return {
        "amount": "300.00",
        "due": (timezone.localdate() + timedelta(days=3)).isoformat(),
        "method": "card",
        **changes,
    }


def test_a_client_makes_a_promise_once_per_key(world: World) -> None:
    api = world.api("client_a")
    first = api.post(_path(world), _body(), key="p-1")
    again = api.post(_path(world), _body(), key="p-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    promise = first.json()
    assert {k: promise[k] for k in ("case", "amount", "method", "source", "status", "received")} == {
        "case": world.a_case.pk,
        "amount": "300.00",
        "method": "card",
        "source": "client",
        "status": "open",
        "received": None,
    }
    assert PromiseToPay.objects.count() == 1
    [event] = AuditEvent.objects.filter(action="promise.make")
    assert event.system_actor.startswith("client:")
    listed = api.get(_path(world)).json()["results"]
    assert [p["id"] for p in listed] == [promise["id"]]

    # another key: a second open promise on the case is a conflict, kept and replayed as such
    conflict = api.post(_path(world), _body(amount="10.00"), key="p-2")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "promise_conflict"
    assert api.post(_path(world), _body(amount="10.00"), key="p-2").json() == conflict.json()
    assert PromiseToPay.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount": "300.001"}, "amount"),  # more places than USD has
        ({"amount": "3e2"}, "amount"),  # the API's number grammar: no exponent
        ({"amount": 300}, "amount"),  # amounts are strings
        ({"amount": "-1"}, "amount"),
        ({"due": "2020-01-01"}, "due"),  # in the past
        ({"due": "next friday"}, "due"),
        ({"method": "barter"}, "method"),
        ({"extra": "x"}, "extra"),  # an unknown field is refused, not ignored
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(world: World, changes: dict, field: str) -> None:
    response = world.api("client_a").post(_path(world), _body(**changes))
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not PromiseToPay.objects.exists()
    assert not AuditEvent.objects.filter(action="promise.make").exists()


def test_another_clients_case_is_not_found(world: World) -> None:
    response = world.api("client_a").post(_path(world, "b"), _body())
    assert response.status_code == 404
    assert not PromiseToPay.objects.exists()


def test_the_timeline_shows_promises_and_contacts_but_never_notes(world: World) -> None:
    alice = staff_user("otto", "credit_officer")
    note_add(case_id=world.a_case.pk, text="client sounded evasive", actor=alice)
    contact = contact_log(
        case_id=world.a_case.pk,
        channel="call",
        direction="outbound",
        outcome="promise",
        summary="secret",
        actor=alice,
    )
    api = world.api("client_a")
    promise = api.post(_path(world), _body()).json()

    timeline = api.get(f"/api/v1/cases/{world.a_case.pk}/").json()["timeline"]
    shown = [(e["action"], e["object"], e["object_id"], e["by"]) for e in timeline]
    assert ("contact.log", "contact", contact.pk, "lender") in shown
    assert ("promise.make", "promise", promise["id"], "you") in shown
    assert not [e for e in timeline if e["action"].startswith("note.")]
    assert "secret" not in str(timeline)
    assert "evasive" not in str(timeline)
