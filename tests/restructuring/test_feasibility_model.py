"""The feasibility kernel (restructuring/feasibility.py) against independent references: closed forms of GBM with
Merton jumps, the square-root impact law worked by hand, QuantLib's Black-Scholes, numpy's corrcoef,
numpy-financial's NPV, the binomial law of defaults, the chi-square law of a sample variance. No database.

Tolerances. Two kinds, each derived where it is used:
- Deterministic figures (zero volatility) differ from their reference only by float64 rounding: a bound of
  (number of operations) x eps x (magnitude of the terms), eps = 2.2e-16.
- Monte Carlo figures are compared within z standard errors, z chosen Bonferroni-style so that a correct kernel
  fails a whole test's family of k checks with probability at most `_FAMILY_ALPHA` (z = isf(alpha / 2k) of the
  standard normal). A fixed seed makes each run reproducible; the z-multiple is what makes passing meaningful
  for any seed, and a bias of a few standard errors (a missing drift term, a transposed Cholesky factor) fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy_financial as npf
import pytest
import QuantLib as ql
from scipy import stats

from accounts.risk import black_scholes
from restructuring.feasibility import (
    _DAILY,
    _MONTHLY,
    AccountInputs,
    Candidate,
    Driver,
    Estimate,
    Exposure,
    Jumps,
    Kind,
    MarketPaths,
    Params,
    Valuation,
    _price_paths,
    _reduced,
    _values,
    correlation_cholesky,
    correlation_estimate,
    loss_capacity,
    ranked,
    recommendation,
    recovery,
    reduction_proceeds,
    today_value,
    valuation,
    valuations,
)

EPS = float(np.finfo(np.float64).eps)
# A correct kernel fails a test's whole family of Monte Carlo checks with at most this probability.
_FAMILY_ALPHA = 1e-3


def _z(checks: int) -> float:
    """Bonferroni: each of `checks` two-sided checks at alpha / checks."""
    return float(stats.norm.isf(_FAMILY_ALPHA / (2 * checks)))


def _constant_se_bound(value: float, paths: int) -> float:
    """The standard error the kernel can report for `paths` identical samples: their mean is the pairwise sum
    divided by n, off by at most (ceil(log2 n) + 1) eps relative; the deviations are then exact, so the sample
    standard deviation is at most that error, and the standard error that over sqrt(n - 1)."""
    return (math.ceil(math.log2(paths)) + 1) * EPS * abs(value) / math.sqrt(paths - 1)


def _driver(instrument_id: int, symbol: str, price: float = 100.0, vol: float = 0.0, days: float = 252.0) -> Driver:
    return Driver(instrument_id, symbol, price, vol, days)


def _spot(
    position_id: int,
    driver: int,
    quantity: float,
    *,
    volume: float = 1e12,
    vol: float = 0.02,
    haircut: float = 0.0,
    co_sold: float = 0.0,
) -> Exposure:
    return Exposure(
        position_id, f"P{position_id}", driver, Kind.SPOT, quantity, volume, vol, haircut=haircut, co_sold=co_sold
    )


def _identity(k: int) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(1.0 if i == j else 0.0 for j in range(k)) for i in range(k))


def _account(
    drivers: Sequence[Driver],
    exposures: Sequence[Exposure],
    *,
    correlation: tuple[tuple[float, ...], ...] | None = None,
    cash: float = 0.0,
    debt: float = 0.0,
    external_capacity: float = 0.0,
    monthly_miss_probability: float = 0.0,
) -> AccountInputs:
    return AccountInputs(
        drivers=tuple(drivers),
        exposures=tuple(exposures),
        correlation=correlation if correlation is not None else _identity(len(drivers)),
        cash=cash,
        debt=debt,
        external_capacity=external_capacity,
        monthly_miss_probability=monthly_miss_probability,
    )


# ------------------------------------------------------------------------------------------- 1. closed form


def test_recovery_without_volatility_or_impact_is_the_value_after_haircut() -> None:
    # given: two drivers that do not move, spot holdings (one short), no impact, no co-sellers
    params = Params(paths=1_000, impact_coefficient=0.0)
    drivers = (_driver(1, "BTC", 60_000.0, days=365.0), _driver(2, "AAPL", 190.0))
    exposures = (
        _spot(1, 0, 2.5, volume=10.0, haircut=0.2),  # 1 unit a day under the 10% cap: 3 days
        _spot(2, 1, 1_000.0, volume=1e6, haircut=0.3),
        _spot(3, 1, -200.0, volume=1e6, haircut=0.3),  # a buy-back costs in full, no haircut on a loss
    )
    inputs = _account(drivers, exposures, cash=-50_000.0, debt=150_000.0)
    # cash + sum(q price (1 - haircut)) over positive proceeds, losses in full:
    # -50,000 + 2.5 x 60,000 x 0.8 + 1,000 x 190 x 0.7 - 200 x 190 = -50,000 + 120,000 + 133,000 - 38,000 = 165,000
    expected = -50_000.0 + 2.5 * 60_000.0 * 0.8 + 1_000.0 * 190.0 * 0.7 - 200.0 * 190.0
    assert expected == 165_000.0

    # when
    result = recovery(inputs, MarketPaths(3, params))

    # then: the slices add back to the quantity and each is priced once: a few dozen operations on terms of at
    # most 190,000 in magnitude, each rounding by eps relative.
    tolerance = 64 * EPS * 200_000.0
    assert result.expected.value == pytest.approx(expected, abs=tolerance)
    assert result.value_after_haircut == pytest.approx(expected, abs=tolerance)
    assert result.expected.standard_error <= _constant_se_bound(expected, params.paths)
    assert result.market_value == pytest.approx(-50_000.0 + 150_000.0 + 190_000.0 - 38_000.0, abs=tolerance)
    assert result.days == 3
    assert result.impact_cost == 0.0
    # recovery 165,000 >= debt 150,000: no loss, the lender receives the debt.
    assert result.expected_loss.value == 0.0
    assert result.lender_receipt.value == pytest.approx(150_000.0, abs=tolerance)
    assert np.all(result.samples == result.samples[0])


# --------------------------------------------------------------------------------- 2. GBM and Merton jumps

_THREE_DRIVERS = (
    _driver(1, "BTC", 60_000.0, 0.03, 365.0),
    _driver(2, "ETH", 3_000.0, 0.04, 365.0),
    _driver(3, "SPX", 5_000.0, 0.012, 252.0),
)
_THREE_CORRELATION = ((1.0, 0.8, 0.3), (0.8, 1.0, 0.25), (0.3, 0.25, 1.0))


@pytest.mark.parametrize(
    "jumps",
    [Jumps(), Jumps(intensity_per_year=12.0, mean=-0.08, volatility=0.12)],
    ids=["no-jumps", "jumps"],
)
def test_expected_price_grows_at_the_drift(jumps: Jumps) -> None:
    # given: three correlated drivers with different volatilities and trading years, a strong drift
    drift_annual = 0.25
    params = Params(paths=20_000, horizon_days=30, max_term_months=12, drift_annual=drift_annual, jumps=jumps)
    market = MarketPaths(11, params)
    cholesky = correlation_cholesky(np.asarray(_THREE_CORRELATION))
    jumping = jumps.intensity_per_year > 0
    # E[S_T] for 3 drivers x 2 grids; with jumps also the mean and variance of one step's log return.
    z = _z(3 * 2 * (3 if jumping else 1))
    for grid, steps in ((_DAILY, 30), (_MONTHLY, 12)):
        # when
        log_returns = market.log_returns(_THREE_DRIVERS, cholesky, grid, steps)
        prices = _price_paths(log_returns, _THREE_DRIVERS)
        for i, driver in enumerate(_THREE_DRIVERS):
            step_days = 1.0 if grid == _DAILY else driver.days_per_year / 12.0
            years = steps * step_days / driver.days_per_year
            # then: E[S_T] = S_0 e^{mu T}, the jump compensation included (without it the jump case would be off
            # by e^{-lambda kappa T} = e^{0.84} on the monthly grid; without -sigma^2/2, by e^{sigma^2 T / 2},
            # 1.4% for BTC over 30 days, about 12 standard errors of 0.12%).
            final = prices[i, -1]
            standard_error = final.std(ddof=1) / math.sqrt(final.size)
            assert abs(final.mean() - driver.price * math.exp(drift_annual * years)) <= z * standard_error
            if not jumping:
                continue
            # Merton: one step's log return has mean (mu - sigma^2/2 - lambda kappa) dt + lambda dt m and variance
            # sigma^2 dt + lambda dt (m^2 + v^2): this is what shows the jumps are really there.
            r = log_returns[i].ravel()
            dt = step_days
            mu = drift_annual / driver.days_per_year
            lam = jumps.intensity_per_year / driver.days_per_year
            kappa = math.exp(jumps.mean + 0.5 * jumps.volatility**2) - 1.0
            sigma2 = driver.daily_volatility**2
            mean = (mu - 0.5 * sigma2 - lam * kappa) * dt + lam * dt * jumps.mean
            variance = sigma2 * dt + lam * dt * (jumps.mean**2 + jumps.volatility**2)
            assert abs(r.mean() - mean) <= z * r.std(ddof=1) / math.sqrt(r.size)
            # The sample variance's standard error: sqrt((m4 - s^4) / n), m4 the fourth central moment.
            centred = r - r.mean()
            m4 = float(np.mean(centred**4))
            s2 = float(np.mean(centred**2))
            assert abs(r.var(ddof=1) - variance) <= z * math.sqrt((m4 - s2 * s2) / r.size)


# ------------------------------------------------------------------------------------------ 3. correlation

_NOT_PSD = ((1.0, 0.9, 0.9), (0.9, 1.0, -0.9), (0.9, -0.9, 1.0))  # eigenvalues 1.9, 1.9, -0.8


def test_correlation_cholesky_repairs_a_matrix_that_is_not_psd() -> None:
    # given
    raw = np.asarray(_NOT_PSD)
    assert np.linalg.eigvalsh(raw).min() < -0.7

    # when
    factor = correlation_cholesky(raw)
    repaired = factor @ factor.T

    # then: a valid correlation matrix. Cholesky's backward error is at most (n + 1) eps |L||L^T| (Higham, Thm
    # 10.3) and |L||L^T| <= 1 entrywise for a correlation; the repair's rescaling adds a few eps: 16 (n + 1) eps.
    tolerance = 16 * 4 * EPS
    assert np.allclose(factor, np.tril(factor), rtol=0.0, atol=0.0)
    assert np.allclose(np.diag(repaired), 1.0, rtol=0.0, atol=tolerance)
    assert np.allclose(repaired, repaired.T, rtol=0.0, atol=tolerance)
    assert np.linalg.eigvalsh(repaired).min() >= -tolerance
    assert np.abs(repaired).max() <= 1.0 + tolerance
    # A matrix that is already valid comes back as itself.
    valid = np.asarray(_THREE_CORRELATION)
    again = correlation_cholesky(valid)
    assert np.allclose(again @ again.T, valid, rtol=0.0, atol=tolerance)


@pytest.mark.parametrize("correlation", [_THREE_CORRELATION, _NOT_PSD], ids=["valid", "not-psd"])
def test_simulated_log_returns_have_the_input_correlation(correlation: tuple[tuple[float, ...], ...]) -> None:
    # given: no jumps (the log returns are normal, for which the standard error below holds)
    params = Params(paths=20_000, horizon_days=30, max_term_months=12)
    market = MarketPaths(5, params)
    factor = correlation_cholesky(np.asarray(correlation))
    target = factor @ factor.T  # the input, or its repair
    z = _z(3 * 2)  # 3 pairs x 2 grids
    for grid, steps in ((_DAILY, 30), (_MONTHLY, 12)):
        # when: every step of every path is an independent draw of the joint log return
        log_returns = market.log_returns(_THREE_DRIVERS, factor, grid, steps).reshape(3, -1)
        sample = np.asarray(np.corrcoef(log_returns), dtype=np.float64).reshape(3, 3)
        n = log_returns.shape[1]
        # then: a sample correlation of n normal pairs has standard error (1 - rho^2) / sqrt(n)
        for i, j in ((0, 1), (0, 2), (1, 2)):
            rho = target[i, j]
            assert abs(sample[i, j] - rho) <= z * (1.0 - rho * rho) / math.sqrt(n)


def test_correlation_estimate_with_gaps_matches_corrcoef_on_common_days() -> None:
    # given: 4 drivers, 300 days of correlated log prices with a drift, random NaN gaps and a long outage; the
    # last driver has only a few prices, so its pairs have fewer than min_observations common returns.
    rng = np.random.default_rng(2024)
    days = 300
    mixing = np.linalg.cholesky(
        np.asarray([[1.0, 0.6, -0.3, 0.2], [0.6, 1.0, 0.1, 0.0], [-0.3, 0.1, 1.0, 0.4], [0.2, 0.0, 0.4, 1.0]])
    )
    returns = 0.001 + 0.02 * (mixing @ rng.standard_normal((4, days - 1)))
    log_prices = np.concatenate([np.full((4, 1), math.log(100.0)), math.log(100.0) + np.cumsum(returns, axis=1)], 1)
    log_prices[rng.random(log_prices.shape) < 0.1] = np.nan
    log_prices[1, 120:160] = np.nan
    log_prices[3, 15:] = np.nan

    # when
    estimate = correlation_estimate(log_prices, min_observations=20)

    # then: numpy's corrcoef over the days both have a return. The kernel's one-pass sums over ~300 terms
    # differ from corrcoef's two-pass ones by at most ~300 eps relative of E[x_i x_j] / (sigma_i sigma_j), which
    # is below 2 here (mean 0.001 against volatility 0.02): 1e-12 bounds it.
    diffs = np.diff(log_prices, axis=1)
    for i in range(4):
        assert estimate[i, i] == 1.0
        for j in range(4):
            if i == j:
                continue
            common = np.isfinite(diffs[i]) & np.isfinite(diffs[j])
            if common.sum() < 20:
                assert estimate[i, j] == 0.0
                continue
            reference = np.corrcoef(diffs[i, common], diffs[j, common])[0, 1]
            assert estimate[i, j] == pytest.approx(reference, abs=1e-12)
    assert np.count_nonzero(estimate[3, :3]) == 0  # the sparse driver's pairs did take the `0` branch
    assert np.count_nonzero(estimate[:3, :3] - np.eye(3)) == 6


# ------------------------------------------------------------------------------------------------ 5. impact

# Square-root law, hand-worked. Price 100, quantity 25,000, daily volume V = 100,000, participation 10%: the cap is
# 10,000 a day, so 3 days of 10,000, 10,000, 5,000. Y = 0.7, the instrument's daily volatility 2%:
#   f(10,000) = 0.7 x 0.02 x sqrt(0.10) = 0.014 x 0.316227766 = 0.004427188724
#   f( 5,000) = 0.7 x 0.02 x sqrt(0.05) = 0.014 x 0.223606798 = 0.003130495168
#   proceeds = 2 x 10,000 x 100 x (1 - 0.004427188724) + 5,000 x 100 x (1 - 0.003130495168)
#            = 2 x 995,572.8112757643 + 498,434.7524157501 = 2,489,580.3749672787
_F_10K = 0.7 * 0.02 * math.sqrt(0.10)
_F_5K = 0.7 * 0.02 * math.sqrt(0.05)
_F_15K = 0.7 * 0.02 * math.sqrt(0.15)
# A dozen operations on terms up to 2.5e6: the rounding bound.
_MONEY_TOLERANCE = 64 * EPS * 2.5e6


def _impact_case(quantity: float, *, co_sold: float = 0.0, horizon_days: int = 30, haircut: float = 0.0) -> float:
    params = Params(paths=100, horizon_days=horizon_days, participation=0.10, impact_coefficient=0.7)
    exposure = _spot(1, 0, quantity, volume=100_000.0, vol=0.02, haircut=haircut, co_sold=co_sold)
    result = recovery(_account((_driver(1, "XYZ"),), (exposure,)), MarketPaths(1, params))
    assert result.expected.standard_error <= _constant_se_bound(result.expected.value, params.paths)
    return result.expected.value


def test_impact_follows_the_square_root_law_day_by_day() -> None:
    assert abs(_F_10K - 0.004427188724) <= 1e-12
    assert abs(_F_5K - 0.003130495168) <= 1e-12
    alone = 2 * 10_000 * 100 * (1 - _F_10K) + 5_000 * 100 * (1 - _F_5K)
    assert alone == pytest.approx(2_489_580.3749672787, abs=_MONEY_TOLERANCE)
    assert _impact_case(25_000.0) == pytest.approx(alone, abs=_MONEY_TOLERANCE)
    # Positive proceeds count after the haircut.
    assert _impact_case(25_000.0, haircut=0.1) == pytest.approx(0.9 * alone, abs=_MONEY_TOLERANCE)
    # A short is bought back at price x (1 + f), in full:
    # -(2 x 1,000,000 x 1.004427188724 + 500,000 x 1.003130495168) = -2,510,419.625032721
    short = -(2 * 10_000 * 100 * (1 + _F_10K) + 5_000 * 100 * (1 + _F_5K))
    assert short == pytest.approx(-2_510_419.625032721, abs=_MONEY_TOLERANCE)
    assert _impact_case(-25_000.0, haircut=0.1) == pytest.approx(short, abs=_MONEY_TOLERANCE)
    # A 2-day horizon: 10,000 on day 1, the 15,000 left all on the last day at f(15,000) = 0.014 x sqrt(0.15)
    # = 0.005422176685: 995,572.8112757643 + 1,500,000 x (1 - 0.005422176685) = 2,487,439.5462487288
    cut = 10_000 * 100 * (1 - _F_10K) + 15_000 * 100 * (1 - _F_15K)
    assert cut == pytest.approx(2_487_439.5462487288, abs=_MONEY_TOLERANCE)
    assert _impact_case(25_000.0, horizon_days=2) == pytest.approx(cut, abs=_MONEY_TOLERANCE)


def test_co_sellers_share_the_impact() -> None:
    # given: 15,000 units of the same instrument sold by other accounts at the same time. Combined 40,000: 4 days
    # of 10,000, each at f(10,000); the case sells its share 25,000 / 40,000 = 62.5% of each slice (6,250 a day).
    # proceeds = 25,000 x 100 x (1 - 0.004427188724) = 2,488,932.0281894105, 648.35 less than selling alone.
    shared = 25_000 * 100 * (1 - _F_10K)
    assert shared == pytest.approx(2_488_932.0281894105, abs=_MONEY_TOLERANCE)

    # when
    alone = _impact_case(25_000.0)
    with_others = _impact_case(25_000.0, co_sold=15_000.0)

    # then
    assert with_others == pytest.approx(shared, abs=_MONEY_TOLERANCE)
    assert alone - with_others == pytest.approx(648.3467778682, abs=_MONEY_TOLERANCE)

    # and the days and the impact cost come from the combined schedule
    params = Params(paths=100, participation=0.10, impact_coefficient=0.7)
    exposure = _spot(1, 0, 25_000.0, volume=100_000.0, vol=0.02, co_sold=15_000.0)
    result = recovery(_account((_driver(1, "XYZ"),), (exposure,)), MarketPaths(1, params))
    assert result.days == 4
    assert result.impact_cost == pytest.approx(25_000 * 100 * _F_10K, abs=_MONEY_TOLERANCE)


# ---------------------------------------------------------------------------------------------- 6. options


def _quantlib_price(is_call: bool, spot: float, strike: float, rate: float, vol: float, days_left: int) -> float:
    """QuantLib's AnalyticEuropeanEngine with Actual/365 Fixed: an expiry `days_left` days out is T = days/365."""
    today = ql.Date(2, 1, 2024)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(spot)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.0, day_count)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, rate, day_count)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), vol, day_count)),
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike),
        ql.EuropeanExercise(today + days_left),
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return float(option.NPV())


