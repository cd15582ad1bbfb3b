"""Regressions: kernel behaviour that once contradicted its own documentation (accounts/risk.py, DOMAIN.md),
found by these independent tests and since fixed. Each states the input and the expected figure with its
derivation; "actual" notes describe what the kernel used to return."""

from __future__ import annotations

import math

import numpy as np
import pytest

from accounts import risk
from accounts.risk import KIND_OPTION, KIND_SPOT

from . import builders, reference
from .builders import Account, Instrument, Position
from .quantlib_prices import option_price, years

# ------------------------------------------------ 1. isolated options are valued at 0 unless held cross

# 0 the stock (S = 100, implied vol 20%), 1 a one-year call struck at 100, contract size 100; r = 5%.
# C = 10.450584 (QuantLib; the DOMAIN.md reference point).
CALL_INSTRUMENTS = [
    Instrument(KIND_SPOT, 0, maintenance_rate=0.25),
    Instrument(KIND_OPTION, 0, 100.0, 0.2, 0.15, strike=100.0, expiry_years=years(365), is_call=True),
]
CALL_MARKET = builders.market([100.0, math.nan], [0.2, math.nan], risk_free_rate=0.05)
CALL = option_price(spot=100.0, strike=100.0, days=365, rate=0.05, carry=0.0, volatility=0.2, is_call=True)


def test_an_isolated_option_is_valued_at_its_black_scholes_price() -> None:
    # given one account holding 1 call contract isolated, bought at 10 with 500 allocated, and nothing else
    book = builders.book(CALL_INSTRUMENTS, [Account()], [Position(0, 1, 1.0, 10.0, isolated_margin=500.0)])

    # when
    result = risk.sweep(book, CALL_MARKET)

    # then: own equity = 500 + 100 x (10.450584 - 10) = 545.06; market value 100 x 10.450584 = 1,045.06
    # actual: the option is priced only if some account holds it cross, so its value is 0:
    # own equity = 500 + 100 x (0 - 10) = -500 -> 0, market value 0
    assert result.isolated_equity[0] == pytest.approx(500.0 + 100.0 * (CALL - 10.0), rel=1e-8)
    assert result.market_value[0] == pytest.approx(100.0 * CALL, rel=1e-8)


def test_an_isolated_option_does_not_depend_on_who_else_holds_it() -> None:
    # given the same isolated call in account 0, and account 1 holding the call cross
    book = builders.book(
        CALL_INSTRUMENTS,
        [Account(), Account()],
        [Position(0, 1, 1.0, 10.0, isolated_margin=500.0), Position(1, 1, 1.0)],
    )

    # when the book is evaluated whole, and in two shards (account 0 alone in the first)
    whole = risk.sweep(book, CALL_MARKET)
    sharded = risk.ShardedBook.prepare(book, 2).evaluate(CALL_MARKET)

    # then account 0 gets the same figures both ways (actual: 545.06 whole, 0 sharded)
    assert whole.isolated_equity[0] == pytest.approx(500.0 + 100.0 * (CALL - 10.0), rel=1e-8)
    assert sharded.isolated_equity[0] == whole.isolated_equity[0]


# ------------------------------------------------------------------ 2. EWMA seed counts days, not returns


def test_ewma_is_seeded_with_the_first_observed_returns_of_a_late_series() -> None:
    """Docstring: 'seeded with the mean square of the first `seed_observations` returns'. A series that
    starts on day 25 (a new listing) has its first 20 returns on days 25..44: seed = their mean square,
    then the recursion from day 45. Actual: the seed window is days 0..19 (no returns), the variance is
    NaN, and day 25 seeds it with a single square, r_25^2."""
    rng = np.random.default_rng(5)
    returns = np.full(65, math.nan)
    returns[25:] = rng.normal(0.0, 0.02, 40)
    returns[25] = 0.10  # one large first return, so the difference shows

    latest, stressed = risk.ewma_volatility(returns[None, :])

    expected_latest, expected_stressed = reference.ewma_series(list(returns))
    assert latest[0] == pytest.approx(expected_latest, rel=1e-12)
    assert stressed[0] == pytest.approx(expected_stressed, rel=1e-12)


