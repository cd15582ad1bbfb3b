"""Distance to liquidation: the uniform move x of every price at which equity(x) = maintenance x (1 + x).

Without options f(x) = equity(x) - maintenance (1 + x) = (E0 - M0) + (delta - M0) x is linear and
x* = -(E0 - M0) / (delta - M0) is exact. With options the kernel brackets x* on its grid of moves and
refines by regula falsi; here the root is found independently by bisection to 1e-10 on QuantLib
revaluations, and the kernel's answer must be within the first-secant error bound of its grid cell
(`reference.refinement_tolerance`), which for the cells near 0 is far below 1e-3.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from accounts import risk
from accounts.risk import KIND_OPTION, KIND_PERPETUAL, KIND_SPOT

from . import builders, reference
from .builders import Account, Instrument, Position
from .quantlib_prices import option_price, years

ROUNDING = 1e-12

# 0 the stock ABC (initial 50%, maintenance 25%), 1 a perpetual on a coin (20% / 10%), 2 an ABC put struck
# at 95 and 3 an ABC call struck at 110 (contract size 100, 91 days, 30% / 20% of the underlying notional).
INSTRUMENTS = [
    Instrument(KIND_SPOT, 0, initial_rate=0.5, maintenance_rate=0.25),
    Instrument(KIND_PERPETUAL, 1, initial_rate=0.2, maintenance_rate=0.1),
    Instrument(KIND_OPTION, 0, 100.0, 0.3, 0.2, strike=95.0, expiry_years=years(91), is_call=False),
    Instrument(KIND_OPTION, 0, 100.0, 0.3, 0.2, strike=110.0, expiry_years=years(91), is_call=True),
]
# ABC 100 (implied vol 30%), the coin 100, r = 3%
MARKET = builders.market([100.0, 100.0, math.nan, math.nan], [0.3, math.nan, math.nan, math.nan], risk_free_rate=0.03)


def _distance(accounts: list[Account], positions: list[Position], params: risk.RiskParams | None = None) -> np.ndarray:
    return risk.sweep(builders.book(INSTRUMENTS, accounts, positions), MARKET, params).distance_to_liquidation


def test_long_account_falls_to_liquidation_in_closed_form() -> None:
    # given 100 ABC at 100 bought with a 6,000 loan: E0 = 10,000 - 6,000 = 4,000, M0 = 25% x 10,000 = 2,500,
    # delta = 10,000
    # x* = -(4,000 - 2,500) / (10,000 - 2,500) = -0.2
    # check: at -20% equity = 8,000 - 6,000 = 2,000 = 25% x 8,000
    distance = _distance([Account(debt=6_000.0)], [Position(0, 0, 100.0)])
    assert distance[0] == pytest.approx(-0.2, rel=ROUNDING)


def test_short_account_rises_to_liquidation_in_closed_form() -> None:
    # given cash 3,000 and short 100 perpetuals entered at 90, now at 100:
    # E0 = 3,000 + (-100) x (100 - 90) = 2,000, M0 = 10% x 10,000 = 1,000, delta = -10,000
    # x* = -(2,000 - 1,000) / (-10,000 - 1,000) = 1 / 11 = +9.09%
    # check: at 100 x 12/11 equity = 3,000 - 100 x (109.0909 - 90) = 1,090.91 = 10% x 10,909.09
    distance = _distance([Account(cash=3_000.0)], [Position(0, 1, -100.0, 90.0)])
    assert distance[0] == pytest.approx(1.0 / 11.0, rel=ROUNDING)


def test_portfolio_account_uses_its_scenario_requirement() -> None:
    # 100 ABC with an 8,000 loan on the portfolio model: M0 = 15% x 10,000 = 1,500, E0 = 2,000
    # x* = -(2,000 - 1,500) / (10,000 - 1,500) = -1/17: at 16/17 of the price, 10,000 x 16/17 - 8,000
    # = 1,411.76 = 1,500 x 16/17
    distance = _distance([Account(debt=8_000.0, portfolio=True)], [Position(0, 0, 100.0)])
    assert distance[0] == pytest.approx(-1.0 / 17.0, rel=ROUNDING)


def test_hedged_account_is_liquidated_by_a_rise_of_the_requirement() -> None:
    # long 100 ABC on a 6,000 loan and short 100 perpetuals entered at 100 (both prices at 100):
    # E0 = 10,000 - 6,000 + 0 = 4,000, M0 = 2,500 + 1,000 = 3,500, delta = 10,000 - 10,000 = 0
    # x* = -(4,000 - 3,500) / (0 - 3,500) = +1/7: the equity does not move, the requirement grows with
    # the prices; check: at +1/7 the requirement is 3,500 x 8/7 = 4,000 = equity
    distance = _distance([Account(debt=6_000.0)], [Position(0, 0, 100.0), Position(0, 1, -100.0, 100.0)])
    assert distance[0] == pytest.approx(1.0 / 7.0, rel=ROUNDING)


def test_at_or_below_maintenance_the_distance_is_zero() -> None:
    # loans 7,500 (E0 = 2,500 = M0) and 8,000 (E0 = 2,000 < M0): already there
    distance = _distance(
        [Account(debt=7_500.0), Account(debt=8_000.0), Account(debt=20_000.0)],
        [Position(0, 0, 100.0), Position(1, 0, 100.0), Position(2, 0, 100.0)],
    )
    np.testing.assert_array_equal(distance, [0.0, 0.0, 0.0])


def test_no_exposure_or_no_reachable_move_gives_nan() -> None:
    # account 0: cash only, delta = M0 = 0, nothing can move it
    # account 1: 100 ABC fully paid plus 1 of cash: x* = -(10,001 - 2,500) / 7,500 < -100%
    # account 2: 100 ABC fully paid: x* = -7,500 / 7,500 = -100% exactly, the price going to 0; but the account
    # is paid in full (no debt, long spot only), so no move liquidates it: NaN (issue 14)
    # account 3: the same with a loan of 1: x* = -7,499 / 7,500, just short of -100%
    distance = _distance(
        [Account(cash=1_000.0), Account(cash=1.0), Account(), Account(debt=1.0)],
        [Position(1, 0, 100.0), Position(2, 0, 100.0), Position(3, 0, 100.0)],
    )
    assert math.isnan(distance[0])
    assert math.isnan(distance[1])
    assert math.isnan(distance[2])
    assert distance[3] == pytest.approx(-7_499.0 / 7_500.0, rel=ROUNDING)


# --------------------------------------------------------------------------------- accounts with options


def _put(spot: float) -> float:
    return option_price(spot=spot, strike=95.0, days=91, rate=0.03, carry=0.0, volatility=0.3, is_call=False)


def _call(spot: float) -> float:
    return option_price(spot=spot, strike=110.0, days=91, rate=0.03, carry=0.0, volatility=0.3, is_call=True)


def _bisect(f: Callable[[float], float], lo: float, hi: float, width: float = 1e-10) -> float:
    assert f(lo) > 0 >= f(hi)
    while abs(hi - lo) > width:
        mid = 0.5 * (lo + hi)
        if f(mid) <= 0:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


def _grid_cell(x: float) -> tuple[float, float]:
    """The cell of the kernel's bracketing grid holding x: (inner, outer), |inner| < |x| <= |outer|."""
    grid = risk.DISTANCE_GRID
    i = int(np.searchsorted(grid, x))
    return (grid[i], grid[i - 1]) if x < 0 else (grid[i - 1], grid[i])


