"""Repayment schedule of a restructured loan: what the client pays each month, split into principal, interest and
arrears, for the preview an officer approves and for execution.

Pure Python: Decimal in and out, no Django, no numpy, so the feasibility engine and the services share one
schedule and it can be property-tested. The terms are validated when they are built (`ScheduleError` names the
field and what is wrong with it), so `schedule_build` only ever sees terms it can honour.

Conventions (docs/domain.md, "Repayment schedules" and "Restructuring terms"):
- Money. Every amount is a multiple of `quantum` (0.01 by default; 1 for a currency without minor units,
  0.00000001 for bitcoin). The principal and arrears must already be multiples of it (the caller rounds at
  its boundary); floats are refused. Internally an amount is an integer count of quanta and the rate an exact
  fraction, so no sum or difference ever rounds: the only roundings are the ones named below, each to the
  nearest quantum, ties to even (ROUND_HALF_EVEN), computed exactly (a near-tie is never misjudged by a
  truncated intermediate).
- Periods. `term_months` monthly periods, the moratorium and the graces included. Installment k (1-based) is
  due k months after `start`, on the same day of the month, or the month's last day when it is shorter:
  a Jan 31 start falls due on Feb 28 (29), Mar 31, Apr 30, each computed from `start`, never chained.
- Rate. The periodic rate is i = rate_annual / 12; a period's interest is the balance at its start times i,
  rounded to the quantum. 0% is allowed.
- Phases, in order, as Apache Fineract's reschedule requests define them:
    moratorium (`moratorium_months`): nothing is paid; the period's interest is capitalised (added to the
        principal, and counted in `capitalised`);
    interest grace (`grace_interest_months`): nothing is paid; the interest accrues on the principal only
        (none on itself) and is paid, as interest, with the first installment after the grace;
    principal grace (`grace_principal_months`, counted from the end of the moratorium and including the
        interest grace, so it is >= grace_interest_months): interest only;
    repayment (the n >= 1 remaining periods): the principal is repaid.
- LEVEL. The balance B at the start of the repayment is amortised with the payment A = B i / (1 - (1+i)^-n)
  (B / n at 0%; numpy-financial's `pmt`), rounded to the quantum: each installment repays A minus its interest,
  and the last one the whole remaining balance plus its interest, so the principal parts sum exactly to the
  principal plus what was capitalised and the balance ends at exactly 0. The rounding of A (at most half a
  quantum, the same every month) accumulates in the balance with interest, so the last installment may differ
  from A by up to half a quantum x ((1+i)^n - 1) / i, plus the drift of the interest roundings (of either
  sign, so they mostly cancel): from A alone n/2 quanta at 0%, 4.16 in cents over 360 months at 5%. A tiny
  principal over many periods (A rounded up against a balance of a few quanta) would repay more than it owes
  before the end: an installment never repays more than the balance, so such a schedule ends with installments
  of 0 (0.05 at 0% over 8 months: A = 0.01, five of 0.01, three of 0).
- INTEREST_ONLY. Interest every period after the moratorium and interest grace; the whole principal (the
  balloon) with the last installment.
- Arrears (accrued interest and penalties outstanding at the restructuring; Frappe Lending's treatments):
    CAPITALISE: added to the principal at the start (counted in `capitalised`), so they bear interest;
    FIRST_INSTALLMENT: paid in full with the first installment that has a payment (the first after the
        moratorium and the interest grace), without interest;
    CARRY_FORWARD: spread over the n repayment installments, without interest. The parts are the
        differences of the running share floor(arrears x k / n), in quanta: each is floor(arrears / n) or one
        quantum more, they sum exactly to the arrears, the first is the smallest and the last, which takes the
        remainder, the largest. (Rounding every part to the nearest and giving the remainder to the last can
        leave the last negative: 100.00 over 360 months is 0.28 x 359 = 100.52.)
  The `arrears` column of an installment is its arrears part only; interest deferred by an interest grace is
  interest, in the `interest` column.
- Totals. `total_interest` is the sum of the interest column (the interest paid as interest: interest
  capitalised by the moratorium is repaid as principal and is counted in `capitalised` instead);
  `total_paid` is the sum of the installments' totals, principal + interest + arrears.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import MAX_PREC, Context, Decimal, Inexact, Rounded
from enum import StrEnum
from fractions import Fraction
from typing import NamedTuple

MAX_TERM_MONTHS = 600

# Multiplies a count of quanta by the quantum without ever rounding (a rounding would raise).
_EXACT = Context(prec=MAX_PREC, traps=[Inexact, Rounded])


class ScheduleError(ValueError):
    """Terms a schedule cannot be built from; the message names the field and what is wrong with it."""


class ScheduleKind(StrEnum):
    LEVEL = "level"
    INTEREST_ONLY = "interest_only"  # interest each period, the whole principal (balloon) with the last


class ArrearsTreatment(StrEnum):
    CAPITALISE = "capitalise"
    CARRY_FORWARD = "carry_forward"
    FIRST_INSTALLMENT = "first_installment"


@dataclass(frozen=True, kw_only=True)
class ScheduleTerms:
    """What the restructuring sets. Validated on construction; an enum may be given as its value ("level")."""

    principal: Decimal  # outstanding principal, after any haircut; a multiple of `quantum`, >= 0
    rate_annual: Decimal  # nominal annual rate, >= 0; the periodic rate is rate_annual / 12
    term_months: int  # 1..600 monthly periods, moratorium and graces included
    kind: ScheduleKind = ScheduleKind.LEVEL
    moratorium_months: int = 0  # nothing paid, interest capitalised
    grace_interest_months: int = 0  # after the moratorium: nothing paid, interest deferred, not capitalised
    grace_principal_months: int = 0  # after the moratorium, interest grace included: interest only
    arrears: Decimal = Decimal(0)  # accrued interest and penalties outstanding; a multiple of `quantum`, >= 0
    arrears_treatment: ArrearsTreatment = ArrearsTreatment.CAPITALISE
    start: date  # the restructuring date; installment k is due k months after it
    quantum: Decimal = Decimal("0.01")  # every amount is a multiple of it, > 0

    def __post_init__(self) -> None:
        _enum_coerce(self, "kind", ScheduleKind)
        _enum_coerce(self, "arrears_treatment", ArrearsTreatment)
        _terms_check(self)

    @property
    def repayment_months(self) -> int:
        """The periods after the moratorium and the principal grace, in which the principal is repaid."""
        return self.term_months - self.moratorium_months - self.grace_principal_months


@dataclass(frozen=True)
class Installment:
    number: int  # 1-based
    due: date
    principal: Decimal
    interest: Decimal  # the period's interest, plus any interest deferred by an interest grace
    arrears: Decimal  # this installment's part of the arrears (0 when they are capitalised)
    total: Decimal  # principal + interest + arrears
    balance: Decimal  # principal outstanding after this installment


@dataclass(frozen=True)
class Schedule:
    terms: ScheduleTerms
    installments: tuple[Installment, ...]  # one per period, moratorium and grace periods included (total 0)
    level_payment: Decimal | None  # the rounded level payment of the repayment periods (LEVEL only)
    capitalised: Decimal  # arrears and moratorium interest added to the principal
    total_interest: Decimal  # sum of the interest column
    total_paid: Decimal  # sum of the totals

    def amounts(self) -> list[Decimal]:
        """The installments' totals, in order."""
        return [installment.total for installment in self.installments]


