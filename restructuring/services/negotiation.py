"""The negotiation: officers draft, edit, approve (four eyes, authority limits) and offer proposals; clients accept,
decline or counter-propose; an accepted restructuring is executed; repayments are recorded; deadlines expire
offers and default missed payments.

Rules every action keeps:
- One transaction per action, the proposal and its case locked (`SELECT ... FOR UPDATE`) first: two people
  acting on one proposal or case at once get one outcome; the other a NegotiationError (a conflict).
- Every transition writes exactly one audit event, in that transaction, on the object it moves (a proposal's
  and its case's transitions each have theirs); clients act as the system actor "client:<code>".
- What you saw is what you act on: approving, offering, executing and carrying out a liquidation name the
  version of the proposal the officer was shown (every edit starts a new version); another version is refused
  (StaleTermsError, a conflict that shows the new terms) and nothing is recorded. An approval counts only for
  its version, even when later terms hash the same. A client's accept may name the offer's terms hash.
- Maker-checker and the other approval controls (restructuring/services/controls.py): no maker of a proposal
  (its editors; the authors, editors and publisher of the rule set that made it) approves it; two people at
  least on every approved proposal's record; two approvers for forgiveness above WORKOUT_TWO_APPROVALS_ABOVE;
  authority limits (ApprovalLimit, else WORKOUT_APPROVAL_LIMITS by role) and a senior for escalated proposals;
  an override reason for a proposal the model flags.
- A liquidation proposal is never offered: approved, it is carried out (`proposal_liquidate`).
- A case that leaves negotiation withdraws its other live proposals (services/case_end.py); a declined or expired
  offer returns the case to PROPOSED while other proposals are live (they stay offerable), else to MARGIN_CALL.
- Objects a client does not own are "not found" to it (NotFoundError), never "forbidden".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from accounts.models import LoanStatus, MarginAccount, MarginLoan, Position
from core.audit import AuditEntry, audit_record, audit_record_many
from core.bulk import bulk_update_fields
from core.dispatch import dispatch_on_commit
from core.errors import ConflictError, NotFoundError, ValidationError, WorkoutError
from core.money import amount_check, currency_quantum
from restructuring.models import (
    LIVE_PROPOSAL_STATES,
    Approval,
    ApprovalLimit,
    Case,
    CaseState,
    CollateralDemand,
    CollateralTopUp,
    FeasibilityReport,
    Installment,
    InstallmentStatus,
    NotificationKind,
    Proposal,
    ProposalKind,
    ProposalSource,
    ProposalState,
    ReductionOrder,
    TopUpStatus,
)
from restructuring.schedules import Schedule, ScheduleError, ScheduleTerms, schedule_build
from restructuring.selectors import client_proposals
from restructuring.services.case_end import proposals_withdraw_for_cases
from restructuring.services.controls import (
    approval_flags,
    approvals_needed,
    current_approvals,
    forgiveness,
    proposal_makers,
)
from restructuring.services.feasibility import feasibility_compute, liquidation_value, terms_value
from restructuring.services.liquidation import case_liquidate
from restructuring.services.notifications import notification_enqueue
from restructuring.terms import Terms, TermsError, terms_hash, terms_lines
from rules.models import RuleSet, RuleSetStatus


class NegotiationError(ConflictError):
    code = "negotiation_conflict"


class ApprovalRefusedError(WorkoutError):
    code = "permission_denied"


class StaleTermsError(ConflictError):
    """The proposal changed since the actor was shown it: nothing is recorded; the message shows the new terms."""

    code = "terms_changed"


class OverrideRequiredError(ValidationError):
    """The model flags the proposal: approving it needs the approver's reason (field `override_reason`)."""

    code = "override_reason_required"


@dataclass(frozen=True)
class ApprovalOutcome:
    proposal: Proposal
    approved: bool
    needs: str  # what is still missing ("" once approved)


def terms_summary(proposal: Proposal) -> str:
    """The terms in one line, as the refusal of a stale action shows them."""
    if proposal.kind == ProposalKind.LIQUIDATE:
        return "liquidate the account"
    return ", ".join(f"{label} {value}" for label, value in terms_lines(proposal.terms, {})) or "the loan as it is"


def _seen(proposal: Proposal, version: int) -> None:
    """Refuse an action on another version than the one the actor was shown."""
    if version != proposal.version:
        raise StaleTermsError(
            f"proposal {proposal.pk} changed since you loaded it (you saw version {version}; it is now version "
            f"{proposal.version}: {terms_summary(proposal)}). Nothing was recorded: read the new terms and decide "
            "again.",
            proposal_id=proposal.pk,
            version=proposal.version,
            terms=proposal.terms,
        )


# ------------------------------------------------------------------------------------------------ helpers


def _require(actor: User, permission: str, what: str) -> None:
    if not actor.has_perm(permission):
        raise ApprovalRefusedError(f"{actor.get_username()} may not {what}", permission=permission)


def _proposal(proposal_id: int) -> Proposal:
    """The proposal and its case, both locked."""
    proposal = (
        Proposal.objects.select_for_update(of=("self",))
        .select_related("case__account__client", "feasibility_report")
        .filter(pk=proposal_id)
        .first()
    )
    if proposal is None:
        raise NotFoundError(f"proposal {proposal_id} does not exist", proposal_id=proposal_id)
    proposal.case = Case.objects.select_for_update().select_related("account__client").get(pk=proposal.case_id)
    return proposal