# Each case: accounts, positions, the account's f(x) revalued with QuantLib, and a bracket for bisection.
# M0 are worked by hand from the requirement definitions; E0 likewise.
P0, C0 = _put(100.0), _call(100.0)
OPTION_CASES = {
    # cash 5,000, short 2 puts (200 units): E0 = 5,000 - 200 P(100) = 4,322.84;
    # M0 = 200 x 100 x 20% = 4,000; f(x) = 5,000 - 200 P(100 (1 + x)) - 4,000 (1 + x): a fall
    "short puts": (
        Account(cash=5_000.0),
        [Position(0, 2, -2.0)],
        lambda x: 5_000.0 - 200.0 * _put(100.0 * (1 + x)) - 4_000.0 * (1 + x),
        (0.0, -0.2),
    ),
    # covered call on a loan, portfolio model: 100 ABC, short 1 call (100 units), loan 7,000.
    # M0 = the worst scenario loss: at -15% with volatility up (the short call gains least when it keeps
    # most value): 1,500 - 100 (C(100) - C(85, 37.5%))
    "covered call": (
        Account(debt=7_000.0, portfolio=True),
        [Position(0, 0, 100.0), Position(0, 3, -1.0)],
        None,
        (0.0, -0.5),
    ),
    # short 100 ABC with 14,000 of cash, hedged by a long call: E0 = 14,000 - 10,000 + 100 C(100);
    # M0 = 2,500 + min(100 x 100 x 20% = 2,000, 100 C(100) = 260.7) = 2,500 + 100 C(100): a rise
    "short stock with a call": (
        Account(cash=14_000.0),
        [Position(0, 0, -100.0), Position(0, 3, 1.0)],
        lambda x: 4_000.0 + 100.0 * _call(100.0 * (1 + x)) - 10_000.0 * x - (2_500.0 + 100.0 * C0) * (1 + x),
        (0.0, 0.5),
    ),
    # far away: cash 60,000, short 20 puts (2,000 units), M0 = 2,000 x 100 x 20% = 40,000
    "far short puts": (
        Account(cash=60_000.0),
        [Position(0, 2, -20.0)],
        lambda x: 60_000.0 - 2_000.0 * _put(100.0 * (1 + x)) - 40_000.0 * (1 + x),
        (0.0, -0.5),
    ),
}


