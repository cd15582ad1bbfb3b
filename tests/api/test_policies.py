"""The API's promises besides who may call what (RELIABILITY.md rows: tokens, mass assignment, money exactness,
resource exhaustion; default deny), and its one error shape."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts.models import ApiToken, MarginAccount
from accounts.services.api_tokens import api_token_create, api_token_revoke, token_digest
from core.audit import AuditEntry, audit_record, audit_verify
from core.errors import ValidationError
from core.models import AuditEvent
from restructuring.models import CollateralTopUp, Proposal, ProposalState
from tests.api.conftest import Api, World


class _Forgotten(APIView):
    """A view whose author forgot to name a policy."""

    def get(self, request: Request) -> Response:
        return Response({"secret": "data"})


@pytest.mark.django_db
def test_a_view_without_a_policy_refuses_everyone(world: World) -> None:
    factory = APIRequestFactory()
    view = _Forgotten.as_view()

    anonymous = view(factory.get("/x", secure=True))
    client = view(factory.get("/x", secure=True, HTTP_AUTHORIZATION=f"Bearer {world.tokens['client_a']}"))
    staff = view(factory.get("/x", secure=True, HTTP_AUTHORIZATION=f"Bearer {world.tokens['operator']}"))

    assert (anonymous.status_code, client.status_code, staff.status_code) == (401, 403, 403)
    assert "secret" not in json.dumps(client.data)


# ------------------------------------------------------------------------------------------------ tokens


@pytest.mark.django_db
def test_only_the_hash_of_a_token_is_stored_and_it_is_recognised_by_it(world: World) -> None:
    issued = api_token_create(client_id=world.a.pk, days=1, name="treasury")

    stored = ApiToken.objects.filter(pk=issued.token.pk).values().get()
    assert issued.secret.startswith(f"wo_{issued.token.prefix}_")
    assert stored["digest"] == hashlib.sha256(issued.secret.encode()).hexdigest() == token_digest(issued.secret)
    assert not any(issued.secret in str(value) for value in stored.values())
    event = AuditEvent.objects.get(action="api_token.create", object_id=issued.token.pk)
    assert issued.secret not in json.dumps(event.payload)
    assert stored["digest"] not in json.dumps(event.payload)
    assert event.payload["prefix"] == issued.token.prefix


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "code"), [("expired", "token_expired"), ("revoked", "token_revoked"), ("forged", "token_invalid")]
)
def test_expired_revoked_and_forged_tokens_get_401_saying_which(world: World, role: str, code: str) -> None:
    token = world.tokens.get(role) or world.tokens["client_a"][:-4] + "AAAA"

    response = Api(token).get("/api/v1/accounts/")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.django_db
def test_a_client_revokes_its_token_and_it_stops_working_at_once(world: World) -> None:
    api = world.api("client_a")
    # another client's token is not found, and stays live
    assert api.delete(f"/api/v1/tokens/{world.prefixes['client_b']}/").status_code == 404
    assert world.api("client_b").get("/api/v1/accounts/").status_code == 200

    response = api.delete(f"/api/v1/tokens/{world.prefixes['client_a']}/")

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert api.get("/api/v1/accounts/").json()["error"]["code"] == "token_revoked"
    event = AuditEvent.objects.get(action="api_token.revoke")
    assert event.system_actor == f"client:{world.a.code}"


@pytest.mark.django_db
def test_token_events_keep_their_object_type_now_that_tokens_are_accounts(world: World) -> None:
    # The model moved from core to accounts (the layers); its events, stored before and written after, share
    # one name, and the chain stays whole. A name that is no model's is still refused.
    issued = api_token_create(client_id=world.a.pk, days=1)
    api_token_revoke(prefix=issued.token.prefix)

    events = AuditEvent.objects.filter(object_id=issued.token.pk, action__startswith="api_token.")
    assert ApiToken._meta.label_lower == "accounts.apitoken"
    assert sorted(events.values_list("action", "object_type")) == [
        ("api_token.create", "core.apitoken"),
        ("api_token.revoke", "core.apitoken"),
    ]
    assert audit_verify().ok
    with pytest.raises(ValidationError, match="names no installed model"), transaction.atomic():
        audit_record(AuditEntry(action="x.y", object_type="core.nosuchthing", object_id=1, system_actor="test"))


# ----------------------------------------------------------------------------------------- errors, shape


@pytest.mark.django_db
def test_errors_have_one_shape_with_a_code_and_the_field(world: World) -> None:
    api = world.api("client_a")

    missing = api.post(f"/api/v1/offers/{world.a_offer.pk}/decline/", {})
    no_key = api.post(f"/api/v1/offers/{world.a_offer.pk}/decline/", {"reason": "no"}, key=None)
    bad_json = api.http.post(
        f"/api/v1/offers/{world.a_offer.pk}/decline/",
        "{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {world.tokens['client_a']}", "Idempotency-Key": "k-json"},
        secure=True,
    )
    nowhere = api.get("/api/v1/no/such/thing/")
    not_allowed = api.http.put(
        f"/api/v1/offers/{world.a_offer.pk}/",
        {},
        content_type="application/json",
        headers={"Authorization": f"Bearer {world.tokens['client_a']}"},
        secure=True,
    )

    assert missing.json() == {"error": {"code": "required", "message": "This field is required.", "field": "reason"}}
    assert (no_key.status_code, no_key.json()["error"]["code"]) == (400, "idempotency_key_required")
    assert no_key.json()["error"]["field"] == "Idempotency-Key"
    assert (bad_json.status_code, bad_json.json()["error"]["code"]) == (400, "parse_error")
    assert (nowhere.status_code, nowhere.json()["error"]["code"]) == (404, "not_found")
    assert (not_allowed.status_code, not_allowed.json()["error"]["code"]) == (405, "method_not_allowed")


@pytest.mark.django_db
def test_a_counter_outside_the_bounds_is_refused_naming_the_field(world: World) -> None:
    api = world.api("client_a")
    bounds = api.get(f"/api/v1/offers/{world.a_offer.pk}/").json()["counter_bounds"]

    response = api.post(f"/api/v1/offers/{world.a_offer.pk}/counter/", {"term_months": bounds["max_term_months"] + 1})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == "term_months"
    assert Proposal.objects.get(pk=world.a_offer.pk).state == ProposalState.OFFERED


# ----------------------------------------------------------------------------------------- mass assignment


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("accept", {"state": "executed"}, "state"),
        ("decline", {"reason": "x", "decided_at": "2020-01-01T00:00:00Z"}, "decided_at"),
        ("counter", {"term_months": 18, "principal_haircut": "750"}, "principal_haircut"),
        ("counter", {"term_months": 18, "client": 1}, "client"),
    ],
)
def test_fields_a_client_may_not_set_are_refused_and_nothing_changes(
    world: World, path: str, body: dict[str, Any], field: str
) -> None:
    response = world.api("client_a").post(f"/api/v1/offers/{world.a_offer.pk}/{path}/", body)

    assert response.status_code == 400
    assert response.json()["error"] == {"code": "unknown_field", "message": f"unknown field {field!r}", "field": field}
    offer = Proposal.objects.get(pk=world.a_offer.pk)
    assert (offer.state, offer.terms) == (ProposalState.OFFERED, world.a_offer.terms)
    assert Proposal.objects.filter(case=world.a_case).count() == 1


@pytest.mark.django_db
def test_a_top_up_cannot_be_declared_confirmed_nor_for_another_client(world: World) -> None:
    api = world.api("client_a")
    before = CollateralTopUp.objects.count()

    confirmed = api.post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": "5", "status": "confirmed"})
    foreign = api.post("/api/v1/top-ups/", {"account": world.b_account.pk, "amount": "5"})

    assert confirmed.json()["error"]["field"] == "status"
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "not_found")
    assert CollateralTopUp.objects.count() == before


@pytest.mark.django_db
def test_read_only_endpoints_refuse_writes(world: World) -> None:
    api = world.api("client_a")
    headers = {"Authorization": f"Bearer {world.tokens['client_a']}"}
    for path in (f"/api/v1/accounts/{world.a_account.pk}/", f"/api/v1/cases/{world.a_case.pk}/"):
        patched = api.http.patch(path, {"cash": "1e9"}, content_type="application/json", headers=headers, secure=True)
        assert patched.status_code == 405
    assert api.get(f"/api/v1/accounts/{world.a_account.pk}/").json()["cash"] == "0.00"  # USD: its places


# ---------------------------------------------------------------------------------------------- money


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "code"),
    [
        (10.5, "not_a_string"),  # a JSON number: refused, it may have been a float
        (10, "not_a_string"),
        ("NaN", "invalid"),
        ("Infinity", "invalid"),
        ("1e30", "invalid"),  # plain notation only
        ("1" + "0" * 30, "max_whole_digits"),
        ("0.000000001", "max_decimal_places"),
        ("0", "min_value"),
        ("-5", "min_value"),
        ("12,50", "invalid"),
    ],
)
def test_amounts_are_decimal_strings_and_anything_else_is_refused(world: World, amount: Any, code: str) -> None:
    response = world.api("client_a").post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": amount})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["field"] == "amount"


@pytest.mark.django_db
def test_an_amount_is_kept_exactly_and_shown_as_a_string(world: World) -> None:
    MarginAccount.objects.filter(pk=world.a_account.pk).update(base_currency="BTC")  # 8 places
    response = world.api("client_a").post(
        "/api/v1/top-ups/", {"account": world.a_account.pk, "amount": "12345678901234567890.12345678"}
    )

    assert response.status_code == 201
    assert response.json()["amount"] == "12345678901234567890.12345678"
    top_up = CollateralTopUp.objects.get(pk=response.json()["id"])
    assert top_up.amount == Decimal("12345678901234567890.12345678")


# ---------------------------------------------------------------------------------------- exhaustion


@pytest.mark.django_db
def test_page_sizes_are_capped(world: World) -> None:
    now = timezone.now()
    CollateralTopUp.objects.bulk_create(
        CollateralTopUp(account=world.a_account, amount=Decimal(k + 1), declared_at=now) for k in range(230)
    )
    api = world.api("client_a")

    huge = api.get("/api/v1/top-ups/?page_size=1000000").json()
    default = api.get("/api/v1/top-ups/").json()

    assert (huge["count"], len(huge["results"])) == (231, 200)
    assert len(default["results"]) == 50


@pytest.mark.django_db
def test_a_page_or_page_size_that_is_not_a_whole_number_is_refused_naming_it(world: World) -> None:
    # found by schemathesis: a garbage page_size (repeated) and an empty page were served as the defaults
    api = world.api("client_a")
    for query, field in (
        ("page_size=abc", "page_size"),
        ("page=", "page"),
        ("page=0", "page"),
        ("page_size=5&page_size=6", "page_size"),
        ("page_size=%C2%B9", "page_size"),  # a superscript one: a digit to str.isdigit, not a number
    ):
        response = api.get(f"/api/v1/accounts/?{query}")
        assert response.status_code == 400, query
        assert response.json()["error"]["field"] == field, query
    assert api.get("/api/v1/accounts/?page=1&page_size=2").status_code == 200


@pytest.mark.django_db
def test_a_body_larger_than_the_limit_is_refused_before_it_is_read(world: World) -> None:
    api = world.api("client_a")

    response = api.post(f"/api/v1/offers/{world.a_offer.pk}/decline/", {"reason": "x" * 70_000})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert Proposal.objects.get(pk=world.a_offer.pk).state == ProposalState.OFFERED


@pytest.mark.django_db
def test_an_upload_larger_than_the_limit_is_refused(world: World) -> None:
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        response = world.api("operator").upload("/api/v1/operations/prices/", "prices.csv", b"x" * 2000)

    assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")


@pytest.mark.django_db
def test_requests_are_throttled_per_token(world: World) -> None:
    rates = {"DEFAULT_THROTTLE_RATES": {"token": "5/minute"}}
    with override_settings(REST_FRAMEWORK={**_rest_framework(), **rates}):
        a, b = world.api("client_a"), world.api("client_b")
        statuses = [a.get("/api/v1/accounts/").status_code for _ in range(6)]
        limited = a.get("/api/v1/accounts/")
        others = b.get("/api/v1/accounts/")

    assert statuses == [200] * 5 + [429]
    assert limited.json()["error"]["code"] == "throttled"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert others.status_code == 200  # per token: B is not limited by A's burst


def _rest_framework() -> dict[str, Any]:
    from django.conf import settings

    return dict(settings.REST_FRAMEWORK)


# ---------------------------------------------------------------------------------------- operations


@pytest.mark.django_db
def test_a_bad_upload_is_refused_naming_the_file_as_uploaded_and_nothing_is_imported(world: World) -> None:
    bad = b"instrument,time,price,implied_volatility\nNOPE,2026-11-01T00:00:00Z,101,\n"

    response = world.api("operator").upload("/api/v1/operations/prices/", "closes.csv", bad)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("import_file_invalid", "file")
    assert error["message"].startswith("closes.csv: ")
    assert "workout-upload-" not in error["message"]  # not our temporary directory
    assert "unknown instrument 'NOPE'" in error["message"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["../../etc/passwd", "a/b/../prices.csv", "..csv", ".hidden"])
def test_an_upload_named_to_escape_stays_a_plain_file(world: World, name: str) -> None:
    response = world.api("operator").upload("/api/v1/operations/prices/", name, b"not,a,price\n")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "import_file_invalid"


@pytest.mark.django_db
def test_a_price_upload_reports_what_it_did(world: World) -> None:
    csv = b"instrument,time,price,implied_volatility\nBTC,2026-11-01T00:00:00Z,101.5,\nBTC,2026-11-02T00:00:00Z,99,\n"

    response = world.api("operator").upload("/api/v1/operations/prices/", "closes.csv", csv)

    assert response.status_code == 200
    body = response.json()
    assert (body["file"], body["prices"], body["instruments_priced"]) == (
        "closes.csv",
        {"created": 2, "updated": 0, "deleted": 0},
        1,
    )


# ---------------------------------------------------------------------------------------- query counts


@pytest.mark.django_db
def test_list_endpoints_make_a_fixed_number_of_queries(world: World, django_assert_max_num_queries: Any) -> None:
    now = timezone.now()
    CollateralTopUp.objects.bulk_create(
        CollateralTopUp(account=world.a_account, amount=Decimal(k + 1), declared_at=now) for k in range(30)
    )
    api = world.api("client_a")
    api.get("/api/v1/accounts/")  # last_used_at is written at most once a minute: not in the counts below

    for path in ("/api/v1/accounts/", "/api/v1/cases/", "/api/v1/offers/", "/api/v1/top-ups/"):
        with django_assert_max_num_queries(3):  # the token, the count, the page
            assert api.get(path).status_code == 200


# --------------------------------------------------------------------- an accept bound to the terms read


@pytest.mark.django_db
def test_an_accept_naming_other_terms_than_the_offers_is_a_conflict_and_changes_nothing(world: World) -> None:
    api = world.api("client_a")
    path = f"/api/v1/offers/{world.a_offer.pk}/"
    read = api.get(path).json()
    assert read["terms_hash"] == Proposal.objects.get(pk=world.a_offer.pk).terms_hash
    events = AuditEvent.objects.count()

    stale = api.post(f"{path}accept/", {"terms_hash": "f" * 64})
    malformed = api.post(f"{path}accept/", {"terms_hash": "not-a-hash"})

    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "terms_changed"
    assert malformed.status_code == 400
    assert malformed.json()["error"]["field"] == "terms_hash"
    assert Proposal.objects.get(pk=world.a_offer.pk).state == ProposalState.OFFERED
    assert AuditEvent.objects.count() == events

    accepted = api.post(f"{path}accept/", {"terms_hash": read["terms_hash"]})

    assert accepted.status_code == 200
    assert accepted.json()["state"] == "accepted"
