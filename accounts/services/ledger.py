"""The book's one owner: every change the workflow makes to an account's cash (MarginAccount.cash), its positions
(Position) and its loans (MarginLoan) is made here. Restructuring calls it; it knows nothing of cases or proposals.
Besides it only the book's loaders write those tables: the book import (accounts/services/book_import) and the
demo's and benchmarks' data; they put a book in place rather than change one. tests/accounts/test_ledger.py keeps
that list and fails on any other writer.

The actions:
- `cash_credit`: a confirmed collateral top-up becomes the account's cash;
- `loan_restructure`: an executed restructuring rewrites the active loan: principal, rate and maturity, and the
  accrued interest to 0 (it is capitalised or scheduled as arrears);
- `loan_repay`: a repayment brings the principal to the schedule's balance; the last one closes the loan;
- `AccountBook.fills_book`: liquidation fills reduce their positions and bring their cash effect into cash:
  - a spot or option sale brings quantity x price into cash (a buy-back takes it out);
  - closing a perpetual or future realises its PnL, quantity x (price - entry);
  - an isolated position returns its allocated margin plus PnL, never less than 0 (its loss is capped there);
- `AccountBook.debit_to_loan`: a debit cash balance is borrowed: it joins the active loan (a new loan if none);
- `AccountBook.debt_settle`: once a liquidation is filled, cash repays accrued interest, then principal; what it
  cannot repay is written off; a loan left at 0 is closed.

Locks: the caller takes its workflow's locks first (the case, the plan, the installment); then the book's rows in
this order: the account, its positions, its active loan. A top-up's credit is one UPDATE, which locks the account
row alone. Every action runs inside the caller's transaction (RuntimeError otherwise: a lock outside one means
nothing, and half a change must not stay).

Invariants, each also a constraint of the tables: cash is never below 0 (a debit balance is borrowed);
principal and accrued interest are never below 0; an account has at most one active loan. Money is Decimal,
rounded to the account currency's quantum where it is computed here.

Audit: each action is one step of a workflow action that writes its event in the same transaction, with the
book's figures: topup.confirm (the amount credited), proposal.execute and case.execute (the loan before and
after), installment.paid (the balance), case.liquidated and case.write_off (cash realised, debt repaid, the
shortfall). The ledger adds no event of its own, so the audit trail reads as it always has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import transaction
from django.db.models import F

from accounts.models import InstrumentKind, LoanStatus, MarginAccount, MarginLoan, Position
from core.errors import ConflictError
from core.money import currency_quantum

_LINEAR_DERIVATIVES = (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)


def _in_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("the ledger writes the book only inside the caller's transaction")


def _money(amount: Decimal, what: str) -> None:
    if not (isinstance(amount, Decimal) and amount.is_finite()):
        raise TypeError(f"{what}: {amount!r} is not a finite Decimal")


# ------------------------------------------------------------------------------------------------- cash


def cash_credit(*, account_id: int, amount: Decimal, now: datetime) -> None:
    """Credit `amount` (> 0) to the account's cash, in one UPDATE (no read of the balance, no lost update)."""
    _in_transaction()
    _money(amount, "a credit")
    if amount <= 0:
        raise ValueError(f"a credit is more than 0, not {amount}")
    MarginAccount.objects.filter(pk=account_id).update(cash=F("cash") + amount, updated_at=now)


# ------------------------------------------------------------------------------------------------- loans


def loan_active_lock(account_id: int) -> MarginLoan | None:
    """The account's active loan, locked, or None."""
    _in_transaction()
    return MarginLoan.objects.select_for_update().filter(account_id=account_id, status=LoanStatus.ACTIVE).first()


def loan_restructure(loan: MarginLoan, *, principal: Decimal, rate_annual: Decimal, maturity_date: date) -> None:
    """Rewrite a locked active loan (`loan_active_lock`) on restructured terms; its accrued interest goes to 0:
    the new principal has capitalised it, or the schedule carries it as arrears."""
    _in_transaction()
    _money(principal, "a principal")
    if loan.status != LoanStatus.ACTIVE:
        raise ValueError(f"loan {loan.pk} is {loan.status}: only an active loan is restructured")
    loan.principal = principal
    loan.accrued_interest = Decimal(0)
    loan.rate_annual = rate_annual
    loan.maturity_date = maturity_date
    loan.save(update_fields=["principal", "accrued_interest", "rate_annual", "maturity_date"])


def loan_repay(*, account_id: int, principal: Decimal, close: bool) -> MarginLoan:
    """A repayment on the account's active loan (locked here): its principal is now `principal` (the schedule's
    balance after the installment); `close` (the last installment) closes the loan."""
    _in_transaction()
    _money(principal, "a principal")
    loan = MarginLoan.objects.select_for_update().filter(account_id=account_id, status=LoanStatus.ACTIVE).first()
    if loan is None:
        # Closed elsewhere (liquidated, written off) while a schedule still owes: the caller's refusal, not a 500.
        raise ConflictError(f"account {account_id} has no active loan to repay", account_id=account_id)
    loan.principal = principal
    if close:
        loan.status = LoanStatus.CLOSED
    loan.save(update_fields=["principal", "status"])
    return loan