def test_ewma_seed_skips_a_missing_day_inside_the_seed_window() -> None:
    # returns on every day but day 3: the seed is the first 20 returns (days 0..20 without 3), not the 19 of
    # days 0..19, and the recursion starts on day 21
    rng = np.random.default_rng(6)
    returns = rng.normal(0.0, 0.02, 40)
    returns[3] = math.nan
    returns[20] = 0.08

    latest, stressed = risk.ewma_volatility(returns[None, :])

    expected_latest, expected_stressed = reference.ewma_series(list(returns))
    assert latest[0] == pytest.approx(expected_latest, rel=1e-12)
    assert stressed[0] == pytest.approx(expected_stressed, rel=1e-12)


# ------------------------------------------------- 3. dynamic scale when the stressed volatility is unknown


def test_dynamic_scale_is_one_when_the_stressed_volatility_is_unknown() -> None:
    """Docstrings: dynamic_margin_scale is '1 where any input is unknown'; Market: 'NaN where unknown: no
    dynamic scaling then'. EWMA 6%, stressed unknown, reference 2%: expected 1. Actual: fmax(NaN, 6%) = 6%
    stands in for the stressed sigma, scale = 6% / 2% = 3, and a 25% maintenance rate becomes 75%."""
    scale = risk.dynamic_margin_scale(np.array([0.06]), np.array([math.nan]), np.array([0.02]))
    assert scale[0] == 1.0

    instruments = [Instrument(KIND_SPOT, 0, maintenance_rate=0.25, reference_volatility=0.02)]
    book = builders.book(instruments, [Account()], [Position(0, 0, 100.0)])
    result = risk.sweep(book, builders.market([100.0], [math.nan], [0.06], [math.nan]))
    assert result.maintenance_requirement[0] == pytest.approx(2_500.0, rel=1e-12)  # actual 7,500


def test_dynamic_scale_uses_the_stressed_volatility_as_given() -> None:
    """Docstring: max(1, ((1 - w) sigma_t + w sigma_stressed) / sigma_ref). EWMA 4%, stressed 2%, reference
    2%, w = 25%: (3% + 0.5%) / 2% = 1.75. Actual: the stressed sigma is floored at the EWMA one,
    (3% + 1%) / 2% = 2.0. (`ewma_volatility` never yields stressed < latest, so this only matters for a
    stressed sigma from elsewhere, e.g. a 10-year lookback; the floor may be intended, then the docstring
    formula is what needs fixing.)"""
    scale = risk.dynamic_margin_scale(np.array([0.04]), np.array([0.02]), np.array([0.02]))
    assert scale[0] == pytest.approx(1.75, rel=1e-15)


# ------------------------------------------------- 4. distance: the nearer root when the grid cells tie

# 0 the stock (S = 100, implied vol 30%), 1 a put struck at 95 and 2 a call struck at 110, 91 days,
# contract size 100, no requirement rates; r = 3%.
STRADDLE_INSTRUMENTS = [
    Instrument(KIND_SPOT, 0),
    Instrument(KIND_OPTION, 0, 100.0, strike=95.0, expiry_years=years(91), is_call=False),
    Instrument(KIND_OPTION, 0, 100.0, strike=110.0, expiry_years=years(91), is_call=True),
]
STRADDLE_MARKET = builders.market([100.0, math.nan, math.nan], [0.3, math.nan, math.nan], risk_free_rate=0.03)


def _bisect(f: object, lo: float, hi: float) -> float:
    assert callable(f)
    while abs(hi - lo) > 1e-12:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if f(mid) <= 0 else (mid, hi)
    return 0.5 * (lo + hi)


