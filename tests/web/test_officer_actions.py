"""The credit officer's actions from the case page: draft and edit terms (validated by the services, refusals shown at
the field), submit, approve with four eyes and authority limits, reject with a reason, offer, execute, record a
repayment, send to liquidation. Each is a POST that calls one service and comes back to the case with a message;
every one is refused to compliance, to clients and without the CSRF token."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from core.models import AuditEvent
from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import (
    Approval,
    ApprovalLimit,
    Case,
    CaseState,
    Installment,
    InstallmentStatus,
    LiquidationPlan,
    Proposal,
    ProposalState,
)
from restructuring.services.negotiation.offers import offer_accept, offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import proposed_case, text

pytestmark = [
    pytest.mark.django_db,
]

# The test book's client has no cash: the model flags its proposals, so approving one takes an override reason
# (the guardrail itself: test_approval_guardrails below). Each form carries the version it was loaded with.
APPROVE = {"version": "1", "override_reason": "the client's other assets, known to the desk"}

TERMS_FORM = {
    "new-name": "six months",
    "new-term_months": "6",
    "new-rate_annual": "0.07",
    "new-kind": "level",
    "new-moratorium_months": "0",
    "new-grace_interest_months": "0",
    "new-grace_principal_months": "0",
    "new-arrears_treatment": "capitalise",
    "new-collateral_to_add": "0",
    "new-principal_haircut": "0",
}


@pytest.fixture
def alice() -> User:
    return staff_user("alice", CREDIT_OFFICER)


@pytest.fixture
def bob() -> User:
    return staff_user("bob", CREDIT_OFFICER)


@pytest.fixture
def sam() -> User:
    return staff_user("sam", SENIOR_CREDIT_OFFICER)


@pytest.fixture
def case() -> Case:
    return proposed_case()


@pytest.fixture
def proposal(case: Case) -> Proposal:
    return Proposal.objects.get(case=case)


def _messages(response: Any) -> str:
    return " ".join(re.findall(r'<ul class="messages">(.*?)</ul>', response.content.decode(), re.S))


def _follow(web: Client, url: str, data: dict[str, Any] | None = None) -> Any:
    response = web.post(url, data or {}, follow=True)
    assert response.status_code == 200
    return response


def _state(proposal: Proposal) -> str:
    return str(Proposal.objects.get(pk=proposal.pk).state)


# ------------------------------------------------------------------------------------------- draft and edit


def test_an_officer_drafts_a_proposal_valued_on_the_latest_report(alice: User, case: Case) -> None:
    web = signed_in(alice)

    response = web.post(f"/cases/{case.pk}/proposals/new/", TERMS_FORM)

    drafted = Proposal.objects.get(case=case, source="officer")
    assert response.status_code == 302
    assert response["Location"] == f"/cases/{case.pk}/#proposal-{drafted.pk}"
    assert (drafted.name, drafted.state, drafted.made_by) == ("six months", ProposalState.DRAFT, alice)
    assert drafted.terms["term_months"] == 6
    assert drafted.terms["rate_annual"] == "0.07"
    assert drafted.expected_pv is not None
    page = web.get(response["Location"])
    assert f"Proposal {drafted.pk} drafted" in _messages(page)
    assert "Repayment schedule: 6 installments" in text(page)


def test_a_reduction_is_a_fraction_of_an_open_position(alice: User, case: Case) -> None:
    position = case.account.positions.get()
    web = signed_in(alice)

    web.post(f"/cases/{case.pk}/proposals/new/", {**TERMS_FORM, f"new-reduce_{position.pk}": "0.25"})

    assert Proposal.objects.get(source="officer").terms["reduce"] == [[position.pk, "0.25"]]


@pytest.mark.parametrize(
    ("field", "value", "shown_at", "message"),
    [
        ("new-rate_annual", "8", "new-rate_annual", "must be at most 1 (a rate is a fraction: 0.08 is 8%)"),
        ("new-term_months", "48", "new-term_months", "48 is longer than the 36 valued"),
        ("new-moratorium_months", "-1", "new-moratorium_months", "must be a whole number"),
        ("new-collateral_to_add", "-5", "new-collateral_to_add", "must be a finite number"),
        ("reduce", "1.5", "new-reduce_", "must be at most 1"),
    ],
)
def test_terms_the_service_refuses_are_shown_at_their_field(
    alice: User, case: Case, field: str, value: str, shown_at: str, message: str
) -> None:
    position = case.account.positions.get()
    if field == "reduce":
        field = shown_at = f"new-reduce_{position.pk}"
    web = signed_in(alice)

    response = web.post(f"/cases/{case.pk}/proposals/new/", {**TERMS_FORM, field: value})

    assert response.status_code == 200
    body = response.content.decode()
    # the error sits in the field's own paragraph, which is marked invalid and keeps what was typed
    paragraph = re.search(rf'<p class="invalid">[^\n]*name="{shown_at}"[^\n]*', body)
    assert paragraph is not None, body[:3000]
    assert message in paragraph.group(0)
    assert f'value="{value}"' in paragraph.group(0)
    assert not Proposal.objects.filter(source="officer").exists()


def test_a_preview_shows_schedule_and_value_and_stores_nothing(alice: User, case: Case) -> None:
    web = signed_in(alice)
    events = AuditEvent.objects.count()

    response = web.post(f"/cases/{case.pk}/proposals/new/", {**TERMS_FORM, "preview": "1"})

    page = text(response)
    assert "Preview on the current market (nothing stored)" in page
    assert len(re.findall(r"\d{4}-\d\d-\d\d \$\d", page.split("Preview on the current market")[1])) == 6
    assert not Proposal.objects.filter(source="officer").exists()
    assert AuditEvent.objects.count() == events
    # asked by htmx: the preview alone, for the form's preview box
    partial = web.post(
        f"/cases/{case.pk}/proposals/new/",
        {**TERMS_FORM, "preview": "1"},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="terms-preview",
    )
    assert "<html" not in partial.content.decode()
    assert "Preview on the current market" in text(partial)


def test_editing_terms_voids_the_approvals_and_makes_the_editor_the_maker(
    alice: User, bob: User, proposal: Proposal
) -> None:
    ApprovalLimit.objects.create(user=bob, currency="USD", amount=Decimal(100))
    assert not proposal_approve(proposal_id=proposal.pk, actor=bob, version=1, override_reason="x").approved
    web = signed_in(alice)

    form = web.get(f"/proposals/{proposal.pk}/edit/")
    assert 'name="edit-term_months" value="12"' in form.content.decode()
    response = web.post(
        f"/proposals/{proposal.pk}/edit/", {k.replace("new-", "edit-"): v for k, v in TERMS_FORM.items()}
    )

    edited = Proposal.objects.get(pk=proposal.pk)
    assert response.status_code == 302
    assert (edited.state, edited.made_by, edited.terms["term_months"]) == (ProposalState.DRAFT, alice, 6)
    page = web.get(response["Location"])
    assert "void: terms edited since" in text(page)
    assert "approvals given are void" in _messages(page)


# --------------------------------------------------------------------------------------- four eyes, limits


def test_a_second_approval_is_needed_above_the_officers_limit_then_a_senior_approves(
    alice: User, sam: User, proposal: Proposal
) -> None:
    ApprovalLimit.objects.create(user=alice, currency="USD", amount=Decimal(500))  # the debt is 750

    first = _follow(signed_in(alice), f"/proposals/{proposal.pk}/approve/", APPROVE)

    assert "a second approval is needed" in _messages(first)
    assert "limit covers $750.00" in _messages(first)
    assert _state(proposal) == ProposalState.PENDING_APPROVAL
    assert "Still needed: an approval by someone whose limit covers $750.00" in text(first)

    second = _follow(signed_in(sam), f"/proposals/{proposal.pk}/approve/", APPROVE)

    assert f"Proposal {proposal.pk} approved" in _messages(second)
    assert _state(proposal) == ProposalState.APPROVED
    assert 'data-proposal-state="approved"' in second.content.decode()
    assert "Still needed" not in text(second)
    assert list(Approval.objects.filter(proposal=proposal).values_list("approver__username", flat=True)) == [
        "alice",
        "sam",
    ]


def test_the_maker_may_not_approve_their_own_terms(alice: User, case: Case) -> None:
    web = signed_in(alice)
    web.post(f"/cases/{case.pk}/proposals/new/", TERMS_FORM)
    drafted = Proposal.objects.get(source="officer")
    _follow(web, f"/proposals/{drafted.pk}/submit/")
    assert _state(drafted) == ProposalState.PENDING_APPROVAL

    response = _follow(web, f"/proposals/{drafted.pk}/approve/", APPROVE)

    assert "another officer must approve" in _messages(response)
    assert _state(drafted) == ProposalState.PENDING_APPROVAL
    assert not Approval.objects.filter(proposal=drafted).exists()


def test_approving_twice_is_a_conflict_shown_as_a_message(alice: User, bob: User, proposal: Proposal) -> None:
    ApprovalLimit.objects.create(user=alice, currency="USD", amount=Decimal(1))
    web = signed_in(alice)
    _follow(web, f"/proposals/{proposal.pk}/approve/", APPROVE)

    response = _follow(web, f"/proposals/{proposal.pk}/approve/", APPROVE)

    assert "already approved version 1" in _messages(response)
    assert Approval.objects.filter(proposal=proposal).count() == 1


# ---------------------------------------------------------------------------------------- reject, liquidate


def test_rejecting_needs_a_reason_and_the_case_goes_back_to_margin_call(alice: User, proposal: Proposal) -> None:
    web = signed_in(alice)

    refused = _follow(web, f"/proposals/{proposal.pk}/reject/", {"reason": ""})
    assert "needs a reason" in _messages(refused)
    assert _state(proposal) == ProposalState.PENDING_APPROVAL

    done = _follow(web, f"/proposals/{proposal.pk}/reject/", {"reason": "collateral is not credible"})

    rejected = Proposal.objects.get(pk=proposal.pk)
    assert (rejected.state, rejected.decision_reason) == (ProposalState.WITHDRAWN, "collateral is not credible")
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.MARGIN_CALL
    assert f"Proposal {proposal.pk} rejected" in _messages(done)
    assert "proposal.reject" in text(done).split("Timeline")[1]


def test_sending_a_case_to_liquidation_takes_two_officers(alice: User, bob: User, case: Case) -> None:
    web = signed_in(alice)

    proposed = _follow(web, f"/cases/{case.pk}/liquidate/", {"reason": "client unreachable"})

    liquidation = Proposal.objects.get(case=case, kind="liquidate")
    assert "another officer approves it" in _messages(proposed)
    assert (liquidation.state, liquidation.made_by) == (ProposalState.PENDING_APPROVAL, alice)
    assert Case.objects.get(pk=case.pk).state == CaseState.PROPOSED
    assert not LiquidationPlan.objects.filter(case=case).exists()
    refused = _follow(web, f"/proposals/{liquidation.pk}/approve/", {"version": "1"})
    assert "another officer must approve" in _messages(refused)
    assert "Send to liquidation" not in text(refused)  # nothing to carry out before the approval

    approved = _follow(signed_in(bob), f"/proposals/{liquidation.pk}/approve/", {"version": "1"})
    assert f"Proposal {liquidation.pk} approved" in _messages(approved)
    assert "Send offer" not in text(approved).split(f"#{liquidation.pk}")[1].split("Repayment schedule")[0]

    response = _follow(web, f"/proposals/{liquidation.pk}/liquidate/", {"version": "1"})

    assert Case.objects.get(pk=case.pk).state == CaseState.LIQUIDATING
    plan = LiquidationPlan.objects.get(case=case)
    assert f"case {case.pk} is in liquidation" in _messages(response)
    assert "Liquidation plan" in text(response)
    assert plan.days >= 1
    # the rules' proposal went with the case; the liquidation proposal is executed
    assert _state(Proposal.objects.get(case=case, kind="restructure")) == ProposalState.WITHDRAWN
    assert _state(liquidation) == ProposalState.EXECUTED
    # again: refused, nothing twice
    again = _follow(web, f"/proposals/{liquidation.pk}/liquidate/", {"version": "1"})
    assert "only an approved liquidation is sent" in _messages(again)
    assert LiquidationPlan.objects.filter(case=case).count() == 1


# ---------------------------------------------------------------------------- offer, execute, repayments


def test_offer_execute_and_record_the_repayments(alice: User, bob: User, proposal: Proposal) -> None:
    web = signed_in(alice)
    _follow(web, f"/proposals/{proposal.pk}/approve/", APPROVE)
    assert _state(proposal) == ProposalState.APPROVED

    offered = _follow(web, f"/proposals/{proposal.pk}/offer/", {"version": "1", "hours": "48"})

    assert "offered to the client until" in _messages(offered)
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.OFFERED
    # the client accepts through the API (its service here)
    offer_accept(proposal_id=proposal.pk, client_id=Case.objects.get(pk=proposal.case_id).account.client_id)

    executed = _follow(web, f"/proposals/{proposal.pk}/execute/", {"version": "1"})

    assert "the case is restructured" in _messages(executed)
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.RESTRUCTURED
    assert 'id="case-state">Restructured' in executed.content.decode()
    installments = list(Installment.objects.filter(proposal=proposal).order_by("number"))
    assert len(installments) == 12
    assert "installments of the executed restructuring" in text(executed)

    first = installments[0]
    # the payment form offers the amount due in the currency's places (USD: cents), not the column's eight
    assert f'name="amount" value="{first.total.quantize(Decimal("0.01"))}"' in executed.content.decode()
    owed = sum(i.total for i in installments)
    wrong = _follow(web, f"/installments/{first.pk}/repayment/", {"amount": f"{owed + Decimal('0.01'):.2f}"})
    assert f"more than the {owed:.2f} the schedule still owes" in _messages(wrong)
    part = _follow(web, f"/installments/{first.pk}/repayment/", {"amount": "1.00"})
    assert f"installment 1 partly paid (${first.total - 1:,.2f} still due)" in _messages(part)
    paid = _follow(web, f"/installments/{first.pk}/repayment/", {"amount": f"{first.total - 1:.2f}"})
    assert "installment 1 paid" in _messages(paid)
    assert Installment.objects.get(pk=first.pk).status == InstallmentStatus.PAID


def test_an_offer_out_cannot_be_offered_again(alice: User, bob: User, proposal: Proposal) -> None:
    proposal_approve(proposal_id=proposal.pk, actor=bob, version=1, override_reason="x")
    offer_send(proposal_id=proposal.pk, actor=bob, version=1)

    response = _follow(signed_in(alice), f"/proposals/{proposal.pk}/offer/", {"version": "1", "hours": ""})

    assert "cannot offer" in _messages(response)


# --------------------------------------------------------------------------------------------------- access


def _action_posts(case: Case, proposal: Proposal) -> list[tuple[str, dict[str, str]]]:
    return [
        (f"/cases/{case.pk}/proposals/new/", TERMS_FORM),
        (f"/cases/{case.pk}/liquidate/", {"reason": "x"}),
        (f"/proposals/{proposal.pk}/edit/", {}),
        (f"/proposals/{proposal.pk}/submit/", {}),
        (f"/proposals/{proposal.pk}/approve/", APPROVE),
        (f"/proposals/{proposal.pk}/reject/", {"reason": "x"}),
        (f"/proposals/{proposal.pk}/offer/", {"version": "1"}),
        (f"/proposals/{proposal.pk}/execute/", {"version": "1"}),
        (f"/proposals/{proposal.pk}/liquidate/", {"version": "1"}),
        ("/installments/1/repayment/", {"amount": "1"}),
    ]


@pytest.mark.parametrize("role", [COMPLIANCE, "client"])
def test_compliance_and_clients_may_not_act(role: str, case: Case, proposal: Proposal) -> None:
    web = signed_in(staff_user("someone", role))
    events = AuditEvent.objects.count()

    for url, data in _action_posts(case, proposal):
        assert web.post(url, data).status_code == 403, url

    assert AuditEvent.objects.count() == events
    assert _state(proposal) == ProposalState.PENDING_APPROVAL
    assert Case.objects.get(pk=case.pk).state == CaseState.PROPOSED


def test_signed_out_actions_go_to_sign_in(client: Client, case: Case, proposal: Proposal) -> None:
    for url, data in _action_posts(case, proposal):
        response = client.post(url, data)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/"), url


def test_actions_need_the_csrf_token(alice: User, proposal: Proposal) -> None:
    web = Client(enforce_csrf_checks=True)
    web.cookies = signed_in(alice).cookies  # signed in; this client checks the token the other one skipped

    assert web.get(f"/cases/{proposal.case_id}/").status_code == 200
    assert web.post(f"/proposals/{proposal.pk}/approve/", APPROVE).status_code == 403
    assert not Approval.objects.exists()


def test_actions_are_posts(alice: User, proposal: Proposal) -> None:
    web = signed_in(alice)
    for action in ("submit", "approve", "reject", "offer", "execute", "liquidate"):
        assert web.get(f"/proposals/{proposal.pk}/{action}/").status_code == 405
    assert not Approval.objects.exists()


def test_every_officer_view_declares_its_policy() -> None:
    from restructuring import urls

    for pattern in urls.urlpatterns:
        assert pattern.callback.staff_permissions, pattern.name  # type: ignore[attr-defined]
    assert reverse("queue") == "/queue/"
