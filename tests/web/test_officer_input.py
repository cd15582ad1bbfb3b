"""What the officers' forms take (issue 14): an offer stands at most WORKOUT_OFFER_MAX_HOURS (1e8 hours was a 500:
past the year 9999), and amounts typed into the forms follow the one grammar of numbers (core.amounts) and their
currency's places: a refusal is a message naming the field, and nothing is recorded."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User

from core.errors import ValidationError
from core.models import AuditEvent
from restructuring.models import Case, Proposal, ProposalState
from restructuring.roles import CREDIT_OFFICER
from restructuring.services.negotiation.offers import offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_actions import TERMS_FORM
from tests.web.test_officer_pages import proposed_case

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def alice() -> User:
    return staff_user("alice", CREDIT_OFFICER)


@pytest.fixture
def case() -> Case:
    return proposed_case()


@pytest.fixture
def approved(case: Case) -> Proposal:
    proposal = Proposal.objects.get(case=case)
    bob = staff_user("bob", CREDIT_OFFICER)
    assert proposal_approve(proposal_id=proposal.pk, actor=bob, version=1, override_reason="test book").approved
    return proposal


def _messages(response: Any) -> str:
    return " ".join(re.findall(r'<ul class="messages">(.*?)</ul>', response.content.decode(), re.S))


@pytest.mark.parametrize(
    ("hours", "message"),
    [
        ("1e8", "&#x27;1e8&#x27; is not a plain decimal number"),
        ("100000000", "Ensure this value is less than or equal to 720"),
        ("720.01", "Ensure this value is less than or equal to 720"),
        ("0", "Ensure this value is greater than or equal to 0.1"),
        ("\uff14\uff18", "is not a plain decimal number"),
        (" 48", "is not a plain decimal number"),
    ],
)
def test_an_offer_for_too_long_or_oddly_written_hours_is_refused_and_nothing_is_sent(
    alice: User, approved: Proposal, hours: str, message: str
) -> None:
    events = AuditEvent.objects.count()

    response = signed_in(alice).post(f"/proposals/{approved.pk}/offer/", {"version": "1", "hours": hours}, follow=True)

    assert response.status_code == 200
    assert message in _messages(response)
    assert Proposal.objects.get(pk=approved.pk).state == ProposalState.APPROVED
    assert AuditEvent.objects.count() == events


def test_an_offer_for_the_longest_hours_allowed_stands_that_long(alice: User, approved: Proposal) -> None:
    response = signed_in(alice).post(f"/proposals/{approved.pk}/offer/", {"version": "1", "hours": "720"}, follow=True)

    offered = Proposal.objects.get(pk=approved.pk)
    assert "offered to the client until" in _messages(response)
    assert offered.state == ProposalState.OFFERED
    assert offered.expires_at is not None
    assert offered.offered_at is not None
    assert (offered.expires_at - offered.offered_at).total_seconds() == 720 * 3600


@pytest.mark.parametrize("hours", [1e8, 720.5, 0, -1, float("nan"), float("inf")])
def test_the_service_bounds_the_hours_whoever_calls_it(alice: User, approved: Proposal, hours: float) -> None:
    with pytest.raises(ValidationError, match="an offer stands more than 0 and at most 720 hours") as refused:
        offer_send(proposal_id=approved.pk, actor=alice, version=1, hours=hours)

    assert refused.value.context["field"] == "hours"
    assert Proposal.objects.get(pk=approved.pk).state == ProposalState.APPROVED


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("new-collateral_to_add", "\uff11\uff12\uff13", "is not a plain decimal number"),
        ("new-collateral_to_add", "1_000", "is not a plain decimal number"),
        ("new-collateral_to_add", " 5", "is not a plain decimal number"),
        ("new-principal_haircut", "1e3", "is not a plain decimal number"),
        ("new-rate_annual", "0.0\uff17", "is not a plain decimal number"),
        ("new-collateral_to_add", "9" * 5000, "is too large: at most 20 digits before the decimal point"),
        ("new-collateral_to_add", "10.005", "10.005 has more than 2 decimal places, the places of USD"),
        ("new-principal_haircut", "0.001", "0.001 has more than 2 decimal places, the places of USD"),
    ],
)
def test_amounts_in_the_terms_form_are_written_plainly_in_their_currencys_places(
    alice: User, case: Case, field: str, value: str, message: str
) -> None:
    events = AuditEvent.objects.count()

    response = signed_in(alice).post(f"/cases/{case.pk}/proposals/new/", {**TERMS_FORM, field: value})

    assert response.status_code == 200
    paragraph = re.search(rf'<p class="invalid">[^\n]*name="{field}"[^\n]*', response.content.decode())
    assert paragraph is not None
    assert message in paragraph.group(0).replace("&#x27;", "'")
    assert not Proposal.objects.filter(source="officer").exists()
    assert AuditEvent.objects.count() == events
