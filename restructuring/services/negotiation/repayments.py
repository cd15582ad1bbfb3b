"""Repayments of a restructured loan: a payment of any amount up to what the schedule still owes, allocated by the
waterfall of restructuring/allocation.py (fees, then interest, then principal, oldest installment first)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.services import ledger
from core.errors import NotFoundError, ValidationError
from core.money import amount_check, currency_quantum, money_text
from restructuring.allocation import AllocationError, Owing, allocate
from restructuring.audit_events import CASE_CLOSE, INSTALLMENT_PAID, REPAYMENT_RECORD
from restructuring.models import (
    Case,
    CaseState,
    Installment,
    InstallmentStatus,
    Repayment,
    RepaymentAllocation,
)
from restructuring.services.case_end import proposals_withdraw_for_cases
from restructuring.services.negotiation.common import NegotiationError, _audit, _event, _require


def repayment_record(*, installment_id: int, amount: Decimal, actor: User) -> Repayment:
    """A payment received on the schedule `installment_id` belongs to (recorded from that row of the case page).
    Any positive amount up to what the schedule still owes is taken, with the currency's places at most; it is
    allocated oldest installment first, whichever row it was recorded from. The loan's principal becomes the
    schedule's principal still unpaid; the payment that settles the last installment closes the loan and the case.
    Events: repayment.record (the allocation), installment.paid for each installment it settles."""
    _require(actor, "restructuring.execute_proposal", gettext_noop("record repayments"))
    if not (isinstance(amount, Decimal) and amount.is_finite() and amount > 0):
        raise ValidationError(
            gettext("amount %(amount)s: a payment is a positive amount") % {"amount": amount}, field="amount"
        )
    with transaction.atomic():
        installment = (
            Installment.objects.select_for_update().select_related("proposal").filter(pk=installment_id).first()
        )
        if installment is None:
            raise NotFoundError(
                gettext("installment %(installment_id)s does not exist") % {"installment_id": installment_id},
                installment_id=installment_id,
            )
        if installment.status != InstallmentStatus.DUE:
            raise NegotiationError(
                gettext("installment %(installment_id)s is %(installment_status)s")
                % {"installment_id": installment_id, "installment_status": installment.status}
            )
        case = Case.objects.select_for_update().select_related("account").get(pk=installment.proposal.case_id)
        if case.state != CaseState.RESTRUCTURED:
            raise NegotiationError(
                gettext("case %(case_pk)s is %(case_state)s: repayments are recorded on restructured cases")
                % {"case_pk": case.pk, "case_state": case.state}
            )
        amount_check(amount, case.account.base_currency, field="amount")
        schedule = {
            i.pk: i
            for i in Installment.objects.select_for_update()
            .filter(proposal_id=installment.proposal_id)
            .order_by("number")
        }
        # The columns keep eight places; the schedule's amounts are multiples of the currency's quantum, so this
        # only drops trailing zeros (what the refusal and the audit event show).
        quantum = currency_quantum(case.account.base_currency)
        owing = [
            Owing(
                installment_id=i.pk,
                number=i.number,
                arrears=(i.arrears - i.arrears_paid).quantize(quantum),
                interest=(i.interest - i.interest_paid).quantize(quantum),
                principal=(i.principal - i.principal_paid).quantize(quantum),
            )
            for i in schedule.values()
            if i.status == InstallmentStatus.DUE
        ]
        try:
            allocations = allocate(amount, owing)
        except AllocationError as exc:
            raise ValidationError(
                gettext("amount %(amount)s: %(exc)s") % {"amount": amount, "exc": exc}, field="amount"
            ) from None
        now = timezone.now()
        settled: list[Installment] = []
        for part in allocations:
            row = schedule[part.installment_id]
            row.arrears_paid += part.arrears
            row.interest_paid += part.interest
            row.principal_paid += part.principal
            row.paid_amount += part.total
            if part.settles:
                row.status, row.paid_at = InstallmentStatus.PAID, now
                settled.append(row)
        touched = [schedule[p.installment_id] for p in allocations]
        Installment.objects.bulk_update(
            touched, ["arrears_paid", "interest_paid", "principal_paid", "paid_amount", "status", "paid_at"]
        )
        principal_after = sum((i.principal - i.principal_paid for i in schedule.values()), Decimal(0)).quantize(quantum)
        last = all(i.status == InstallmentStatus.PAID for i in schedule.values())
        ledger.loan_repay(account_id=case.account_id, principal=principal_after, close=last)
        repayment = Repayment.objects.create(
            case=case,
            proposal_id=installment.proposal_id,
            amount=amount,
            received_at=now,
            recorded_by=actor,
            principal_after=principal_after,
        )
        RepaymentAllocation.objects.bulk_create(
            RepaymentAllocation(
                repayment=repayment,
                installment_id=p.installment_id,
                arrears=p.arrears,
                interest=p.interest,
                principal=p.principal,
            )
            for p in allocations
        )
        events = [
            REPAYMENT_RECORD.entry(
                repayment,
                account_id=case.account_id,
                actor=actor,
                payload={
                    "case_id": case.pk,
                    "proposal_id": installment.proposal_id,
                    "amount": amount,
                    "principal_after": principal_after,
                    "allocation": [
                        {
                            "number": p.number,
                            "fees": p.arrears,
                            "interest": p.interest,
                            "principal": p.principal,
                            "settles": p.settles,
                        }
                        for p in allocations
                    ],
                },
            ),
            *(
                INSTALLMENT_PAID.entry(
                    row,
                    account_id=case.account_id,
                    actor=actor,
                    from_state=InstallmentStatus.DUE,
                    to_state=InstallmentStatus.PAID,
                    payload={
                        "number": row.number,
                        "amount": row.paid_amount,
                        "balance": row.balance,
                        "repayment_id": repayment.pk,
                    },
                )
                for row in settled
            ),
        ]
        if last:
            before = str(case.state)
            case.close(at=now)
            case.save(update_fields=["state", "closed_at", "updated_at"])
            events.append(_event(case, CASE_CLOSE, before, actor=actor, reason="repaid in full"))
        _audit(*events)
        if last:
            proposals_withdraw_for_cases(case_ids=[case.pk], reason="the case is closed: repaid", now=now, actor=actor)
    return repayment


def repayment_summary(repayment: Repayment) -> str:
    """What a payment did, in one line for the officer: the installments it settled and the one it left partly
    paid, with what that one still owes."""
    currency = repayment.case.account.base_currency
    rows = repayment.allocations.select_related("installment").order_by("installment__number")
    parts = []
    for row in rows:
        each = row.installment
        if each.status == InstallmentStatus.PAID:
            parts.append(gettext("installment %(number)s paid") % {"number": each.number})
        else:
            parts.append(
                gettext("installment %(number)s partly paid (%(left)s still due)")
                % {"number": each.number, "left": money_text(each.outstanding, currency)}
            )
    return gettext("Payment of %(amount)s recorded: %(parts)s.") % {
        "amount": money_text(repayment.amount, currency),
        "parts": ", ".join(parts),
    }