def test_distance_is_the_nearer_root_when_both_sides_cross_in_cells_of_the_same_size() -> None:
    """Docstring: 'the uniform move x nearest to 0'. Cash 2,500 (2,000 plus 500 from shorting 5 shares),
    short 5 shares, short 1 put and 1 call contract: f(x) = 2,000 - 500 x - 100 (P + C)(100 (1 + x)) is 0 at
    x = -0.2680 and at x = +0.2615. Both first show on the kernel's grid at |x| = 0.30, and the kernel then
    always takes the fall: actual -0.2680, expected +0.2615."""
    book = builders.book(
        STRADDLE_INSTRUMENTS,
        [Account(cash=2_500.0)],
        [Position(0, 0, -5.0), Position(0, 1, -1.0), Position(0, 2, -1.0)],
    )

    def f(x: float) -> float:
        spot = 100.0 * (1 + x)
        put = option_price(spot=spot, strike=95.0, days=91, rate=0.03, carry=0.0, volatility=0.3, is_call=False)
        call = option_price(spot=spot, strike=110.0, days=91, rate=0.03, carry=0.0, volatility=0.3, is_call=True)
        return 2_000.0 - 500.0 * x - 100.0 * (put + call)

    fall, rise = _bisect(f, 0.0, -0.5), _bisect(f, 0.0, 0.5)
    assert (fall, rise) == pytest.approx((-0.2680, 0.2615), abs=1e-4)

    distance = risk.sweep(book, STRADDLE_MARKET).distance_to_liquidation[0]

    assert distance == pytest.approx(rise, abs=1e-3)


# --------------------------------------- 5. distance: a dip below maintenance between two grid points


def test_distance_finds_a_dip_below_maintenance_between_grid_points() -> None:
    """Docstring: 'NaN when no move in [-100%, +300%] reaches it'. 100 shares at 100 on a 3,450 loan with
    one 7-day put contract struck at 45 (vol 20%, r = 0): M0 = 25% x 10,000 + min(20% x 10,000, put value
    ~0) = 2,500. Above the strike f(x) ~ 7,500 (1 + x) - 3,450 < 0 from x = -0.54; below it the put pays,
    f(x) ~ 4,500 - 3,450 - 2,500 (1 + x) > 0 again from about x = -0.58. So equity falls below maintenance
    at a 54.3% crash (f(-0.55) < 0), but f(-0.5) = 300 and f(-0.6) = 50 are both positive, the kernel's
    grid sees no sign change, and it reports NaN: 'no move reaches it'."""
    instruments = [
        Instrument(KIND_SPOT, 0, initial_rate=0.5, maintenance_rate=0.25),
        Instrument(KIND_OPTION, 0, 100.0, 0.2, 0.2, strike=45.0, expiry_years=years(7), is_call=False),
    ]
    book = builders.book(instruments, [Account(debt=3_450.0)], [Position(0, 0, 100.0), Position(0, 1, 1.0)])
    market = builders.market([100.0, math.nan], [0.2, math.nan])

    def put(spot: float) -> float:
        return option_price(spot=spot, strike=45.0, days=7, rate=0.0, carry=0.0, volatility=0.2, is_call=False)

    maintenance = 2_500.0 + min(2_000.0, 100.0 * put(100.0))

    def f(x: float) -> float:
        return 10_000.0 * (1 + x) - 3_450.0 + 100.0 * put(100.0 * (1 + x)) - maintenance * (1 + x)

    assert f(-0.5) > 0
    assert f(-0.55) < 0
    assert f(-0.6) > 0
    first_root = _bisect(f, -0.5, -0.55)
    assert first_root == pytest.approx(-0.5430, abs=1e-4)

    distance = risk.sweep(book, market).distance_to_liquidation[0]

    assert distance == pytest.approx(first_root, abs=1e-3)  # actual NaN
