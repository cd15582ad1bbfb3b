"""The negotiation: four eyes and authority limits on approvals bound to the terms, offers, the client's
answers, execution, repayments, and the deadlines (offers expire, missed payments default)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import TestCase, override_settings
from django.utils import timezone

from accounts.models import LoanStatus, MarginAccount, MarginLoan, Position
from core.audit import audit_verify
from core.errors import NotFoundError, ValidationError
from core.models import AuditEvent
from restructuring.models import (
    ApprovalLimit,
    Case,
    CaseState,
    CollateralDemand,
    FeasibilityReport,
    Installment,
    InstallmentStatus,
    Proposal,
    ProposalState,
    ReductionOrder,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.negotiation.common import ApprovalRefusedError, NegotiationError
from restructuring.services.negotiation.deadlines import negotiation_deadlines_run
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_counter, offer_decline, offer_send
from restructuring.services.negotiation.proposals import (
    ApprovalOutcome,
    proposal_approve,
    proposal_draft,
    proposal_edit,
    proposal_reject,
    proposal_submit,
)
from restructuring.services.negotiation.repayments import repayment_record
from restructuring.services.negotiation.topups import topup_confirm, topup_declare
from tests.restructuring.helpers import account, btc, run_together, sweep_only
from tests.web.helpers import policy_in_force, staff_user

FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)


def _proposed() -> Proposal:
    """The concentration proposal the default rules make for 10 BTC at 100 on a 750 loan (pending approval)."""
    policy_in_force()
    margin_account = account("CALL", btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    return Proposal.objects.get(case__account=margin_account)


def _officers() -> tuple[User, User, User]:
    return (
        staff_user("alice", "credit_officer"),
        staff_user("bob", "credit_officer"),
        staff_user("sam", "senior_credit_officer"),
    )


def _client_id(proposal: Proposal) -> int:
    return MarginAccount.objects.get(pk=proposal.case.account_id).client_id


# The test book's client has no cash and no declared capacity: the model flags every proposal as unaffordable, so
# approving one takes an override reason. These tests are about the negotiation's flow; the guardrail itself is
# tests/restructuring/test_controls.py's.
OVERRIDE = "the client's other assets, known to the desk"


def _approve(proposal: Proposal, officer: User) -> ApprovalOutcome:
    """The officer approves the version of the proposal as it stands now (what the page would show)."""
    version = Proposal.objects.get(pk=proposal.pk).version
    return proposal_approve(proposal_id=proposal.pk, actor=officer, version=version, override_reason=OVERRIDE)


def _version(proposal: Proposal) -> int:
    return Proposal.objects.get(pk=proposal.pk).version


def _approved(proposal: Proposal, officer: User) -> Proposal:
    assert _approve(proposal, officer).approved
    return Proposal.objects.get(pk=proposal.pk)


@pytest.mark.django_db
@FAST
def test_above_an_officers_limit_a_second_approval_by_someone_whose_limit_covers_it_is_needed() -> None:
    proposal = _proposed()
    alice, _, sam = _officers()
    ApprovalLimit.objects.create(user=alice, currency="USD", amount=Decimal("500"))  # the debt is 750

    outcome = _approve(proposal, alice)

    assert not outcome.approved
    assert outcome.needs == "an approval by someone whose limit covers $750.00"
    assert Proposal.objects.get(pk=proposal.pk).state == ProposalState.PENDING_APPROVAL
    with pytest.raises(NegotiationError, match="already approved version 1"):
        _approve(proposal, alice)

    outcome = _approve(proposal, sam)  # senior: 5,000,000

    assert outcome.approved
    assert Proposal.objects.get(pk=proposal.pk).state == ProposalState.APPROVED
    actions = list(AuditEvent.objects.filter(object_type="restructuring.proposal").values_list("action", flat=True))
    assert actions == ["proposal.approval", "proposal.approve"]


@pytest.mark.django_db
@FAST
def test_the_maker_cannot_approve_and_editing_voids_earlier_approvals() -> None:
    proposal = _proposed()
    alice, bob, sam = _officers()
    terms = {"term_months": 6, "collateral_to_add": "0"}
    mine = proposal_draft(case_id=proposal.case_id, terms=terms, actor=alice)
    proposal_submit(proposal_id=mine.pk, actor=alice)
    with pytest.raises(ApprovalRefusedError, match="alice drafted or edited its terms"):
        _approve(mine, alice)

    # bob approves; sam edits the terms afterwards: back to draft, bob's approval was of other terms
    assert _approved(mine, bob).state == ProposalState.APPROVED
    edited = proposal_edit(proposal_id=mine.pk, terms={"term_months": 9}, actor=sam)
    assert edited.state == ProposalState.DRAFT
    assert edited.terms["term_months"] == 9
    proposal_submit(proposal_id=mine.pk, actor=sam)
    with pytest.raises(ApprovalRefusedError, match="sam drafted or edited its terms"):
        _approve(mine, sam)
    assert _approved(mine, bob).state == ProposalState.APPROVED  # bob again, on the new terms

    with pytest.raises(ValidationError) as caught:
        proposal_draft(case_id=proposal.case_id, terms={"term_months": 12, "rate_annual": 0.05}, actor=alice)
    assert caught.value.context["field"] == "rate_annual"
    compliance = staff_user("carol", "compliance")
    with pytest.raises(ApprovalRefusedError, match="carol may not approve"):
        _approve(proposal, compliance)


@pytest.mark.django_db
@FAST
def test_offer_accept_execute_repay_and_close() -> None:
    proposal = _proposed()
    alice, _, _ = _officers()
    position = Position.objects.get(account=proposal.case.account)
    _approved(proposal, alice)
    offer_send(proposal_id=proposal.pk, actor=alice, version=_version(proposal), hours=24)
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.OFFERED

    with pytest.raises(NotFoundError):  # another client's id: not found, never forbidden
        offer_accept(proposal_id=proposal.pk, client_id=_client_id(proposal) + 999)
    accepted = offer_accept(proposal_id=proposal.pk, client_id=_client_id(proposal))
    assert (accepted.state, Case.objects.get(pk=proposal.case_id).state) == ("accepted", CaseState.ACCEPTED)
    with pytest.raises(NegotiationError, match="not an open offer"):
        offer_accept(proposal_id=proposal.pk, client_id=_client_id(proposal))

    proposal_execute(proposal_id=proposal.pk, actor=alice, version=_version(proposal))

    # the concentration terms: 300 of collateral, half the BTC sold, 12 months at the loan's 8%
    case = Case.objects.get(pk=proposal.case_id)
    loan = MarginLoan.objects.get(account=case.account, status=LoanStatus.ACTIVE)
    installments = list(Installment.objects.filter(proposal=proposal))
    assert case.state == CaseState.RESTRUCTURED
    assert len(installments) == 12
    assert sum(i.principal for i in installments) == loan.principal == Decimal("750.00")
    assert loan.maturity_date == installments[-1].due
    assert CollateralDemand.objects.get(proposal=proposal).amount == Decimal("300.00")
    order = ReductionOrder.objects.get(proposal=proposal)
    assert (order.position_id, order.quantity) == (position.pk, Decimal("5.00000000"))

    owed = sum(i.total for i in installments)
    with pytest.raises(ValidationError, match=f"more than the {owed:.2f} the schedule still owes"):
        repayment_record(installment_id=installments[0].pk, amount=owed + Decimal("0.01"), actor=alice)
    for installment in installments:
        repayment_record(installment_id=installment.pk, amount=installment.total, actor=alice)
    case = Case.objects.get(pk=case.pk)
    assert case.state == CaseState.CLOSED
    assert MarginLoan.objects.get(pk=loan.pk).status == LoanStatus.CLOSED
    assert audit_verify().ok


@pytest.mark.django_db
@FAST
def test_counter_offers_stay_within_the_bounds_and_go_back_to_the_officers() -> None:
    proposal = _proposed()
    alice, bob, _ = _officers()
    _approved(proposal, alice)
    offer_send(proposal_id=proposal.pk, actor=alice, version=_version(proposal))
    offer = Proposal.objects.get(pk=proposal.pk)
    # default bounds: 12 more months, the rate at most 2 points lower, at least half the collateral
    assert offer.counter_bounds == {"max_term_months": 24, "min_rate": "0.06", "min_collateral": "150.00"}

    client_id = _client_id(proposal)
    with pytest.raises(ValidationError) as caught:
        offer_counter(proposal_id=offer.pk, client_id=client_id, terms={"term_months": 36})
    assert caught.value.context["field"] == "term_months"
    with pytest.raises(ValidationError) as caught:
        offer_counter(proposal_id=offer.pk, client_id=client_id, terms={"term_months": 18, "collateral_to_add": "100"})
    assert caught.value.context["field"] == "collateral_to_add"

    with TestCase.captureOnCommitCallbacks(execute=True):  # then feasibility and the rules run again
        counter = offer_counter(
            proposal_id=offer.pk, client_id=client_id, terms={"term_months": 18, "collateral_to_add": "150"}
        )

    assert (counter.source, counter.round, counter.state) == ("client", 2, ProposalState.PENDING_APPROVAL)
    assert counter.countered_from_id == offer.pk
    assert counter.expected_pv is not None
    assert Proposal.objects.get(pk=offer.pk).state == ProposalState.COUNTERED
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.PROPOSED
    assert _approved(counter, bob).state == ProposalState.APPROVED  # the client is no officer: any may approve
    # the new round also has the rules' proposals, on a report computed for the counter-offer
    report = FeasibilityReport.objects.get(case_id=proposal.case_id, key=f"counter:{offer.pk}")
    [again] = Proposal.objects.filter(case_id=proposal.case_id, source="rules", feasibility_report=report)
    assert (again.name, again.round, again.state) == ("concentration", 2, ProposalState.PENDING_APPROVAL)
    event = AuditEvent.objects.get(action="case.rules_proposals")
    assert (event.from_state, event.to_state) == ("proposed", "proposed")


@pytest.mark.django_db
@FAST
def test_declines_expiries_and_missed_payments_move_the_case() -> None:
    proposal = _proposed()
    alice, _, _ = _officers()
    _approved(proposal, alice)
    offer_send(proposal_id=proposal.pk, actor=alice, version=_version(proposal), hours=1)
    client_id = _client_id(proposal)
    with pytest.raises(ValidationError):
        offer_decline(proposal_id=proposal.pk, client_id=client_id, reason=" ")

    # the offer expires: the beat moves it, once
    later = timezone.now() + timedelta(hours=2)
    Proposal.objects.filter(pk=proposal.pk).update(expires_at=timezone.now())
    with pytest.raises(NegotiationError, match="expired"):
        offer_accept(proposal_id=proposal.pk, client_id=client_id)
    assert negotiation_deadlines_run(later) == {"offers_expired": [proposal.pk], "cases_defaulted": []}
    assert negotiation_deadlines_run(later) == {"offers_expired": [], "cases_defaulted": []}
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.MARGIN_CALL

    # a fresh proposal, offered and declined: back to margin call
    second = proposal_draft(case_id=proposal.case_id, terms={"term_months": 12}, actor=alice)
    bob = User.objects.get(username="bob")
    proposal_submit(proposal_id=second.pk, actor=alice)
    _approved(second, bob)
    offer_send(proposal_id=second.pk, actor=bob, version=_version(second))
    offer_decline(proposal_id=second.pk, client_id=client_id, reason="too short")
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.MARGIN_CALL

    # a third, executed, whose first installment is never paid: the case defaults after the grace
    third = proposal_draft(case_id=proposal.case_id, terms={"term_months": 3}, actor=alice)
    proposal_submit(proposal_id=third.pk, actor=alice)
    _approved(third, bob)
    offer_send(proposal_id=third.pk, actor=bob, version=_version(third))
    offer_accept(proposal_id=third.pk, client_id=client_id)
    proposal_execute(proposal_id=third.pk, actor=bob, version=_version(third))
    first_due = Installment.objects.filter(proposal=third).order_by("number").first()
    assert first_due is not None
    after_grace = timezone.now() + timedelta(days=31 + 6)
    assert negotiation_deadlines_run(after_grace)["cases_defaulted"] == [proposal.case_id]
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.DEFAULTED
    assert Installment.objects.get(pk=first_due.pk).status == InstallmentStatus.MISSED
    assert audit_verify().ok


@pytest.mark.django_db
@FAST
def test_a_rejected_last_proposal_puts_the_case_back_in_margin_call_and_top_ups_wait_for_operations() -> None:
    proposal = _proposed()
    alice, _, _ = _officers()
    proposal_reject(proposal_id=proposal.pk, actor=alice, reason="the client has other assets")
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.MARGIN_CALL

    account_id, client_id = proposal.case.account_id, _client_id(proposal)
    with pytest.raises(NotFoundError):
        topup_declare(account_id=account_id, client_id=client_id + 1, amount=Decimal("100"))
    topup = topup_declare(account_id=account_id, client_id=client_id, amount=Decimal("400"))
    assert MarginAccount.objects.get(pk=account_id).cash == 0  # pending until operations confirm
    with TestCase.captureOnCommitCallbacks(execute=True):  # the confirmation queues a sweep, which cures
        topup_confirm(topup_id=topup.pk, actor=alice)
    assert MarginAccount.objects.get(pk=account_id).cash == Decimal("400")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@FAST
def test_accept_racing_decline_has_one_outcome() -> None:
    proposal = _proposed()
    alice, _, _ = _officers()
    _approved(proposal, alice)
    offer_send(proposal_id=proposal.pk, actor=alice, version=_version(proposal))
    client_id = _client_id(proposal)

    outcomes = run_together(
        lambda: offer_accept(proposal_id=proposal.pk, client_id=client_id),
        lambda: offer_decline(proposal_id=proposal.pk, client_id=client_id, reason="no"),
    )

    assert sorted(type(o.error).__name__ for o in outcomes) == ["NegotiationError", "NoneType"]
    state = Proposal.objects.get(pk=proposal.pk).state
    assert state in (ProposalState.ACCEPTED, ProposalState.DECLINED)
    decisions = AuditEvent.objects.filter(action__in=["proposal.accept", "proposal.decline"])
    assert decisions.count() == 1
    assert audit_verify().ok
