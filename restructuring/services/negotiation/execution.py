"""Carrying out an agreed proposal: an accepted restructuring is executed on the loan (its schedule, collateral
demand and reduction orders); an approved liquidation sends the case to liquidation."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import MarginLoan, Position
from accounts.services import ledger
from core.errors import ValidationError
from restructuring.audit_events import (
    CASE_EXECUTE,
    PROPOSAL_EXECUTE,
    PROPOSAL_LIQUIDATE,
)
from restructuring.models import (
    CollateralDemand,
    Installment,
    InstallmentStatus,
    NotificationKind,
    Proposal,
    ProposalKind,
    ProposalState,
    ReductionOrder,
)
from restructuring.schedules import Schedule, ScheduleError, ScheduleTerms, schedule_build
from restructuring.selectors.agreements import agreement_content
from restructuring.services.case_end import proposals_withdraw_for_cases
from restructuring.services.liquidation import case_liquidate
from restructuring.services.negotiation.common import (
    NegotiationError,
    _audit,
    _event,
    _move,
    _proposal,
    _quantum,
    _require,
    _seen,
    _terms,
)
from restructuring.services.notifications import notification_enqueue
from restructuring.terms import Terms


def proposal_execute(*, proposal_id: int, actor: User, version: int) -> Proposal:
    """Apply accepted terms (the version the officer was shown) in one transaction: the loan's principal (haircut,
    capitalised arrears), rate and maturity; the repayment schedule; the collateral demand with its due date; the
    position reductions as orders for the desk. The case is RESTRUCTURED and its other proposals withdrawn."""
    _require(actor, "restructuring.execute_proposal", gettext_noop("execute restructurings"))
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        case = proposal.case
        if proposal.state != ProposalState.ACCEPTED:
            raise NegotiationError(
                gettext("proposal %(proposal_id)s is %(proposal_state)s: only an accepted offer is executed")
                % {"proposal_id": proposal_id, "proposal_state": proposal.state}
            )
        _seen(proposal, version)
        terms = _terms(proposal.terms)
        signed = _accepted_agreement(proposal)
        loan = ledger.loan_active_lock(case.account_id)
        if loan is None:
            raise NegotiationError(
                gettext("case %(case_pk)s: the account has no active loan to restructure") % {"case_pk": case.pk}
            )
        now = timezone.now()
        try:
            schedule = execution_schedule(loan, terms, _quantum(proposal), now.date())
        except ScheduleError as exc:
            raise ValidationError(
                gettext("proposal %(proposal_id)s: %(exc)s") % {"proposal_id": proposal_id, "exc": exc}, field="terms"
            ) from None
        before_loan = {"principal": loan.principal, "rate": loan.rate_annual, "accrued": loan.accrued_interest}
        maturity = schedule.installments[-1].due
        ledger.loan_restructure(
            loan,
            principal=schedule.terms.principal + schedule.capitalised,
            rate_annual=schedule.terms.rate_annual,
            maturity_date=maturity,
        )
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
            _event(proposal, PROPOSAL_EXECUTE, before, actor=actor, loan_before=before_loan, **signed),
            _event(
                case,
                CASE_EXECUTE,
                case_before,
                actor=actor,
                proposal_id=proposal.pk,
                principal=loan.principal,
                rate=loan.rate_annual,
                maturity=maturity.isoformat(),
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
        first = next((i for i in schedule.installments if i.total > 0), schedule.installments[0])
        collateral = terms.collateral_to_add > 0
        notification_enqueue(
            case=case,
            kind=NotificationKind.EXECUTED,
            payload={
                "proposal_id": proposal.pk,
                "principal": loan.principal,
                "rate_annual": loan.rate_annual,
                "installments": len(schedule.installments),
                "first_due": first.due,
                "first_amount": first.total,
                "maturity": maturity,
                "collateral_to_add": terms.collateral_to_add if collateral else None,
                "collateral_due": now + timedelta(days=settings.WORKOUT_COLLATERAL_DUE_DAYS) if collateral else None,
            },
            dedupe_key=f"execute:{proposal.pk}",
        )
    return proposal


def _accepted_agreement(proposal: Proposal) -> dict[str, Any]:
    """The agreement the client accepted, as the execution's event records it, its kept file checked against its
    hash first (AgreementCorruptError: nothing is executed on a document nobody can show). An offer accepted before
    agreements were drawn has none."""
    agreement = proposal.accepted_agreement
    if agreement is None:
        return {"agreement_id": None, "agreement_sha256": None}
    agreement_content(agreement)
    return {"agreement_id": agreement.pk, "agreement_sha256": agreement.sha256}


def _liquidation_reason(proposal: Proposal) -> str:
    """Why the case goes to liquidation, as the proposal says: the officer's reason, or the rules that fired."""
    officer = [str(e["parameters"].get("reason", "")) for e in proposal.explanation if not e.get("rule")]
    rules = [str(e["rule"]) for e in proposal.explanation if e.get("rule") and e.get("action") == "liquidate"]
    why = "; ".join(r for r in officer if r) or ("the rules: " + ", ".join(rules) if rules else "approved")
    return f"proposal {proposal.pk}: {why}"


def proposal_liquidate(*, proposal_id: int, actor: User, version: int) -> Proposal:
    """Carry out an approved liquidation proposal (the version the officer was shown): the case goes to
    liquidation with its plan, its other proposals are withdrawn, the proposal is EXECUTED."""
    _require(actor, "restructuring.liquidate_case", gettext_noop("send cases to liquidation"))
    with transaction.atomic():
        proposal = _proposal(proposal_id)
        if proposal.kind != ProposalKind.LIQUIDATE:
            raise NegotiationError(
                gettext("proposal %(proposal_id)s restructures: it is offered to the client, not liquidated")
                % {"proposal_id": proposal_id}
            )
        if proposal.state != ProposalState.APPROVED:
            raise NegotiationError(
                gettext("proposal %(proposal_id)s is %(proposal_state)s: only an approved liquidation is sent")
                % {"proposal_id": proposal_id, "proposal_state": proposal.state}
            )
        _seen(proposal, version)
        before = _move(proposal, "carry_out_liquidation", f"proposal {proposal_id}")
        proposal.decided_at = timezone.now()
        proposal.save(update_fields=["state", "decided_at", "updated_at"])
        # The proposal is executed first, so the case's move withdraws only the others.
        plan = case_liquidate(
            case_id=proposal.case_id, reason=_liquidation_reason(proposal), actor=actor, proposal_id=proposal_id
        )
        _audit(_event(proposal, PROPOSAL_LIQUIDATE, before, actor=actor, plan_id=plan.pk, version=version))
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


def _reductions(proposal: Proposal, terms: Terms, now: datetime) -> None:
    if not terms.reduce:
        return
    positions = {p.pk: p for p in Position.objects.filter(pk__in=[p for p, _ in terms.reduce])}
    orders = []
    for position_id, fraction in terms.reduce:
        position = positions.get(position_id)
        if position is None or position.account_id != proposal.case.account_id:
            raise ValidationError(
                gettext("reduce: position %(position_id)s is not open in this account") % {"position_id": position_id},
                field="reduce",
            )
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
