"""The repayment schedule kernel (restructuring/schedules.py): the level payment and every period's split against
numpy-financial, hand-worked schedules with their arithmetic written out (moratorium, interest grace, interest
only, each arrears treatment), due dates, the refusals, and the invariants on random terms. No database.

Tolerances. Our figures are Decimals, exact but for the roundings the module names (each to the nearest
quantum). numpy-financial works in float64; its error is far below a quantum for the sizes used here (see
`_FLOAT`), so a rounded reference is compared exactly, away from a half-quantum tie, and an unrounded one
within the bound that our roundings allow, derived in `test_every_period_against_ipmt_and_ppmt`.
"""

from __future__ import annotations

import calendar
import dataclasses
import itertools
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

import numpy as np
import numpy_financial as npf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from restructuring.schedules import (
    ArrearsTreatment,
    Schedule,
    ScheduleError,
    ScheduleKind,
    ScheduleTerms,
    schedule_build,
)

CENT = Decimal("0.01")
START = date(2024, 1, 31)
PROPERTY = settings(max_examples=150, deadline=None)
# numpy-financial's error, relative to the largest magnitude it cancels (P (1+i)^n): float64 rounds each
# operation to 1.1e-16 relative, (1+i)^n adds about n of those; 1e-12 covers n = 600 with room to spare.
_FLOAT = 1e-12


def _terms(**overrides: Any) -> ScheduleTerms:
    values: dict[str, Any] = {
        "principal": Decimal("1000.00"),
        "rate_annual": Decimal("0.12"),
        "term_months": 3,
        "start": START,
    }
    return ScheduleTerms(**(values | overrides))


def _lines(schedule: Schedule) -> list[tuple[str, str, str, str, str]]:
    """(principal, interest, arrears, total, balance) per installment, as strings."""
    return [
        (str(i.principal), str(i.interest), str(i.arrears), str(i.total), str(i.balance)) for i in schedule.installments
    ]


def _npf(function: Any, *args: Any) -> Any:
    # numpy-financial evaluates both branches of its `rate == 0` test, so a 0% rate warns of 0 / 0 in the branch
    # it then discards (and this project turns RuntimeWarnings into errors).
    with np.errstate(divide="ignore", invalid="ignore"):
        return function(*args)


def _rounded(value: float, quantum: Decimal, error: float) -> Decimal:
    """`value` rounded to the quantum, asserting that the reference's `error` cannot move it across a tie."""
    exact = Decimal(value)
    steps = exact / quantum
    fraction = abs(steps - steps.to_integral_value())  # in [0, 0.5]
    assert (Decimal("0.5") - fraction) * quantum > Decimal(error), f"{value} too near a tie to compare"
    return exact.quantize(quantum, rounding=ROUND_HALF_EVEN)


# --------------------------------------------------------------------------- level payment: numpy-financial


def test_level_payment_matches_the_domain_reference() -> None:
    # npf.pmt(0.05/12, 36, -10000) = 299.70897... (DOMAIN.md, "Repayment schedules")
    schedule = schedule_build(_terms(principal=Decimal("10000.00"), rate_annual=Decimal("0.05"), term_months=36))

    assert npf.pmt(0.05 / 12, 36, -10000) == pytest.approx(299.70897, abs=1e-5)
    assert schedule.level_payment == Decimal("299.71")
    assert schedule.amounts()[:35] == [Decimal("299.71")] * 35


@pytest.mark.parametrize("rate", ["0", "0.0001", "0.05", "0.12", "0.2399"])
@pytest.mark.parametrize("months", [1, 12, 36, 360, 600])
@pytest.mark.parametrize("principal", ["0.07", "1.00", "10000.00", "2500000.00"])
def test_level_payment_is_npf_pmt_rounded_to_the_cent(rate: str, months: int, principal: str) -> None:
    schedule = schedule_build(
        _terms(principal=Decimal(principal), rate_annual=Decimal(rate), term_months=months),
    )

    reference = _npf(npf.pmt, float(rate) / 12, months, -float(principal))
    # float pmt = P i g / (g - 1), g = (1+i)^n: g carries about n u of relative error (u = 1.1e-16), which
    # g / (g - 1) scales by 1 / (g - 1) >= 1 / (n i): at most max(n u, u / i) ~ 1.3e-11 here (i = 0.0001 / 12)
    assert schedule.level_payment == _rounded(reference, CENT, 1e-10 * reference)


