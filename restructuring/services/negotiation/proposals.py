"""Officers' actions on proposals: draft (a restructuring or a liquidation), edit, submit, approve (four eyes,
authority limits: restructuring/services/controls.py) and reject."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import LoanStatus, MarginLoan
from core.errors import NotFoundError, ValidationError
from restructuring.audit_events import (
    CASE_PROPOSE,
    CASE_REJECT,
    PROPOSAL_APPROVAL,
    PROPOSAL_APPROVE,
    PROPOSAL_DRAFT,
    PROPOSAL_EDIT,
    PROPOSAL_REJECT,
    PROPOSAL_SUBMIT,
)
from restructuring.models import (
    LIVE_PROPOSAL_STATES,
    Approval,
    ApprovalLimit,
    Case,
    CaseState,
    FeasibilityReport,
    Proposal,
    ProposalKind,
    ProposalSource,
    ProposalState,
)
from restructuring.services.controls import (
    approval_flags_said,
    approvals_needed,
    current_approvals,
    forgiveness,
    proposal_makers,
    said_text,
)
from restructuring.services.feasibility import liquidation_value
from restructuring.services.negotiation.common import (
    ApprovalRefusedError,
    NegotiationError,
    OverrideRequiredError,
    _amounts_check,
    _audit,
    _event,
    _latest_report,
    _move,
    _proposal,
    _require,
    _round,
    _seen,
    _set_terms,
    _terms,
)
from restructuring.terms import Terms, terms_hash


@dataclass(frozen=True)
class ApprovalOutcome:
    proposal: Proposal
    approved: bool
    needs: str  # what is still missing ("" once approved), in English as the record says it
    needs_read: str = ""  # the same in the reader's language


def proposal_draft(*, case_id: int, terms: Mapping[str, Any] | Terms, actor: User, name: str = "officer") -> Proposal:
    """An officer's proposal for a case in margin call or with proposals, valued on its latest report."""
    _require(actor, "restructuring.draft_proposal", gettext_noop("draft proposals"))
    parsed = _terms(terms)
    with transaction.atomic():
        case = Case.objects.select_for_update().select_related("account__client").filter(pk=case_id).first()
        if case is None:
            raise NotFoundError(gettext("case %(case_id)s does not exist") % {"case_id": case_id}, case_id=case_id)
        if case.state not in (CaseState.MARGIN_CALL, CaseState.PROPOSED):
            raise NegotiationError(
                gettext("case %(case_id)s is %(case_state)s: proposals are made in margin call")
                % {"case_id": case_id, "case_state": case.state}
            )
        _amounts_check(parsed, case.account.base_currency)
        proposal = Proposal(
            case=case,
            round=_round(case),
            source=ProposalSource.OFFICER,
            source_key=f"officer:{uuid.uuid4().hex}",
            name=name[:100] or "officer",
            made_by=actor,
            created_at=timezone.now(),
        )
        _set_terms(proposal, parsed, _latest_report(case))
        proposal.save()
        proposal.editors.add(actor)
        _audit(
            _event(
                proposal,
                PROPOSAL_DRAFT,
                "",
                actor=actor,
                version=proposal.version,
                terms=proposal.terms,
                expected_pv=proposal.expected_pv,
            )
        )
        if case.state == CaseState.MARGIN_CALL:
            before = _move(case, "propose", f"case {case.pk}")
            case.save(update_fields=["state", "updated_at"])
            _audit(_event(case, CASE_PROPOSE, before, actor=actor, proposals=[proposal.pk]))
    return proposal


def proposal_edit(*, proposal_id: int, terms: Mapping[str, Any] | Terms, actor: User) -> Proposal:
    """New terms for a proposal not yet offered: a new version, revalued, back to draft, its approvals void (they
    were of the old version, and never count again), and the editor is one of its makers."""
    _require(actor, "restructuring.draft_proposal", gettext_noop("edit proposals"))
    parsed = _terms(terms)
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.kind == ProposalKind.LIQUIDATE:
            raise NegotiationError(
                gettext("proposal %(proposal_id)s is a liquidation: it has no terms to edit")
                % {"proposal_id": proposal_id}
            )
        if proposal.state not in (ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED):
            raise NegotiationError(
                gettext("proposal %(proposal_id)s is %(proposal_state)s: its terms can no longer change")
                % {"proposal_id": proposal_id, "proposal_state": proposal.state}
            )
        _amounts_check(parsed, proposal.case.account.base_currency)
        before = str(proposal.state)
        if proposal.state != ProposalState.DRAFT:
            _move(proposal, "send_back", f"proposal {proposal_id}")
        old = proposal.terms
        _set_terms(proposal, parsed, _latest_report(proposal.case))
        proposal.made_by = actor
        proposal.version += 1
        proposal.save()
        proposal.editors.add(actor)
        _audit(
            _event(
                proposal,
                PROPOSAL_EDIT,
                before,
                actor=actor,
                version=proposal.version,
                terms_before=old,
                terms=proposal.terms,
            )
        )
    return proposal