def _clients_proposal(proposal_id: int, client_id: int) -> Proposal:
    """The client's proposal and its case, locked, when it is one the client may see (client_proposals). Checked
    before any lock, with a plain read: naming another client's proposal, or one never offered, is a 404 that
    neither waits behind nor takes a lock on rows that are not the caller's. (Who owns a proposal, and whether it
    was ever offered or countered by the client, never changes once true, so the check holds under the lock.)"""
    if not client_proposals(client_id).filter(pk=proposal_id).exists():
        raise NotFoundError(f"offer {proposal_id} does not exist", proposal_id=proposal_id)
    return _proposal(proposal_id)


def _move(obj: Any, method: str, what: str) -> str:
    """Call a transition; a state without that edge is a conflict naming where the object is."""
    before = obj.state
    try:
        getattr(obj, method)()
    except TransitionNotAllowed:
        raise NegotiationError(f"{what} is {before}: it cannot {method.replace('_', ' ')}") from None
    return str(before)


def _event(
    obj: Proposal | Case,
    action: str,
    before: str,
    *,
    actor: User | None = None,
    system_actor: str = "",
    reason: str = "",
    **payload: Any,
) -> AuditEntry:
    """The audit event of one transition of a proposal or a case."""
    case: Case = obj if isinstance(obj, Case) else obj.case  # type: ignore[union-attr]
    return AuditEntry(
        action=action,
        object_type="restructuring.case" if isinstance(obj, Case) else "restructuring.proposal",
        object_id=obj.pk,
        account_id=case.account_id,
        actor=actor,
        system_actor="" if actor is not None else system_actor,
        from_state=before,
        to_state=str(obj.state),
        reason=reason,
        payload=payload,
    )


def _audit(*events: AuditEntry) -> None:
    """Write an action's events together (one lock and one write for the proposal's and the case's)."""
    audit_record_many(list(events))


def _client_actor(proposal: Proposal) -> str:
    return f"client:{proposal.case.account.client.code}"[:64]


def _terms(data: Mapping[str, Any] | Terms) -> Terms:
    try:
        return data if isinstance(data, Terms) else Terms.from_json(data)
    except TermsError as exc:
        raise ValidationError(str(exc), field=exc.field) from None


def _amounts_check(
    terms: Terms, currency: str, names: tuple[str, ...] = ("collateral_to_add", "principal_haircut")
) -> None:
    """The terms' amounts of money have at most their currency's places."""
    for name in names:
        amount_check(getattr(terms, name), currency, field=name)


def _latest_report(case: Case) -> FeasibilityReport:
    report = FeasibilityReport.objects.filter(case=case).select_related("case").order_by("-created_at", "-pk").first()
    if report is None:
        raise NegotiationError(f"case {case.pk} has no feasibility report yet: terms cannot be valued")
    return report


def _valued(report: FeasibilityReport, name: str, terms: Terms) -> dict[str, Any]:
    [valued] = terms_value(report, [(name, terms)], start=timezone.now().date())
    if valued.priced is None:
        field = "term_months" if "term_months" in valued.problem else "terms"
        raise ValidationError(valued.problem, field=field)
    return valued.valuation


def _set_terms(proposal: Proposal, terms: Terms, report: FeasibilityReport) -> None:
    proposal.terms = terms.to_json()
    proposal.terms_hash = terms_hash(proposal.terms)
    proposal.feasibility_report = report
    proposal.valuation = _valued(report, proposal.name, terms)
    proposal.expected_pv = Decimal(proposal.valuation["expected_pv"]["value"])


def _round(case: Case) -> int:
    return int(Proposal.objects.filter(case=case).aggregate(r=Max("round"))["r"] or 1)


# ------------------------------------------------------------------------------------------ officer actions


def proposal_draft(*, case_id: int, terms: Mapping[str, Any] | Terms, actor: User, name: str = "officer") -> Proposal:
    """An officer's proposal for a case in margin call or with proposals, valued on its latest report."""
    _require(actor, "restructuring.draft_proposal", "draft proposals")
    parsed = _terms(terms)
    with transaction.atomic():
        case = Case.objects.select_for_update().select_related("account__client").filter(pk=case_id).first()
        if case is None:
            raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
        if case.state not in (CaseState.MARGIN_CALL, CaseState.PROPOSED):
            raise NegotiationError(f"case {case_id} is {case.state}: proposals are made in margin call")
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
                "proposal.draft",
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
            _audit(_event(case, "case.propose", before, actor=actor, proposals=[proposal.pk]))
    return proposal


def proposal_edit(*, proposal_id: int, terms: Mapping[str, Any] | Terms, actor: User) -> Proposal:
    """New terms for a proposal not yet offered: a new version, revalued, back to draft, its approvals void (they
    were of the old version, and never count again), and the editor is one of its makers."""
    _require(actor, "restructuring.draft_proposal", "edit proposals")
    parsed = _terms(terms)
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.kind == ProposalKind.LIQUIDATE:
            raise NegotiationError(f"proposal {proposal_id} is a liquidation: it has no terms to edit")
        if proposal.state not in (ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED):
            raise NegotiationError(f"proposal {proposal_id} is {proposal.state}: its terms can no longer change")
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
                "proposal.edit",
                before,
                actor=actor,
                version=proposal.version,
                terms_before=old,
                terms=proposal.terms,
            )
        )
    return proposal