def test_level_payment_in_a_currency_without_minor_units() -> None:
    # npf.pmt(0.05/12, 36, -1,000,000) = 29970.897...: 29,971 yen
    schedule = schedule_build(
        _terms(principal=Decimal(1_000_000), rate_annual=Decimal("0.05"), term_months=36, quantum=Decimal(1))
    )

    assert schedule.level_payment == Decimal(29971)
    assert all(amount == amount.to_integral_value() for amount in schedule.amounts())


@pytest.mark.parametrize(
    ("rate", "months", "principal"),
    [
        ("0.05", 36, "10000.00"),
        ("0.12", 3, "1000.00"),
        ("0.12", 360, "250000.00"),
        ("0.2399", 600, "1234567.89"),
        ("0.0001", 120, "99999.99"),
        ("0", 360, "100000.00"),
        ("0.07", 1, "500.00"),
    ],
)
def test_every_period_against_ipmt_and_ppmt(rate: str, months: int, principal: str) -> None:
    """Interest, principal and balance of every period within the drift our roundings allow.

    Exact schedule (npf): B_k = B_{k-1} (1+i) - A*, interest B_{k-1} i, principal A* - B_{k-1} i, B_n = 0.
    Ours: the interest I_k = b_{k-1} i + r_k with |r_k| <= q/2 (rounding to the quantum q), the payment
    A = A* + e with |e| <= q/2, so b_k = b_{k-1} - (A - I_k) = b_{k-1} (1+i) - A* - e + r_k. The drift
    d_k = b_k - B_k obeys d_k = d_{k-1} (1+i) - e + r_k, d_0 = 0, hence
        |d_k| <= D_k = q (1 + (1+i) + ... + (1+i)^(k-1))    (= k q at i = 0).
    Per period k < n:
        interest:  |I_k - B_{k-1} i| = |d_{k-1} i + r_k|            <= i D_{k-1} + q/2
        principal: |(A - I_k) - (A* - B_{k-1} i)| = |e - d_{k-1} i - r_k| <= i D_{k-1} + q
    The last installment repays all of b_{n-1} = B_{n-1} + d_{n-1}: its principal is within D_{n-1} of npf's.
    Balance: |b_k - B_k| <= D_k, and b_n = 0 exactly. npf's own float error is added (`_FLOAT`).
    """
    schedule = schedule_build(_terms(principal=Decimal(principal), rate_annual=Decimal(rate), term_months=months))

    i, q, p = float(rate) / 12, 0.01, float(principal)
    periods = np.arange(1, months + 1)
    ref_interest = _npf(npf.ipmt, i, periods, months, -p)
    ref_principal = _npf(npf.ppmt, i, periods, months, -p)
    ref_balance = p - np.cumsum(ref_principal)
    drift = q * periods if i == 0 else q * ((1 + i) ** periods - 1) / i  # D_k, k = 1..n
    drift_before = np.concatenate(([0.0], drift[:-1]))  # D_{k-1}
    slack = _FLOAT * p * (1 + i) ** months

    ours = schedule.installments
    interest = np.array([float(x.interest) for x in ours])
    principal_part = np.array([float(x.principal) for x in ours])
    balance = np.array([float(x.balance) for x in ours])
    assert np.all(np.abs(interest - ref_interest) <= i * drift_before + q / 2 + slack)
    assert np.all(np.abs(principal_part[:-1] - ref_principal[:-1]) <= i * drift_before[:-1] + q + slack)
    assert abs(principal_part[-1] - ref_principal[-1]) <= drift_before[-1] + slack
    assert np.all(np.abs(balance - ref_balance) <= drift + slack)
    assert ours[-1].balance == 0


# --------------------------------------------------------------------------------- hand-worked schedules


