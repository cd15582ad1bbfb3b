"""Idempotency-Key (RELIABILITY.md "idempotent replay"): the same key and body replays the first response
without a second effect; the same key with another body is refused (422); keys are per caller; what was
refused before executing is not kept; what executed (a domain error too) is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.models import AuditEvent, IdempotencyRecord
from restructuring.models import CollateralTopUp, Proposal, ProposalState
from tests.api.conftest import World


def _top_up_body(world: World, amount: str = "25.00") -> dict[str, object]:
    return {"account": world.a_account.pk, "amount": amount, "reference": "wire 7"}


@pytest.mark.django_db
def test_the_same_key_and_body_replays_the_first_response_and_acts_once(world: World) -> None:
    api = world.api("client_a")
    before = CollateralTopUp.objects.count()

    first = api.post("/api/v1/top-ups/", _top_up_body(world), key="k-1")
    again = api.post("/api/v1/top-ups/", _top_up_body(world), key="k-1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert CollateralTopUp.objects.count() == before + 1
    assert AuditEvent.objects.filter(action="topup.declare", object_id=first.json()["id"]).count() == 1
    record = IdempotencyRecord.objects.get(key="k-1")
    assert (record.scope, record.response_status) == (f"client:{world.a.pk}", 201)


@pytest.mark.django_db
def test_the_same_key_with_another_body_or_path_is_refused_with_422(world: World) -> None:
    api = world.api("client_a")
    api.post("/api/v1/top-ups/", _top_up_body(world), key="k-2")

    other_body = api.post("/api/v1/top-ups/", _top_up_body(world, "26.00"), key="k-2")
    other_path = api.post(f"/api/v1/offers/{world.a_offer.pk}/accept/", {}, key="k-2")

    for response in (other_body, other_path):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert response.json()["error"]["field"] == "Idempotency-Key"
    assert Proposal.objects.get(pk=world.a_offer.pk).state == ProposalState.OFFERED
    assert CollateralTopUp.objects.filter(account=world.a_account).count() == 2  # the fixture's and k-2's


@pytest.mark.django_db
def test_keys_are_scoped_per_client(world: World) -> None:
    a = world.api("client_a").post("/api/v1/top-ups/", _top_up_body(world), key="shared")
    b = world.api("client_b").post(
        "/api/v1/top-ups/", {"account": world.b_account.pk, "amount": "25.00", "reference": "wire 7"}, key="shared"
    )

    assert (a.status_code, b.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in b.headers
    assert a.json()["id"] != b.json()["id"]
    assert b.json()["account"] == world.b_account.pk


@pytest.mark.django_db
def test_input_refused_before_executing_is_not_kept_so_the_key_can_be_used_for_the_fixed_request(
    world: World,
) -> None:
    api = world.api("client_a")

    refused = api.post("/api/v1/top-ups/", {"account": world.a_account.pk, "amount": 12.5}, key="k-3")
    fixed = api.post("/api/v1/top-ups/", _top_up_body(world), key="k-3")

    assert (refused.status_code, fixed.status_code) == (400, 201)
    assert "Idempotent-Replayed" not in fixed.headers


@pytest.mark.django_db
def test_a_domain_error_is_kept_and_replayed(world: World) -> None:
    api = world.api("client_a")
    path = f"/api/v1/offers/{world.a_offer.pk}"
    assert api.post(f"{path}/accept/", {}, key="accept").status_code == 200

    declined = api.post(f"{path}/decline/", {"reason": "changed my mind"}, key="decline")
    again = api.post(f"{path}/decline/", {"reason": "changed my mind"}, key="decline")

    assert (declined.status_code, declined.json()["error"]["code"]) == (409, "negotiation_conflict")
    assert (again.status_code, again.json()) == (409, declined.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert not AuditEvent.objects.filter(action="proposal.decline").exists()


@pytest.mark.django_db
def test_an_accept_retried_after_it_succeeded_gets_the_same_answer_not_a_conflict(world: World) -> None:
    api = world.api("client_a")
    path = f"/api/v1/offers/{world.a_offer.pk}/accept/"

    first = api.post(path, {}, key="retry-me")
    retry = api.post(path, {}, key="retry-me")
    new_key = api.post(path, {}, key="another")

    assert (first.status_code, retry.status_code, new_key.status_code) == (200, 200, 409)
    assert retry.json() == first.json()
    assert first.json()["state"] == "accepted"
    assert AuditEvent.objects.filter(action="proposal.accept").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["has space", "x" * 256, "é"])
def test_a_malformed_key_is_refused(world: World, key: str) -> None:
    response = world.api("client_a").post("/api/v1/top-ups/", _top_up_body(world), key=key)

    assert (response.status_code, response.json()["error"]["code"]) == (400, "idempotency_key_invalid")


@pytest.mark.django_db
def test_an_expired_offer_cannot_be_accepted(world: World) -> None:
    Proposal.objects.filter(pk=world.a_offer.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = world.api("client_a").post(f"/api/v1/offers/{world.a_offer.pk}/accept/", {})

    assert (response.status_code, response.json()["error"]["code"]) == (409, "negotiation_conflict")
    assert "expired" in response.json()["error"]["message"]
    assert Proposal.objects.get(pk=world.a_offer.pk).state == ProposalState.OFFERED
    assert not AuditEvent.objects.filter(action="proposal.accept").exists()