def schedule_build(terms: ScheduleTerms) -> Schedule:
    """The repayment schedule of `terms` (conventions: module docstring)."""
    rate = Fraction(terms.rate_annual) / 12
    arrears = _units(terms.arrears, terms.quantum)
    capitalised_arrears = arrears if terms.arrears_treatment is ArrearsTreatment.CAPITALISE else 0
    opening = _units(terms.principal, terms.quantum) + capitalised_arrears

    deferral = _deferral_rows(terms, opening, rate)
    payment = (
        _level_payment(deferral.balance, rate, terms.repayment_months) if terms.kind is ScheduleKind.LEVEL else None
    )
    paying = _paying_rows(terms, deferral, rate, payment, _arrears_parts(terms, arrears))
    rows = deferral.rows + paying

    quantum = terms.quantum
    return Schedule(
        terms=terms,
        installments=tuple(_installment(row, terms) for row in rows),
        level_payment=None if payment is None else _money(payment, quantum),
        capitalised=_money(capitalised_arrears + deferral.capitalised_interest, quantum),
        total_interest=_money(sum(row.interest for row in rows), quantum),
        total_paid=_money(sum(row.principal + row.interest + row.arrears for row in rows), quantum),
    )


# --- Building, in counts of quanta --------------------------------------------------------------------------