def test_hand_worked_level_schedule() -> None:
    # given 1,000.00 at 12% a year over 3 months: i = 0.01
    # A = 1000 x 0.01 / (1 - 1.01^-3) = 10 / 0.029409852... = 340.022111... -> 340.02
    #   1: interest 1000.00 x 0.01 = 10.00; principal 340.02 - 10.00 = 330.02; balance 669.98
    #   2: interest 669.98 x 0.01 = 6.6998 -> 6.70; principal 333.32; balance 336.66
    #   3: interest 336.66 x 0.01 = 3.3666 -> 3.37; principal: the whole 336.66; total 340.03; balance 0
    schedule = schedule_build(_terms())

    assert schedule.level_payment == Decimal("340.02")
    assert _lines(schedule) == [
        ("330.02", "10.00", "0.00", "340.02", "669.98"),
        ("333.32", "6.70", "0.00", "340.02", "336.66"),
        ("336.66", "3.37", "0.00", "340.03", "0.00"),
    ]
    # interest 10.00 + 6.70 + 3.37; paid 2 x 340.02 + 340.03
    assert (schedule.capitalised, schedule.total_interest, schedule.total_paid) == (
        Decimal("0.00"),
        Decimal("20.07"),
        Decimal("1020.07"),
    )
    assert [i.due for i in schedule.installments] == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]


def test_a_moratorium_capitalises_its_interest() -> None:
    # given 1,000.00 at 12% over 4 months, the first a moratorium
    #   1: nothing paid; interest 10.00 added: balance 1,010.00
    #   A = 1010 x 0.01 / (1 - 1.01^-3) = 343.42233... -> 343.42
    #   2: interest 10.10; principal 333.32; balance 676.68
    #   3: interest 6.7668 -> 6.77; principal 336.65; balance 340.03
    #   4: interest 3.4003 -> 3.40; principal 340.03; total 343.43
    schedule = schedule_build(_terms(term_months=4, moratorium_months=1))

    assert schedule.level_payment == Decimal("343.42")
    assert _lines(schedule) == [
        ("0.00", "0.00", "0.00", "0.00", "1010.00"),
        ("333.32", "10.10", "0.00", "343.42", "676.68"),
        ("336.65", "6.77", "0.00", "343.42", "340.03"),
        ("340.03", "3.40", "0.00", "343.43", "0.00"),
    ]
    # the principal parts sum to 1,000.00 + 10.00 capitalised; the capitalised interest is not in total_interest
    assert schedule.capitalised == Decimal("10.00")
    assert schedule.total_interest == Decimal("20.27")  # 10.10 + 6.77 + 3.40
    assert schedule.total_paid == Decimal("1030.27")


def test_an_interest_grace_defers_its_interest_to_the_first_installment_after() -> None:
    # given 1,000.00 at 12% over 5 months: 1 month of interest grace within 2 of principal grace
    #   1: nothing paid; interest 10.00 deferred, not capitalised: balance 1,000.00
    #   2: interest only: its own 10.00 + the deferred 10.00 = 20.00
    #   3-5: the hand-worked 3-month schedule of 1,000.00 (A = 340.02)
    schedule = schedule_build(_terms(term_months=5, grace_interest_months=1, grace_principal_months=2))

    assert _lines(schedule) == [
        ("0.00", "0.00", "0.00", "0.00", "1000.00"),
        ("0.00", "20.00", "0.00", "20.00", "1000.00"),
        ("330.02", "10.00", "0.00", "340.02", "669.98"),
        ("333.32", "6.70", "0.00", "340.02", "336.66"),
        ("336.66", "3.37", "0.00", "340.03", "0.00"),
    ]
    assert schedule.capitalised == Decimal("0.00")
    assert schedule.total_interest == Decimal("40.07")


def test_an_interest_grace_as_long_as_the_principal_grace_pays_with_the_first_repayment() -> None:
    # given 1,000.00 at 12% over 4 months, 1 month of grace on both: the deferred 10.00 joins installment 2
    schedule = schedule_build(_terms(term_months=4, grace_interest_months=1, grace_principal_months=1))

    assert _lines(schedule)[:2] == [
        ("0.00", "0.00", "0.00", "0.00", "1000.00"),
        ("330.02", "20.00", "0.00", "350.02", "669.98"),  # 340.02 + the deferred 10.00
    ]


def test_interest_only_with_a_balloon() -> None:
    # given 1,000.00 at 12% over 3 months, interest only: 10.00 a month, the 1,000.00 with the last
    schedule = schedule_build(_terms(kind=ScheduleKind.INTEREST_ONLY))

    assert schedule.level_payment is None
    assert _lines(schedule) == [
        ("0.00", "10.00", "0.00", "10.00", "1000.00"),
        ("0.00", "10.00", "0.00", "10.00", "1000.00"),
        ("1000.00", "10.00", "0.00", "1010.00", "0.00"),
    ]
    assert schedule.total_paid == Decimal("1030.00")