# ---------------------------------------------------------------------------------------- liquidation


@dataclass(frozen=True)
class Fill:
    """A fill of a liquidation order: `quantity` of the position (in position units, signed as the order: a
    long position is sold with a positive quantity) at `price`."""

    position_id: int
    quantity: Decimal
    price: Decimal


def _cash_effect(position: Position, quantity: Decimal, price: Decimal) -> Decimal:
    size = position.instrument.contract_size
    units = quantity * size
    if position.instrument.kind in _LINEAR_DERIVATIVES:
        effect = units * (price - position.entry_price)
    else:
        effect = units * price
    if position.isolated_margin is not None:
        # The isolated allocation comes back with the PnL, in proportion to what is closed, never below 0.
        share = quantity / position.quantity if position.quantity else Decimal(1)
        effect = max(position.isolated_margin * share + effect, Decimal(0))
    return effect


@dataclass
class AccountBook:
    """An account (locked) and, once fills are booked, its active loan (locked, or a new one for a debit balance),
    changed in memory by the actions below and written by `save`, once per booking."""

    account: MarginAccount
    loan: MarginLoan | None = None

    @property
    def quantum(self) -> Decimal:
        return currency_quantum(self.account.base_currency)

    def fills_book(self, fills: Sequence[Fill]) -> Decimal:
        """Apply fills, in their order, to their positions (locked here, then written in one statement); their
        cash effect, rounded to the currency's quantum, goes into cash; the active loan is locked and a debit
        balance moved into it. Returns the cash realised."""
        _in_transaction()
        # of=("self",): a joined FOR UPDATE would also lock the shared Instrument rows, which other accounts'
        # transactions need (foreign-key checks of their new orders) while this one waits for the audit lock.
        positions = {
            p.pk: p
            for p in Position.objects.select_for_update(of=("self",))
            .select_related("instrument")
            .filter(pk__in=[f.position_id for f in fills])
        }
        realised = Decimal(0)
        for fill in fills:
            position = positions[fill.position_id]
            if position.account_id != self.account.pk:
                raise ValueError(f"position {position.pk} is not of account {self.account.pk}")
            realised += _cash_effect(position, fill.quantity, fill.price)
            if position.isolated_margin is not None and position.quantity:
                position.isolated_margin -= position.isolated_margin * fill.quantity / position.quantity
            position.quantity -= fill.quantity
        Position.objects.bulk_update(list(positions.values()), ["quantity", "isolated_margin"])
        realised = realised.quantize(self.quantum, rounding=ROUND_HALF_EVEN)
        self.loan = loan_active_lock(self.account.pk)
        self.account.cash += realised
        self.debit_to_loan()
        return realised

    def debit_to_loan(self) -> None:
        """A debit cash balance is borrowed: it joins the active loan (a new one, at rate 0, if none)."""
        if self.account.cash < 0:
            self.loan = self.loan or MarginLoan(account=self.account, principal=Decimal(0), rate_annual=Decimal(0))
            self.loan.principal += -self.account.cash
            self.account.cash = Decimal(0)

    def debt_settle(self) -> tuple[Decimal, Decimal]:
        """Cash repays the loan's accrued interest, then its principal; what it cannot repay is written off (the
        loan goes to 0) and a loan at 0 is closed. Returns (repaid, shortfall)."""
        quantum = self.quantum
        loan = self.loan
        debt = ((loan.principal + loan.accrued_interest) if loan is not None else Decimal(0)).quantize(quantum)
        repaid = min(self.account.cash, debt).quantize(quantum)
        self.account.cash -= repaid
        if loan is not None:
            to_interest = min(repaid, loan.accrued_interest)
            loan.accrued_interest -= to_interest
            loan.principal -= repaid - to_interest
        shortfall = debt - repaid
        if shortfall > 0:
            assert loan is not None  # a debt implies a loan
            loan.principal, loan.accrued_interest = Decimal(0), Decimal(0)
        if loan is not None and loan.principal == 0 and loan.accrued_interest == 0:
            loan.status = LoanStatus.CLOSED
        return repaid, shortfall

    def save(self) -> None:
        """Write the account's cash and the loan (created when a debit balance opened it)."""
        _in_transaction()
        self.account.save(update_fields=["cash", "updated_at"])
        if self.loan is not None:
            self.loan.save()


def account_book_lock(account_id: int) -> AccountBook:
    """The account, locked: the first of the book's locks."""
    _in_transaction()
    return AccountBook(MarginAccount.objects.select_for_update().get(pk=account_id))