class _Row(NamedTuple):
    number: int
    principal: int
    interest: int
    arrears: int
    balance: int


class _Deferral(NamedTuple):
    """The moratorium and interest-grace periods, and where they leave the loan."""

    rows: list[_Row]
    balance: int  # principal outstanding after them (moratorium interest included)
    capitalised_interest: int
    deferred_interest: int  # due with the first installment after the interest grace


def _deferral_rows(terms: ScheduleTerms, balance: int, rate: Fraction) -> _Deferral:
    rows: list[_Row] = []
    capitalised = 0
    for number in range(1, terms.moratorium_months + 1):
        interest = round(balance * rate)
        balance += interest
        capitalised += interest
        rows.append(_Row(number, 0, 0, 0, balance))
    deferred = 0
    first = terms.moratorium_months + 1
    for number in range(first, first + terms.grace_interest_months):
        deferred += round(balance * rate)
        rows.append(_Row(number, 0, 0, 0, balance))
    return _Deferral(rows, balance, capitalised, deferred)


def _paying_rows(
    terms: ScheduleTerms, deferral: _Deferral, rate: Fraction, payment: int | None, arrears_parts: list[int]
) -> list[_Row]:
    """The periods from the first payment on: principal grace (interest only), then repayment."""
    first = terms.moratorium_months + terms.grace_interest_months + 1
    repayment_from = terms.moratorium_months + terms.grace_principal_months + 1
    balance = deferral.balance
    deferred = deferral.deferred_interest
    rows: list[_Row] = []
    for number, arrears in zip(range(first, terms.term_months + 1), arrears_parts, strict=True):
        interest = round(balance * rate)
        if number == terms.term_months:
            principal = balance
        elif number < repayment_from or payment is None:
            principal = 0
        else:
            # payment >= interest: the balance only falls, and rounding is monotonic, so
            # round(balance i) <= round(B i) <= round(A) with B the balance A was computed on (A > B i).
            principal = min(payment - interest, balance)
        balance -= principal
        rows.append(_Row(number, principal, interest + deferred, arrears, balance))
        deferred = 0
    return rows


def _level_payment(balance: int, rate: Fraction, periods: int) -> int:
    """A = B i / (1 - (1+i)^-n) = B i g / (g - 1) with g = (1+i)^n, exactly, rounded to a whole quantum."""
    if rate == 0:
        return round(Fraction(balance, periods))
    growth = (1 + rate) ** periods
    return round(balance * rate * growth / (growth - 1))


def _arrears_parts(terms: ScheduleTerms, arrears: int) -> list[int]:
    """The arrears part of each installment from the first payment on."""
    paying = terms.term_months - terms.moratorium_months - terms.grace_interest_months
    match terms.arrears_treatment:
        case ArrearsTreatment.CAPITALISE:
            return [0] * paying
        case ArrearsTreatment.FIRST_INSTALLMENT:
            return [arrears] + [0] * (paying - 1)
        case ArrearsTreatment.CARRY_FORWARD:
            interest_only = terms.grace_principal_months - terms.grace_interest_months
            return [0] * interest_only + _spread(arrears, terms.repayment_months)
    raise AssertionError(terms.arrears_treatment)  # unreachable: validated on construction


