"""Concurrency on PostgreSQL with real threads (RELIABILITY.md: idempotent replay, double submit; issue 7):
ten requests with one key, two accepts with two keys or one, accept racing decline. One outcome, one effect,
one audit event per transition, and the audit chain verifies."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from core.audit import audit_verify
from core.models import AuditEvent, IdempotencyRecord
from restructuring.models import CaseState, CollateralTopUp, Proposal, ProposalState
from tests.api.conftest import Api, World
from tests.restructuring.helpers import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _post(token: str, path: str, body: dict[str, Any], key: str) -> Any:
    def send() -> Any:
        return Api(token).post(path, body, key=key)

    return send


def _results(works: list[Any]) -> list[Any]:
    outcomes = run_together(*works)
    assert all(outcome.error is None for outcome in outcomes), [o.error for o in outcomes]
    return [outcome.value for outcome in outcomes]


def _invariants() -> None:
    assert audit_verify().ok
    per_object = Counter(
        (e.action, e.object_id) for e in AuditEvent.objects.filter(object_type="restructuring.proposal")
    )
    assert all(n == 1 for n in per_object.values()), per_object  # one event per transition of each proposal


def test_ten_requests_at_once_with_one_key_make_one_top_up_and_ten_equal_answers(committed_world: World) -> None:
    world = committed_world
    body = {"account": world.a_account.pk, "amount": "75.00", "reference": "wire 9"}
    key = str(uuid.uuid4())
    before = CollateralTopUp.objects.count()

    responses = _results([_post(world.tokens["client_a"], "/api/v1/top-ups/", body, key) for _ in range(10)])

    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.content for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 9
    assert CollateralTopUp.objects.count() == before + 1
    top_up_id = responses[0].json()["id"]
    assert AuditEvent.objects.filter(action="topup.declare", object_id=top_up_id).count() == 1
    assert IdempotencyRecord.objects.filter(key=key).count() == 1
    _invariants()


def test_two_accepts_with_two_keys_one_wins_the_other_gets_a_conflict(committed_world: World) -> None:
    world = committed_world
    path = f"/api/v1/offers/{world.a_offer.pk}/accept/"
    token = world.tokens["client_a"]

    responses = _results([_post(token, path, {}, "accept-1"), _post(token, path, {}, "accept-2")])

    assert sorted(r.status_code for r in responses) == [200, 409]
    offer = Proposal.objects.select_related("case").get(pk=world.a_offer.pk)
    assert (offer.state, offer.case.state) == (ProposalState.ACCEPTED, CaseState.ACCEPTED)
    assert AuditEvent.objects.filter(action="proposal.accept").count() == 1
    assert AuditEvent.objects.filter(action="case.accept").count() == 1
    _invariants()


def test_two_accepts_with_one_key_are_one_accept_answered_twice(committed_world: World) -> None:
    world = committed_world
    path = f"/api/v1/offers/{world.a_offer.pk}/accept/"
    token = world.tokens["client_a"]

    responses = _results([_post(token, path, {}, "same"), _post(token, path, {}, "same")])

    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].json() == responses[1].json()
    assert AuditEvent.objects.filter(action="proposal.accept").count() == 1
    assert AuditEvent.objects.filter(action="case.accept").count() == 1
    _invariants()


def test_accept_racing_decline_leaves_exactly_one_outcome(committed_world: World) -> None:
    world = committed_world
    offer = f"/api/v1/offers/{world.a_offer.pk}"
    token = world.tokens["client_a"]

    accepted, declined = _results(
        [_post(token, f"{offer}/accept/", {}, "a"), _post(token, f"{offer}/decline/", {"reason": "no"}, "d")]
    )

    assert sorted([accepted.status_code, declined.status_code]) == [200, 409]
    loser = declined if accepted.status_code == 200 else accepted
    assert loser.json()["error"]["code"] == "negotiation_conflict"
    state = Proposal.objects.get(pk=world.a_offer.pk).state
    assert state == (ProposalState.ACCEPTED if accepted.status_code == 200 else ProposalState.DECLINED)
    actions = set(AuditEvent.objects.filter(object_id=world.a_offer.pk).values_list("action", flat=True))
    assert len(actions & {"proposal.accept", "proposal.decline"}) == 1
    assert AuditEvent.objects.filter(action__in=["case.accept", "case.decline"]).count() == 1
    _invariants()
