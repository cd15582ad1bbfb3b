"""Proposals the client may not see (issue 14): a proposal never offered to the client (an officer's draft, one
approved but not sent, one rejected before it was offered) does not exist for the client on any route: 404, never a
409 that names its internal state. And ownership is checked before any row lock: a request naming another client's
offer is a 404 at once, even while that offer's rows are locked by someone else (it neither waits behind the lock
nor takes one)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from core.models import AuditEvent
from restructuring.models import Proposal, ProposalSource, ProposalState
from tests.api.conftest import World
from tests.restructuring.helpers import LockHolder, start_in_thread


def _unoffered(world: World, state: str) -> Proposal:
    """A proposal on client A's own case that was never offered to it."""
    now = timezone.now()
    return Proposal.objects.create(
        case=world.a_case,
        source=ProposalSource.OFFICER,
        source_key=f"officer:{state}",
        state=state,
        name="an officer's idea",
        terms={"term_months": 18},
        made_by=User.objects.get(username="alice"),
        created_at=now,
    )


def _routes(pk: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("get", f"/api/v1/offers/{pk}/", {}),
        ("post", f"/api/v1/offers/{pk}/accept/", {}),
        ("post", f"/api/v1/offers/{pk}/decline/", {"reason": "no"}),
        ("post", f"/api/v1/offers/{pk}/counter/", {"term_months": 13}),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "state", [ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED, ProposalState.WITHDRAWN]
)
def test_a_proposal_never_offered_is_not_found_on_every_route(world: World, state: str) -> None:
    hidden = _unoffered(world, state)
    api = world.api("client_a")
    events = AuditEvent.objects.count()

    for method, path, body in _routes(hidden.pk):
        response = api.get(path) if method == "get" else api.post(path, body)

        assert response.status_code == 404, (path, response.content)
        assert response.json()["error"]["code"] == "not_found"
        assert state not in response.json()["error"]["message"], path  # nothing of its internal state
    assert hidden.pk not in [offer["id"] for offer in api.get("/api/v1/offers/").json()["results"]]
    timeline = api.get(f"/api/v1/cases/{world.a_case.pk}/").json()["timeline"]
    assert all(not (e["object"] == "offer" and e["object_id"] == hidden.pk) for e in timeline)
    assert Proposal.objects.get(pk=hidden.pk).state == state
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_another_clients_offer_and_a_hidden_one_answer_alike(world: World) -> None:
    hidden = _unoffered(world, ProposalState.APPROVED)
    api = world.api("client_a")

    for pk in (hidden.pk, world.b_offer.pk, 10**9):
        response = api.post(f"/api/v1/offers/{pk}/accept/", {})

        assert (response.status_code, response.json()["error"]) == (
            404,
            {"code": "not_found", "message": f"offer {pk} does not exist", "field": None},
        )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("action", "body"), [("accept", {}), ("decline", {"reason": "no"}), ("counter", {"term_months": 13})]
)
def test_a_request_on_another_clients_locked_offer_is_a_prompt_404(
    committed_world: World, action: str, body: dict[str, Any]
) -> None:
    world = committed_world
    # another connection holds the offer's row lock and its case's, as a transaction acting on them would
    holder = LockHolder(
        "SELECT p.id FROM restructuring_proposal p JOIN restructuring_case c ON c.id = p.case_id "
        "WHERE p.id = %s FOR UPDATE",
        [world.b_offer.pk],
    )
    try:
        started = time.monotonic()
        request, outcome = start_in_thread(
            lambda: world.api("client_a").post(f"/api/v1/offers/{world.b_offer.pk}/{action}/", body)
        )
        request.join(timeout=5)
        waited = time.monotonic() - started

        assert not request.is_alive(), "the foreign request waited behind the other client's row lock"
        assert waited < 5
        [result] = outcome
        assert result.error is None, result.error
        assert result.value.status_code == 404
        assert result.value.json()["error"]["code"] == "not_found"
    finally:
        holder.release()
        request.join(timeout=30)
    connection.close()
    assert Proposal.objects.get(pk=world.b_offer.pk).state == ProposalState.OFFERED