def _spread(total: int, parts: int) -> list[int]:
    """`total` in `parts` parts, each floor(total / parts) or one more, summing exactly to `total`."""
    return [total * k // parts - total * (k - 1) // parts for k in range(1, parts + 1)]


# --- Money and dates ----------------------------------------------------------------------------------------


def _units(amount: Decimal, quantum: Decimal) -> int:
    count = Fraction(amount) / Fraction(quantum)
    assert count.denominator == 1, (amount, quantum)  # validated on construction
    return count.numerator


def _money(units: int, quantum: Decimal) -> Decimal:
    return _EXACT.multiply(Decimal(units), quantum)


def _installment(row: _Row, terms: ScheduleTerms) -> Installment:
    quantum = terms.quantum
    return Installment(
        number=row.number,
        due=_due(terms.start, row.number),
        principal=_money(row.principal, quantum),
        interest=_money(row.interest, quantum),
        arrears=_money(row.arrears, quantum),
        total=_money(row.principal + row.interest + row.arrears, quantum),
        balance=_money(row.balance, quantum),
    )


def _due(start: date, months: int) -> date:
    """`months` months after `start`, on the same day or the month's last day if it has fewer."""
    year, month0 = divmod(start.month - 1 + months, 12)
    year += start.year
    return date(year, month0 + 1, min(start.day, calendar.monthrange(year, month0 + 1)[1]))


# --- Validation ---------------------------------------------------------------------------------------------


def _fail(name: str, value: object, problem: str) -> ScheduleError:
    shown = str(value) if isinstance(value, Decimal | int | date) and not isinstance(value, bool) else repr(value)
    return ScheduleError(f"{name} {shown}: {problem}")


def _enum_coerce(terms: ScheduleTerms, name: str, enum: type[StrEnum]) -> None:
    value = getattr(terms, name)
    if isinstance(value, enum):
        return
    if isinstance(value, str) and value in {member.value for member in enum}:
        object.__setattr__(terms, name, enum(value))
        return
    allowed = ", ".join(repr(member.value) for member in enum)
    raise _fail(name, value, f"must be one of {allowed}")


def _decimal_check(name: str, value: object) -> Decimal:
    if isinstance(value, float):
        raise _fail(name, value, "must be a Decimal, not a float (floats are refused: they cannot hold 0.1 exactly)")
    if not isinstance(value, Decimal):
        raise _fail(name, value, f"must be a Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise _fail(name, value, "must be finite")
    return value


def _months_check(name: str, value: object, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(name, value, "must be an integer")
    if not low <= value <= MAX_TERM_MONTHS:
        raise _fail(name, value, f"must be between {low} and {MAX_TERM_MONTHS}")
    return value


def _terms_check(terms: ScheduleTerms) -> None:
    quantum = _decimal_check("quantum", terms.quantum)
    if quantum <= 0:
        raise _fail("quantum", quantum, "must be > 0")
    for name in ("principal", "arrears"):
        amount = _decimal_check(name, getattr(terms, name))
        if amount < 0:
            raise _fail(name, amount, "must be >= 0")
        if (Fraction(amount) / Fraction(quantum)).denominator != 1:
            raise _fail(name, amount, f"must be a multiple of the quantum {quantum} (round it before scheduling)")
    if _decimal_check("rate_annual", terms.rate_annual) < 0:
        raise _fail("rate_annual", terms.rate_annual, "must be >= 0")
    _periods_check(terms)
    _start_check(terms)


def _periods_check(terms: ScheduleTerms) -> None:
    term = _months_check("term_months", terms.term_months, low=1)
    moratorium = _months_check("moratorium_months", terms.moratorium_months, low=0)
    grace_interest = _months_check("grace_interest_months", terms.grace_interest_months, low=0)
    grace_principal = _months_check("grace_principal_months", terms.grace_principal_months, low=0)
    if grace_principal < grace_interest:
        raise _fail(
            "grace_principal_months",
            grace_principal,
            f"must be >= grace_interest_months ({grace_interest}): a grace on interest is also one on principal",
        )
    if term - moratorium - grace_principal < 1:
        raise _fail(
            "term_months",
            term,
            f"leaves no repayment period after moratorium_months ({moratorium}) and grace_principal_months "
            f"({grace_principal}): must be at least {moratorium + grace_principal + 1}",
        )


def _start_check(terms: ScheduleTerms) -> None:
    start = terms.start
    if isinstance(start, datetime) or not isinstance(start, date):
        raise _fail("start", start, "must be a date (not a datetime)")
    if (start.year * 12 + start.month - 1 + terms.term_months) // 12 > date.max.year:
        raise _fail("start", start, f"the last installment, {terms.term_months} months on, falls after {date.max}")