def _covered_call_f() -> Callable[[float], float]:
    def call_at(spot: float, vol: float) -> float:
        return option_price(spot=spot, strike=110.0, days=91, rate=0.03, carry=0.0, volatility=vol, is_call=True)

    moves = [0.0, -0.03, -0.06, -0.09, -0.12, -0.15, 0.03, 0.06, 0.09, 0.12, 0.15]
    # portfolio P&L at (move, vol) = 10,000 move - 100 (C(100 (1 + move), vol) - C(100))
    m0 = max(
        -(10_000.0 * m - 100.0 * (call_at(100.0 * (1 + m), 0.3 * v) - C0)) for m in moves for v in (1.0, 1.25, 0.75)
    )
    assert m0 == pytest.approx(1_500.0 - 100.0 * (C0 - call_at(85.0, 0.375)), rel=1e-12)
    return lambda x: 10_000.0 * (1 + x) - 7_000.0 - 100.0 * _call(100.0 * (1 + x)) - m0 * (1 + x)


@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_option_account_distance_solves_equity_equals_maintenance(name: str) -> None:
    # given
    account, positions, f, bracket = OPTION_CASES[name]
    f = f or _covered_call_f()
    assert f(0.0) > 0
    exact = _bisect(f, *bracket)
    allowed = reference.refinement_tolerance(f, exact, _grid_cell(exact))

    # when
    distance = _distance([account], positions)[0]

    # then: within the refinement's error bound of the bisected root...
    assert abs(distance - exact) <= allowed, (distance, exact, allowed)
    # ...which on these cells is a small fraction of a percent of move
    assert allowed < 1e-3 if abs(exact) < 0.3 else allowed < 3e-3
    # and revaluing at the kernel's move leaves f(x) as small as that error allows: |f| <= |f'| x error
    slope = abs(f(exact + 1e-6) - f(exact - 1e-6)) / 2e-6
    assert abs(f(distance)) <= 1.01 * slope * allowed