def _option_recovery(kind: Kind, units: int) -> float:
    """A long option on a driver that does not move (365 trading days a year), sold 1 unit a day (volume 10,
    participation 10%) without impact: recovery = sum over days d < units of C(1 - (d + 1) / 365)."""
    params = Params(paths=100, participation=0.10, impact_coefficient=0.0, risk_free_rate=0.05)
    option = Exposure(
        1, "BTC-C100", 0, kind, float(units), 10.0, 0.02, strike=100.0, expiry_years=1.0, implied_volatility=0.20
    )
    inputs = _account((_driver(1, "BTC", 100.0, days=365.0),), (option,))
    return recovery(inputs, MarketPaths(1, params)).expected.value


@pytest.mark.parametrize("kind", [Kind.CALL, Kind.PUT])
@pytest.mark.parametrize("day", [0, 6, 29])
def test_option_liquidation_value_is_black_scholes_at_the_elapsed_time(kind: Kind, day: int) -> None:
    # The sanity point of DOMAIN.md: S = K = 100, r = 5%, vol = 20%, T = 1: call 10.4506.
    assert _quantlib_price(True, 100.0, 100.0, 0.05, 0.20, 365) == pytest.approx(10.4506, abs=5e-5)

    # when: selling day + 1 units takes day + 1 days, and the last slice (1 unit) fills on day `day`, at the close
    # of trading day day + 1: the difference of two recoveries is that one slice.
    value_on_day = _option_recovery(kind, day + 1) - (_option_recovery(kind, day) if day else 0.0)

    # then: QuantLib with 365 - (day + 1) days left. scipy's and QuantLib's normal CDFs are both within a few
    # eps; the price is a difference of terms below 100 and the recoveries sums of at most 30 values near 10:
    # 1e-12 bounds the rounding.
    reference = _quantlib_price(kind == Kind.CALL, 100.0, 100.0, 0.05, 0.20, 365 - (day + 1))
    assert value_on_day == pytest.approx(reference, abs=1e-12)