def proposal_submit(*, proposal_id: int, actor: User) -> Proposal:
    _require(actor, "restructuring.draft_proposal", "submit proposals")
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        before = _move(proposal, "submit", f"proposal {proposal_id}")
        proposal.save(update_fields=["state", "updated_at"])
        _audit(_event(proposal, "proposal.submit", before, actor=actor))
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
    _require(actor, "restructuring.approve_proposal", "approve proposals")
    override_reason = override_reason.strip()
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.state != ProposalState.PENDING_APPROVAL:
            raise NegotiationError(f"proposal {proposal_id} is {proposal.state}: only a pending proposal is approved")
        if proposal.case.state not in _APPROVABLE[ProposalKind(proposal.kind)]:
            raise NegotiationError(f"case {proposal.case_id} is {proposal.case.state}: its proposals are not approved")
        _seen(proposal, version)
        makers = proposal_makers(proposal)
        if actor.pk in makers:
            raise ApprovalRefusedError(
                f"{actor.get_username()} {makers[actor.pk]} (proposal {proposal_id}): another officer must approve",
                proposal_id=proposal_id,
            )
        if Approval.objects.filter(proposal=proposal, approver=actor, version=proposal.version).exists():
            raise NegotiationError(
                f"{actor.get_username()} already approved version {proposal.version} of proposal {proposal_id}"
            )
        flags = approval_flags(proposal, proposal.feasibility_report)
        if flags and not override_reason:
            raise OverrideRequiredError(
                f"proposal {proposal_id} is flagged: {'; '.join(flags)}. To approve it all the same, give your "
                "reason for overriding the model",
                field="override_reason",
                flags=flags,
            )
        currency = proposal.case.account.base_currency
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
        needs = " and ".join(
            approvals_needed(
                proposal=proposal,
                approvals=current_approvals(proposal),
                makers=makers,
                amount=_amount(proposal),
                forgiven=_forgiven(proposal),
                currency=currency,
            )
        )
        before = str(proposal.state)
        if not needs:
            _move(proposal, "approve", f"proposal {proposal_id}")
            proposal.save(update_fields=["state", "updated_at"])
        _audit(
            _event(
                proposal,
                "proposal.approve" if not needs else "proposal.approval",
                before,
                actor=actor,
                reason=override_reason if flags else "",
                version=proposal.version,
                terms_hash=current,
                limit=limit,
                senior=senior,
                needs=needs,
                flags=flags,
            )
        )
    return ApprovalOutcome(proposal=proposal, approved=not needs, needs=needs)


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
    _require(actor, "restructuring.approve_proposal", "reject proposals")
    if not reason.strip():
        raise ValidationError("a rejection needs a reason", field="reason")
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.state not in (ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED):
            raise NegotiationError(f"proposal {proposal_id} is {proposal.state}: it can no longer be rejected")
        before = _move(proposal, "withdraw", f"proposal {proposal_id}")
        proposal.decision_reason = reason
        proposal.decided_at = timezone.now()
        proposal.save(update_fields=["state", "decision_reason", "decided_at", "updated_at"])
        _audit(_event(proposal, "proposal.reject", before, actor=actor, reason=reason))
        _back_to_margin_call_if_empty(proposal.case, actor=actor, reason=f"proposal {proposal_id} rejected")
    return proposal


def _back_to_margin_call_if_empty(case: Case, *, actor: User | None, reason: str) -> None:
    live = Proposal.objects.filter(
        case=case, state__in=[ProposalState.DRAFT, ProposalState.PENDING_APPROVAL, ProposalState.APPROVED]
    )
    if case.state == CaseState.PROPOSED and not live.exists():
        before = _move(case, "reject", f"case {case.pk}")
        case.save(update_fields=["state", "updated_at"])
        _audit(_event(case, "case.reject", before, actor=actor, system_actor="negotiation", reason=reason))


def offer_send(
    *,
    proposal_id: int,
    actor: User,
    version: int,
    hours: float | None = None,
    counter_bounds: Mapping[str, Any] | None = None,
) -> Proposal:
    """Send an approved proposal (the version the officer was shown) to the client: the case is OFFERED until the
    offer expires; the client may counter within the bounds (by default: WORKOUT_COUNTER_* around the offered
    terms). A liquidation is never offered."""
    _require(actor, "restructuring.offer_proposal", "send offers")
    offer_hours = offer_hours_check(hours)
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        case = proposal.case
        if proposal.kind == ProposalKind.LIQUIDATE:
            raise NegotiationError(
                f"proposal {proposal_id} is a liquidation: it is not offered to the client; once approved, send the "
                "case to liquidation"
            )
        _seen(proposal, version)
        before = _move(proposal, "offer", f"proposal {proposal_id}")
        case_before = _move(case, "offer", f"case {case.pk}")
        now = timezone.now()
        proposal.offered_at = now
        proposal.expires_at = now + timedelta(hours=offer_hours)
        proposal.counter_bounds = dict(counter_bounds) if counter_bounds else _default_bounds(proposal)
        proposal.save(update_fields=["state", "offered_at", "expires_at", "counter_bounds", "updated_at"])
        case.save(update_fields=["state", "updated_at"])
        _audit(
            _event(proposal, "proposal.offer", before, actor=actor, expires_at=proposal.expires_at.isoformat()),
            _event(case, "case.offer", case_before, actor=actor, proposal_id=proposal.pk),
        )
        notification_enqueue(
            case=case,
            kind=NotificationKind.OFFER,
            payload={
                "proposal_id": proposal.pk,
                "terms": proposal.terms,
                "expires_at": proposal.expires_at.isoformat(),
            },
            dedupe_key=f"offer:{proposal.pk}",
        )
    return proposal


def offer_hours_check(hours: float | Decimal | None) -> float:
    """How long an offer stands: the house default when not given, else more than 0 and at most
    WORKOUT_OFFER_MAX_HOURS (ValidationError on `hours`). Unbounded, 1e8 hours was past the year 9999: a 500."""
    if hours is None:
        return float(settings.WORKOUT_OFFER_HOURS)
    limit = float(settings.WORKOUT_OFFER_MAX_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int | float | Decimal) or not 0 < hours <= limit:
        raise ValidationError(f"hours {hours}: an offer stands more than 0 and at most {limit:g} hours", field="hours")
    return float(hours)


