"""Dynamic margin: RiskMetrics EWMA volatility, the anti-procyclical scale, and the requirement it scales.

sigma_t^2 = lambda sigma_{t-1}^2 + (1 - lambda) r_t^2 with lambda = 0.94, seeded with the mean square of the
first returns; scale = max(1, ((1 - w) sigma_ewma + w sigma_stressed) / sigma_ref), w >= 25% (EMIR).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from accounts import risk
from accounts.risk import KIND_OPTION, KIND_PERPETUAL, KIND_SPOT

from . import builders, reference
from .builders import Account, Instrument, Position
from .quantlib_prices import years

NAN = math.nan


def test_ewma_by_hand_with_a_day_missing() -> None:
    # seed on the first 2 returns: (0.01^2 + 0.02^2) / 2 = 2.5e-4
    # day 3 has no return: the variance is carried, 2.5e-4
    # day 4, r = 0.03: 0.94 x 2.5e-4 + 0.06 x 9e-4 = 2.35e-4 + 0.54e-4 = 2.89e-4, sigma = 0.017
    # day 5, r = 0: 0.94 x 2.89e-4 = 2.7166e-4, sigma = 0.0164821...
    # stressed: the largest variance from the seed on, 2.89e-4, sigma 0.017
    latest, stressed = risk.ewma_volatility(np.array([[0.01, -0.02, NAN, 0.03, 0.0]]), seed_observations=2)
    assert latest[0] == pytest.approx(math.sqrt(2.7166e-4), rel=1e-14)
    assert stressed[0] == pytest.approx(0.017, rel=1e-14)


def test_ewma_matches_the_riskmetrics_loop_with_missing_days_after_the_seed() -> None:
    # given four series over 120 days: a full one, one with missing days after the 20-day seed, one with
    # a volatility burst then calm (so its stressed sigma is the burst's), and one with no return at all
    rng = np.random.default_rng(7)
    returns = rng.normal(0.0, 0.02, size=(4, 120))
    returns[1, [25, 26, 40, 77, 119]] = NAN
    returns[2, 60:70] *= 5.0
    returns[3, :] = NAN

    # when
    latest, stressed = risk.ewma_volatility(returns)

    # then, series by series against the plain loop (reference.ewma_series)
    for series in range(3):
        expected_latest, expected_stressed = reference.ewma_series(
            list(returns[series]), lam=0.94, seed_observations=20
        )
        # ~100 multiply-adds of positive terms: rounding ~1e-14 relative
        assert latest[series] == pytest.approx(expected_latest, rel=1e-12)
        assert stressed[series] == pytest.approx(expected_stressed, rel=1e-12)
    assert stressed[2] > 2 * latest[2]  # the burst is remembered
    assert math.isnan(latest[3])
    assert math.isnan(stressed[3])


def test_ewma_with_other_decay_and_short_series() -> None:
    # fewer days than the seed: the mean square of all of them, no recursion
    latest, stressed = risk.ewma_volatility(np.array([[0.01, 0.03, -0.02]]), lam=0.9, seed_observations=20)
    assert latest[0] == pytest.approx(math.sqrt((1e-4 + 9e-4 + 4e-4) / 3), rel=1e-14)
    assert stressed[0] == latest[0]
    rng = np.random.default_rng(3)
    series = rng.normal(0.0, 0.01, size=50)
    latest, stressed = risk.ewma_volatility(series[None, :], lam=0.97, seed_observations=10)
    assert (latest[0], stressed[0]) == pytest.approx(reference.ewma_series(list(series), 0.97, 10), rel=1e-12)


def test_dynamic_margin_scale_formula() -> None:
    # w = 25%, sigma_ref = 2%:
    #   (0.75 x 3%   + 0.25 x 4%)   / 2% = (2.25% + 1%)    / 2% = 1.625
    #   (0.75 x 1%   + 0.25 x 1.2%) / 2% = (0.75% + 0.3%)  / 2% = 0.525 -> floor 1
    #   (0.75 x 2%   + 0.25 x 5%)   / 2% = (1.5% + 1.25%)  / 2% = 1.375
    #   unknown volatility -> 1
    ewma = np.array([0.03, 0.01, 0.02, NAN])
    stressed = np.array([0.04, 0.012, 0.05, NAN])
    reference_vol = np.full(4, 0.02)
    scale = risk.dynamic_margin_scale(ewma, stressed, reference_vol)
    np.testing.assert_allclose(scale, [1.625, 1.0, 1.375, 1.0], rtol=1e-15)
    # w = 50%: (1.5% + 2%) / 2% = 1.75; (1% + 2.5%) / 2% = 1.75
    scale = risk.dynamic_margin_scale(ewma, stressed, reference_vol, stress_weight=0.5)
    np.testing.assert_allclose(scale, [1.75, 1.0, 1.75, 1.0], rtol=1e-15)
    # an unknown reference volatility: no scaling
    assert risk.dynamic_margin_scale(np.array([0.05]), np.array([0.06]), np.array([NAN]))[0] == 1.0


# 0 XYZ stock (initial 50%, maintenance 25%, set for a daily volatility of 2%), 1 a call on XYZ (contract
# size 100, 20% / 15% of the underlying's notional), 2 a coin perpetual (10% / 5%, no reference volatility).
INSTRUMENTS = [
    Instrument(KIND_SPOT, 0, initial_rate=0.5, maintenance_rate=0.25, reference_volatility=0.02),
    Instrument(KIND_OPTION, 0, 100.0, 0.2, 0.15, strike=110.0, expiry_years=years(91), is_call=True),
    Instrument(KIND_PERPETUAL, 2, initial_rate=0.1, maintenance_rate=0.05),
]


def _market(ewma: float, stressed: float) -> risk.Market:
    return builders.market(
        [100.0, NAN, 1_000.0], [0.3, NAN, NAN], [ewma, NAN, 0.2], [stressed, NAN, 0.3], risk_free_rate=0.03
    )


# Account 0: 100 XYZ; account 1: short 1 call contract; account 2: 10 coin perpetuals at entry 1,000 (its
# underlying has no reference volatility, so it never scales); account 3: 100 XYZ on the portfolio model.
BOOK = builders.book(
    INSTRUMENTS,
    [Account(cash=1_000.0), Account(cash=5_000.0), Account(cash=1_000.0), Account(portfolio=True)],
    [Position(0, 0, 100.0), Position(1, 1, -1.0), Position(2, 2, 10.0, 1_000.0), Position(3, 0, 100.0)],
)


def test_volatility_above_reference_scales_the_standard_requirement_by_exactly_the_factor() -> None:
    # given XYZ's EWMA volatility 3% and stressed 4% against a reference of 2%: scale 1.625
    calm = risk.sweep(BOOK, _market(0.01, 0.012))  # scale 1 (0.525 floored)
    stressed = risk.sweep(BOOK, _market(0.03, 0.04))
    off = risk.sweep(BOOK, _market(0.03, 0.04), risk.RiskParams(dynamic_margin=False))

    # then: stock 10,000 x 25% = 2,500 -> 4,062.5, initial 5,000 -> 8,125
    #       short call 100 x 100 x 15% = 1,500 -> 2,437.5, initial 2,000 -> 3,250
    #       perpetual 10,000 x 5% = 500 unscaled; portfolio account 15% x 10,000 = 1,500 unscaled
    np.testing.assert_allclose(calm.maintenance_requirement, [2_500.0, 1_500.0, 500.0, 1_500.0], rtol=1e-12)
    np.testing.assert_allclose(stressed.maintenance_requirement, [4_062.5, 2_437.5, 500.0, 1_500.0], rtol=1e-12)
    np.testing.assert_allclose(stressed.initial_requirement, [8_125.0, 3_250.0, 1_000.0, 1_875.0], rtol=1e-12)
    np.testing.assert_allclose(off.maintenance_requirement, calm.maintenance_requirement, rtol=1e-15)
    # equity does not depend on the scale
    np.testing.assert_array_equal(stressed.equity, calm.equity)


def test_scale_from_a_return_history_end_to_end() -> None:
    # given a return history whose EWMA ends well above the 2% reference
    rng = np.random.default_rng(11)
    returns = np.concatenate([rng.normal(0.0, 0.01, 60), rng.normal(0.0, 0.05, 40)])[None, :]
    latest, worst = risk.ewma_volatility(returns)
    expected_latest, expected_worst = reference.ewma_series(list(returns[0]))
    scale = max(1.0, (0.75 * expected_latest + 0.25 * expected_worst) / 0.02)
    assert scale > 1.5

    # when
    result = risk.sweep(BOOK, _market(float(latest[0]), float(worst[0])))

    # then
    assert result.maintenance_requirement[0] == pytest.approx(2_500.0 * scale, rel=1e-12)
    assert result.maintenance_requirement[1] == pytest.approx(1_500.0 * scale, rel=1e-12)


def test_scaled_isolated_requirement_decides_the_breach() -> None:
    # an isolated long of 10 XYZ at entry 100 with 260 allocated: own equity 260 at a price of 100;
    # own maintenance 1,000 x 25% = 250 (no breach) unscaled, 250 x 1.625 = 406.25 (breach) when stressed
    book = builders.book(INSTRUMENTS, [Account()], [Position(0, 0, 10.0, 100.0, isolated_margin=260.0)])
    assert risk.sweep(book, _market(0.01, 0.012)).isolated_breaches[0] == 0
    assert risk.sweep(book, _market(0.03, 0.04)).isolated_breaches[0] == 1