# ----------------------------------------------------------------------------------------- 7. loss capacity

# brentq's documented accuracy: |root - true| <= xtol + rtol |root| with its defaults 2e-12 and 4 eps.
_BRENT_XTOL = 2e-12


def _brent_tolerance(move: float) -> float:
    return _BRENT_XTOL + 4 * EPS * abs(move)


def test_loss_capacity_of_a_long_only_account() -> None:
    # given: 10 BTC at 100 and 20 ETH at 50 (long value L = 2,000), debt 1,400: equity 600. Daily volatilities
    # 3% and 4%, correlation 0.5. The deltas are the money exposures w = (1,000, 1,000).
    drivers = (_driver(1, "BTC", 100.0, 0.03, 365.0), _driver(2, "ETH", 50.0, 0.04, 365.0))
    exposures = (_spot(1, 0, 10.0), _spot(2, 1, 20.0))
    correlation = ((1.0, 0.5), (0.5, 1.0))
    inputs = _account(drivers, exposures, correlation=correlation, debt=1_400.0, external_capacity=200.0)
    params = Params(paths=100)

    # when
    capacity = loss_capacity(inputs, params)

    # then: equity + x L = 0: x = -600 / 2,000 = -30%; with the 200 of capacity, -800 / 2,000 = -40%.
    assert capacity.equity == pytest.approx(600.0, abs=64 * EPS * 2_000)
    assert capacity.move is not None
    assert capacity.move_with_external is not None
    assert capacity.move == pytest.approx(-0.30, abs=_brent_tolerance(0.30))
    assert capacity.move_with_external == pytest.approx(-0.40, abs=_brent_tolerance(0.40))
    # sqrt(w' Cov w) / gross = sqrt(1000^2 0.03^2 + 1000^2 0.04^2 + 2 x 0.5 x 1000^2 x 0.03 x 0.04) / 2,000
    #                        = 1000 x sqrt(0.0009 + 0.0016 + 0.0012) / 2000 = sqrt(0.0037) / 2 = 0.030414
    # The kernel's deltas are central differences with h = 1e-4, exact for a spot but for rounding of about
    # eps / h = 2.2e-12 relative.
    w = np.array([1_000.0, 1_000.0])
    cov = np.asarray(correlation) * np.outer([0.03, 0.04], [0.03, 0.04])
    volatility = math.sqrt(w @ cov @ w) / 2_000.0
    assert volatility == pytest.approx(math.sqrt(0.0037) / 2, rel=1e-15)
    assert capacity.portfolio_volatility == pytest.approx(volatility, rel=1e-10)
    # Days to default: the inverse Gaussian mean |ln(1 + x)| / (stressed sigmas x volatility) = ln(1/0.7) /
    # (0.2 x 0.030414) = 58.64 trading days.
    assert capacity.days_to_default == pytest.approx(abs(math.log(0.7)) / (0.2 * volatility), rel=1e-10)
    assert capacity.sigmas == pytest.approx(0.30 / volatility, rel=1e-10)
    assert capacity.sigmas_with_external == pytest.approx(0.40 / volatility, rel=1e-10)