def test_zero_rate() -> None:
    # given 1,000.00 at 0% over 3 months: A = 1000 / 3 = 333.333... -> 333.33; the last takes 333.34
    schedule = schedule_build(_terms(rate_annual=Decimal(0)))

    assert schedule.level_payment == Decimal("333.33")
    assert schedule.amounts() == [Decimal("333.33"), Decimal("333.33"), Decimal("333.34")]
    assert schedule.total_interest == 0


def test_a_tiny_principal_never_repays_more_than_it_owes() -> None:
    # given 0.05 at 0% over 8 months: A = 0.00625 -> 0.01; after 5 installments nothing is owed
    schedule = schedule_build(_terms(principal=Decimal("0.05"), rate_annual=Decimal(0), term_months=8))

    assert schedule.level_payment == Decimal("0.01")
    assert [str(a) for a in schedule.amounts()] == ["0.01"] * 5 + ["0.00"] * 3
    assert [str(i.balance) for i in schedule.installments] == ["0.04", "0.03", "0.02", "0.01"] + ["0.00"] * 4


# ------------------------------------------------------------------------------------------------ arrears


def test_arrears_capitalised() -> None:
    # given 30.00 of arrears on the hand-worked loan: they join the principal, 1,030.00
    #   A = 1030 x 0.01 / (1 - 1.01^-3) = 350.22277... -> 350.22
    #   1: interest 10.30; principal 339.92; balance 690.08
    #   2: interest 6.9008 -> 6.90; principal 343.32; balance 346.76
    #   3: interest 3.4676 -> 3.47; principal 346.76; total 350.23
    schedule = schedule_build(_terms(arrears=Decimal("30.00"), arrears_treatment=ArrearsTreatment.CAPITALISE))

    assert _lines(schedule) == [
        ("339.92", "10.30", "0.00", "350.22", "690.08"),
        ("343.32", "6.90", "0.00", "350.22", "346.76"),
        ("346.76", "3.47", "0.00", "350.23", "0.00"),
    ]
    assert schedule.capitalised == Decimal("30.00")


def test_arrears_with_the_first_installment() -> None:
    # given 30.00 of arrears paid with the first installment: the hand-worked schedule, 30.00 more in the first
    schedule = schedule_build(
        _terms(arrears=Decimal("30.00"), arrears_treatment=ArrearsTreatment.FIRST_INSTALLMENT),
    )

    assert _lines(schedule) == [
        ("330.02", "10.00", "30.00", "370.02", "669.98"),
        ("333.32", "6.70", "0.00", "340.02", "336.66"),
        ("336.66", "3.37", "0.00", "340.03", "0.00"),
    ]
    assert (schedule.capitalised, schedule.total_paid) == (Decimal("0.00"), Decimal("1050.07"))


def test_arrears_with_the_first_installment_after_moratorium_and_interest_grace() -> None:
    # given a 1-month moratorium and 1 month of interest grace: the first payment, and the arrears, in month 3
    schedule = schedule_build(
        _terms(
            term_months=5,
            moratorium_months=1,
            grace_interest_months=1,
            grace_principal_months=1,
            arrears=Decimal("30.00"),
            arrears_treatment=ArrearsTreatment.FIRST_INSTALLMENT,
        )
    )

    assert [str(i.arrears) for i in schedule.installments] == ["0.00", "0.00", "30.00", "0.00", "0.00"]
    # month 1 capitalises 10.00; month 2 defers 1,010.00 x 0.01 = 10.10, paid in month 3 with its own 10.10
    assert schedule.installments[2].interest == Decimal("20.20")


def test_arrears_carried_forward() -> None:
    # given 10.00 of arrears over 3 repayments: running shares floor(10.00 x k / 3) = 3.33, 6.66, 10.00,
    # parts 3.33, 3.33 and the remainder 3.34
    schedule = schedule_build(_terms(arrears=Decimal("10.00"), arrears_treatment=ArrearsTreatment.CARRY_FORWARD))

    assert _lines(schedule) == [
        ("330.02", "10.00", "3.33", "343.35", "669.98"),
        ("333.32", "6.70", "3.33", "343.35", "336.66"),
        ("336.66", "3.37", "3.34", "343.37", "0.00"),
    ]
    assert schedule.total_paid == Decimal("1030.07")