def _default_bounds(proposal: Proposal) -> dict[str, str | int]:
    terms = proposal.terms
    rate = terms.get("rate_annual")
    loan_rate = (
        MarginLoan.objects.filter(account_id=proposal.case.account_id, status=LoanStatus.ACTIVE)
        .values_list("rate_annual", flat=True)
        .first()
    )
    offered_rate = Decimal(rate) if rate is not None else Decimal(loan_rate or 0)
    collateral = Decimal(terms.get("collateral_to_add", "0"))
    min_rate = max(offered_rate - Decimal(settings.WORKOUT_COUNTER_MAX_RATE_CUT), Decimal(0))
    min_collateral = collateral * Decimal(settings.WORKOUT_COUNTER_MIN_COLLATERAL_SHARE)
    return {
        "max_term_months": int(terms["term_months"]) + settings.WORKOUT_COUNTER_MAX_EXTRA_MONTHS,
        "min_rate": f"{min_rate.quantize(Decimal('0.000001')).normalize():f}",
        "min_collateral": str(min_collateral.quantize(_quantum(proposal))),
    }


# ------------------------------------------------------------------------------------------ client actions


def _hash_of(proposal: Proposal) -> str:
    return proposal.terms_hash or terms_hash(proposal.terms)


def _offered(proposal: Proposal, now: datetime) -> None:
    if proposal.state != ProposalState.OFFERED:
        raise NegotiationError(f"proposal {proposal.pk} is {proposal.state}: it is not an open offer")
    if proposal.expires_at is not None and proposal.expires_at <= now:
        raise NegotiationError(f"the offer of proposal {proposal.pk} expired at {proposal.expires_at.isoformat()}")


def offer_accept(*, proposal_id: int, client_id: int, terms_hash: str | None = None) -> Proposal:
    """The client accepts the offer as it stands; `terms_hash`, when given, must be the offer's (what the client
    read), else nothing happens (StaleTermsError)."""
    with transaction.atomic():
        proposal = _clients_proposal(proposal_id, client_id)
        now = timezone.now()
        _offered(proposal, now)
        if terms_hash is not None and terms_hash != _hash_of(proposal):
            raise StaleTermsError(
                f"offer {proposal_id}: terms_hash {terms_hash} is not the offer's ({_hash_of(proposal)}): read the "
                "offer again before accepting",
                proposal_id=proposal_id,
                terms_hash=_hash_of(proposal),
            )
        before = _move(proposal, "accept", f"proposal {proposal_id}")
        case_before = _move(proposal.case, "accept", f"case {proposal.case_id}")
        proposal.decided_at = now
        proposal.save(update_fields=["state", "decided_at", "updated_at"])
        proposal.case.save(update_fields=["state", "updated_at"])
        actor = _client_actor(proposal)
        _audit(
            _event(proposal, "proposal.accept", before, system_actor=actor),
            _event(proposal.case, "case.accept", case_before, system_actor=actor, proposal_id=proposal.pk),
        )
    return proposal


def offer_decline(*, proposal_id: int, client_id: int, reason: str) -> Proposal:
    if not reason.strip():
        raise ValidationError("a decline needs a reason", field="reason")
    with transaction.atomic():
        proposal = _clients_proposal(proposal_id, client_id)
        now = timezone.now()
        _offered(proposal, now)
        before = _move(proposal, "decline", f"proposal {proposal_id}")
        case_before = _move(proposal.case, _after_offer(proposal, "decline"), f"case {proposal.case_id}")
        proposal.decided_at = now
        proposal.decision_reason = reason
        proposal.save(update_fields=["state", "decided_at", "decision_reason", "updated_at"])
        proposal.case.save(update_fields=["state", "updated_at"])
        actor = _client_actor(proposal)
        _audit(
            _event(proposal, "proposal.decline", before, system_actor=actor, reason=reason),
            _event(proposal.case, "case.decline", case_before, system_actor=actor, proposal_id=proposal.pk),
        )
    return proposal


def _after_offer(offer: Proposal, transition: str) -> str:
    """The case's transition when an offer is declined or expires: back among its proposals while others of the
    case are live (they stay approvable and offerable), else back to margin call (docs/case-states.md)."""
    others = Proposal.objects.filter(case_id=offer.case_id, state__in=LIVE_PROPOSAL_STATES).exclude(pk=offer.pk)
    return "return_to_proposals" if others.exists() else transition


def offer_counter(*, proposal_id: int, client_id: int, terms: Mapping[str, Any]) -> Proposal:
    """The client's counter-offer: the offered terms with what the client asks instead (`terms`; only
    COUNTER_MAY_CHANGE may move, within the offer's bounds), valued, as a new proposal in the next round pending
    the officers' approval; the offer is COUNTERED and the case back to PROPOSED."""
    with transaction.atomic():
        offer = _clients_proposal(proposal_id, client_id)
        now = timezone.now()
        _offered(offer, now)
        parsed = _terms({**offer.terms, **terms})
        if "collateral_to_add" in terms:  # what the client typed; the rest is as offered
            _amounts_check(parsed, offer.case.account.base_currency, ("collateral_to_add",))
        _within_bounds(parsed, offer)
        before = _move(offer, "counter", f"proposal {proposal_id}")
        case_before = _move(offer.case, "counter", f"case {offer.case_id}")
        offer.decided_at = now
        offer.save(update_fields=["state", "decided_at", "updated_at"])
        offer.case.save(update_fields=["state", "updated_at"])
        counter = Proposal(
            case=offer.case,
            round=offer.round + 1,
            source=ProposalSource.CLIENT,
            source_key=f"counter:{offer.pk}",
            name=f"counter to {offer.name}"[:100],
            countered_from=offer,
            requires_senior=offer.requires_senior,
            created_at=now,
        )
        _set_terms(counter, parsed, _latest_report(offer.case))
        counter.save()
        _move(counter, "submit", "the counter-offer")
        counter.save(update_fields=["state"])
        actor = _client_actor(offer)
        _audit(
            _event(offer, "proposal.counter", before, system_actor=actor, counter_id=counter.pk),
            _event(counter, "proposal.counter_offer", "", system_actor=actor, terms=counter.terms),
            _event(offer.case, "case.counter", case_before, system_actor=actor, proposal_id=counter.pk),
        )
        _counter_followup(offer.case_id, offer.pk)
    return counter