def test_loss_capacity_of_a_net_short_account_is_an_upward_move() -> None:
    # given: cash 15,000, short 100 units at 100 of a driver with 2% daily volatility, no debt: equity 5,000.
    inputs = _account(
        (_driver(1, "XYZ", 100.0, 0.02),), (_spot(1, 0, -100.0),), cash=15_000.0, external_capacity=1_000.0
    )

    # when
    capacity = loss_capacity(inputs, Params(paths=100))

    # then: 15,000 - 10,000 (1 + x) = 0 at x = +50%; with 1,000 of capacity, 6,000 / 10,000 = +60%.
    assert capacity.move == pytest.approx(0.50, abs=_brent_tolerance(0.50))
    assert capacity.move_with_external == pytest.approx(0.60, abs=_brent_tolerance(0.60))
    # One driver: sqrt(w^2 sigma^2) / |w| = sigma. Days: ln(1.5) / (0.2 x 0.02) = 101.366.
    assert capacity.portfolio_volatility == pytest.approx(0.02, rel=1e-10)
    assert capacity.days_to_default == pytest.approx(math.log(1.5) / (0.2 * 0.02), rel=1e-10)


def test_loss_capacity_of_a_long_spot_short_perpetual_account() -> None:
    # given: 30 units long at 100 (spot, 2% vol), 10 perpetuals short at 200 entered at 190 (3% vol),
    # correlation 0.9; cash 0, debt 2,000. Value: 3,000 + (-10) x (200 - 190) = 2,900; equity 900.
    # Delta exposures w = (3,000, -2,000); net 1,000 long, so the adverse move is down: 900 + 1,000 x = 0,
    # x = -90%.
    drivers = (_driver(1, "A", 100.0, 0.02), _driver(2, "B", 200.0, 0.03))
    perpetual = Exposure(2, "B-PERP", 1, Kind.LINEAR, -10.0, 1e9, 0.03, entry_price=190.0)
    inputs = _account(drivers, (_spot(1, 0, 30.0), perpetual), correlation=((1.0, 0.9), (0.9, 1.0)), debt=2_000.0)

    # when
    capacity = loss_capacity(inputs, Params(paths=100))

    # then
    assert capacity.equity == pytest.approx(900.0, abs=64 * EPS * 3_000)
    assert capacity.move == pytest.approx(-0.90, abs=_brent_tolerance(0.90))
    # w' Cov w = 3000^2 0.02^2 + 2000^2 0.03^2 - 2 x 0.9 x 3000 x 2000 x 0.02 x 0.03 = 3600 + 3600 - 6480 = 720
    # over gross 5,000: sqrt(720) / 5000 = 0.0053666
    assert capacity.portfolio_volatility == pytest.approx(math.sqrt(720.0) / 5_000.0, rel=1e-10)