def proposal_submit(*, proposal_id: int, actor: User) -> Proposal:
    _require(actor, "restructuring.draft_proposal", gettext_noop("submit proposals"))
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        before = _move(proposal, "submit", f"proposal {proposal_id}")
        proposal.save(update_fields=["state", "updated_at"])
        _audit(_event(proposal, PROPOSAL_SUBMIT, before, actor=actor))
    return proposal


def approval_limit(user: User, currency: str) -> Decimal:
    """The user's authority in a currency: their own limit where set, else the largest of their roles'."""
    own = ApprovalLimit.objects.filter(user=user, currency=currency).values_list("amount", flat=True).first()
    if own is not None:
        return Decimal(own)
    limits: Mapping[str, Mapping[str, str]] = settings.WORKOUT_APPROVAL_LIMITS
    roles = set(user.groups.values_list("name", flat=True))
    return max((Decimal(limits[r].get(currency, "0")) for r in roles if r in limits), default=Decimal(0))


# Where a case must be for its proposals to be approved: a restructuring while the case is among its proposals (an
# offer may be out: an approved alternative waits for its answer); a liquidation wherever the case can go to
# liquidation.
_APPROVABLE = {
    ProposalKind.RESTRUCTURE: (CaseState.PROPOSED, CaseState.OFFERED),
    ProposalKind.LIQUIDATE: (CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.DEFAULTED),
}


def proposal_approve(*, proposal_id: int, actor: User, version: int, override_reason: str = "") -> ApprovalOutcome:
    """Record the actor's approval of the version of the proposal they were shown; the proposal is APPROVED once
    the approvals of that version satisfy every control (restructuring/services/controls.py)."""
    _require(actor, "restructuring.approve_proposal", gettext_noop("approve proposals"))
    override_reason = override_reason.strip()
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.state != ProposalState.PENDING_APPROVAL:
            raise NegotiationError(
                gettext("proposal %(proposal_id)s is %(proposal_state)s: only a pending proposal is approved")
                % {"proposal_id": proposal_id, "proposal_state": proposal.state}
            )
        if proposal.case.state not in _APPROVABLE[ProposalKind(proposal.kind)]:
            raise NegotiationError(
                gettext("case %(case_id)s is %(state)s: its proposals are not approved")
                % {"case_id": proposal.case_id, "state": proposal.case.state}
            )
        _seen(proposal, version)
        makers = proposal_makers(proposal)
        if actor.pk in makers:
            raise ApprovalRefusedError(
                gettext("%(actor)s %(why)s (proposal %(proposal_id)s): another officer must approve")
                % {"actor": actor.get_username(), "why": makers[actor.pk], "proposal_id": proposal_id},
                proposal_id=proposal_id,
            )
        if Approval.objects.filter(proposal=proposal, approver=actor, version=proposal.version).exists():
            raise NegotiationError(
                gettext("%(actor)s already approved version %(proposal_version)s of proposal %(proposal_id)s")
                % {"actor": actor.get_username(), "proposal_version": proposal.version, "proposal_id": proposal_id}
            )
        currency = proposal.case.account.base_currency
        flags_said = approval_flags_said(proposal, proposal.feasibility_report, currency)
        flags = [said_text([f], english=True) for f in flags_said]  # the record's words
        if flags and not override_reason:
            raise OverrideRequiredError(
                gettext(
                    "proposal %(proposal_id)s is flagged: %(flags)s. To approve it all the same, give your "
                    "reason for overriding the model"
                )
                % {"proposal_id": proposal_id, "flags": said_text(flags_said, joiner="; ")},
                field="override_reason",
                flags=flags,
            )
        limit = approval_limit(actor, currency)
        senior = actor.has_perm("restructuring.approve_senior")
        current = proposal.terms_hash or terms_hash(proposal.terms)
        Approval.objects.create(
            proposal=proposal,
            approver=actor,
            version=proposal.version,
            terms_hash=current,
            limit=limit,
            senior=senior,
            override_reason=override_reason if flags else "",
            created_at=timezone.now(),
        )
        needs_said = approvals_needed(
            proposal=proposal,
            approvals=current_approvals(proposal),
            makers=makers,
            amount=_amount(proposal),
            forgiven=_forgiven(proposal),
            currency=currency,
        )
        needs = said_text(needs_said, english=True)
        before = str(proposal.state)
        if not needs:
            _move(proposal, "approve", f"proposal {proposal_id}")
            proposal.save(update_fields=["state", "updated_at"])
        _audit(
            _event(
                proposal,
                PROPOSAL_APPROVE if not needs else PROPOSAL_APPROVAL,
                before,
                actor=actor,
                reason=override_reason if flags else "",
                version=proposal.version,
                terms_hash=current,
                limit=limit,
                senior=senior,
                needs=needs,
                # the same, to be read again in any language (restructuring/services/controls.py said_text)
                needs_said=[list(n) for n in needs_said],
                flags=flags,
                flags_said=[list(f) for f in flags_said],
            )
        )
    return ApprovalOutcome(proposal=proposal, approved=not needs, needs=needs, needs_read=said_text(needs_said))