def _counter_followup(case_id: int, offer_id: int) -> None:
    # Imported here: the tasks module imports this service.
    from restructuring.tasks import counter_followup_task

    dispatch_on_commit(
        counter_followup_task,
        {"case_id": case_id, "offer_id": offer_id},
        redrive="the feasibility re-drive beat (feasibility_redrive_task, counter-offers without their follow-up)",
    )


def counter_followup(*, case_id: int, offer_id: int) -> list[int]:
    """After a counter-offer: feasibility again on today's book and market, then the rules on it, for the new
    round beside the client's proposal. Idempotent (the report is keyed by the offer, the proposals by report)."""
    from restructuring.services.proposals import proposals_from_rules

    feasibility_compute(case_ids=[case_id], key=_counter_key(offer_id))
    return proposals_from_rules(case_ids=[case_id])


def _counter_key(offer_id: int) -> str:
    return f"counter:{offer_id}"


def counter_followups_due(limit: int = 1000) -> list[tuple[int, int]]:
    """(case id, offer id) of the counter-offers whose follow-up never ran (its task lost with the broker): the
    case's latest countered offer, the case still PROPOSED, and no report keyed by that offer yet, or the
    published rules have not read it (they stamp `facts_at` on the cases they evaluate). The beat re-drives
    them; the follow-up is idempotent."""
    latest: dict[int, int] = {}
    countered = Proposal.objects.filter(state=ProposalState.COUNTERED, case__state=CaseState.PROPOSED)
    for case_id, offer_id in countered.order_by("case_id", "-pk").values_list("case_id", "pk"):
        latest.setdefault(case_id, offer_id)
    if not latest:
        return []
    reported = {
        case_id: created_at
        for case_id, key, created_at in FeasibilityReport.objects.filter(
            case_id__in=list(latest), key__in=[_counter_key(o) for o in latest.values()]
        ).values_list("case_id", "key", "created_at")
        if key == _counter_key(latest[case_id])
    }
    rules_read = RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).exists()
    facts_at = dict(Case.objects.filter(pk__in=list(reported)).values_list("pk", "facts_at"))
    due = [
        (case_id, offer_id)
        for case_id, offer_id in sorted(latest.items())
        if case_id not in reported
        or (rules_read and (facts_at.get(case_id) is None or facts_at[case_id] < reported[case_id]))
    ]
    return due[:limit]


# What a counter-offer may move, each within the offer's bounds. Everything else (a haircut, grace, a moratorium,
# reductions, the kind of schedule, the arrears) stays as offered: the offer's approvers, whose record a counter
# borrows, approved those and the bounds, nothing beyond (issue 13: a counter forgiving principal nobody saw).
COUNTER_MAY_CHANGE = ("term_months", "rate_annual", "collateral_to_add")


def _within_bounds(terms: Terms, offer: Proposal) -> None:
    offered = _terms(offer.terms)
    for name in (f.name for f in fields(Terms)):
        if name not in COUNTER_MAY_CHANGE and getattr(terms, name) != getattr(offered, name):
            raise ValidationError(
                f"{name}: a counter-offer may change only {', '.join(COUNTER_MAY_CHANGE)}; {name} stays as offered",
                field=name,
            )
    bounds = offer.counter_bounds or {}
    if "max_term_months" in bounds and terms.term_months > int(bounds["max_term_months"]):
        raise ValidationError(
            f"term_months {terms.term_months}: at most {bounds['max_term_months']} for this offer", field="term_months"
        )
    if "min_rate" in bounds and terms.rate_annual is not None and terms.rate_annual < Decimal(bounds["min_rate"]):
        raise ValidationError(
            f"rate_annual {terms.rate_annual}: at least {bounds['min_rate']} for this offer", field="rate_annual"
        )
    if "min_collateral" in bounds and terms.collateral_to_add < Decimal(bounds["min_collateral"]):
        raise ValidationError(
            f"collateral_to_add {terms.collateral_to_add}: at least {bounds['min_collateral']} for this offer",
            field="collateral_to_add",
        )


def topup_declare(*, account_id: int, client_id: int, amount: Decimal, reference: str = "") -> CollateralTopUp:
    """A client's declared collateral top-up: pending until operations confirm it."""
    if not (isinstance(amount, Decimal) and amount.is_finite() and amount > 0):
        raise ValidationError(f"amount {amount}: must be a positive amount", field="amount")
    with transaction.atomic():
        account = MarginAccount.objects.filter(pk=account_id, client_id=client_id).first()
        if account is None:
            raise NotFoundError(f"account {account_id} does not exist", account_id=account_id)
        amount_check(amount, account.base_currency, field="amount")
        topup = CollateralTopUp.objects.create(
            account=account, amount=amount, reference=reference[:200], declared_at=timezone.now()
        )
        audit_record(
            AuditEntry(
                action="topup.declare",
                object_type="restructuring.collateraltopup",
                object_id=topup.pk,
                account_id=account.pk,
                system_actor=f"client:{account.client.code}"[:64],
                to_state=TopUpStatus.PENDING,
                payload={"amount": amount, "reference": reference},
            )
        )
    return topup