def test_arrears_carried_forward_skip_the_interest_only_months() -> None:
    # given 1 month of principal grace: the arrears are spread over the 3 repayments only
    schedule = schedule_build(
        _terms(
            term_months=4,
            grace_principal_months=1,
            arrears=Decimal("10.00"),
            arrears_treatment=ArrearsTreatment.CARRY_FORWARD,
        )
    )

    assert [str(i.arrears) for i in schedule.installments] == ["0.00", "3.33", "3.33", "3.34"]


def test_arrears_carried_forward_over_a_long_term_stay_even() -> None:
    # given 100.00 over 360 months: 100.00 / 360 = 0.2777...; rounding each part to 0.28 would need 359 x 0.28
    # = 100.52 > 100.00 before the last. Parts are 0.27 or 0.28: 360 x 0.27 = 97.20, so 280 of them are 0.28.
    schedule = schedule_build(
        _terms(term_months=360, arrears=Decimal("100.00"), arrears_treatment=ArrearsTreatment.CARRY_FORWARD)
    )

    parts = [i.arrears for i in schedule.installments]
    assert sum(parts) == Decimal("100.00")
    assert (parts.count(Decimal("0.28")), parts.count(Decimal("0.27"))) == (280, 80)
    assert (parts[0], parts[-1]) == (Decimal("0.27"), Decimal("0.28"))


# ---------------------------------------------------------------------------------------------- due dates


def test_due_dates_clamp_to_the_month_end_without_drifting() -> None:
    # given a start on Jan 31, 2024 (a leap year): Feb 29, then back to the 31st where the month has one
    schedule = schedule_build(_terms(term_months=14))

    assert [i.due for i in schedule.installments] == [
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
        date(2024, 5, 31),
        date(2024, 6, 30),
        date(2024, 7, 31),
        date(2024, 8, 31),
        date(2024, 9, 30),
        date(2024, 10, 31),
        date(2024, 11, 30),
        date(2024, 12, 31),
        date(2025, 1, 31),
        date(2025, 2, 28),
        date(2025, 3, 31),
    ]


def test_due_dates_over_600_months() -> None:
    schedule = schedule_build(_terms(term_months=600, start=date(2025, 8, 30)))

    assert schedule.installments[5].due == date(2026, 2, 28)
    assert schedule.installments[-1].due == date(2075, 8, 30)


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"principal": 1000.0}, "principal 1000.0: must be a Decimal, not a float"),
        ({"principal": 1000}, "principal 1000: must be a Decimal, not int"),
        ({"principal": Decimal("-0.01")}, "principal -0.01: must be >= 0"),
        ({"principal": Decimal("NaN")}, "principal NaN: must be finite"),
        ({"principal": Decimal("Infinity")}, "principal Infinity: must be finite"),
        ({"principal": Decimal("1000.005")}, "principal 1000.005: must be a multiple of the quantum 0.01"),
        ({"rate_annual": 0.05}, "rate_annual 0.05: must be a Decimal, not a float"),
        ({"rate_annual": Decimal("-0.01")}, "rate_annual -0.01: must be >= 0"),
        ({"rate_annual": Decimal("sNaN")}, "rate_annual sNaN: must be finite"),
        ({"arrears": 5.0}, "arrears 5.0: must be a Decimal, not a float"),
        ({"arrears": Decimal("-5.00")}, "arrears -5.00: must be >= 0"),
        ({"arrears": Decimal("0.5"), "quantum": Decimal(1)}, "arrears 0.5: must be a multiple of the quantum 1"),
        ({"quantum": Decimal(0)}, "quantum 0: must be > 0"),
        ({"quantum": 0.01}, "quantum 0.01: must be a Decimal, not a float"),
        ({"quantum": Decimal("-Infinity")}, "quantum -Infinity: must be finite"),
        ({"term_months": 0}, "term_months 0: must be between 1 and 600"),
        ({"term_months": 601}, "term_months 601: must be between 1 and 600"),
        ({"term_months": True}, "term_months True: must be an integer"),
        ({"term_months": 12.0}, "term_months 12.0: must be an integer"),
        ({"moratorium_months": -1}, "moratorium_months -1: must be between 0 and 600"),
        ({"grace_interest_months": -1}, "grace_interest_months -1: must be between 0 and 600"),
        ({"grace_principal_months": -1}, "grace_principal_months -1: must be between 0 and 600"),
        (
            {"term_months": 12, "grace_interest_months": 5, "grace_principal_months": 3},
            "grace_principal_months 3: must be >= grace_interest_months (5)",
        ),
        (
            {"term_months": 6, "moratorium_months": 3, "grace_principal_months": 3},
            "term_months 6: leaves no repayment period after moratorium_months (3) and grace_principal_months (3)",
        ),
        ({"kind": "balloon"}, "kind 'balloon': must be one of 'level', 'interest_only'"),
        ({"kind": None}, "kind None: must be one of"),
        ({"arrears_treatment": "waive"}, "arrears_treatment 'waive': must be one of 'capitalise'"),
        ({"start": datetime(2024, 1, 31, 12, 0)}, "start 2024-01-31 12:00:00: must be a date (not a datetime)"),
        ({"start": "2024-01-31"}, "start '2024-01-31': must be a date"),
        ({"start": date(9999, 6, 30), "term_months": 12}, "start 9999-06-30: the last installment, 12 months on"),
    ],
)
def test_bad_terms_are_refused_naming_the_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        _terms(**overrides)

    assert str(raised.value).startswith(message)
    assert isinstance(raised.value, ValueError)


