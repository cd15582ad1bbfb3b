"""How a payment on a restructured loan is allocated over its schedule: the waterfall.

Pure Python, Decimal in and out, no Django: the repayment service (restructuring/services/negotiation/
repayments.py) feeds it the installments still owing and books what it returns.

The waterfall (documented in docs/domain.md, "Partial payments and allocation"):
- installments oldest first (by number): a payment pays the oldest installment still owing before the next one,
  so a payment larger than an installment runs on into the next ones (it may cover several);
- within an installment, fees first, then interest, then principal. The fees are the installment's `arrears`
  part (penalties and interest outstanding at the restructuring, scheduled as arrears), the interest its
  `interest` part, the principal its `principal` part;
- what a payment does not cover stays owing on the installment it stopped in (the balance carried): that
  installment is partly paid, still due on its date, and the next payment starts where this one stopped.

Nothing is rounded: an amount with more places than the currency's is refused before (core.money.amount_check),
and the waterfall only subtracts, so every allocation is exact to the quantum and the parts sum to the payment.
A payment of more than the whole schedule still owes is refused (AllocationError): nothing is taken on account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal


class AllocationError(ValueError):
    """A payment the waterfall cannot allocate: not positive, or more than the schedule still owes."""


@dataclass(frozen=True)
class Owing:
    """What one installment still owes, by part."""

    installment_id: int
    number: int
    arrears: Decimal
    interest: Decimal
    principal: Decimal

    @property
    def total(self) -> Decimal:
        return self.arrears + self.interest + self.principal


@dataclass(frozen=True)
class Allocation:
    """What a payment pays of one installment, by part; `settles` when the installment owes nothing after it."""

    installment_id: int
    number: int
    arrears: Decimal
    interest: Decimal
    principal: Decimal
    settles: bool

    @property
    def total(self) -> Decimal:
        return self.arrears + self.interest + self.principal


def allocate(amount: Decimal, owing: Sequence[Owing]) -> list[Allocation]:
    """Allocate `amount` over the installments still owing, by the waterfall above. Installments owing nothing are
    skipped; the result lists only the installments the payment touches, oldest first."""
    if not (isinstance(amount, Decimal) and amount.is_finite() and amount > 0):
        raise AllocationError(f"a payment is a positive amount, not {amount}")
    ordered = sorted((o for o in owing if o.total > 0), key=lambda o: o.number)
    outstanding = sum((o.total for o in ordered), Decimal(0))
    if amount > outstanding:
        raise AllocationError(f"the payment {amount} is more than the {outstanding} the schedule still owes")
    left = amount
    out: list[Allocation] = []
    for item in ordered:
        if left <= 0:
            break
        parts = []
        for part in (item.arrears, item.interest, item.principal):
            take = min(left, part)
            parts.append(take)
            left -= take
        out.append(
            Allocation(
                installment_id=item.installment_id,
                number=item.number,
                arrears=parts[0],
                interest=parts[1],
                principal=parts[2],
                settles=sum(parts, Decimal(0)) == item.total,
            )
        )
    return out