def test_without_refinement_the_distance_is_the_secant_across_the_grid_cell() -> None:
    # distance_refinements=0: the answer is the zero of the line through (inner, f(inner)), (outer, f(outer))
    # of the grid cell holding the root. For the short puts: root -0.0744 lies in the cell (-0.06, -0.08).
    _, positions, f, _ = OPTION_CASES["short puts"]
    assert f is not None
    inner, outer = _grid_cell(_bisect(f, 0.0, -0.2))
    assert (inner, outer) == pytest.approx((-0.06, -0.08))
    secant = inner - f(inner) * (outer - inner) / (f(outer) - f(inner))
    distance = _distance([Account(cash=5_000.0)], positions, risk.RiskParams(distance_refinements=0))[0]
    # f values agree with QuantLib to 1e-8 of the option values (200 P ~ 700): the secant's x to ~1e-9
    assert distance == pytest.approx(secant, abs=1e-9)


def test_more_refinements_converge_to_the_root() -> None:
    _, positions, f, bracket = OPTION_CASES["short puts"]
    assert f is not None
    exact = _bisect(f, *bracket)
    distance = _distance([Account(cash=5_000.0)], positions, risk.RiskParams(distance_refinements=8))[0]
    # converged regula falsi: |x error| ~ |f error| / |f'| = (1e-8 x 200 P) / |f'| with |f'| ~ 4,000 + 200 |delta|
    assert distance == pytest.approx(exact, abs=1e-9)


def test_the_nearer_of_a_fall_and_a_rise_is_reported() -> None:
    # short straddle (1 put at 95, 1 call at 110, no requirement rates) with 2,000 of cash:
    # f(x) = 2,000 - 100 (P + C)(100 (1 + x)) falls on both sides of 0: at -25.4% and at +27.7%
    instruments = [
        *INSTRUMENTS[:2],
        Instrument(KIND_OPTION, 0, 100.0, strike=95.0, expiry_years=years(91), is_call=False),
        Instrument(KIND_OPTION, 0, 100.0, strike=110.0, expiry_years=years(91), is_call=True),
    ]
    book = builders.book(instruments, [Account(cash=2_000.0)], [Position(0, 2, -1.0), Position(0, 3, -1.0)])

    def f(x: float) -> float:
        return 2_000.0 - 100.0 * (_put(100.0 * (1 + x)) + _call(100.0 * (1 + x)))

    fall, rise = _bisect(f, 0.0, -0.5), _bisect(f, 0.0, 0.5)
    assert (fall, rise) == pytest.approx((-0.2536, 0.2770), abs=1e-4)

    distance = risk.sweep(book, MARKET).distance_to_liquidation[0]

    assert abs(distance - fall) <= reference.refinement_tolerance(f, fall, _grid_cell(fall))


@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_refinement_improves_on_the_plain_secant_by_the_regula_falsi_rate(name: str) -> None:
    """One regula falsi step multiplies the error by at most K x (distance of the retained end to the root)
    <= K h, K = M2 / (2 m1), i.e. by 4 x refinement_tolerance / h. The kernel's default refinements must do at
    least as well as one such step on the plain secant (distance_refinements=0)."""
    account, positions, f, bracket = OPTION_CASES[name]
    f = f or _covered_call_f()
    exact = _bisect(f, *bracket)
    cell = _grid_cell(exact)
    rate = 4.0 * reference.refinement_tolerance(f, exact, cell) / abs(cell[1] - cell[0])
    assert rate < 0.2  # the cells near the root are small enough for regula falsi to contract

    secant = _distance([account], positions, risk.RiskParams(distance_refinements=0))[0]
    refined = _distance([account], positions)[0]

    assert abs(refined - exact) <= rate * abs(secant - exact)