def test_terms_are_checked_again_when_replaced() -> None:
    with pytest.raises(ScheduleError, match=r"^grace_principal_months 0: must be >= grace_interest_months \(1\)"):
        dataclasses.replace(_terms(), grace_interest_months=1)


def test_enums_may_be_given_by_value() -> None:
    terms = _terms(kind="interest_only", arrears_treatment="carry_forward")

    assert terms.kind is ScheduleKind.INTEREST_ONLY
    assert terms.arrears_treatment is ArrearsTreatment.CARRY_FORWARD


# ----------------------------------------------------------------------------------- invariants, at random


@st.composite
def schedule_terms(draw: st.DrawFn) -> ScheduleTerms:
    quantum = draw(st.sampled_from([CENT, Decimal(1), Decimal("0.001"), Decimal("0.05")]))
    term = draw(st.one_of(st.integers(1, 24), st.integers(1, 600)))
    moratorium = draw(st.integers(0, min(term - 1, 24)))
    grace_principal = draw(st.integers(0, min(term - 1 - moratorium, 24)))
    return ScheduleTerms(
        principal=draw(st.one_of(st.integers(0, 100), st.integers(0, 10**10))) * quantum,
        rate_annual=Decimal(draw(st.integers(0, 4000))) / 10000,  # 0 to 40%, in basis points
        term_months=term,
        kind=draw(st.sampled_from(ScheduleKind)),
        moratorium_months=moratorium,
        grace_interest_months=draw(st.integers(0, grace_principal)),
        grace_principal_months=grace_principal,
        arrears=draw(st.integers(0, 10**7)) * quantum,
        arrears_treatment=draw(st.sampled_from(ArrearsTreatment)),
        start=draw(st.dates(min_value=date(1990, 1, 1), max_value=date(2100, 12, 31))),
        quantum=quantum,
    )


def _interest(balance: Decimal, rate_annual: Decimal, quantum: Decimal) -> Decimal:
    """A period's interest, rounded to the quantum, in Decimal at 60 digits (the module counts in fractions)."""
    with localcontext() as context:
        context.prec = 60
        return (balance * rate_annual / 12 / quantum).to_integral_value(rounding=ROUND_HALF_EVEN) * quantum


def _is_multiple(amount: Decimal, quantum: Decimal) -> bool:
    return (Fraction(amount) / Fraction(quantum)).denominator == 1


def _months_between(start: date, due: date) -> int:
    return (due.year - start.year) * 12 + due.month - start.month


