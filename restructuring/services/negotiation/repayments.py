"""Repayments of a restructured loan's installments."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts.services import ledger
from core.audit import audit_record
from core.errors import NotFoundError, ValidationError
from restructuring.audit_events import (
    CASE_CLOSE,
    INSTALLMENT_PAID,
)
from restructuring.models import (
    Case,
    CaseState,
    Installment,
    InstallmentStatus,
)
from restructuring.services.case_end import proposals_withdraw_for_cases
from restructuring.services.negotiation.common import NegotiationError, _audit, _event, _require


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
        last = not Installment.objects.filter(proposal=installment.proposal, status=InstallmentStatus.DUE).exists()
        ledger.loan_repay(account_id=case.account_id, principal=installment.balance, close=last)
        audit_record(
            INSTALLMENT_PAID.entry(
                installment,
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
            _audit(_event(case, CASE_CLOSE, before, actor=actor, reason="repaid in full"))
            proposals_withdraw_for_cases(case_ids=[case.pk], reason="the case is closed: repaid", now=now, actor=actor)
    return installment