def topup_confirm(*, topup_id: int, actor: User) -> CollateralTopUp:
    """Operations confirm a top-up: the cash is the account's; collateral demanded of it is met as far as it
    goes; the next sweep cures the case if the margin is restored (one is queued on commit)."""
    _require(actor, "restructuring.execute_proposal", "confirm top-ups")
    with transaction.atomic():
        topup = CollateralTopUp.objects.select_for_update().filter(pk=topup_id).first()
        if topup is None:
            raise NotFoundError(f"top-up {topup_id} does not exist", topup_id=topup_id)
        if topup.status != TopUpStatus.PENDING:
            raise NegotiationError(f"top-up {topup_id} is {topup.status}")
        now = timezone.now()
        MarginAccount.objects.filter(pk=topup.account_id).update(cash=F("cash") + topup.amount, updated_at=now)
        topup.status, topup.decided_at, topup.decided_by = TopUpStatus.CONFIRMED, now, actor
        topup.save(update_fields=["status", "decided_at", "decided_by"])
        CollateralDemand.objects.filter(
            proposal__case__account_id=topup.account_id, met_at__isnull=True, amount__lte=topup.amount
        ).update(met_at=now)
        audit_record(
            AuditEntry(
                action="topup.confirm",
                object_type="restructuring.collateraltopup",
                object_id=topup.pk,
                account_id=topup.account_id,
                actor=actor,
                from_state=TopUpStatus.PENDING,
                to_state=TopUpStatus.CONFIRMED,
                payload={"amount": topup.amount},
            )
        )
        _sweep_soon()
    return topup


def _sweep_soon() -> None:
    from accounts.tasks import sweep_run_task

    dispatch_on_commit(sweep_run_task, {}, redrive="the beat sweep (every WORKOUT_SWEEP_EVERY_SECONDS)")


# ---------------------------------------------------------------------------------------------- execution


def proposal_execute(*, proposal_id: int, actor: User, version: int) -> Proposal:
    """Apply accepted terms (the version the officer was shown) in one transaction: the loan's principal (haircut,
    capitalised arrears), rate and maturity; the repayment schedule; the collateral demand with its due date; the
    position reductions as orders for the desk. The case is RESTRUCTURED and its other proposals withdrawn."""
    _require(actor, "restructuring.execute_proposal", "execute restructurings")
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        case = proposal.case
        if proposal.state != ProposalState.ACCEPTED:
            raise NegotiationError(f"proposal {proposal_id} is {proposal.state}: only an accepted offer is executed")
        _seen(proposal, version)
        terms = _terms(proposal.terms)
        loan = MarginLoan.objects.select_for_update().filter(account=case.account, status=LoanStatus.ACTIVE).first()
        if loan is None:
            raise NegotiationError(f"case {case.pk}: the account has no active loan to restructure")
        now = timezone.now()
        try:
            schedule = execution_schedule(loan, terms, _quantum(proposal), now.date())
        except ScheduleError as exc:
            raise ValidationError(f"proposal {proposal_id}: {exc}", field="terms") from None
        before_loan = {"principal": loan.principal, "rate": loan.rate_annual, "accrued": loan.accrued_interest}
        loan.principal = schedule.terms.principal + schedule.capitalised
        loan.accrued_interest = Decimal(0)  # capitalised, or scheduled as arrears
        loan.rate_annual = schedule.terms.rate_annual
        loan.maturity_date = schedule.installments[-1].due
        loan.save(update_fields=["principal", "accrued_interest", "rate_annual", "maturity_date"])
        Installment.objects.bulk_create(
            Installment(
                proposal=proposal,
                number=i.number,
                due=i.due,
                principal=i.principal,
                interest=i.interest,
                arrears=i.arrears,
                total=i.total,
                balance=i.balance,
                status=InstallmentStatus.PAID if i.total == 0 else InstallmentStatus.DUE,
                paid_at=now if i.total == 0 else None,
            )
            for i in schedule.installments
        )
        if terms.collateral_to_add > 0:
            CollateralDemand.objects.create(
                proposal=proposal,
                amount=terms.collateral_to_add,
                due=now + timedelta(days=settings.WORKOUT_COLLATERAL_DUE_DAYS),
            )
        _reductions(proposal, terms, now)
        before = _move(proposal, "execute", f"proposal {proposal_id}")
        case_before = _move(case, "execute", f"case {case.pk}")
        proposal.save(update_fields=["state", "updated_at"])
        case.save(update_fields=["state", "updated_at"])
        _audit(
            _event(proposal, "proposal.execute", before, actor=actor, loan_before=before_loan),
            _event(
                case,
                "case.execute",
                case_before,
                actor=actor,
                proposal_id=proposal.pk,
                principal=loan.principal,
                rate=loan.rate_annual,
                maturity=loan.maturity_date.isoformat(),
                installments=len(schedule.installments),
                haircut=terms.principal_haircut,
                collateral=terms.collateral_to_add,
            ),
        )
        proposals_withdraw_for_cases(
            case_ids=[case.pk],
            reason=f"case {case.pk} restructured by proposal {proposal_id}",
            now=now,
            actor=actor,
            keep=[proposal.pk],
        )
    return proposal