# ------------------------------------------------------------------------------------------- 8. valuation


def _level_schedule(principal: float, rate_monthly: float, months: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Level payment rounded to the cent, the last installment absorbing the rounding; owed = balance + interest
    just before each installment."""
    payment = round(float(npf.pmt(rate_monthly, months, -principal)), 2)
    installments: list[float] = []
    owed: list[float] = []
    balance = principal
    for m in range(months):
        due = round(balance * (1 + rate_monthly), 2)
        owed.append(due)
        installments.append(due if m == months - 1 else payment)
        balance = due - installments[-1]
    return tuple(installments), tuple(owed)


def test_valuation_without_risk_is_the_npv_of_the_schedule() -> None:
    # given: a driver that does not move, ample external capacity, no missed payments; 10,000 over 36 months at
    # 5% (level payment npf.pmt(0.05/12, 36, -10000) = 299.71), discounted at 8% (no loan rate given: the
    # parameter's).
    params = Params(paths=100, discount_rate=0.08)
    installments, owed = _level_schedule(10_000.0, 0.05 / 12, 36)
    assert installments[0] == 299.71
    holding = _spot(1, 0, 25_000.0, volume=100_000.0, vol=0.02)
    inputs = _account((_driver(1, "XYZ"),), (holding,), debt=10_000.0, external_capacity=1e6)
    plain = Candidate("plain", installments, owed)
    # Selling 40% now: 10,000 units in one day at f(10,000): 10,000 x 100 x (1 - 0.004427188724) = 995,572.81,
    # of which the lender takes what is owed, 10,000, when the sale ends (a day: 1/21 of a month); the rest is the
    # client's (issue 15, finding 4: this test used to credit the lender with all 995,572.81).
    reducing = Candidate("reduce", installments, owed, reduce=((0, 0.4),))

    # when
    plain_value, reducing_value = valuations(inputs, [plain, reducing], MarketPaths(1, params), 7)

    # then: numpy-financial's NPV at 8%/12 with a leading 0 (today). 36 discount factors, each a power within a
    # few eps, summed: 64 eps of the 10,700 total bounds the rounding; the mean over identical paths adds
    # (log2 n + 1) eps.
    npv = float(npf.npv(0.08 / 12, [0.0, *installments]))
    tolerance = 128 * EPS * sum(installments)
    v = 1.0 / (1.0 + 0.08 / 12)
    assert plain_value.expected_pv.value == pytest.approx(npv, abs=tolerance)
    assert plain_value.expected_pv.standard_error <= _constant_se_bound(npv, params.paths) + tolerance
    assert plain_value.default_probability == Estimate(0.0, 0.0)
    assert plain_value.affordable
    assert plain_value.months == 36
    # liquidating now: 25,000 units at 10,000 a day, three days; the lender takes its 10,000 when the sale ends
    liquidating_now = 10_000.0 * v ** (3 / 21)
    assert plain_value.advantage.value == pytest.approx(npv - liquidating_now, abs=tolerance)
    assert plain_value.advantage.standard_error <= _constant_se_bound(npv, params.paths) + tolerance
    assert reducing_value.reduction_proceeds == pytest.approx(995_572.8112757643, abs=_MONEY_TOLERANCE)
    assert reduction_proceeds(inputs, [(0, 0.4)], params) == reducing_value.reduction_proceeds
    assert reducing_value.expected_pv.value == pytest.approx(10_000.0 * v ** (1 / 21) + npv, abs=_MONEY_TOLERANCE)


def test_valuation_defaults_when_the_capacity_runs_out() -> None:
    # given: 90 units at 100 (9,000 marked), cash 0, debt 10,000: equity -1,000. External capacity 3,500 pays
    # installments of 1,000: three of them, then 500 is left and the account has no cash, so month 4 is missed.
    # Owed before each installment 10,050, 9,100, 8,150, 7,200, ... (10,050 - 950 m).
    # Solvency (cash + marked + capacity left - owed) before months 1..4: 9,000 + 3,500 - 10,050 = 2,450;
    # 9,000 + 2,500 - 9,100 = 2,400; 9,000 + 1,500 - 8,150 = 2,350; 9,000 + 500 - 7,200 = 2,300: never insolvent.
    # At the default (month 4) the account is sold at the next month end (month 5): 90 units in one day (cap 10%
    # of 10,000) at f = 0.7 x 0.02 x sqrt(90 / 10,000) = 0.0013281566, after a 30% haircut: 9,000 x 0.9986718434
    # x 0.7 = 6,291.6326133 < owed 7,200; less the second workout: 100 + 2% = 225.8326523: 6,065.7999610.
    # The shortfall 908.3673867 is collected from the 500 of capacity left: 50% of 500 = 250, six months later.
    # PV at 8%/12, v = 1 / 1.0066667: 1,000 (v + v^2 + v^3) + 6,065.7999610 v^5 + 250 v^11
    params = Params(
        paths=100,
        discount_rate=0.08,
        participation=0.10,
        impact_coefficient=0.7,
        collection_rate=0.5,
        collection_lag_months=6.0,
        redefault_cost_fixed=100.0,
        redefault_cost_rate=0.02,
    )
    holding = _spot(1, 0, 90.0, volume=10_000.0, vol=0.02, haircut=0.3)
    inputs = _account((_driver(1, "XYZ"),), (holding,), debt=10_000.0, external_capacity=3_500.0)
    months = 12
    candidate = Candidate("term", (1_000.0,) * months, tuple(10_050.0 - 950.0 * m for m in range(months)))

    # when
    result = valuation(inputs, candidate, MarketPaths(1, params), 7)

    # then
    v = 1.0 / (1.0 + 0.08 / 12)
    recovered = 9_000.0 * (1.0 - 0.7 * 0.02 * math.sqrt(0.009)) * 0.7
    assert recovered == pytest.approx(6_291.632613311195, abs=64 * EPS * 9_000)
    net = recovered - 100.0 - 0.02 * recovered
    expected = 1_000.0 * (v + v**2 + v**3) + net * v**5 + 250.0 * v**11
    assert result.expected_pv.value == pytest.approx(expected, abs=128 * EPS * 10_000)
    assert result.default_probability.value == 1.0
    assert result.default_probability.standard_error == 0.0
    # a payment missed for lack of funds on every path: not affordable
    assert result.funding_miss_probability.value == 1.0
    assert not result.affordable
    assert "a payment likely missed for lack of funds" in result.why_not_affordable


def test_valuation_defaults_when_the_account_is_insolvent() -> None:
    # given: a deterministic fall, zero volatility, a drift of 12 ln(1/2) a year: the price halves every month,
    # 100 units worth 5,000, 2,500, 1,250, 625 at the ends of months 1 to 4. Capacity 10,000 pays installments of
    # 1,000; owed stays 10,000 (interest only). Solvency before month 1: 5,000 + 10,000 - 10,000 = 5,000;
    # month 2: 2,500 + 9,000 - 10,000 = 1,500; month 3: 1,250 + 8,000 - 10,000 = -750 < 0: default though
    # 8,000 of capacity would still pay. The account is sold at month 4's 625 (no impact, no haircut), less the
    # second workout (100 + 2%): 512.50; the shortfall 9,375 is collected from the 8,000 left: 4,000, six months
    # later. PV = 1,000 v + 1,000 v^2 + 512.50 v^4 + 4,000 v^10.
    params = Params(
        paths=100,
        discount_rate=0.08,
        impact_coefficient=0.0,
        drift_annual=12 * math.log(0.5),
        collection_rate=0.5,
        collection_lag_months=6.0,
        redefault_cost_fixed=100.0,
        redefault_cost_rate=0.02,
    )
    inputs = _account((_driver(1, "XYZ"),), (_spot(1, 0, 100.0),), debt=10_000.0, external_capacity=10_000.0)
    candidate = Candidate("interest-only", (1_000.0,) * 6, (10_000.0,) * 6)

    # when
    result = valuation(inputs, candidate, MarketPaths(1, params), 7)

    # then: the prices are exp of a sum of 4 log steps, a few eps off 100 / 2^k.
    v = 1.0 / (1.0 + 0.08 / 12)
    expected = 1_000.0 * v + 1_000.0 * v**2 + 512.5 * v**4 + 4_000.0 * v**10
    assert result.expected_pv.value == pytest.approx(expected, abs=256 * EPS * 10_000)
    assert result.default_probability.value == 1.0


def test_missed_payment_hazard_gives_binomial_defaults() -> None:
    # given: p = 2% a month over 36 months, ample capacity, no price risk. Default in month m has probability
    # (1 - p)^(m - 1) p; P(default) = 1 - 0.98^36 = 0.5169.
    p = 0.02
    months = 36
    params = Params(
        paths=20_000,
        discount_rate=0.08,
        impact_coefficient=0.0,
        collection_rate=0.5,
        collection_lag_months=6.0,
        redefault_cost_fixed=100.0,
        redefault_cost_rate=0.02,
    )
    installments, owed = _level_schedule(10_000.0, 0.05 / 12, months)
    holding = _spot(1, 0, 60.0, haircut=0.25)  # liquidates for 6,000 x 0.75 = 4,500
    inputs = _account(
        (_driver(1, "XYZ"),),
        (holding,),
        debt=10_000.0,
        external_capacity=1e6,
        monthly_miss_probability=p,
    )

    # when
    result = valuation(inputs, Candidate("level", installments, owed), MarketPaths(1, params), 99)

    # then: two checks (default probability, expected PV).
    z = _z(2)
    probability = 1.0 - (1.0 - p) ** months
    binomial_se = math.sqrt(probability * (1.0 - probability) / params.paths)
    assert abs(result.default_probability.value - probability) <= z * binomial_se
    # E[PV] = sum_m (1 - p)^m A_m v^m + (1 - p)^(m - 1) p D_m, a default in month m worth D_m: the sale at the next
    # month end, min(owed_m, 4,500) less 100 + 2%, at v^(m + 1); half the shortfall collected, at v^(m + 7).
    v = 1.0 / (1.0 + 0.08 / 12)

    def at_default(m: int) -> float:
        gross = min(owed[m], 4_500.0)
        return (gross - 100.0 - 0.02 * gross) * v ** (m + 2) + 0.5 * (owed[m] - gross) * v ** (m + 8)

    expected = sum(
        (1 - p) ** (m + 1) * installments[m] * v ** (m + 1) + (1 - p) ** m * p * at_default(m) for m in range(months)
    )
    assert abs(result.expected_pv.value - expected) <= z * result.expected_pv.standard_error


# ----------------------------------------------------------------------------------------- 9. determinism


def _volatile_account(drivers: Sequence[Driver], correlation: tuple[tuple[float, ...], ...]) -> AccountInputs:
    exposures = tuple(_spot(k + 1, k, 1_000.0, volume=5_000.0, vol=0.03) for k in range(len(drivers)))
    return _account(drivers, exposures, correlation=correlation, debt=150_000.0, external_capacity=2_000.0)


def test_same_seed_same_results_and_shared_driver_paths() -> None:
    # given
    params = Params(paths=2_000, horizon_days=10, max_term_months=24)
    btc = _driver(1, "BTC", 100.0, 0.03, 365.0)
    eth = _driver(2, "ETH", 50.0, 0.04, 365.0)
    alone = _volatile_account((btc,), ((1.0,),))
    pair = _volatile_account((btc, eth), ((1.0, 0.7), (0.7, 1.0)))
    installments, owed = _level_schedule(100_000.0, 0.01, 24)
    candidates = [Candidate("a", installments, owed), Candidate("b", installments[:12], owed[:12])]

    # when: the first market computes another case first; the second is fresh
    shared = MarketPaths(42, params)
    recovery(pair, shared)
    first = recovery(alone, shared)
    second = recovery(alone, MarketPaths(42, params))

    # then: bit for bit
    assert np.array_equal(first.samples, second.samples)
    assert first == second
    assert valuations(alone, candidates, shared, 3) == valuations(alone, candidates, MarketPaths(42, params), 3)
    # A candidate valued alone is valued as among others (common random numbers, the same month rows).
    assert valuation(alone, candidates[1], shared, 3) == valuations(alone, candidates, shared, 3)[1]
    # BTC is the first driver of both blocks, so its Cholesky row is (1, 0): the same BTC paths in both.
    for grid, steps in ((_DAILY, 10), (_MONTHLY, 24)):
        alone_returns = shared.log_returns(
            alone.drivers, correlation_cholesky(np.asarray(alone.correlation)), grid, steps
        )
        pair_returns = MarketPaths(42, params).log_returns(
            pair.drivers, correlation_cholesky(np.asarray(pair.correlation)), grid, steps
        )
        assert np.array_equal(alone_returns[0], pair_returns[0])
    # Another market seed: other paths; another case seed: other missed-payment draws.
    assert not np.array_equal(recovery(alone, MarketPaths(43, params)).samples, first.samples)
    missing = _account(
        alone.drivers, alone.exposures, debt=150_000.0, external_capacity=1e7, monthly_miss_probability=0.05
    )
    base = valuation(missing, candidates[0], shared, 3)
    assert valuation(missing, candidates[0], shared, 4).expected_pv != base.expected_pv
    assert valuation(missing, candidates[0], MarketPaths(43, params), 3).expected_pv != base.expected_pv


# ------------------------------------------------------------------------------------------ 10. validation


def test_bad_inputs_name_the_offending_item() -> None:
    params = Params(paths=100)
    market = MarketPaths(1, params)
    good = _account((_driver(1, "BTC"), _driver(2, "ETH")), (_spot(1, 0, 1.0), _spot(2, 1, 1.0)))

    bad_price = _account((_driver(1, "BTC"), _driver(2, "ETH", price=0.0)), good.exposures)
    with pytest.raises(ValueError, match=r"ETH: price 0\.0"):
        recovery(bad_price, market)
    with pytest.raises(ValueError, match=r"ETH: price -5\.0"):
        loss_capacity(_account((_driver(1, "BTC"), _driver(2, "ETH", price=-5.0)), good.exposures), params)
    with pytest.raises(ValueError, match=r"ETH: daily_volatility -0\.1"):
        recovery(_account((_driver(1, "BTC"), _driver(2, "ETH", vol=-0.1)), good.exposures), market)

    wrong_shape = _account(good.drivers, good.exposures, correlation=((1.0,),))
    with pytest.raises(ValueError, match=r"correlation is \(1, 1\): must be 2 x 2"):
        recovery(wrong_shape, market)

    stray = _account(good.drivers, (Exposure(9, "SOL", 5, Kind.SPOT, 1.0, 1.0, 0.1),))
    with pytest.raises(ValueError, match=r"SOL \(position 9\): driver 5"):
        recovery(stray, market)

    with pytest.raises(ValueError, match=r"candidate 'uneven': 3 installments and 2 owed"):
        valuations(good, [Candidate("uneven", (1.0, 1.0, 1.0), (3.0, 2.0))], market, 1)
    with pytest.raises(ValueError, match=r"candidate 'too long': 61 installments"):
        valuations(good, [Candidate("too long", (1.0,) * 61, (1.0,) * 61)], market, 1)

    for reduce in ((0, 1.5), (0, 0.0), (7, 0.5)):
        index, fraction = reduce
        with pytest.raises(ValueError, match=rf"reduce \({index}, {fraction}\)"):
            valuations(good, [Candidate("cut", (1.0,), (1.0,), reduce=(reduce,))], market, 1)

    with pytest.raises(ValueError, match=r"paths 99"):
        Params(paths=99)
    with pytest.raises(ValueError, match=r"participation 0"):
        Params(participation=0.0)


def test_bad_correlations_and_repeated_reductions_are_refused() -> None:
    market = MarketPaths(1, Params(paths=100))
    drivers = (_driver(1, "BTC"), _driver(2, "ETH"))
    exposures = (_spot(1, 0, 1.0), _spot(2, 1, 1.0))
    for correlation, message in (
        (((1.0, math.nan), (math.nan, 1.0)), "finite and in"),
        (((1.0, 1.5), (1.5, 1.0)), "finite and in"),
        (((4.0, 0.0), (0.0, 1.0)), "diagonal must be 1"),
        (((1.0, 0.2), (0.3, 1.0)), "symmetric"),
    ):
        with pytest.raises(ValueError, match=f"correlation: .*{message}"):
            recovery(_account(drivers, exposures, correlation=correlation), market)
    cut = Candidate("cut twice", (1.0,), (1.0,), reduce=((0, 0.5), (0, 0.5)))
    with pytest.raises(ValueError, match=r"position index 0 is given more than once"):
        valuations(_account(drivers, exposures), [cut], market, 1)


def test_a_partial_reduction_of_an_isolated_position_takes_its_share_of_the_margin() -> None:
    # an isolated perpetual: 10 long from 100, now at 100 (no PnL), 500 of margin: worth 500 to the account
    params = Params(paths=100, impact_coefficient=0.0)
    perp = Exposure(1, "X-PERP", 0, Kind.LINEAR, 10.0, 1e9, 0.02, entry_price=100.0, isolated_margin=500.0)
    account = _account((_driver(1, "X"),), (perp,), debt=1000.0)
    # selling half returns half the margin, 250; what stays is worth the other 250: 500 in all, as before
    assert reduction_proceeds(account, [(0, 0.5)], params) == 250.0
    assert today_value(_reduced(account, [(0, 0.5)]), params) == 250.0
    assert today_value(account, params) == 500.0


def test_reductions_count_as_liquidation_counts_them_after_the_haircut() -> None:
    # 10 units at 100 with a 50% haircut and no impact: liquidating brings 500, and so does reducing it all now
    params = Params(paths=100, impact_coefficient=0.0)
    account = _account((_driver(1, "X"),), (_spot(1, 0, 10.0, haircut=0.5),), debt=1000.0)
    assert reduction_proceeds(account, [(0, 1.0)], params) == 500.0
    assert recovery(account, MarketPaths(3, params)).expected.value == 500.0


def test_loss_capacity_uses_the_correlation_the_simulation_uses() -> None:
    # a correlation that is not positive semi-definite would make w' Cov w negative for these weights; the
    # repaired one (what the paths follow) gives a positive portfolio volatility
    drivers = tuple(_driver(i + 1, f"D{i}", vol=0.02) for i in range(3))
    exposures = (_spot(1, 0, -1.0), _spot(2, 1, 1.0), _spot(3, 2, 1.0))
    capacity = loss_capacity(_account(drivers, exposures, correlation=_NOT_PSD, cash=50.0), Params(paths=100))
    factor = correlation_cholesky(np.asarray(_NOT_PSD))
    w = np.array([-100.0, 100.0, 100.0])
    expected = math.sqrt(float(w @ (factor @ factor.T) @ w)) * 0.02 / 300.0
    assert capacity.portfolio_volatility == pytest.approx(expected, rel=1e-12)
    assert capacity.portfolio_volatility > 0


# -------------------------------------------------------------------------------------- 11. recommendation


def _valued(name: str, pv: float, *, affordable: bool = True, liquidate_now: float = 5_000.0) -> Valuation:
    return Valuation(
        name=name,
        affordable=affordable,
        expected_pv=Estimate(pv, 10.0),
        default_probability=Estimate(0.1, 0.01),
        advantage=Estimate(pv - liquidate_now, 12.0),
        reduction_proceeds=0.0,
        months=12,
    )


def test_recommendation_is_the_best_affordable_candidate_that_beats_liquidation() -> None:
    # The best affordable candidate, not the unaffordable one worth more.
    assert (
        recommendation([_valued("a", 6_000.0), _valued("b", 7_000.0), _valued("c", 9_000.0, affordable=False)]) == "b"
    )
    # None beats liquidating now (5,000): liquidate. Equal is not better.
    assert recommendation([_valued("a", 4_000.0), _valued("b", 5_000.0)]) is None
    # Only an unaffordable one does: liquidate.
    assert recommendation([_valued("a", 4_000.0), _valued("c", 9_000.0, affordable=False)]) is None
    assert recommendation([]) is None


def test_recommendation_from_valuations_without_risk() -> None:
    # given: no price risk; a loan at 8% under water (50 units at 100 against 10,000) of a client who declares
    # 50,000. Liquidating now: 5,000 when the sale ends (a day), and half the 5,000 shortfall collected six months
    # later. The same 10,000 repaid at 5% over 12 or 36 months, paid from the capacity: discounted at the loan's
    # 8% the shorter term is worth more; a candidate demanding more collateral than the client has is not
    # affordable (it defaults at once), whatever its value.
    params = Params(paths=100, collection_rate=0.5, collection_lag_months=6.0)
    inputs = replace(
        _account((_driver(1, "XYZ"),), (_spot(1, 0, 50.0),), debt=10_000.0, external_capacity=50_000.0),
        contract_rate=0.08,
    )
    short_term = Candidate("12m", *_level_schedule(10_000.0, 0.05 / 12, 12), rate_annual=0.05)
    long_term = Candidate("36m", *_level_schedule(10_000.0, 0.05 / 12, 36), rate_annual=0.05)
    greedy = Candidate("greedy", *_level_schedule(10_000.0, 0.05 / 12, 6), collateral_added=60_000.0)
    market = MarketPaths(1, params)

    # when
    valued = valuations(inputs, [long_term, short_term, greedy], market, 1)

    # then: the PVs are npf.npv of the schedules at 8%, below 10,000 (a rate cut is a loss to the lender)
    v = 1.0 / (1.0 + 0.08 / 12)
    sold = 5_000.0 * (1.0 - 0.7 * 0.02 * math.sqrt(50.0 / 1e12))  # the square-root impact of 50 units, tiny
    liquidating_now = sold * v ** (1 / 21) + 0.5 * (10_000.0 - sold) * v ** (1 / 21 + 6)
    for value, candidate in zip(valued[:2], (long_term, short_term), strict=True):
        npv = float(npf.npv(0.08 / 12, [0.0, *candidate.installments]))
        assert value.expected_pv.value == pytest.approx(npv, abs=128 * EPS * 11_000)
        assert value.advantage.value == pytest.approx(npv - liquidating_now, abs=128 * EPS * 11_000)
    assert [v.affordable for v in valued] == [True, True, False]
    assert valued[2].why_not_affordable[0] == "collateral beyond the client's declared capacity"
    assert valued[1].expected_pv.value > valued[0].expected_pv.value
    assert all(v.expected_pv.value < 10_000.0 for v in valued)
    assert recommendation(valued) == "12m"
    assert [v.name for v in ranked(valued)] == ["12m", "36m", "greedy"]


# ---------------------------------------------------------------------------------- 12. quantile error


def test_reported_standard_errors_match_the_spread_over_independent_markets() -> None:
    # given: R = 200 independent market seeds, n = 8,000 paths each, a volatile account sold over 5 days
    runs = 200
    params = Params(paths=8_000, horizon_days=5, participation=0.10)
    inputs = _volatile_account((_driver(1, "BTC", 100.0, 0.05, 365.0),), ((1.0,),))

    # when
    results = [recovery(inputs, MarketPaths(seed, params)) for seed in range(1_000, 1_000 + runs)]
    quantiles = np.array([r.p5.value for r in results])
    quantile_errors = np.array([r.p5.standard_error for r in results])
    means = np.array([r.expected.value for r in results])
    mean_errors = np.array([r.expected.standard_error for r in results])

    # then: for normal estimates with true standard deviation sigma, (R - 1) s^2 / sigma^2 is chi-square with
    # R - 1 degrees of freedom, so s / sigma lies in [sqrt(chi2_lo / (R - 1)), sqrt(chi2_hi / (R - 1))] =
    # [0.845, 1.155] at the two-sided level alpha = 1e-3 (two checks: 5e-4 each). The reported errors are
    # themselves estimates: their mean is off by its own standard error, allowed z = 4 times. The quantile's
    # order-statistic error has a bias of its own: the bracketing ranks are rounded outwards, by at most 2 in
    # 2 x 1.96 sqrt(n q (1 - q)) = 38.2 x sqrt(n / 2000) = 76.4 ranks (2.6%), and the quantile function's
    # curvature over the bracket, h^2 Q'''/(6 Q') with h = 1.96 sqrt(q (1 - q) / n) = 0.0048 and Q'''/Q' about
    # 600 in the tail of a near-normal law, adds 0.23%: 3% in all.
    low = math.sqrt(stats.chi2.ppf(_FAMILY_ALPHA / 4, runs - 1) / (runs - 1))
    high = math.sqrt(stats.chi2.isf(_FAMILY_ALPHA / 4, runs - 1) / (runs - 1))
    for estimates, errors, bias in ((quantiles, quantile_errors, 0.03), (means, mean_errors, 0.0)):
        spread = float(estimates.std(ddof=1))
        reported = float(errors.mean())
        noise = 4.0 * float(errors.std(ddof=1)) / math.sqrt(runs) / reported
        ratio = spread / reported
        assert low / (1.0 + bias) - noise <= ratio <= high * (1.0 + bias) + noise


def test_options_on_the_monthly_grid_are_black_scholes_while_live_and_intrinsic_after_expiry() -> None:
    # a put struck at 100 expiring in 2.5 months, valued at 6 month ends on 3 paths: months 1 and 2 are live
    # (Black-Scholes-Merton with 1.5 and 0.5 months left), months 3 to 6 past expiry (max(K - S, 0))
    put = Exposure(1, "P", 0, Kind.PUT, 1.0, 1.0, 0.5, strike=100.0, expiry_years=2.5 / 12, implied_volatility=0.6)
    spots = np.array([[80.0, 100.0, 120.0]] * 6) * np.linspace(0.9, 1.1, 6)[:, None]
    elapsed = np.asarray((np.arange(6) + 1.0)[:, None] / 12.0, dtype=np.float64)
    values = _values(put, spots, elapsed, 0.04)
    expected = black_scholes(spots, 100.0, 2.5 / 12 - elapsed, 0.04, 0.0, 0.6, False)
    assert np.array_equal(values[2:], np.maximum(100.0 - spots[2:], 0.0))
    assert np.allclose(values, expected, rtol=0, atol=64 * EPS * 100.0)  # the same formula, evaluated row-wise
