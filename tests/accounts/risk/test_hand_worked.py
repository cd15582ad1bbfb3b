"""Hand-worked examples: a TIMS portfolio with a protective put, isolated against cross margin, and the
standard model on a mixed account, with the arithmetic written out.

Sums of a few exact-ish floats are asserted to 1e-12 relative (float rounding); option values come from
QuantLib and are asserted to its 1e-8 relative agreement (test_black_scholes.py).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from accounts import risk
from accounts.risk import BAND_HEALTHY, BAND_WARNING, KIND_OPTION, KIND_PERPETUAL, KIND_SPOT

from . import builders
from .builders import CRYPTO, EQUITY, Account, Instrument, Position
from .quantlib_prices import option_price, years

ROUNDING = 1e-12  # relative: sums of a handful of float products
QL = 1e-8  # relative: kernel Black-Scholes vs QuantLib


# ------------------------------------------------------------------- TIMS: stock plus a protective put

# Instruments: 0 the stock XYZ (equity class, +/-15%), 1 a put on XYZ, strike 95, 73 days (T = 0.2),
# contract size 100. Market: S = 100, implied vol 30%, r = 5%, q = 0.
TIMS_INSTRUMENTS = [
    Instrument(KIND_SPOT, 0, scenario_class=EQUITY, initial_rate=0.5, maintenance_rate=0.25),
    Instrument(KIND_OPTION, 0, 100.0, strike=95.0, expiry_years=years(73), is_call=False, maintenance_rate=0.2),
]
TIMS_MARKET = builders.market([100.0, math.nan], implied_volatility=[0.3, math.nan], risk_free_rate=0.05)


def _put(spot: float, volatility: float) -> float:
    return option_price(spot=spot, strike=95.0, days=73, rate=0.05, carry=0.0, volatility=volatility, is_call=False)


def test_tims_stock_with_protective_put() -> None:
    # given: long 100 shares at 100 and 1 put contract (100 puts, strike 95), portfolio margin
    book = builders.book(
        TIMS_INSTRUMENTS, [Account(cash=0.0, portfolio=True)], [Position(0, 0, 100.0), Position(0, 1, 1.0)]
    )
    # Scenario table (QuantLib put values P; portfolio P&L = 100 x 100 x move + 100 x (P - P0)),
    # P0 = P(100, 30%) = 2.748059:
    #   move   stock     vol 30%: P   P&L       vol 37.5%: P  P&L       vol 22.5%: P  P&L
    #   -15%  -1500.00   10.6140   -713.41      11.5645   -618.36       9.7952   -795.28  <- worst
    #   -12%  -1200.00    8.4815   -626.66       9.5817   -516.64       7.4497   -729.84
    #    -9%   -900.00    6.6249   -512.31       7.8298   -391.83       5.4380   -631.00
    #    -6%   -600.00    5.0563   -369.17       6.3109   -243.72       3.8004   -494.77
    #    -3%   -300.00    3.7706   -197.74       5.0184    -72.96       2.5389   -320.92
    #     0       0.00    2.7481      0.00       3.9385   +119.04       1.6206   -112.75
    #    +3%   +300.00    1.9583   +221.02       3.0518   +330.37       0.9886   +124.06
    #    +6%   +600.00    1.3654   +461.74       2.3359   +558.79       0.5769   +382.89
    #    +9%   +900.00    0.9323   +718.42       1.7671   +801.90       0.3225   +657.45
    #   +12%  +1200.00    0.6239   +987.58       1.3219  +1057.39       0.1730   +942.49
    #   +15%  +1500.00    0.4096  +1266.15       0.9785  +1323.04       0.0892  +1234.12
    # The put caps the fall: the worst is -15% with volatility down, 1500 - 100 x (9.7952 - 2.7481) = 795.28.
    p0 = _put(100.0, 0.3)
    table = {
        (move, vol): 10_000.0 * move + 100.0 * (_put(100.0 * (1 + move), 0.3 * vol) - p0)
        for move, vol in itertools.product(
            [0.0, -0.03, -0.06, -0.09, -0.12, -0.15, 0.03, 0.06, 0.09, 0.12, 0.15], [1.0, 1.25, 0.75]
        )
    }
    worst_key = min(table, key=lambda key: table[key])
    assert worst_key == (-0.15, 0.75)
    expected = -table[worst_key]
    assert expected == pytest.approx(795.2841, abs=5e-5)
    # allowed: QuantLib agreement on the two put values, 100 x 1e-8 x (9.7952 + 2.7481)
    allowed = 100.0 * QL * (_put(85.0, 0.225) + p0)

    # when
    result = risk.sweep(book, TIMS_MARKET)

    # then
    assert abs(result.worst_scenario_loss[0] - expected) <= allowed
    assert result.maintenance_requirement[0] == result.worst_scenario_loss[0]
    assert result.initial_requirement[0] == pytest.approx(1.25 * result.maintenance_requirement[0], rel=ROUNDING)
    assert abs(result.initial_requirement[0] - 1.25 * expected) <= 1.25 * allowed


def test_tims_stock_alone_requires_15_percent_of_its_value() -> None:
    # given 100 shares at 100, no put: the worst scenario is -15%, 0.15 x 10,000 = 1,500 (vol plays no part)
    book = builders.book(TIMS_INSTRUMENTS, [Account(cash=0.0, portfolio=True)], [Position(0, 0, 100.0)])

    # when
    result = risk.sweep(book, TIMS_MARKET)

    # then
    assert result.worst_scenario_loss[0] == pytest.approx(1_500.0, rel=ROUNDING)
    assert result.maintenance_requirement[0] == pytest.approx(1_500.0, rel=ROUNDING)
    assert result.initial_requirement[0] == pytest.approx(1.25 * 1_500.0, rel=ROUNDING)


def test_every_account_reports_its_scenario_loss_but_standard_accounts_are_not_held_to_it() -> None:
    # the same stock on the standard model: maintenance 25% x 10,000 = 2,500, scenario loss still 1,500
    book = builders.book(TIMS_INSTRUMENTS, [Account(cash=0.0, portfolio=False)], [Position(0, 0, 100.0)])
    result = risk.sweep(book, TIMS_MARKET)
    assert result.worst_scenario_loss[0] == pytest.approx(1_500.0, rel=ROUNDING)
    assert result.maintenance_requirement[0] == pytest.approx(2_500.0, rel=ROUNDING)
    assert result.initial_requirement[0] == pytest.approx(5_000.0, rel=ROUNDING)


def test_scenario_classes_do_not_offset_each_other() -> None:
    # long 100 XYZ (equity: worst -15% -> 1,500) and short 10 of a crypto perp at 1,000 (crypto: +/-16%,
    # worst +16% on 10,000 -> 1,600): no offsets between classes, 1,500 + 1,600 = 3,100
    instruments = [
        TIMS_INSTRUMENTS[0],
        Instrument(KIND_PERPETUAL, 1, scenario_class=CRYPTO, maintenance_rate=0.05),
    ]
    book = builders.book(
        instruments, [Account(cash=5_000.0, portfolio=True)], [Position(0, 0, 100.0), Position(0, 1, -10.0, 1_000.0)]
    )
    result = risk.sweep(book, builders.market([100.0, 1_000.0]))
    assert result.worst_scenario_loss[0] == pytest.approx(3_100.0, rel=ROUNDING)


# ------------------------------------------------------------------------- isolated against cross margin

# Instruments: 0 an ETH perpetual (contract size 1, initial 10%, maintenance 5%), 1 the stock XYZ
# (initial 50%, maintenance 25%, haircut 30%).
ISOLATION_INSTRUMENTS = [
    Instrument(KIND_PERPETUAL, 0, scenario_class=CRYPTO, initial_rate=0.1, maintenance_rate=0.05),
    Instrument(KIND_SPOT, 1, scenario_class=EQUITY, initial_rate=0.5, maintenance_rate=0.25, haircut=0.3),
]
# Account 0, cross: cash 5,000, long 10 ETH-PERP entered at 2,000, long 100 XYZ.
# Account 1, the same with the perpetual isolated: 2,000 of the 5,000 cash allocated to it, 3,000 left.
ISOLATION_BOOK = builders.book(
    ISOLATION_INSTRUMENTS,
    [Account(cash=5_000.0), Account(cash=3_000.0)],
    [
        Position(0, 0, 10.0, 2_000.0),
        Position(0, 1, 100.0),
        Position(1, 0, 10.0, 2_000.0, isolated_margin=2_000.0),
        Position(1, 1, 100.0),
    ],
)


def test_isolated_loss_beyond_the_allocation_does_not_reach_the_cross_pool() -> None:
    # given ETH falls from 2,000 to 1,700: the perpetual loses 10 x 300 = 3,000, more than its 2,000
    market = builders.market([1_700.0, 50.0])

    # when
    result = risk.sweep(ISOLATION_BOOK, market)

    # then, cross (account 0): everything shares one pool
    #   equity       = 5,000 + 100 x 50 + 10 x (1,700 - 2,000) = 5,000 + 5,000 - 3,000 = 7,000
    #   maintenance  = 10 x 1,700 x 5% + 5,000 x 25% = 850 + 1,250 = 2,100
    #   initial      = 10 x 1,700 x 10% + 5,000 x 50% = 1,700 + 2,500 = 4,200
    #   collateral   = 5,000 + 5,000 x (1 - 30%) = 8,500; ratio 7,000 / 2,100 = 3.3333
    #   distance     = -(7,000 - 2,100) / (22,000 - 2,100) = -4,900 / 19,900 (a fall of 24.6%)
    # isolated (account 1): the perpetual is outside the pool
    #   equity       = 3,000 + 5,000 = 8,000 (not 8,000 - 3,000: the loss is capped at the allocation)
    #   maintenance  = 1,250, initial 2,500, collateral 3,000 + 3,500 = 6,500, ratio 6.4
    #   isolated     = max(0, 2,000 - 3,000) = 0; own maintenance 10 x 1,700 x 5% = 850 > -1,000: 1 breach
    #   distance     = -(8,000 - 1,250) / (5,000 - 1,250) = -1.8, beyond a -100% move: NaN
    #   market value = 5,000 + 17,000 = 22,000 in both (isolated positions are still the client's)
    assert result.equity == pytest.approx([7_000.0, 8_000.0], rel=ROUNDING)
    assert result.maintenance_requirement == pytest.approx([2_100.0, 1_250.0], rel=ROUNDING)
    assert result.initial_requirement == pytest.approx([4_200.0, 2_500.0], rel=ROUNDING)
    assert result.collateral_value == pytest.approx([8_500.0, 6_500.0], rel=ROUNDING)
    assert result.margin_ratio == pytest.approx([7_000.0 / 2_100.0, 6.4], rel=ROUNDING)
    assert result.market_value == pytest.approx([22_000.0, 22_000.0], rel=ROUNDING)
    np.testing.assert_array_equal(result.isolated_equity, [0.0, 0.0])
    np.testing.assert_array_equal(result.isolated_breaches, [0, 1])
    assert result.distance_to_liquidation[0] == pytest.approx(-4_900.0 / 19_900.0, rel=ROUNDING)
    assert math.isnan(result.distance_to_liquidation[1])
    np.testing.assert_array_equal(result.band, [BAND_HEALTHY, BAND_HEALTHY])


def test_isolated_position_within_its_allocation() -> None:
    # given ETH at 1,900: the perpetual loses 10 x 100 = 1,000 < 2,000
    market = builders.market([1_900.0, 50.0])

    # when
    result = risk.sweep(ISOLATION_BOOK, market)

    # then cross: 5,000 + 5,000 - 1,000 = 9,000; isolated pool: still 8,000
    # isolated equity 2,000 - 1,000 = 1,000 >= own maintenance 10 x 1,900 x 5% = 950: no breach
    assert result.equity == pytest.approx([9_000.0, 8_000.0], rel=ROUNDING)
    np.testing.assert_allclose(result.isolated_equity, [0.0, 1_000.0], rtol=ROUNDING)
    np.testing.assert_array_equal(result.isolated_breaches, [0, 0])


def test_cross_pool_does_not_move_with_the_isolated_price() -> None:
    for eth in (3_000.0, 2_000.0, 1_700.0, 500.0, 1.0):
        result = risk.sweep(ISOLATION_BOOK, builders.market([eth, 50.0]))
        assert result.equity[1] == pytest.approx(8_000.0, rel=ROUNDING)
        assert result.maintenance_requirement[1] == pytest.approx(1_250.0, rel=ROUNDING)
        # own equity 2,000 + 10 (eth - 2,000), floored at 0
        assert result.isolated_equity[1] == pytest.approx(max(0.0, 2_000.0 + 10.0 * (eth - 2_000.0)), rel=ROUNDING)


# -------------------------------------------------------------------- the standard model, by hand

# Instruments: 0 ABC stock (initial 50%, maintenance 25%, haircut 20%), 1 a BTC perpetual (10% / 5%),
# 2 an ABC call struck at 130 and 3 one struck at 80 (contract size 100, 73 days, 20% / 15% of the
# underlying's notional). Market: ABC 120 with implied vol 25%, BTC 31,000, r = 4%.
STANDARD_INSTRUMENTS = [
    Instrument(KIND_SPOT, 0, initial_rate=0.5, maintenance_rate=0.25, haircut=0.2),
    Instrument(KIND_PERPETUAL, 1, scenario_class=CRYPTO, initial_rate=0.1, maintenance_rate=0.05),
    Instrument(KIND_OPTION, 0, 100.0, 0.2, 0.15, strike=130.0, expiry_years=years(73), is_call=True),
    Instrument(KIND_OPTION, 0, 100.0, 0.2, 0.15, strike=80.0, expiry_years=years(73), is_call=True),
]
STANDARD_MARKET = builders.market(
    [120.0, 31_000.0, math.nan, math.nan], implied_volatility=[0.25, math.nan, math.nan, math.nan], risk_free_rate=0.04
)


def test_standard_margin_by_hand() -> None:
    # given cash 15,000, a loan of 16,000, long 50 ABC, short 2 BTC-PERP entered at 30,000,
    # long 3 contracts of the 130 call and 1 of the 80 call
    book = builders.book(
        STANDARD_INSTRUMENTS,
        [Account(cash=15_000.0, debt=16_000.0)],
        [
            Position(0, 0, 50.0),
            Position(0, 1, -2.0, 30_000.0),
            Position(0, 2, 3.0),
            Position(0, 3, 1.0),
        ],
    )
    c130 = option_price(spot=120.0, strike=130.0, days=73, rate=0.04, carry=0.0, volatility=0.25, is_call=True)
    c80 = option_price(spot=120.0, strike=80.0, days=73, rate=0.04, carry=0.0, volatility=0.25, is_call=True)
    assert (c130, c80) == pytest.approx((2.179384, 40.637731), abs=5e-7)
    v130, v80 = 300.0 * c130, 100.0 * c80  # 653.815, 4,063.773
    option_allowed = QL * (v130 + v80)

    # when
    result = risk.sweep(book, STANDARD_MARKET)

    # then
    # equity = cash + spot + perpetual PnL + options - loan
    #        = 15,000 + 50 x 120 + (-2) x (31,000 - 30,000) + 653.815 + 4,063.773 - 16,000 = 7,717.588
    equity = 15_000.0 + 6_000.0 - 2_000.0 + v130 + v80 - 16_000.0
    assert equity == pytest.approx(7_717.5883, abs=1e-4)
    assert abs(result.equity[0] - equity) <= option_allowed + ROUNDING * 40_000
    # market value = 6,000 - 62,000 + 653.815 + 4,063.773 (the perpetual at its notional)
    assert abs(result.market_value[0] - (6_000.0 - 62_000.0 + v130 + v80)) <= option_allowed + ROUNDING * 70_000
    # collateral = cash + long spot after haircut = 15,000 + 6,000 x 0.8 = 19,800
    assert result.collateral_value[0] == pytest.approx(19_800.0, rel=ROUNDING)
    # maintenance: ABC 6,000 x 25% = 1,500; BTC 62,000 x 5% = 3,100;
    #   130 calls: min(3 x 100 x 120 x 15% = 5,400, value 653.815) = 653.815 (the cap binds);
    #   80 call:   min(1 x 100 x 120 x 15% = 1,800, value 4,063.773) = 1,800 (the rate binds)
    #   total 1,500 + 3,100 + 653.815 + 1,800 = 7,053.815
    maintenance = 1_500.0 + 3_100.0 + v130 + 1_800.0
    assert abs(result.maintenance_requirement[0] - maintenance) <= QL * v130 + ROUNDING * 10_000
    # initial: 3,000 + 6,200 + min(7,200, 653.815) + min(2,400, 4,063.773) = 12,253.815
    initial = 3_000.0 + 6_200.0 + v130 + 2_400.0
    assert abs(result.initial_requirement[0] - initial) <= QL * v130 + ROUNDING * 15_000
    # ratio 7,717.588 / 7,053.815 = 1.0941: between 1 and the 1.25 warning level
    ratio = equity / maintenance
    assert ratio == pytest.approx(1.0941013, abs=1e-7)
    assert result.margin_ratio[0] == pytest.approx(ratio, rel=1e-7)
    assert result.band[0] == BAND_WARNING
    # shortfalls: maintenance met (0); to initial 12,253.815 - 7,717.588 = 4,536.227
    assert result.shortfall_maintenance[0] == 0.0
    assert abs(result.shortfall_initial[0] - (initial - equity)) <= option_allowed + ROUNDING * 40_000
    assert result.shortfall_initial[0] == pytest.approx(4_536.2269, abs=1e-4)


def test_long_option_requirement_is_capped_at_its_value_short_is_not() -> None:
    # one account long 3 of the 130 calls, one short 3: notional 3 x 100 x 120 = 36,000
    book = builders.book(STANDARD_INSTRUMENTS, [Account(), Account()], [Position(0, 2, 3.0), Position(1, 2, -3.0)])
    v130 = 300.0 * option_price(spot=120.0, strike=130.0, days=73, rate=0.04, carry=0.0, volatility=0.25, is_call=True)
    result = risk.sweep(book, STANDARD_MARKET)
    # long: min(36,000 x 15%, 653.815) = 653.815, and min(36,000 x 20%, 653.815) for the initial
    assert result.maintenance_requirement[0] == pytest.approx(v130, rel=QL)
    assert result.initial_requirement[0] == pytest.approx(v130, rel=QL)
    # short: 36,000 x 15% = 5,400 and 36,000 x 20% = 7,200
    assert result.maintenance_requirement[1] == pytest.approx(5_400.0, rel=ROUNDING)
    assert result.initial_requirement[1] == pytest.approx(7_200.0, rel=ROUNDING)
    # equity: +653.815 and -653.815, no cash
    assert result.equity == pytest.approx([v130, -v130], rel=QL)


def test_shortfalls_and_bands_at_each_level() -> None:
    # 100 ABC at 120 (maintenance 25% -> 3,000, initial 50% -> 6,000) financed by a loan:
    #   loan 5,000: equity 7,000, ratio 2.333 healthy, shortfalls 0 / 0 (initial 6,000 met)
    #   loan 8,500: equity 3,500, ratio 1.1667 warning, shortfalls 0 / 2,500
    #   loan 10,000: equity 2,000, ratio 0.6667 margin call, shortfalls 1,000 / 4,000
    #   loan 12,000: equity 0, critical, shortfalls 3,000 / 6,000
    #   loan 13,000: equity -1,000, critical, shortfalls 4,000 / 7,000
    loans = [5_000.0, 8_500.0, 10_000.0, 12_000.0, 13_000.0]
    book = builders.book(
        STANDARD_INSTRUMENTS,
        [Account(debt=loan) for loan in loans],
        [Position(a, 0, 100.0) for a in range(len(loans))],
    )
    result = risk.sweep(book, STANDARD_MARKET)
    assert result.equity == pytest.approx([7_000.0, 3_500.0, 2_000.0, 0.0, -1_000.0], rel=ROUNDING, abs=1e-9)
    assert result.margin_ratio == pytest.approx([7 / 3, 3_500 / 3_000, 2 / 3, 0.0, -1 / 3], rel=ROUNDING, abs=1e-12)
    assert result.shortfall_maintenance == pytest.approx([0.0, 0.0, 1_000.0, 3_000.0, 4_000.0], rel=ROUNDING)
    assert result.shortfall_initial == pytest.approx([0.0, 2_500.0, 4_000.0, 6_000.0, 7_000.0], rel=ROUNDING)
    assert [risk.BANDS[b] for b in result.band] == ["healthy", "warning", "margin_call", "critical", "critical"]
    assert result.band_counts() == {"healthy": 1, "warning": 1, "margin_call": 1, "critical": 2}


def test_band_thresholds_are_strict() -> None:
    # maintenance 100 ABC x 120 x 25% = 3,000; a ratio of exactly 1.25 (equity 3,750, loan 8,250) is healthy
    # (the warning is below the level) and exactly 1.0 (equity 3,000, loan 9,000) is a warning (a margin
    # call is below 1.0); with a warning level of 1.5, 1.25 is a warning
    loans = [8_250.0, 9_000.0]
    book = builders.book(
        STANDARD_INSTRUMENTS, [Account(debt=loan) for loan in loans], [Position(0, 0, 100.0), Position(1, 0, 100.0)]
    )
    result = risk.sweep(book, STANDARD_MARKET)
    np.testing.assert_array_equal(result.margin_ratio, [1.25, 1.0])
    assert [risk.BANDS[b] for b in result.band] == ["healthy", "warning"]
    result = risk.sweep(book, STANDARD_MARKET, risk.RiskParams(warning_level=1.5))
    assert [risk.BANDS[b] for b in result.band] == ["warning", "warning"]