def proposal_liquidation_draft(*, case_id: int, reason: str, actor: User) -> Proposal:
    """An officer's proposal to send the case to liquidation, with the reason, pending another officer's approval
    (nobody sends a case to liquidation alone). Valued at what liquidating now brings, from the latest report."""
    _require(actor, "restructuring.liquidate_case", "propose liquidations")
    if not reason.strip():
        raise ValidationError("a liquidation needs a reason", field="reason")
    with transaction.atomic():
        case = Case.objects.select_for_update().select_related("account__client").filter(pk=case_id).first()
        if case is None:
            raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
        if case.state not in _APPROVABLE[ProposalKind.LIQUIDATE]:
            raise NegotiationError(f"case {case_id} is {case.state}: it cannot go to liquidation")
        if Proposal.objects.filter(
            case=case, kind=ProposalKind.LIQUIDATE, state__in=LIVE_PROPOSAL_STATES, source=ProposalSource.OFFICER
        ).exists():
            raise NegotiationError(f"case {case_id} already has a liquidation proposal waiting for approval")
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
        events = [_event(proposal, "proposal.draft", "", actor=actor, kind=ProposalKind.LIQUIDATE, reason=reason)]
        if case.state == CaseState.MARGIN_CALL:
            before = _move(case, "propose", f"case {case.pk}")
            case.save(update_fields=["state", "updated_at"])
            events.append(_event(case, "case.propose", before, actor=actor, proposals=[proposal.pk]))
        _audit(*events)
    return proposal


def _liquidation_reason(proposal: Proposal) -> str:
    """Why the case goes to liquidation, as the proposal says: the officer's reason, or the rules that fired."""
    officer = [str(e["parameters"].get("reason", "")) for e in proposal.explanation if not e.get("rule")]
    rules = [str(e["rule"]) for e in proposal.explanation if e.get("rule") and e.get("action") == "liquidate"]
    why = "; ".join(r for r in officer if r) or ("the rules: " + ", ".join(rules) if rules else "approved")
    return f"proposal {proposal.pk}: {why}"


def proposal_liquidate(*, proposal_id: int, actor: User, version: int) -> Proposal:
    """Carry out an approved liquidation proposal (the version the officer was shown): the case goes to
    liquidation with its plan, its other proposals are withdrawn, the proposal is EXECUTED."""
    _require(actor, "restructuring.liquidate_case", "send cases to liquidation")
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.kind != ProposalKind.LIQUIDATE:
            raise NegotiationError(f"proposal {proposal_id} restructures: it is offered to the client, not liquidated")
        if proposal.state != ProposalState.APPROVED:
            raise NegotiationError(f"proposal {proposal_id} is {proposal.state}: only an approved liquidation is sent")
        _seen(proposal, version)
        before = _move(proposal, "carry_out_liquidation", f"proposal {proposal_id}")
        proposal.decided_at = timezone.now()
        proposal.save(update_fields=["state", "decided_at", "updated_at"])
        # The proposal is executed first, so the case's move withdraws only the others.
        plan = case_liquidate(
            case_id=proposal.case_id, reason=_liquidation_reason(proposal), actor=actor, proposal_id=proposal_id
        )
        _audit(_event(proposal, "proposal.liquidate", before, actor=actor, plan_id=plan.pk, version=version))
    return proposal


def execution_schedule(loan: MarginLoan, terms: Terms, quantum: Decimal, start: date) -> Schedule:
    """The schedule executing `terms` on `loan` builds when it starts on `start`: the haircut off the principal, the
    accrued interest as arrears, the offer's rate or else the loan's. The client API's preview of an offer is this
    same schedule. Raises ScheduleError for terms that make no schedule."""
    return schedule_build(
        ScheduleTerms(
            principal=max(loan.principal - terms.principal_haircut, Decimal(0)).quantize(quantum),
            rate_annual=terms.rate_annual if terms.rate_annual is not None else loan.rate_annual,
            term_months=terms.term_months,
            kind=terms.kind,
            moratorium_months=terms.moratorium_months,
            grace_interest_months=terms.grace_interest_months,
            grace_principal_months=terms.grace_principal_months,
            arrears=loan.accrued_interest.quantize(quantum),
            arrears_treatment=terms.arrears_treatment,
            start=start,
            quantum=quantum,
        )
    )


def _quantum(proposal: Proposal) -> Decimal:
    return currency_quantum(proposal.case.account.base_currency)


def _reductions(proposal: Proposal, terms: Terms, now: datetime) -> None:
    if not terms.reduce:
        return
    positions = {p.pk: p for p in Position.objects.filter(pk__in=[p for p, _ in terms.reduce])}
    orders = []
    for position_id, fraction in terms.reduce:
        position = positions.get(position_id)
        if position is None or position.account_id != proposal.case.account_id:
            raise ValidationError(f"reduce: position {position_id} is not open in this account", field="reduce")
        orders.append(
            ReductionOrder(
                proposal=proposal,
                position_id=position_id,
                instrument_id=position.instrument_id,
                quantity=(position.quantity * fraction).quantize(Decimal("1E-8")),
                created_at=now,
            )
        )
    ReductionOrder.objects.bulk_create(orders)


