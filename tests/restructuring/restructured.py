"""A restructured case on terms the test chooses, made the way the desk makes one: an officer drafts the terms, a
second approves and offers them, the client accepts, the first executes them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.test import TestCase

from accounts.models import LoanStatus, MarginLoan
from restructuring.models import Case, Installment, Proposal
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_send
from restructuring.services.negotiation.proposals import proposal_approve, proposal_draft, proposal_submit
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import policy_in_force, staff_user

# The test book's client has no declared capacity: the model flags the terms, approving them needs a reason.
OVERRIDE = "the client's other assets, known to the desk"


def restructured(
    terms: dict[str, Any], *, accrued: Decimal = Decimal(0), code: str = "CALL"
) -> tuple[Case, list[Installment], User]:
    """A case (10 BTC at 100 on a 750 loan, in margin call) restructured on `terms`, the loan carrying `accrued`
    interest into them; its schedule, and alice (the officer who executed it, who records repayments)."""
    policy_in_force()
    margin_account = account(code, btc(), band="margin_call")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    # Interest the loan accrued before the restructuring: the schedule's arrears (its fees).
    MarginLoan.objects.filter(account=margin_account, status=LoanStatus.ACTIVE).update(accrued_interest=accrued)
    case = Case.objects.get(account=margin_account)
    alice, bob = _user("alice", "credit_officer"), _user("bob", "credit_officer")
    proposal = proposal_draft(case_id=case.pk, terms=terms, actor=alice)
    proposal_submit(proposal_id=proposal.pk, actor=alice)
    proposal_approve(proposal_id=proposal.pk, actor=bob, version=_version(proposal), override_reason=OVERRIDE)
    offer_send(proposal_id=proposal.pk, actor=bob, version=_version(proposal))
    offer_accept(proposal_id=proposal.pk, client_id=margin_account.client_id)
    proposal_execute(proposal_id=proposal.pk, actor=alice, version=_version(proposal))
    return (
        Case.objects.select_related("account").get(pk=case.pk),
        list(Installment.objects.filter(proposal=proposal).order_by("number")),
        alice,
    )


def _user(username: str, role: str) -> User:
    return User.objects.filter(username=username).first() or staff_user(username, role)


def _version(proposal: Proposal) -> int:
    return Proposal.objects.get(pk=proposal.pk).version