def _amount(proposal: Proposal) -> Decimal:
    """What the proposal restructures: the debt as its report saw it."""
    report = proposal.feasibility_report
    return Decimal(report.debt) if report is not None else Decimal(0)


def _forgiven(proposal: Proposal) -> Decimal:
    """What the terms forgive on the account's active loan (0 for a liquidation, or without a loan)."""
    if proposal.kind == ProposalKind.LIQUIDATE:
        return Decimal(0)
    loan = (
        MarginLoan.objects.filter(account_id=proposal.case.account_id, status=LoanStatus.ACTIVE)
        .values_list("principal", "rate_annual")
        .first()
    )
    if loan is None:
        return Decimal(0)
    return forgiveness(proposal.terms, principal=loan[0], rate_annual=loan[1])


def proposal_reject(*, proposal_id: int, actor: User, reason: str) -> Proposal:
    """Withdraw a proposal not yet offered, with the reason; a case left with no live proposal is back in
    margin call."""
    _require(actor, "restructuring.approve_proposal", gettext_noop("reject proposals"))
    if not reason.strip():
        raise ValidationError(gettext("a rejection needs a reason"), field="reason")
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.state not in (ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED):
            raise NegotiationError(
                gettext("proposal %(proposal_id)s is %(proposal_state)s: it can no longer be rejected")
                % {"proposal_id": proposal_id, "proposal_state": proposal.state}
            )
        before = _move(proposal, "withdraw", f"proposal {proposal_id}")
        proposal.decision_reason = reason
        proposal.decided_at = timezone.now()
        proposal.save(update_fields=["state", "decision_reason", "decided_at", "updated_at"])
        _audit(_event(proposal, PROPOSAL_REJECT, before, actor=actor, reason=reason))
        _back_to_margin_call_if_empty(proposal.case, actor=actor, reason=f"proposal {proposal_id} rejected")
    return proposal


def _back_to_margin_call_if_empty(case: Case, *, actor: User | None, reason: str) -> None:
    live = Proposal.objects.filter(
        case=case, state__in=[ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED]
    )
    if case.state == CaseState.PROPOSED and not live.exists():
        before = _move(case, "reject", f"case {case.pk}")
        case.save(update_fields=["state", "updated_at"])
        _audit(_event(case, CASE_REJECT, before, actor=actor, system_actor="negotiation", reason=reason))


def proposal_liquidation_draft(*, case_id: int, reason: str, actor: User) -> Proposal:
    """An officer's proposal to send the case to liquidation, with the reason, pending another officer's approval
    (nobody sends a case to liquidation alone). Valued at what liquidating now brings, from the latest report."""
    _require(actor, "restructuring.liquidate_case", gettext_noop("propose liquidations"))
    if not reason.strip():
        raise ValidationError(gettext("a liquidation needs a reason"), field="reason")
    with transaction.atomic():
        case = Case.objects.select_for_update().select_related("account__client").filter(pk=case_id).first()
        if case is None:
            raise NotFoundError(gettext("case %(case_id)s does not exist") % {"case_id": case_id}, case_id=case_id)
        if case.state not in _APPROVABLE[ProposalKind.LIQUIDATE]:
            raise NegotiationError(
                gettext("case %(case_id)s is %(case_state)s: it cannot go to liquidation")
                % {"case_id": case_id, "case_state": case.state}
            )
        if Proposal.objects.filter(
            case=case, kind=ProposalKind.LIQUIDATE, state__in=LIVE_PROPOSAL_STATES, source=ProposalSource.OFFICER
        ).exists():
            raise NegotiationError(
                gettext("case %(case_id)s already has a liquidation proposal waiting for approval")
                % {"case_id": case_id}
            )
        report = FeasibilityReport.objects.filter(case=case).order_by("-created_at", "-pk").first()
        receipt = liquidation_value(report.results) if report is not None else None
        proposal = Proposal(
            case=case,
            round=_round(case),
            source=ProposalSource.OFFICER,
            source_key=f"officer:{uuid.uuid4().hex}",
            kind=ProposalKind.LIQUIDATE,
            name="liquidate",
            terms={},
            terms_hash=terms_hash({}),
            explanation=[
                {"rule": "", "action": "liquidate", "parameters": {"reason": reason}, "facts": {}, "problem": ""}
            ],
            feasibility_report=report,
            valuation={"expected_pv": receipt} if receipt else {},
            expected_pv=Decimal(receipt["value"]) if receipt else None,
            made_by=actor,
            decision_reason="",
            created_at=timezone.now(),
        )
        proposal.submit()
        proposal.save()
        proposal.editors.add(actor)
        events = [_event(proposal, PROPOSAL_DRAFT, "", actor=actor, kind=ProposalKind.LIQUIDATE, reason=reason)]
        if case.state == CaseState.MARGIN_CALL:
            before = _move(case, "propose", f"case {case.pk}")
            case.save(update_fields=["state", "updated_at"])
            events.append(_event(case, CASE_PROPOSE, before, actor=actor, proposals=[proposal.pk]))
        _audit(*events)
    return proposal