@PROPERTY
@given(terms=schedule_terms())
def test_invariants(terms: ScheduleTerms) -> None:
    schedule = schedule_build(terms)
    rows = schedule.installments
    q = terms.quantum

    # one installment per period, each amount a multiple of the quantum, totals adding up
    assert [i.number for i in rows] == list(range(1, terms.term_months + 1))
    money = [schedule.capitalised, schedule.total_interest, schedule.total_paid]
    money += [amount for i in rows for amount in (i.principal, i.interest, i.arrears, i.total, i.balance)]
    assert all(_is_multiple(amount, q) for amount in money)
    assert all(i.total == i.principal + i.interest + i.arrears for i in rows)
    assert schedule.amounts() == [i.total for i in rows]
    assert schedule.total_paid == sum(schedule.amounts())
    assert schedule.total_interest == sum(i.interest for i in rows)

    # the principal is repaid exactly, the balance never negative, 0 at the end
    assert sum(i.principal for i in rows) == terms.principal + schedule.capitalised
    assert all(i.balance >= 0 for i in rows)
    assert rows[-1].balance == 0
    capitalise = terms.arrears_treatment is ArrearsTreatment.CAPITALISE
    assert sum(i.arrears for i in rows) == (0 if capitalise else terms.arrears)

    # due dates: k months on, the same day or the month's last
    assert all(a.due < b.due for a, b in itertools.pairwise(rows))
    assert all(_months_between(terms.start, i.due) == i.number for i in rows)
    assert all(i.due.day == min(terms.start.day, calendar.monthrange(i.due.year, i.due.month)[1]) for i in rows)

    _phases_hold(terms, schedule)
    if terms.kind is ScheduleKind.LEVEL:
        _level_holds(terms, schedule)


def _phases_hold(terms: ScheduleTerms, schedule: Schedule) -> None:
    """Moratorium interest capitalised; interest grace deferred to the first payment; principal grace."""
    rows, q, rate = schedule.installments, terms.quantum, terms.rate_annual
    capitalise = terms.arrears_treatment is ArrearsTreatment.CAPITALISE
    balance = terms.principal + (terms.arrears if capitalise else 0)
    for row in rows[: terms.moratorium_months]:
        balance += _interest(balance, rate, q)
        assert (row.total, row.balance) == (0, balance)
    assert schedule.capitalised == balance - terms.principal
    first_paying = terms.moratorium_months + terms.grace_interest_months
    assert all((r.total, r.balance) == (0, balance) for r in rows[terms.moratorium_months : first_paying])
    # the first payment: its own interest and that of each grace month, all on the same balance
    assert rows[first_paying].interest == (terms.grace_interest_months + 1) * _interest(balance, rate, q)
    repayment_from = terms.moratorium_months + terms.grace_principal_months
    assert all(r.principal == 0 for r in rows[:repayment_from])
    if terms.kind is ScheduleKind.INTEREST_ONLY:
        assert all(r.principal == 0 for r in rows[:-1])
    if terms.arrears_treatment is ArrearsTreatment.FIRST_INSTALLMENT:
        assert rows[first_paying].arrears == terms.arrears
    if terms.arrears_treatment is ArrearsTreatment.CARRY_FORWARD:
        parts = {r.arrears for r in rows[repayment_from:]}
        assert max(parts) - min(parts) <= q
        assert all(r.arrears == 0 for r in rows[:repayment_from])


def _level_holds(terms: ScheduleTerms, schedule: Schedule) -> None:
    """Every repayment but the last pays the level payment A, unless nothing more is owed; the last is within
    the drift bound of it (derivation: `test_every_period_against_ipmt_and_ppmt`): its total is
    b_{n-1} (1+i) + r_n against A* = B_{n-1} (1+i), so |last - A| <= (1+i) D_{n-1} + q."""
    rows = schedule.installments[terms.moratorium_months + terms.grace_principal_months :]
    payment = schedule.level_payment
    assert payment is not None
    paid = [r.principal + r.interest for r in rows]
    if terms.grace_interest_months and terms.grace_interest_months == terms.grace_principal_months:
        # the first repayment also pays the interest deferred by the grace
        paid[0] -= terms.grace_interest_months * _interest(
            rows[0].balance + rows[0].principal, terms.rate_annual, terms.quantum
        )
    for row, amount in zip(rows[:-1], paid[:-1], strict=True):
        assert amount == payment or (row.balance == 0 and amount <= payment), row
    if all(r.balance > 0 for r in rows[:-1]):
        i, q, n = float(terms.rate_annual) / 12, float(terms.quantum), len(rows)
        drift = q * (n - 1) if i == 0 else q * ((1 + i) ** (n - 1) - 1) / i
        assert abs(float(paid[-1] - payment)) <= (1 + i) * drift + q + 1e-9 * float(payment)
