"""The restructuring agreement through the API (issue 18): GET /api/v1/offers/{id}/agreement/ gives the PDF kept
when the offer was sent, its SHA-256 in X-Agreement-SHA256 and in the offer's agreement_sha256; an accept naming
another agreement is 409 and applies nothing; an earlier offer's agreement is never accepted; two accepts at once
naming different agreements have one outcome."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import TestCase
from django.utils import timezone

from core.audit import audit_verify
from core.models import AuditEvent
from restructuring.models import Agreement, CaseState, Proposal, ProposalSource, ProposalState
from restructuring.services.negotiation.offers import offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from tests.api.conftest import Api, World
from tests.restructuring.helpers import run_together

pytestmark = pytest.mark.django_db


def _agreement(api: Api, offer_id: int) -> Any:
    return api.get(f"/api/v1/offers/{offer_id}/agreement/")


def _counter_offered(world: World) -> tuple[Proposal, Agreement, Agreement]:
    """Client A counters its offer through the API; the officers approve the counter-offer and send it: a new offer,
    with a new agreement. Returns the new offer, the old agreement and the new one."""
    api = world.api("client_a")
    with TestCase.captureOnCommitCallbacks(execute=True):
        countered = api.post(f"/api/v1/offers/{world.a_offer.pk}/counter/", {"term_months": 18})
    assert countered.status_code == 201, countered.json()
    counter_id = countered.json()["id"]
    officer = User.objects.get(username="alice")
    assert proposal_approve(proposal_id=counter_id, actor=officer, version=1, override_reason="test book").approved
    offer = offer_send(proposal_id=counter_id, actor=officer, version=1)
    return offer, Agreement.objects.get(proposal=world.a_offer), Agreement.objects.get(proposal=offer)


def test_the_client_downloads_the_agreement_it_was_offered_with_its_hash(world: World) -> None:
    api = world.api("client_a")
    kept = Agreement.objects.get(proposal=world.a_offer)

    response = _agreement(api, world.a_offer.pk)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    digest = hashlib.sha256(response.content).hexdigest()
    assert response["X-Agreement-SHA256"] == digest == kept.sha256
    assert response["Content-Disposition"] == f'attachment; filename="agreement-offer-{world.a_offer.pk}.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    # the offer's JSON names the same document, in the list and in full
    assert api.get(f"/api/v1/offers/{world.a_offer.pk}/").json()["agreement_sha256"] == digest
    [listed] = [o for o in api.get("/api/v1/offers/").json()["results"] if o["id"] == world.a_offer.pk]
    assert listed["agreement_sha256"] == digest
    # the same bytes every time, whatever the Accept header asks (a PDF reader asks for a PDF)
    again = api.get(f"/api/v1/offers/{world.a_offer.pk}/agreement/", Accept="application/pdf")
    assert (again.status_code, again.content) == (200, response.content)


def test_no_agreement_for_another_clients_offer_nor_for_an_offer_sent_without_one(world: World) -> None:
    api = world.api("client_a")
    now = timezone.now()
    # an offer of client A's sent before agreements were drawn (a row as it was then)
    legacy = Proposal.objects.create(
        case=world.a_case,
        source=ProposalSource.RULES,
        source_key="before-agreements",
        state=ProposalState.OFFERED,
        name="legacy",
        terms={"term_months": 12},
        offered_at=now,
        expires_at=now + timedelta(hours=24),
        created_at=now,
    )

    foreign = _agreement(api, world.b_offer.pk)
    unsent = _agreement(api, legacy.pk)

    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "not_found"
    assert unsent.status_code == 404
    assert unsent.json()["error"]["message"] == f"offer {legacy.pk} has no agreement document"
    assert api.get(f"/api/v1/offers/{legacy.pk}/").json()["agreement_sha256"] is None
    assert world.api("client_b").get(f"/api/v1/offers/{world.a_offer.pk}/agreement/").status_code == 404


def test_an_accept_naming_another_agreement_is_refused_and_applies_nothing(world: World) -> None:
    api = world.api("client_a")
    path = f"/api/v1/offers/{world.a_offer.pk}/accept/"
    kept = Agreement.objects.get(proposal=world.a_offer)
    events = AuditEvent.objects.count()

    refused = api.post(path, {"agreement_sha256": "ab" * 32})

    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "agreement_mismatch"
    assert f"agreement_sha256 {'ab' * 32} is not this offer's agreement" in error["message"]
    assert kept.sha256 in error["message"]
    assert AuditEvent.objects.count() == events
    offer = Proposal.objects.select_related("case").get(pk=world.a_offer.pk)
    assert (offer.state, offer.case.state, offer.accepted_agreement_id) == ("offered", "offered", None)
    # malformed: a 400 naming the field, before anything is looked at
    malformed = api.post(path, {"agreement_sha256": "ABC"})
    assert malformed.status_code == 400
    assert malformed.json()["error"]["field"] == "agreement_sha256"

    accepted = api.post(path, {"agreement_sha256": kept.sha256, "terms_hash": world.a_offer.terms_hash})

    assert accepted.status_code == 200, accepted.json()
    assert accepted.json()["state"] == "accepted"
    assert accepted.json()["agreement_sha256"] == kept.sha256
    assert Proposal.objects.get(pk=world.a_offer.pk).accepted_agreement_id == kept.pk
    assert AuditEvent.objects.get(action="proposal.accept").payload["agreement_sha256"] == kept.sha256


def test_after_a_counter_offer_only_the_new_agreement_is_accepted(world: World) -> None:
    api = world.api("client_a")
    offer, old, new = _counter_offered(world)
    assert new.sha256 != old.sha256
    # the old agreement stays downloadable, as it was, with the old offer
    assert hashlib.sha256(_agreement(api, world.a_offer.pk).content).hexdigest() == old.sha256
    assert _agreement(api, offer.pk)["X-Agreement-SHA256"] == new.sha256

    stale = api.post(f"/api/v1/offers/{offer.pk}/accept/", {"agreement_sha256": old.sha256})
    old_offer = api.post(f"/api/v1/offers/{world.a_offer.pk}/accept/", {"agreement_sha256": old.sha256})

    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "agreement_mismatch"
    assert f"is the agreement of offer {world.a_offer.pk}" in stale.json()["error"]["message"]
    assert old_offer.status_code == 409  # countered: no longer an open offer
    assert old_offer.json()["error"]["code"] == "negotiation_conflict"
    assert Proposal.objects.get(pk=offer.pk).state == ProposalState.OFFERED
    assert not AuditEvent.objects.filter(action="proposal.accept").exists()

    accepted = api.post(f"/api/v1/offers/{offer.pk}/accept/", {"agreement_sha256": new.sha256})
    assert accepted.status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_accepts_at_once_naming_different_agreements_have_one_outcome(committed_world: World) -> None:
    world = committed_world
    offer, old, new = _counter_offered(world)
    token = world.tokens["client_a"]
    path = f"/api/v1/offers/{offer.pk}/accept/"

    def accept(sha256: str, key: str) -> Any:
        return lambda: Api(token).post(path, {"agreement_sha256": sha256}, key=key)

    outcomes = run_together(accept(new.sha256, "with-the-new"), accept(old.sha256, "with-the-old"))

    assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
    right, wrong = (o.value for o in outcomes)
    assert right.status_code == 200
    assert wrong.status_code == 409  # agreement_mismatch, or negotiation_conflict if the right one won first
    assert wrong.json()["error"]["code"] in ("agreement_mismatch", "negotiation_conflict")
    accepted = Proposal.objects.select_related("case").get(pk=offer.pk)
    assert (accepted.state, accepted.case.state) == (ProposalState.ACCEPTED, CaseState.ACCEPTED)
    assert accepted.accepted_agreement_id == new.pk
    [event] = AuditEvent.objects.filter(action="proposal.accept")
    assert (event.object_id, event.payload["agreement_sha256"]) == (offer.pk, new.sha256)
    assert audit_verify().ok
