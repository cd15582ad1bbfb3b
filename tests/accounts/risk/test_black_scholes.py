"""Black-Scholes-Merton prices and the option legs of the scenario grid against QuantLib.

QuantLib's AnalyticEuropeanEngine on a BlackScholesMertonProcess (flat continuously compounded curves,
constant volatility, Actual/365 Fixed, expiries a whole number of days away so the year fraction is exactly
days / 365) is the reference, to 1e-8 relative.

Where an option is so far out of the money that its value is a few 1e-14, relative agreement stops meaning
anything: QuantLib evaluates N(d) as 0.5 (1 + erf(d / sqrt 2)) (an asymptotic series below 1e-8), whose
absolute error is a few ulp(1) = 2.2e-16, and multiplies it by S e^{-qT} or K e^{-rT} (its deep
out-of-the-money put at S=125, K=100, 7 days, 20% comes out as -1.1e-14). The agreement asked for is
therefore 1e-8 relative OR 1e-14 (S + K) absolute (45 ulps of the terms), and the grid test checks that
the relative criterion is the one that binds on most of the grid.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from accounts import risk
from accounts.risk import KIND_OPTION, KIND_SPOT

from . import builders, reference
from .builders import EQUITY, Account, Instrument, Position
from .quantlib_prices import option_price, years

RELATIVE = 1e-8


def agreement(spot: float, strike: float, value: float) -> float:
    """The allowed |kernel - QuantLib| for one option value (see the module docstring)."""
    return RELATIVE * abs(value) + 1e-14 * (spot + strike)


# S, K: in, at and out of the money both ways; T from a day to two years; r and q nonzero; vol 5%..150%.
SPOTS_STRIKES = [
    (100.0, 100.0),
    (100.0, 80.0),
    (100.0, 95.0),
    (100.0, 105.0),
    (100.0, 125.0),
    (80.0, 100.0),
    (125.0, 100.0),
    (3.5, 4.0),
]
DAYS = [1, 7, 30, 91, 182, 365, 730]
RATES_CARRIES = [(0.05, 0.0), (0.01, 0.03), (0.08, 0.02)]
VOLS = [0.05, 0.2, 0.5, 1.0, 1.5]
GRID = list(itertools.product(SPOTS_STRIKES, DAYS, RATES_CARRIES, VOLS, [True, False]))


def test_reference_point_call_is_10_450584() -> None:
    # given S = K = 100, r = 5%, q = 0, vol = 20%, T = 1 (365 days), a call
    # d1 = (ln 1 + (0.05 + 0.02) x 1) / 0.2 = 0.35, d2 = 0.15
    # C = 100 N(0.35) - 100 e^{-0.05} N(0.15) = 100 x 0.636831 - 95.122942 x 0.559618 = 10.450584
    quantlib = option_price(spot=100.0, strike=100.0, days=365, rate=0.05, carry=0.0, volatility=0.2, is_call=True)

    # when
    kernel = float(risk.black_scholes(100.0, 100.0, years(365), 0.05, 0.0, 0.2, True))

    # then
    assert quantlib == pytest.approx(10.450584, abs=5e-7)
    assert kernel == pytest.approx(quantlib, rel=RELATIVE, abs=0)


def test_prices_agree_with_quantlib_across_the_grid() -> None:
    # given the grid, priced by QuantLib one option at a time
    spot = np.array([g[0][0] for g in GRID])
    strike = np.array([g[0][1] for g in GRID])
    days = [g[1] for g in GRID]
    rate_carry = [g[2] for g in GRID]
    vol = np.array([g[3] for g in GRID])
    is_call = np.array([g[4] for g in GRID])
    expected = np.array(
        [
            option_price(
                spot=g[0][0], strike=g[0][1], days=g[1], rate=g[2][0], carry=g[2][1], volatility=g[3], is_call=g[4]
            )
            for g in GRID
        ]
    )

    # when the kernel prices the whole grid at once, one call per (r) since r is a scalar argument
    actual = np.empty(len(GRID))
    for rate in {rc[0] for rc in rate_carry}:
        rows = np.array([rc[0] == rate for rc in rate_carry])
        carry = np.array([rc[1] for rc in rate_carry])
        t = np.array([years(d) for d in days])
        actual[rows] = risk.black_scholes(
            spot[rows], strike[rows], t[rows], rate, carry[rows], vol[rows], is_call[rows]
        )

    # then
    allowed = np.array([agreement(s, k, v) for s, k, v in zip(spot, strike, expected, strict=True)])
    off = np.flatnonzero(np.abs(actual - expected) > allowed)
    assert off.size == 0, [(GRID[i], expected[i], actual[i]) for i in off[:10]]
    relative_binds = RELATIVE * np.abs(expected) >= 1e-14 * (spot + strike)
    assert relative_binds.mean() > 0.8  # the test is a 1e-8 relative test on the bulk of the grid


def test_reference_black_scholes_agrees_with_quantlib() -> None:
    """The property tests trust `reference.bs_price`; it is held to the same standard as the kernel."""
    for (s, k), d, (r, q), vol, call in GRID:
        expected = option_price(spot=s, strike=k, days=d, rate=r, carry=q, volatility=vol, is_call=call)
        actual = reference.bs_price(s, k, years(d), r, q, vol, call)
        assert abs(actual - expected) <= agreement(s, k, expected), (s, k, d, r, q, vol, call)


def test_put_call_parity() -> None:
    # C - P = S e^{-qT} - K e^{-rT}
    for (s, k), d, (r, q), vol in itertools.product(SPOTS_STRIKES, DAYS, RATES_CARRIES, VOLS):
        t = years(d)
        call = float(risk.black_scholes(s, k, t, r, q, vol, True))
        put = float(risk.black_scholes(s, k, t, r, q, vol, False))
        assert call - put == pytest.approx(s * math.exp(-q * t) - k * math.exp(-r * t), abs=1e-13 * (s + k))


def test_expired_options_are_worth_their_intrinsic_value() -> None:
    # T <= 0: max(S - K, 0) for calls, max(K - S, 0) for puts, whatever the volatility and rates
    spot = np.array([110.0, 90.0, 110.0, 90.0, 100.0])
    strike = np.full(5, 100.0)
    t = np.array([0.0, 0.0, -0.5, -0.5, 0.0])
    is_call = np.array([True, True, False, False, False])
    values = risk.black_scholes(spot, strike, t, 0.05, 0.02, 0.3, is_call)
    np.testing.assert_array_equal(values, [10.0, 0.0, 0.0, 10.0, 0.0])


def test_at_a_spot_of_zero_a_call_is_worthless_and_a_put_is_the_discounted_strike() -> None:
    # a -100% move: d1 = d2 = -inf, so C = 0 and P = K e^{-rT} = 100 e^{-0.05 x 0.5} = 97.530991...
    values = risk.black_scholes(0.0, 100.0, 0.5, 0.05, 0.02, 0.3, np.array([True, False]))
    assert values[0] == 0.0
    assert values[1] == pytest.approx(100.0 * math.exp(-0.025), rel=1e-15)


# ------------------------------------------------------------------------- the scenario grid's option legs

S0, K_CALL, K_PUT, DAYS_TO_EXPIRY, R, Q, VOL, CS = 100.0, 105.0, 95.0, 91, 0.03, 0.01, 0.4, 100.0
QUANTITY = 2.0
# Instruments: 0 the underlying (equity class), 1 a call, 2 a put. Accounts: long call, short call,
# long put, short put (2 contracts of 100 each), all on the portfolio model, no cash.
OPTION_BOOK = builders.book(
    [
        Instrument(KIND_SPOT, 0, scenario_class=EQUITY, carry_yield=Q),
        Instrument(KIND_OPTION, 0, CS, strike=K_CALL, expiry_years=years(DAYS_TO_EXPIRY), is_call=True),
        Instrument(KIND_OPTION, 0, CS, strike=K_PUT, expiry_years=years(DAYS_TO_EXPIRY), is_call=False),
    ],
    [Account(portfolio=True)] * 4,
    [
        Position(0, 1, QUANTITY),
        Position(1, 1, -QUANTITY),
        Position(2, 2, QUANTITY),
        Position(3, 2, -QUANTITY),
    ],
)
OPTION_MARKET = builders.market(
    [S0, math.nan, math.nan], implied_volatility=[VOL, math.nan, math.nan], risk_free_rate=R
)
ACCOUNTS = [(1, True), (-1, True), (1, False), (-1, False)]  # (sign of the quantity, is_call) per account
WORST_CORNERS = [(-1, 0.75), (1, 1.25), (1, 0.75), (-1, 1.25)]  # (direction of the move, vol factor)


def _quantlib_change(move: float, vol_factor: float, is_call: bool) -> tuple[float, float]:
    """(change in the value of one option unit at the scenario, allowed error of that change)."""
    strike = K_CALL if is_call else K_PUT
    moved = option_price(
        spot=S0 * (1 + move),
        strike=strike,
        days=DAYS_TO_EXPIRY,
        rate=R,
        carry=Q,
        volatility=VOL * vol_factor,
        is_call=is_call,
    )
    base = option_price(spot=S0, strike=strike, days=DAYS_TO_EXPIRY, rate=R, carry=Q, volatility=VOL, is_call=is_call)
    return moved - base, agreement(S0 * (1 + move), strike, moved) + agreement(S0, strike, base)


def test_default_grid_moves_and_vol_factors() -> None:
    # equity class: +/-15% in 5 steps a side: 0, -3, -6, -9, -12, -15, +3, +6, +9, +12, +15 %
    grid = risk.ScenarioGrid()
    moves = grid.price_moves()
    np.testing.assert_allclose(
        moves[EQUITY], [0, -0.03, -0.06, -0.09, -0.12, -0.15, 0.03, 0.06, 0.09, 0.12, 0.15], rtol=0, atol=1e-16
    )
    np.testing.assert_allclose(
        moves[1], [0, -0.016, -0.032, -0.048, -0.064, -0.08, 0.012, 0.024, 0.036, 0.048, 0.06], atol=1e-16
    )
    np.testing.assert_array_equal(grid.vol_factors(), [1.0, 1.25, 0.75])
    assert grid.scenario_count == 33


def test_worst_scenario_loss_of_one_option_equals_quantlib_revaluation_on_the_default_grid() -> None:
    # given the 33 scenarios of the equity class, each option revalued by QuantLib
    grid = risk.ScenarioGrid()
    scenarios = list(itertools.product(grid.price_moves()[EQUITY], grid.vol_factors()))

    # when
    result = risk.sweep(OPTION_BOOK, OPTION_MARKET)

    # then each account's worst loss is the largest loss of its position over the 33 scenarios
    for account, (sign, is_call) in enumerate(ACCOUNTS):
        pnl = []
        for move, vol_factor in scenarios:
            change, allowed = _quantlib_change(float(move), float(vol_factor), is_call)
            pnl.append((sign * QUANTITY * CS * change, QUANTITY * CS * allowed))
        worst = max(range(len(pnl)), key=lambda s: -pnl[s][0])
        expected, allowed = max(-pnl[worst][0], 0.0), pnl[worst][1]
        assert abs(result.worst_scenario_loss[account] - expected) <= allowed, (account, expected)
        assert result.maintenance_requirement[account] == result.worst_scenario_loss[account]
        # the worst corner combines a price move with a vol shift: long call (-15%, vol down), short call
        # (+15%, vol up), long put (+15%, vol down), short put (-15%, vol up)
        move, vol_factor = scenarios[worst]
        assert (math.copysign(1, move), vol_factor) == WORST_CORNERS[account]


@pytest.mark.parametrize("move", [-0.15, -0.12, -0.09, -0.06, -0.03, 0.0, 0.03, 0.06, 0.09, 0.12, 0.15])
@pytest.mark.parametrize("vol_factor", [0.75, 1.0, 1.25])
def test_each_scenario_of_the_default_grid_equals_quantlib_revaluation(move: float, vol_factor: float) -> None:
    """One scenario at a time: a grid whose only moves are {0, move} and vol factors {1, vol_factor}. Calls
    rise and puts fall with the price, both rise with volatility, so for each (move, vol_factor) one of the
    four accounts (long or short, call or put) has its worst loss exactly there, and every account's worst
    loss is the largest of its four QuantLib revaluations."""
    # given
    grid = risk.ScenarioGrid(
        ranges=((move, move),) * len(risk.SCENARIO_CLASSES),
        steps_per_side=1,
        vol_shift_up=max(vol_factor - 1.0, 0.0),
        vol_shift_down=max(1.0 - vol_factor, 0.0),
    )
    assert set(grid.vol_factors()) == {1.0, vol_factor}

    # when
    result = risk.sweep(OPTION_BOOK, OPTION_MARKET, risk.RiskParams(grid=grid))

    # then
    corner_is_worst = []
    for account, (sign, is_call) in enumerate(ACCOUNTS):
        table = {(m, v): _quantlib_change(m, v, is_call) for m, v in itertools.product({0.0, move}, {1.0, vol_factor})}
        losses = {key: -sign * QUANTITY * CS * change for key, (change, _) in table.items()}
        worst_key = max(losses, key=lambda key: losses[key])
        expected = max(losses[worst_key], 0.0)
        allowed = QUANTITY * CS * table[worst_key][1]
        assert abs(result.worst_scenario_loss[account] - expected) <= allowed, (account, expected)
        corner_is_worst.append(worst_key == (move, vol_factor) and losses[worst_key] > 0)
    if (move, vol_factor) != (0.0, 1.0):
        assert any(corner_is_worst)  # this scenario's own revaluation decided one account's requirement
