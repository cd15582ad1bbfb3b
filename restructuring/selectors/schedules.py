"""Repayment schedules as the pages and the API show them: one row type for a built schedule's installments
(restructuring.schedules, a preview or a valuation) and for the stored installments of an executed restructuring."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from core.money import currency_quantum
from restructuring.models import Installment


@dataclass(frozen=True)
class ScheduleRow:
    number: int
    due: date
    principal: Decimal
    interest: Decimal
    arrears: Decimal
    total: Decimal
    balance: Decimal
    status: str = ""  # executed installments only: due, paid, missed
    paid_amount: Decimal | None = None
    installment_id: int | None = None
    payable: str = ""  # executed installments: the amount due in the currency's places, as the payment form offers it
    paid_at: datetime | None = None
    currency: str = ""  # the account's, which the amounts are in ("" where the page says it once)
    # executed installments: what payments covered so far by the waterfall (fees = the arrears part), and whether
    # the installment is partly paid (some paid, the rest carried, still due)
    arrears_paid: Decimal | None = None
    interest_paid: Decimal | None = None
    principal_paid: Decimal | None = None
    partly_paid: bool = False

    @classmethod
    def of(cls, installment: Any, **extra: Any) -> ScheduleRow:
        """A row from an installment: a built schedule's (restructuring.schedules) or a stored Installment."""
        return cls(
            number=installment.number,
            due=installment.due,
            principal=installment.principal,
            interest=installment.interest,
            arrears=installment.arrears,
            total=installment.total,
            balance=installment.balance,
            **extra,
        )


def installment_rows(installments: Iterable[Installment], currency: str) -> list[ScheduleRow]:
    """The stored installments of an executed restructuring, with where each stands."""
    quantum = currency_quantum(currency)
    return [
        ScheduleRow.of(
            i,
            status=i.status,
            paid_amount=i.paid_amount,
            paid_at=i.paid_at,
            installment_id=i.pk,
            # what is still owed on it: the payment form's amount (a payment may be more: it runs on to the next)
            payable=format((i.total - i.paid_amount).quantize(quantum), "f"),
            currency=currency,
            arrears_paid=i.arrears_paid,
            interest_paid=i.interest_paid,
            principal_paid=i.principal_paid,
            partly_paid=i.partly_paid,
        )
        for i in installments
    ]


def preview_rows(installments: Iterable[Any], currency: str) -> list[ScheduleRow]:
    """A built schedule's installments as if executed: all due, nothing paid."""
    return [ScheduleRow.of(i, status="due", paid_amount=Decimal(0), currency=currency) for i in installments]
