"""Issue 13's findings, each as the regression test that failed on the main of 2026-12-07, and the controls that
close them: an approval binds to the version the approver saw; policy is four-eyed (its authors, editors and
publisher never approve what it proposes); two people on every approved proposal's record; forgiveness above
WORKOUT_TWO_APPROVALS_ABOVE needs two approvers; a case that ends takes its proposals with it; a declined offer
leaves its approved siblings offerable; flagged proposals need an override reason; a liquidation proposal is
carried out, never offered; nobody sends a case to liquidation alone.

The book: 10 BTC at 100 on a 750 loan and no cash (tests/restructuring/helpers.py): the default rules propose
the "concentration" package, which the model marks unaffordable (default probability 1), so its approvals carry
an override reason unless the test is about that guardrail."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import TestCase, override_settings

from core.audit import audit_verify
from core.errors import ValidationError
from core.models import AuditEvent
from restructuring.models import (
    Approval,
    ApprovalLimit,
    Case,
    CaseState,
    Proposal,
    ProposalKind,
    ProposalState,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.liquidation import PermissionDeniedError, case_liquidate
from restructuring.services.negotiation.common import (
    ApprovalRefusedError,
    NegotiationError,
    OverrideRequiredError,
    StaleTermsError,
)
from restructuring.services.negotiation.execution import proposal_execute, proposal_liquidate
from restructuring.services.negotiation.offers import offer_accept, offer_counter, offer_decline, offer_send
from restructuring.services.negotiation.proposals import (
    proposal_approve,
    proposal_draft,
    proposal_edit,
    proposal_liquidation_draft,
    proposal_reject,
    proposal_submit,
)
from restructuring.terms import Terms
from rules.models import RuleSetStatus
from rules.services import PublishPermissionError, rule_save, ruleset_clone, ruleset_publish
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import policy_in_force, staff_user

FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)
REASON = "the client's other assets, known to the desk"

pytestmark = [pytest.mark.django_db]


@pytest.fixture(autouse=True)
def _fast() -> Iterator[None]:
    with FAST:
        yield


def _swept() -> None:
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)


def _proposed() -> Proposal:
    policy_in_force()
    margin_account = account("CALL", btc(), band="margin_call")
    _swept()
    return Proposal.objects.get(case__account=margin_account)


def _fresh(proposal: Proposal) -> Proposal:
    return Proposal.objects.get(pk=proposal.pk)


def _approve(proposal: Proposal, officer: User, *, version: int | None = None, reason: str = REASON) -> bool:
    version = _fresh(proposal).version if version is None else version
    return proposal_approve(proposal_id=proposal.pk, actor=officer, version=version, override_reason=reason).approved


def _offer(proposal: Proposal, officer: User) -> Proposal:
    return offer_send(proposal_id=proposal.pk, actor=officer, version=_fresh(proposal).version)


def _client_id(proposal: Proposal) -> int:
    return Case.objects.select_related("account").get(pk=proposal.case_id).account.client_id


@pytest.fixture
def officers() -> tuple[User, User, User, User]:
    return (
        staff_user("alice", "credit_officer"),
        staff_user("bob", "credit_officer"),
        staff_user("sam", "senior_credit_officer"),
        staff_user("pat", "senior_credit_officer"),
    )


# ------------------------------------------------- finding 1: a checker approves terms they never saw


def test_finding_1_an_approval_of_a_version_the_terms_have_moved_on_from_is_refused_and_shows_the_new_terms(
    officers: tuple[User, ...],
) -> None:
    alice, bob, *_ = officers
    proposal = _proposed()
    shown_to_bob = _fresh(proposal).version  # bob opens the case

    proposal_edit(proposal_id=proposal.pk, terms={**proposal.terms, "principal_haircut": "50"}, actor=alice)
    proposal_submit(proposal_id=proposal.pk, actor=alice)

    with pytest.raises(StaleTermsError) as caught:
        _approve(proposal, bob, version=shown_to_bob)
    assert "changed since you loaded it" in str(caught.value)
    assert "principal haircut 50" in str(caught.value)  # the new terms, in the refusal
    assert not Approval.objects.filter(proposal=proposal).exists()
    assert _fresh(proposal).state == ProposalState.PENDING_APPROVAL
    assert not AuditEvent.objects.filter(action__in=["proposal.approve", "proposal.approval"]).exists()

    assert _approve(proposal, bob)  # the version bob has now read
    assert Approval.objects.get(proposal=proposal).version == 2


def test_offering_and_executing_name_the_version_too(officers: tuple[User, ...]) -> None:
    alice, *_ = officers
    proposal = _proposed()
    assert _approve(proposal, alice)

    with pytest.raises(StaleTermsError):
        offer_send(proposal_id=proposal.pk, actor=alice, version=7)
    assert _fresh(proposal).state == ProposalState.APPROVED
    _offer(proposal, alice)
    offer_accept(proposal_id=proposal.pk, client_id=_client_id(proposal))
    with pytest.raises(StaleTermsError):
        proposal_execute(proposal_id=proposal.pk, actor=alice, version=2)
    assert _fresh(proposal).state == ProposalState.ACCEPTED


def test_a_client_accepting_names_the_terms_hash_it_read(officers: tuple[User, ...]) -> None:
    alice, *_ = officers
    proposal = _proposed()
    _approve(proposal, alice)
    _offer(proposal, alice)
    client_id = _client_id(proposal)

    with pytest.raises(StaleTermsError, match="read the offer again"):
        offer_accept(proposal_id=proposal.pk, client_id=client_id, terms_hash="0" * 64)
    assert _fresh(proposal).state == ProposalState.OFFERED

    accepted = offer_accept(proposal_id=proposal.pk, client_id=client_id, terms_hash=_fresh(proposal).terms_hash)
    assert accepted.state == ProposalState.ACCEPTED


# ---------------------------------------------------- finding 2: one senior officer forgives a debt alone


FORGIVE = {
    "name": "forgive",
    "priority": 1,
    "condition": "debt == debt",
    "action": "haircut_principal",
    "parameters": {"amount": "debt * 0.5"},
    "package": "forgive",
}


def test_finding_2_the_author_of_a_policy_cannot_publish_it_nor_approve_what_it_proposes(
    officers: tuple[User, ...],
) -> None:
    alice, _, sam, pat = officers
    published = policy_in_force()
    margin_account = account("CALL", btc(), band="margin_call")

    draft = ruleset_clone(rule_set_id=published.pk, actor=sam)
    rule_save(rule_set_id=draft.pk, rule=FORGIVE, actor=sam)
    with pytest.raises(PublishPermissionError, match="sam wrote or edited rule set"):
        ruleset_publish(rule_set_id=draft.pk, actor=sam)
    assert draft.__class__.objects.get(pk=draft.pk).status == RuleSetStatus.DRAFT
    assert AuditEvent.objects.filter(action="ruleset.rule_save", actor=sam, object_id=draft.pk).count() == 1

    ruleset_publish(rule_set_id=draft.pk, actor=pat)  # another senior, who wrote none of it
    _swept()
    forgive = Proposal.objects.get(case__account=margin_account, name="forgive")
    assert forgive.made_by is None  # the rules made it: their authors are its makers

    with pytest.raises(ApprovalRefusedError, match="sam wrote or edited rule set"):
        _approve(forgive, sam)
    with pytest.raises(ApprovalRefusedError, match="pat published rule set"):
        _approve(forgive, pat)
    assert not Approval.objects.filter(proposal=forgive).exists()
    assert _approve(forgive, alice)  # not a maker; sam and pat are on the record too: two people at least


@override_settings(WORKOUT_TWO_APPROVALS_ABOVE="100")
def test_forgiveness_above_the_setting_needs_two_approvers_whatever_their_limits(officers: tuple[User, ...]) -> None:
    alice, bob, sam, _ = officers
    proposal = _proposed()
    proposal_edit(proposal_id=proposal.pk, terms={**proposal.terms, "principal_haircut": "150"}, actor=alice)
    proposal_submit(proposal_id=proposal.pk, actor=alice)

    outcome = proposal_approve(proposal_id=proposal.pk, actor=sam, version=2, override_reason=REASON)

    assert not outcome.approved  # sam's limit covers the debt many times over
    assert "a second approver: it forgives $150.00, above $100.00" in outcome.needs
    assert _approve(proposal, bob)
    assert _fresh(proposal).state == ProposalState.APPROVED


def test_a_rate_cut_forgives_the_interest_it_gives_up(officers: tuple[User, ...]) -> None:
    alice, bob, *_ = officers
    proposal = _proposed()
    # 750 at 8% cut to 2% over 24 months: 750 x 0.06 x 2 = 90 of interest given up
    proposal_edit(
        proposal_id=proposal.pk, terms={**proposal.terms, "rate_annual": "0.02", "term_months": 24}, actor=alice
    )
    proposal_submit(proposal_id=proposal.pk, actor=alice)
    with override_settings(WORKOUT_TWO_APPROVALS_ABOVE="89.99"):
        outcome = proposal_approve(proposal_id=proposal.pk, actor=bob, version=2, override_reason=REASON)
    assert "it forgives $90.00" in outcome.needs


def test_a_proposal_nobody_wrote_needs_two_approvers(officers: tuple[User, ...]) -> None:
    """The rules of a set a command loaded and published at installation have no author on record."""
    from rules.services import DEFAULT_RULES, ruleset_load

    alice, bob, *_ = officers
    ruleset_load(DEFAULT_RULES, publish=True)  # the system actor "setup"
    margin_account = account("CALL", btc(), band="margin_call")
    _swept()
    proposal = Proposal.objects.get(case__account=margin_account)

    outcome = proposal_approve(proposal_id=proposal.pk, actor=alice, version=1, override_reason=REASON)

    assert not outcome.approved
    assert "a second person's approval: nobody else is on its record" in outcome.needs
    assert _approve(proposal, bob)


def test_a_command_publishes_only_the_first_policy_of_an_installation(officers: tuple[User, ...]) -> None:
    published = policy_in_force()
    draft = ruleset_clone(rule_set_id=published.pk, actor=officers[0])
    with pytest.raises(PublishPermissionError, match="a rule set is in force"):
        ruleset_publish(rule_set_id=draft.pk, actor=None, system_actor="setup")


# ---------------------------------------- finding 4: stale, orphaned and resurrected approvals


def test_finding_4a_a_case_restructured_through_the_counter_withdraws_the_rules_round_2_proposal(
    officers: tuple[User, ...],
) -> None:
    alice, bob, sam, _ = officers
    offer = _proposed()
    _approve(offer, alice)
    _offer(offer, alice)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the counter's follow-up: feasibility, then the rules
        counter = offer_counter(
            proposal_id=offer.pk, client_id=_client_id(offer), terms={**offer.terms, "term_months": 18}
        )
    [round_2] = Proposal.objects.filter(case_id=offer.case_id, source="rules", round=2)
    assert round_2.state == ProposalState.PENDING_APPROVAL

    _approve(counter, bob)
    _offer(counter, bob)
    offer_accept(proposal_id=counter.pk, client_id=_client_id(offer))
    proposal_execute(proposal_id=counter.pk, actor=bob, version=1)

    withdrawn = _fresh(round_2)
    assert (withdrawn.state, withdrawn.decision_reason) == (
        ProposalState.WITHDRAWN,
        f"case {offer.case_id} restructured by proposal {counter.pk}",
    )
    event = AuditEvent.objects.get(action="proposal.withdraw", object_id=round_2.pk)
    assert (event.actor, event.from_state, event.to_state) == (bob, "pending_approval", "withdrawn")
    with pytest.raises(NegotiationError, match="only a pending proposal is approved"):
        _approve(round_2, sam)
    assert audit_verify().ok


def test_finding_4b_after_a_decline_an_approved_sibling_is_offerable(officers: tuple[User, ...]) -> None:
    alice, bob, *_ = officers
    first = _proposed()
    sibling = proposal_draft(case_id=first.case_id, terms={"term_months": 6}, actor=alice)
    proposal_submit(proposal_id=sibling.pk, actor=alice)
    _approve(first, alice)
    _approve(sibling, bob)
    _offer(first, alice)

    offer_decline(proposal_id=first.pk, client_id=_client_id(first), reason="too dear")

    case = Case.objects.get(pk=first.case_id)
    assert case.state == CaseState.PROPOSED  # back among its proposals: the sibling is still in play
    assert AuditEvent.objects.get(action="case.decline").to_state == "proposed"
    _offer(sibling, bob)
    assert Case.objects.get(pk=first.case_id).state == CaseState.OFFERED


def test_a_declined_offer_without_alternatives_returns_the_case_to_margin_call(officers: tuple[User, ...]) -> None:
    alice, *_ = officers
    only = _proposed()
    _approve(only, alice)
    _offer(only, alice)
    offer_decline(proposal_id=only.pk, client_id=_client_id(only), reason="no")
    assert Case.objects.get(pk=only.case_id).state == CaseState.MARGIN_CALL


def test_finding_4c_an_approval_voided_by_an_edit_never_counts_again(officers: tuple[User, ...]) -> None:
    alice, bob, sam, _ = officers
    proposal = _proposed()
    terms = {**proposal.terms, "term_months": 12}
    proposal_edit(proposal_id=proposal.pk, terms=terms, actor=sam)  # version 2
    proposal_submit(proposal_id=proposal.pk, actor=sam)
    assert _approve(proposal, bob)  # bob's limit covers the 750: approved
    approved_hash = _fresh(proposal).terms_hash

    proposal_edit(proposal_id=proposal.pk, terms={**terms, "term_months": 9}, actor=sam)  # version 3
    proposal_edit(proposal_id=proposal.pk, terms=terms, actor=sam)  # version 4: the very same terms as version 2
    proposal_submit(proposal_id=proposal.pk, actor=sam)
    assert (_fresh(proposal).version, _fresh(proposal).terms_hash) == (4, approved_hash)
    ApprovalLimit.objects.create(user=alice, currency="USD", amount=Decimal(1))

    outcome = proposal_approve(proposal_id=proposal.pk, actor=alice, version=4, override_reason=REASON)

    assert not outcome.approved  # bob's approval was of version 2: it does not come back with its terms
    assert outcome.needs == "an approval by someone whose limit covers $750.00"
    assert sorted(Approval.objects.filter(proposal=proposal).values_list("version", flat=True)) == [2, 4]
    assert _approve(proposal, bob)  # bob again, on what he now reads


def test_every_way_a_case_ends_withdraws_its_live_proposals(officers: tuple[User, ...]) -> None:
    from tests.restructuring.helpers import price_set

    alice, bob, *_ = officers
    proposal = _proposed()
    draft = proposal_draft(case_id=proposal.case_id, terms={"term_months": 6}, actor=alice)
    _approve(proposal, bob)
    _offer(proposal, bob)

    price_set("200")  # the collateral doubles: the sweep cures the case
    _swept()

    assert Case.objects.get(pk=proposal.case_id).state == CaseState.CURED
    assert {p.state for p in Proposal.objects.filter(pk__in=[proposal.pk, draft.pk])} == {ProposalState.WITHDRAWN}
    with pytest.raises(NegotiationError):
        offer_accept(proposal_id=proposal.pk, client_id=_client_id(proposal))
    events = AuditEvent.objects.filter(action="proposal.withdraw").order_by("object_id")
    assert [(e.object_id, e.system_actor, e.reason) for e in events] == [
        (proposal.pk, "sweep", "the case is cured: the account's margin is restored"),
        (draft.pk, "sweep", "the case is cured: the account's margin is restored"),
    ]


# ------------------------------------------------------------------- finding 5: nothing stops a doomed proposal


def test_finding_5_a_flagged_proposal_is_approved_only_with_an_override_reason(officers: tuple[User, ...]) -> None:
    alice, *_ = officers
    proposal = _proposed()
    assert proposal.valuation["affordable"] is False

    with pytest.raises(OverrideRequiredError) as caught:
        _approve(proposal, alice, reason="  ")
    assert caught.value.context["field"] == "override_reason"
    assert "the model marks it unaffordable" in str(caught.value)
    assert "default probability 1.000, at or above 0.5" in str(caught.value)
    assert not Approval.objects.exists()

    assert _approve(proposal, alice, reason="collateral elsewhere, pledged by letter")

    approval = Approval.objects.get(proposal=proposal)
    assert approval.override_reason == "collateral elsewhere, pledged by letter"
    event = AuditEvent.objects.get(action="proposal.approve")
    assert event.reason == "collateral elsewhere, pledged by letter"
    assert event.payload["flags"][0].startswith("the model marks it unaffordable")


# --------------------------------------------------------- finding 6: liquidation proposals, end to end


def test_finding_6_an_approved_liquidation_from_the_rules_is_carried_out_never_offered(
    officers: tuple[User, ...],
) -> None:
    alice, bob, *_ = officers
    policy_in_force()
    margin_account = account("UNDER", btc(), band="critical")  # under water, no means: the rules liquidate
    _swept()
    liquidation = Proposal.objects.get(case__account=margin_account, kind=ProposalKind.LIQUIDATE)
    assert liquidation.terms == {}
    assert _approve(liquidation, alice, reason="")  # a liquidation is never flagged: it is the benchmark

    with pytest.raises(NegotiationError, match="is a liquidation: it is not offered"):
        offer_send(proposal_id=liquidation.pk, actor=alice, version=1)
    with pytest.raises(NegotiationError, match="has no terms to edit"):
        proposal_edit(proposal_id=liquidation.pk, terms={"term_months": 6}, actor=bob)

    proposal_liquidate(proposal_id=liquidation.pk, actor=bob, version=1)

    case = Case.objects.get(account=margin_account)
    assert case.state == CaseState.LIQUIDATING
    assert case.liquidation_plan.days >= 1
    assert _fresh(liquidation).state == ProposalState.EXECUTED
    others = Proposal.objects.filter(case=case).exclude(pk=liquidation.pk)
    assert {p.state for p in others} <= {ProposalState.WITHDRAWN}
    assert AuditEvent.objects.get(action="case.liquidate").payload["proposal_id"] == liquidation.pk
    assert audit_verify().ok


def test_nobody_sends_a_case_to_liquidation_alone(officers: tuple[User, ...]) -> None:
    alice, bob, *_ = officers
    proposal = _proposed()
    with pytest.raises(PermissionDeniedError, match="alone"):
        case_liquidate(case_id=proposal.case_id, reason="client unreachable", actor=alice)

    liquidation = proposal_liquidation_draft(case_id=proposal.case_id, reason="client unreachable", actor=alice)
    assert liquidation.state == ProposalState.PENDING_APPROVAL
    with pytest.raises(ApprovalRefusedError, match="alice drafted or edited its terms"):
        _approve(liquidation, alice)
    with pytest.raises(NegotiationError, match="only an approved liquidation"):
        proposal_liquidate(proposal_id=liquidation.pk, actor=alice, version=1)
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.PROPOSED

    assert _approve(liquidation, bob)
    proposal_liquidate(proposal_id=liquidation.pk, actor=alice, version=1)
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.LIQUIDATING
    assert _fresh(proposal).state == ProposalState.WITHDRAWN


def test_a_rejected_liquidation_proposal_leaves_the_case_as_it_was(officers: tuple[User, ...]) -> None:
    alice, bob, *_ = officers
    proposal = _proposed()
    liquidation = proposal_liquidation_draft(case_id=proposal.case_id, reason="unreachable", actor=alice)
    proposal_reject(proposal_id=liquidation.pk, actor=bob, reason="reached by phone")
    assert Case.objects.get(pk=proposal.case_id).state == CaseState.PROPOSED
    assert _fresh(proposal).state == ProposalState.PENDING_APPROVAL


def test_the_queue_flags_in_sql_what_the_approval_flags_in_python(officers: tuple[User, ...]) -> None:
    from restructuring.selectors.queue import QueueFilters, cases_for_queue, flagged_proposals
    from restructuring.services.controls import approval_flags

    alice, *_ = officers
    flagged = _proposed()  # unaffordable, default probability 1
    report = flagged.feasibility_report
    assert report is not None
    # an officer's terms worth more than liquidating, affordable, unlikely to default: not flagged
    clean = proposal_draft(case_id=flagged.case_id, terms={"term_months": 6}, actor=alice)
    proposal_submit(proposal_id=clean.pk, actor=alice)
    valuation = {**clean.valuation, "affordable": True, "default_probability": {"value": "0.100000"}}
    Proposal.objects.filter(pk=clean.pk).update(valuation=valuation, expected_pv=report.liquidation_value + 1)
    # one whose only flag is its value: below liquidating now
    cheap = proposal_draft(case_id=flagged.case_id, terms={"term_months": 9}, actor=alice)
    proposal_submit(proposal_id=cheap.pk, actor=alice)
    Proposal.objects.filter(pk=cheap.pk).update(valuation=valuation, expected_pv=report.liquidation_value - 1)
    # and the threshold itself: a default probability exactly at it is flagged
    edge = proposal_draft(case_id=flagged.case_id, terms={"term_months": 3}, actor=alice)
    proposal_submit(proposal_id=edge.pk, actor=alice)
    at_threshold = {**valuation, "default_probability": {"value": "0.500000"}}
    Proposal.objects.filter(pk=edge.pk).update(valuation=at_threshold, expected_pv=report.liquidation_value + 1)

    everyone = Proposal.objects.filter(case_id=flagged.case_id).select_related("feasibility_report")
    in_python = {p.pk for p in everyone if approval_flags(p, p.feasibility_report)}
    in_sql = set(Proposal.objects.filter(flagged_proposals(), case_id=flagged.case_id).values_list("pk", flat=True))

    assert in_python == in_sql == {flagged.pk, cheap.pk, edge.pk}
    [row] = cases_for_queue(QueueFilters())
    assert (row.pending_approval, row.flagged_approval) == (4, 3)  # type: ignore[attr-defined]


def test_a_counter_offer_moves_only_the_term_the_rate_and_the_collateral(officers: tuple[User, ...]) -> None:
    """Found by the adversary's state machine (tests/restructuring/test_one_person_whole_path.py): a counter borrowed
    the offer's record, yet could add a haircut that nobody on that record saw."""
    alice, *_ = officers
    offer = _proposed()
    _approve(offer, alice)
    _offer(offer, alice)
    client_id = _client_id(offer)

    changes: list[dict[str, object]] = [
        {"principal_haircut": "100"},
        {"grace_principal_months": 3},
        {"reduce": []},
        {"kind": "interest_only"},
    ]
    for change in changes:
        with pytest.raises(ValidationError) as caught:
            offer_counter(proposal_id=offer.pk, client_id=client_id, terms=change)
        assert caught.value.context["field"] == next(iter(change))
        assert "stays as offered" in str(caught.value)
    assert _fresh(offer).state == ProposalState.OFFERED

    counter = offer_counter(proposal_id=offer.pk, client_id=client_id, terms={"term_months": 18})
    offered = Terms.from_json(offer.terms).to_json()
    assert counter.terms == {**offered, "term_months": 18}  # the rest as offered