def repayment_record(*, installment_id: int, amount: Decimal, actor: User) -> Installment:
    """A repayment of one installment, in full (partial payments are not taken); the loan's principal follows
    the schedule; the last one closes the loan and the case."""
    _require(actor, "restructuring.execute_proposal", "record repayments")
    with transaction.atomic():
        installment = (
            Installment.objects.select_for_update().select_related("proposal").filter(pk=installment_id).first()
        )
        if installment is None:
            raise NotFoundError(f"installment {installment_id} does not exist", installment_id=installment_id)
        if installment.status != InstallmentStatus.DUE:
            raise NegotiationError(f"installment {installment_id} is {installment.status}")
        if amount != installment.total:
            raise ValidationError(
                f"amount {amount}: the installment is {installment.total}; partial payments are not taken",
                field="amount",
            )
        case = Case.objects.select_for_update().get(pk=installment.proposal.case_id)
        if case.state != CaseState.RESTRUCTURED:
            raise NegotiationError(f"case {case.pk} is {case.state}: repayments are recorded on restructured cases")
        now = timezone.now()
        installment.status, installment.paid_amount, installment.paid_at = InstallmentStatus.PAID, amount, now
        installment.save(update_fields=["status", "paid_amount", "paid_at"])
        loan = MarginLoan.objects.select_for_update().get(account_id=case.account_id, status=LoanStatus.ACTIVE)
        loan.principal = installment.balance
        last = not Installment.objects.filter(proposal=installment.proposal, status=InstallmentStatus.DUE).exists()
        if last:
            loan.status = LoanStatus.CLOSED
        loan.save(update_fields=["principal", "status"])
        audit_record(
            AuditEntry(
                action="installment.paid",
                object_type="restructuring.installment",
                object_id=installment.pk,
                account_id=case.account_id,
                actor=actor,
                from_state=InstallmentStatus.DUE,
                to_state=InstallmentStatus.PAID,
                payload={"number": installment.number, "amount": amount, "balance": installment.balance},
            )
        )
        if last:
            before = str(case.state)
            case.close(at=now)
            case.save(update_fields=["state", "closed_at", "updated_at"])
            _audit(_event(case, "case.close", before, actor=actor, reason="repaid in full"))
            proposals_withdraw_for_cases(case_ids=[case.pk], reason="the case is closed: repaid", now=now, actor=actor)
    return installment


# ---------------------------------------------------------------------------------------------- deadlines


NEGOTIATION_ACTOR = "negotiation-deadlines"


def negotiation_deadlines_run(now: datetime | None = None) -> dict[str, list[int]]:
    """Offers past their expiry go back to margin call; installments unpaid past the grace are missed and their
    restructured cases default. In bulk, a fixed number of queries whatever the count: what is due is locked
    (rows another action holds are left for the next run), moved, written back and audited in one transaction;
    a second run finds nothing to do."""
    now = now or timezone.now()
    return {"offers_expired": _offers_expire(now), "cases_defaulted": _missed_payments_default(now)}


def _offers_expire(now: datetime) -> list[int]:
    with transaction.atomic():
        due = list(
            Proposal.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=ProposalState.OFFERED, expires_at__lte=now)
            .order_by("pk")
        )
        cases = {
            c.pk: c for c in Case.objects.select_for_update(skip_locked=True).filter(pk__in=[p.case_id for p in due])
        }
        # Cases with other live proposals go back among them (as after a decline: _after_offer).
        with_alternatives = set(
            Proposal.objects.filter(case_id__any=list(cases), state__in=LIVE_PROPOSAL_STATES)
            .exclude(pk__any=[p.pk for p in due])
            .values_list("case_id", flat=True)
        )
        moved, events = [], []
        for proposal in due:
            case = cases.get(proposal.case_id)
            if case is None or case.state != CaseState.OFFERED:  # held by an action now, or moved: not ours
                continue
            proposal.case = case
            case_transition = "return_to_proposals" if case.pk in with_alternatives else "expire_offer"
            before, case_before = _move(proposal, "expire", "offer"), _move(case, case_transition, "case")
            proposal.updated_at = case.updated_at = now  # auto_now is not applied by bulk writes
            moved.append(proposal)
            events += [
                _event(proposal, "proposal.expire", before, system_actor=NEGOTIATION_ACTOR),
                _event(
                    case, "case.offer_expired", case_before, system_actor=NEGOTIATION_ACTOR, proposal_id=proposal.pk
                ),
            ]
        bulk_update_fields(Proposal, moved, ["state", "updated_at"])
        bulk_update_fields(Case, [p.case for p in moved], ["state", "updated_at"])
        audit_record_many(events)
    return [p.pk for p in moved]


def _missed_payments_default(now: datetime) -> list[int]:
    cutoff = (now - timedelta(days=settings.WORKOUT_PAYMENT_GRACE_DAYS)).date()
    with transaction.atomic():
        late = list(
            Installment.objects.select_for_update(skip_locked=True)
            .filter(status=InstallmentStatus.DUE, due__lt=cutoff, proposal__case__state=CaseState.RESTRUCTURED)
            .values_list("pk", "proposal__case_id", "number")
        )
        cases = list(
            Case.objects.select_for_update(skip_locked=True)
            .filter(pk__in={case_id for _, case_id, _ in late}, state=CaseState.RESTRUCTURED)
            .order_by("pk")
        )
        numbers: dict[int, list[int]] = {}
        for _, case_id, number in late:
            numbers.setdefault(case_id, []).append(number)
        events = []
        for case in cases:
            before = _move(case, "default", "case")
            case.updated_at = now
            events.append(
                _event(
                    case, "case.default", before, system_actor=NEGOTIATION_ACTOR, missed_installments=numbers[case.pk]
                )
            )
        defaulted = {c.pk for c in cases}
        Installment.objects.filter(pk__in=[pk for pk, case_id, _ in late if case_id in defaulted]).update(
            status=InstallmentStatus.MISSED
        )
        bulk_update_fields(Case, cases, ["state", "updated_at"])
        audit_record_many(events)
        proposals_withdraw_for_cases(
            case_ids=[c.pk for c in cases], reason="the case defaulted", now=now, system_actor=NEGOTIATION_ACTOR
        )
    return [c.pk for c in cases]
