"""The events of a case have one definition (restructuring/selectors/events.py): the officer's case page, the
compliance history and search by case list the same events, and the client's timeline is that list filtered by
the visibility each action declares (restructuring/audit_events.py), never by a list of its own."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import TestCase, override_settings

from core.audit_catalogue import Audience, audit_action
from core.models import AuditEvent
from restructuring.api import case_timeline
from restructuring.models import Case, CaseState, Installment, Proposal
from restructuring.roles import COMPLIANCE, CREDIT_OFFICER
from restructuring.selectors.events import case_events
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.feasibility import feasibility_compute
from restructuring.services.negotiation import (
    offer_accept,
    offer_send,
    proposal_approve,
    proposal_draft,
    proposal_execute,
    repayment_record,
    topup_confirm,
    topup_declare,
)
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import policy_in_force, signed_in, staff_user

pytestmark = [pytest.mark.django_db]
FAST = override_settings(WORKOUT_FEASIBILITY_PATHS=500)


def _lived_case() -> tuple[Case, Proposal]:
    """A case taken all the way: opened by the sweep, a margin call, its feasibility report and an on-demand one,
    the rules' proposal approved, offered and accepted, an officer's draft never offered, a top-up declared and
    confirmed, the offer executed and every installment repaid (the last repayment closes the case, recorded after
    its closed_at). Returns the case and the officer's draft."""
    policy_in_force()
    margin_account = account("LIVED", btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    offer = Proposal.objects.get(case__account=margin_account)
    case = offer.case
    alice = staff_user("alice", CREDIT_OFFICER)
    client_id = margin_account.client_id
    draft = proposal_draft(case_id=case.pk, terms={"term_months": 6, "collateral_to_add": "0"}, actor=alice)
    # the test book's client has no cash: the model flags the proposal and the officer overrides it
    assert proposal_approve(proposal_id=offer.pk, actor=alice, version=1, override_reason="test book").approved
    offer_send(proposal_id=offer.pk, actor=alice, version=1, hours=24)
    top_up = topup_declare(account_id=case.account_id, client_id=client_id, amount=Decimal("10"))
    with TestCase.captureOnCommitCallbacks(execute=False):  # the sweep it queues is not this test's
        topup_confirm(topup_id=top_up.pk, actor=alice)
    feasibility_compute(case_ids=[case.pk], key="asked")
    offer_accept(proposal_id=offer.pk, client_id=client_id)
    proposal_execute(proposal_id=offer.pk, actor=alice, version=Proposal.objects.get(pk=offer.pk).version)
    for installment in Installment.objects.filter(proposal=offer).order_by("number"):
        repayment_record(installment_id=installment.pk, amount=installment.total, actor=alice)
    case = Case.objects.select_related("account").get(pk=case.pk)
    assert case.state == CaseState.CLOSED
    return case, draft


@FAST
def test_the_officer_page_and_the_compliance_history_list_the_same_events_of_a_case() -> None:
    # given a case that went from its opening to its close, and another account's case meanwhile
    case, _draft = _lived_case()
    officer = signed_in(User.objects.get(username="alice"))
    compliance = signed_in(staff_user("rita", COMPLIANCE))

    # when the officer opens the case page and compliance its history and its search by case
    on_page = [e.sequence for e in officer.get(f"/cases/{case.pk}/").context["page"].events]
    in_history = [row.event.sequence for row in compliance.get(f"/audit/cases/{case.pk}/").context["rows"]]
    searched = [row.event.sequence for row in compliance.get("/audit/", {"case": case.pk}).context["page"].rows]

    # then the three list the same events, every one of the case's, oldest first on the pages
    assert on_page == in_history
    assert sorted(searched) == in_history  # the search shows the newest first
    assert in_history == sorted(in_history)
    events = AuditEvent.objects.filter(sequence__in=in_history)
    actions = set(events.values_list("action", flat=True))
    assert all(audit_action(a) is not None for a in actions)  # every stored name is read by the catalogue
    assert {"case.open", "case.margin_call", "feasibility.report", "proposal.draft", "proposal.offer"} <= actions
    assert {"topup.declare", "topup.confirm", "proposal.execute", "case.close"} <= actions
    # the last repayment, recorded in the transaction that closed the case (after closed_at), is the case's too
    last_paid = events.filter(action="installment.paid").order_by("-sequence").first()
    assert last_paid is not None
    assert case.closed_at is not None
    assert last_paid.created_at > case.closed_at
    assert events.filter(action="installment.paid").count() == Installment.objects.filter(proposal__case=case).count()
    # and nothing of another case
    assert list(AuditEvent.objects.exclude(sequence__in=in_history).filter(account_id=case.account_id)) == []


@FAST
def test_the_client_reads_the_case_events_its_actions_declare_visible_on_its_own_offers() -> None:
    case, draft = _lived_case()

    timeline = case_timeline(case)
    everything = list(case_events(case, Audience.COMPLIANCE))

    visible = [
        e
        for e in everything
        if Audience.CLIENT in audit_action(e.action).audience  # type: ignore[union-attr]
        and not (e.object_type == "restructuring.proposal" and e.object_id == draft.pk)
    ]
    assert [(t["action"], t["object_id"]) for t in timeline] == [(e.action, e.object_id) for e in visible]
    assert [e.sequence for e in case_events(case, Audience.CLIENT)] == [e.sequence for e in visible]
    shown = {t["action"] for t in timeline}
    assert {
        "case.open",
        "proposal.offer",
        "proposal.accept",
        "topup.declare",
        "installment.paid",
        "case.close",
    } <= shown
    # never the officers' work: drafts, approvals, reports
    assert not shown & {"proposal.draft", "proposal.approve", "proposal.approval", "feasibility.report"}
    assert all(t["object_id"] != draft.pk for t in timeline if t["object"] == "offer")
