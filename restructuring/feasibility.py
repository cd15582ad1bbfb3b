"""Feasibility of a distressed account: what liquidating it now would recover, how much more loss it can take,
and whether a restructuring is worth more to the lender than liquidating.

Pure numpy (and scipy for the normal CDF and root finding): dataclasses in, dataclasses out, no Django. The
service at the boundary (restructuring/services/feasibility.py) reads the account, converts Decimal to float64
going in and rounds the figures it stores. Every Monte Carlo figure comes with its standard error.

Market paths (docs/domain.md, "Feasibility")
- Each price driver (a spot asset or index; perpetuals, futures and options move with their underlying) follows
  a geometric Brownian motion in trading days: ln S_t = ln S_0 + (mu - sigma^2 / 2 - lambda kappa) t + sigma W_t
  + jumps, sigma its daily volatility, mu the drift per trading day, W correlated across drivers by the given
  correlation matrix (its Cholesky factor mixes independent normals). Optional Merton jumps: a Poisson number of
  jumps per step (intensity lambda per trading day), each a normal log-jump; the drift is compensated by
  lambda kappa, kappa = E[e^J] - 1, so that E[S_t] = S_0 e^{mu t} with or without jumps.
- `MarketPaths` holds the independent standard normals (and jump draws) of every driver, one stream per
  (market seed, instrument id, grid), drawn once per market update and reused by every case: a case only mixes
  the streams of its own drivers with its own correlation block (drivers in instrument id order) and scales
  them. A case's figures depend only on the market seed, its own inputs and its own seed, never on which other
  cases were computed in the same process. Cases share the independent draws, not the correlated paths: a
  driver's path depends on the drivers before it in the case's block (the Cholesky factor mixes them in), so two
  cases see the same BTC path only when BTC comes first in both. Draws are stored as float32 (half the memory;
  a normal's seventh digit does not matter next to a Monte Carlo error of 1e-2); every computation on them is
  float64.
- Two grids: daily steps over the liquidation horizon, and monthly steps (days_per_year / 12 trading days,
  252 or 365 by asset class) over the restructuring term.

Recovery if liquidated now
- Each position is closed under a participation cap: at most p x V units a day of its instrument (V its
  average daily volume). Sellers of the same instrument at the same time share that cap and its impact
  (docs/domain.md: their quantities add before the square root): `co_sold` units sold by other distressed accounts
  (other open cases, the same beneficial owner's other accounts) join the schedule, the combined slice of day d
  moves the price by f_d = Y sigma sqrt(s_d / V), and the case sells its pro-rata share of every slice.
  What is still unsold on the last day of the horizon goes on that day, at its (larger) impact.
- Day d's slice fills at the close of trading day d + 1 along each path, at price x (1 - f_d) for a sale and
  x (1 + f_d) for a buy-back; options at their Black-Scholes value from the underlying's simulated price (the
  implied volatility kept). A spot or option sale brings quantity x fill; closing a perpetual or future realises
  quantity x (fill - entry); an isolated position returns its allocated margin plus that PnL, never below 0.
  A position's positive proceeds count after its haircut, its losses in full.
- recovery = cash + the positions' net proceeds. Reported: its mean, its 5% quantile, the lender's receipt
  E[min(debt, max(recovery, 0))], the expected loss to the lender E[debt - receipt] = E[max(0, debt -
  max(recovery, 0))] (a recovery below zero costs the lender no more than the whole debt) and the loss given
  default, expected loss / debt.
- What liquidating now is worth to the lender (`lender_value`, the benchmark of every restructuring): the receipt,
  received when the sale ends (`days` trading days from now), plus recourse: margin debt is the client's debt, so
  a shortfall is collected from the client's declared external capacity, min(shortfall, capacity) x
  `collection_rate` (net of the costs of collecting), `collection_lag_months` after the sale. Discounted (below).
- Positions reduced now under a restructuring are sold by the same rules (participation, impact, haircuts).

The same claim, the same money, the same costs in both branches (issue 15)
- Discounting: one rate for a case, the loan's own annual rate before restructuring (its original effective rate,
  IFRS 9 5.4.3), compounded monthly, applied to every flow at its time in both branches; a restructuring at a
  higher rate is discounted at that rate, so that no claim grows faster than it is discounted (a restructuring that
  is paid in full is worth the claim, not more). Without a known loan rate: `discount_rate`.
- Recourse to the client's capacity counts in both branches: in the restructuring it pays the installments, and
  after a default what is left of it is collected like liquidating now's shortfall (same rate, same lag).
- Costs: liquidating (now, or after a default) costs its market impact and haircuts in both branches. A
  restructuring that defaults costs a second workout besides: `redefault_cost_fixed` plus `redefault_cost_rate` of
  what its liquidation recovers. The costs of the workout already under way are the same either way.
- Common random numbers: a path's first month on the monthly grid is the sum of its first trading days on the
  daily grid, the days liquidating now is priced on; each candidate's advantage is its PV minus liquidating now's,
  path by path, with the standard error of those differences.

Loss capacity (at today's prices, no simulation)
- The uniform move x of every driver (all prices times 1 + x, options revalued) at which equity reaches zero,
  taken in the adverse direction (the side where it comes first), as a fraction; with the client's declared
  external capacity, equity + capacity reaching zero instead.
- In daily standard deviations of the account's P&L: equity / sqrt(d' C d), d the money delta of each driver
  (positions netted), C the drivers' daily covariance (volatilities and correlation): a hedged book's P&L moves
  less than its gross exposure. `portfolio_volatility` is that P&L volatility over the gross delta exposure.
- Expected trading days to default under a stressed drift: the log of the price level drifts against the
  account at `stressed_drift_sigmas` daily volatilities a day; the first passage of a Brownian motion with drift
  nu to a level b has mean b / nu (the inverse Gaussian mean), whatever its volatility.

Restructuring valuation (the HAMP NPV test: modify when the modified loan's expected NPV beats not modifying)
- A candidate gives its schedule (installment due and amount owed each month, from restructuring.schedules),
  the collateral the client adds now, positions reduced now and any principal haircut (already out of the
  schedule's principal).
- Reductions now: sold under the participation cap at today's price with their impact; the lender takes at most
  what is owed, when the sale ends; the excess is the client's and stays in the account's cash.
- Collateral: only what the client can bring counts. A demand beyond the declared capacity is not met: the
  candidate defaults at the collateral's due date (days away: taken as now). An account under water that the
  client's capacity does not cover defaults at the start too.
- Along monthly paths: each installment is paid from the client's remaining external capacity, then from the
  account's cash; if neither covers it (a miss for lack of funds), or the client's own monthly hazard of a missed
  payment strikes (a per-tier re-default probability, drawn from the case's own seed; only when something is
  due), the payment is missed and the loan defaults. It also defaults when the client is insolvent: the
  account's equity (cash + positions at the month's prices - amount owed) plus what is left of the declared
  external capacity below 0.
- At a default the lender liquidates over the following month: the positions are sold at the next month end's
  prices on the same path (impact, haircuts), min(owed, max(0, cash + proceeds)) arrives then, less the second
  workout's costs; the shortfall is collected from what is left of the capacity, as above.
- Lender's PV = what the reductions bring + installments received + the value of a default, each discounted at
  its time. Reported with its standard error, the probability of default during the term, of a payment missed
  for lack of funds, and the advantage over liquidating now (paired, with its standard error).
- Affordable (a payment test, as HAMP's; Workout holds the client's declared capacity, not an income): the
  collateral within the capacity, every installment within `affordability_share` of the client's means over the
  term (capacity left after the collateral, plus the account's cash, spread evenly over the months), and a
  payment missed for lack of funds at most `max_funding_miss_probability` likely.
- The recommendation is the affordable candidate with the highest expected PV among those whose advantage over
  liquidating now exceeds two standard errors; else liquidation. Candidates rank affordable first, then by PV.

What it does not model: the basis between a perpetual and its spot, volatility moving with the price (implied
volatility is held), permanent impact carried from one day to the next, interest accrued during the liquidation
horizon, and partial payments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt
from scipy import optimize

from accounts.risk import black_scholes_legs

MODEL_VERSION = "feasibility-2.0"

Float = npt.NDArray[np.float64]

_DAILY, _MONTHLY = 0, 1
# z of the 95% two-sided interval, for the order-statistic standard error of a quantile.
_Z95 = 1.959963984540054
# A ratio of quantity to the participation cap at most this far above a whole number is that number of days.
_DAYS_DUST = 1e-9


class Kind(StrEnum):
    SPOT = "spot"  # a holding: value q x price
    LINEAR = "linear"  # perpetual or future: PnL q x (price - entry)
    CALL = "call"
    PUT = "put"


@dataclass(frozen=True)
class Driver:
    """A price driver: a spot asset or index the positions move with."""

    instrument_id: int
    symbol: str
    price: float  # today, > 0
    daily_volatility: float  # of log returns, per trading day, >= 0
    days_per_year: float = 252.0  # trading days: 365 for crypto


@dataclass(frozen=True)
class Exposure:
    """One position. `quantity` is signed units with the contract size applied (> 0 long)."""

    position_id: int
    symbol: str
    driver: int  # index into AccountInputs.drivers
    kind: Kind
    quantity: float
    daily_volume: float  # of this instrument, in the same units; <= 0: cannot be sold (recovers nothing)
    daily_volatility: float  # of this instrument's price, for its impact
    haircut: float = 0.0  # in [0, 1]: positive proceeds count after it
    entry_price: float = 0.0  # LINEAR
    isolated_margin: float | None = None  # isolated positions: their loss is capped at this allocation
    strike: float = 0.0  # CALL / PUT
    expiry_years: float = 0.0
    implied_volatility: float = 0.0  # annual
    carry: float = 0.0  # the underlying's dividend or carry yield
    co_sold: float = 0.0  # units of this instrument other distressed accounts would sell at the same time


@dataclass(frozen=True)
class AccountInputs:
    drivers: tuple[Driver, ...]
    exposures: tuple[Exposure, ...]
    correlation: tuple[tuple[float, ...], ...]  # between the drivers, in their order
    cash: float
    debt: float  # loan principal + accrued interest
    external_capacity: float = 0.0
    monthly_miss_probability: float = 0.0  # the client's own hazard of missing a payment, per month
    # The loan's annual rate before any restructuring (its original effective rate): what every flow is discounted
    # at (a restructuring at a higher rate: at that). None: Params.discount_rate.
    contract_rate: float | None = None


@dataclass(frozen=True)
class Jumps:
    intensity_per_year: float = 0.0  # expected jumps a year (of the driver's trading days)
    mean: float = -0.05  # of the log-jump
    volatility: float = 0.10  # of the log-jump


@dataclass(frozen=True)
class Params:
    paths: int = 10_000
    horizon_days: int = 30
    participation: float = 0.10
    impact_coefficient: float = 0.7
    drift_annual: float = 0.0
    jumps: Jumps = field(default_factory=Jumps)
    discount_rate: float = 0.08  # annual, compounded monthly: only when the loan's own rate is not known
    risk_free_rate: float = 0.04  # for options
    stressed_drift_sigmas: float = 0.2
    max_term_months: int = 60
    # Recourse: a shortfall left after a liquidation is collected from the client's declared capacity, at this
    # rate (net of the costs of collecting) and this many months later, in both branches alike.
    collection_rate: float = 0.5
    collection_lag_months: float = 6.0
    # A restructuring that defaults costs a second workout: fixed, plus a share of what its liquidation recovers.
    redefault_cost_fixed: float = 100.0
    redefault_cost_rate: float = 0.02
    # Affordability: every installment within this share of the client's means over the term (declared capacity
    # left after the collateral, plus the account's cash, spread evenly), and a payment missed for lack of funds
    # at most this likely.
    affordability_share: float = 1.0
    max_funding_miss_probability: float = 0.05

    def __post_init__(self) -> None:
        if not (isinstance(self.paths, int) and self.paths >= 100):
            raise ValueError(f"paths {self.paths!r}: must be an integer >= 100")
        if not (isinstance(self.horizon_days, int) and self.horizon_days >= 1):
            raise ValueError(f"horizon_days {self.horizon_days!r}: must be an integer >= 1")
        if not (0 < self.participation <= 1):
            raise ValueError(f"participation {self.participation}: must be in (0, 1]")
        if not (self.impact_coefficient >= 0):
            raise ValueError(f"impact_coefficient {self.impact_coefficient}: must be >= 0")
        if not (self.jumps.intensity_per_year >= 0 and self.jumps.volatility >= 0):
            raise ValueError("jumps: intensity_per_year and volatility must be >= 0")
        if not (isinstance(self.max_term_months, int) and 1 <= self.max_term_months <= 600):
            raise ValueError(f"max_term_months {self.max_term_months!r}: must be an integer in 1..600")
        if not (0 <= self.collection_rate <= 1 and self.collection_lag_months >= 0):
            raise ValueError("collection_rate must be in [0, 1] and collection_lag_months >= 0")
        if not (self.redefault_cost_fixed >= 0 and 0 <= self.redefault_cost_rate <= 1):
            raise ValueError("redefault_cost_fixed must be >= 0 and redefault_cost_rate in [0, 1]")
        if not (self.affordability_share > 0 and 0 <= self.max_funding_miss_probability <= 1):
            raise ValueError("affordability_share must be > 0 and max_funding_miss_probability in [0, 1]")


@dataclass(frozen=True)
class Estimate:
    value: float
    standard_error: float


# ------------------------------------------------------------------------------------------ market paths


class MarketPaths:
    """The independent draws of every driver for one market update, drawn on first use and kept."""

    def __init__(self, seed: int, params: Params) -> None:
        self.seed = int(seed)
        self.params = params
        self._draws: dict[tuple[int, int], tuple[npt.NDArray[np.float32], Float | None]] = {}

    def steps(self, grid: int) -> int:
        # The monthly grid runs a month past the longest term: a default's liquidation sells at the next month end.
        return self.params.horizon_days if grid == _DAILY else self.params.max_term_months + 1

    def draws(self, instrument_id: int, grid: int) -> tuple[npt.NDArray[np.float32], Float | None]:
        """(steps, paths) standard normals, and the (steps, paths) sum of jump sizes when jumps are on
        (the jump counts depend on the step length, so they are drawn as uniforms turned into counts later:
        here the jumps' own normals and uniforms, kept for `_jump_sums`)."""
        key = (int(instrument_id), grid)
        if key not in self._draws:
            rng = np.random.default_rng([self.seed, int(instrument_id), grid])
            shape = (self.steps(grid), self.params.paths)
            normals = rng.standard_normal(shape, dtype=np.float32)
            uniforms = rng.random(shape) if self.params.jumps.intensity_per_year > 0 else None
            self._draws[key] = (normals, uniforms)
        return self._draws[key]

    def log_returns(self, drivers: Sequence[Driver], cholesky: Float, grid: int, steps: int) -> Float:
        """(drivers, steps, paths) log returns of each step: correlated, drift-compensated, jumps added."""
        k = len(drivers)
        paths = self.params.paths
        if k == 0 or steps == 0:
            return np.zeros((k, steps, paths))
        raw = [self.draws(d.instrument_id, grid) for d in drivers]
        normals = np.empty((k, steps, paths))
        for i, (n, _) in enumerate(raw):
            normals[i] = n[:steps]
            if grid == _MONTHLY:
                # Common random numbers between the branches: a path's first month is the sum of its first trading
                # days on the daily grid (scaled to a standard normal), the days liquidating now is priced on.
                days = min(self.params.horizon_days, max(1, round(drivers[i].days_per_year / 12.0)))
                daily = self.draws(drivers[i].instrument_id, _DAILY)[0][:days]
                normals[i, 0] = daily.sum(axis=0, dtype=np.float64) / math.sqrt(days)
        mixed = (cholesky @ normals.reshape(k, -1)).reshape(k, steps, paths)
        jumps = self.params.jumps
        for i, driver in enumerate(drivers):
            dt = 1.0 if grid == _DAILY else driver.days_per_year / 12.0
            sigma = driver.daily_volatility
            mu = self.params.drift_annual / driver.days_per_year
            lam = jumps.intensity_per_year / driver.days_per_year
            kappa = math.exp(jumps.mean + 0.5 * jumps.volatility**2) - 1.0
            mixed[i] *= sigma * math.sqrt(dt)
            mixed[i] += (mu - 0.5 * sigma * sigma - lam * kappa) * dt
            uniforms = raw[i][1]
            if uniforms is not None and lam > 0:
                mixed[i] += _jump_sums(uniforms[:steps], lam * dt, jumps, self.seed, driver.instrument_id, grid)
        return mixed


def _jump_sums(uniforms: Float, expected: float, jumps: Jumps, seed: int, instrument_id: int, grid: int) -> Float:
    """Sum of the log-jumps of each step: the count N is Poisson(expected) by inverting its CDF at the uniform,
    and given N the sum is normal N(N mean, N vol^2) (its normal drawn from a stream of its own)."""
    counts = np.zeros(uniforms.shape)
    cdf = probability = math.exp(-expected)
    n = 0
    while cdf < 1.0 - 1e-15 and n < 100:
        counts += uniforms > cdf
        n += 1
        probability *= expected / n
        cdf += probability
    normals = np.random.default_rng([seed, instrument_id, grid, 7]).standard_normal(uniforms.shape)
    return np.asarray(counts * jumps.mean + np.sqrt(counts) * jumps.volatility * normals)


def correlation_cholesky(correlation: Float) -> Float:
    """Lower Cholesky factor of the correlation, repaired when it is not positive definite (eigenvalues clipped at
    a small floor, then rescaled to a unit diagonal: a valid correlation close to the input, not Higham's nearest),
    so that an estimate from gappy history still gives one."""
    c = np.asarray(correlation, dtype=np.float64)
    if c.size == 0:
        return np.zeros((0, 0))
    c = 0.5 * (c + c.T)
    try:
        return np.asarray(np.linalg.cholesky(c))
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(c)
        c = (vectors * np.maximum(values, 1e-8)) @ vectors.T
        scale = 1.0 / np.sqrt(np.diag(c))
        return np.asarray(np.linalg.cholesky(c * scale[:, None] * scale[None, :]))


def correlation_estimate(log_prices: Float, min_observations: int = 20) -> Float:
    """Correlation of daily log returns from a (drivers, days) matrix of log closes, NaN where missing: each pair
    over the days both have returns; pairs with fewer than `min_observations` common returns get 0."""
    returns = np.diff(np.asarray(log_prices, dtype=np.float64), axis=1)
    present = np.isfinite(returns)
    x = np.where(present, returns, 0.0)
    p = present.astype(np.float64)
    n = p @ p.T
    with np.errstate(invalid="ignore", divide="ignore"):
        sx = x @ p.T  # sum of x_i over days where both present
        sxx = (x * x) @ p.T
        sxy = x @ x.T
        mean_i = sx / n
        mean_j = sx.T / n
        cov = sxy / n - mean_i * mean_j
        var_i = sxx / n - mean_i**2
        var_j = sxx.T / n - mean_j**2
        corr = cov / np.sqrt(var_i * var_j)
    corr = np.where((n >= min_observations) & np.isfinite(corr), np.clip(corr, -1.0, 1.0), 0.0)
    np.fill_diagonal(corr, 1.0)
    return np.asarray(corr)


# ------------------------------------------------------------------------------------------- valuation


def _values(exposure: Exposure, driver_price: Float, elapsed_years: float | Float, rate: float) -> Float:
    """Unit value of the instrument at the driver's price(s): the price itself, or the option's value."""
    if exposure.kind in (Kind.SPOT, Kind.LINEAR):
        return driver_price
    left = exposure.expiry_years - np.asarray(elapsed_years, dtype=np.float64)
    sign = 1.0 if exposure.kind == Kind.CALL else -1.0
    if left.ndim == 2 and left.shape[1] == 1 and driver_price.ndim == 2:
        # One row per date (the monthly grid): rows at or after expiry are worth their intrinsic value, and only
        # the live rows pay for Black-Scholes (short-dated options are expired for most of a term).
        live = left[:, 0] > 0
        out = np.maximum(sign * (driver_price - exposure.strike), 0.0)
        if live.any():
            out[live] = _black_scholes(exposure, driver_price[live], left[live], rate)
        return out
    return np.asarray(np.broadcast_to(_black_scholes(exposure, driver_price, left, rate), np.shape(driver_price)))


def _black_scholes(exposure: Exposure, spot: Float, years_left: Float, rate: float) -> Float:
    legs = black_scholes_legs(
        exposure.strike, years_left, rate, exposure.carry, exposure.implied_volatility, exposure.kind == Kind.CALL
    )
    return legs.value(spot)


def _cash_flow(exposure: Exposure, quantity: float | Float, fill: Float) -> Float:
    """Cash from closing `quantity` units at `fill`: a sale's proceeds, a buy-back's cost, a derivative's PnL."""
    if exposure.kind == Kind.LINEAR:
        return np.asarray(quantity * (fill - exposure.entry_price))
    return np.asarray(quantity * fill)


def _as_collateral(exposure: Exposure, flow: Float) -> Float:
    """What a position's closing brings to the account: isolated ones floor at 0 after returning their margin;
    positive proceeds after the haircut, losses in full."""
    if exposure.isolated_margin is not None:
        flow = np.maximum(flow + exposure.isolated_margin, 0.0)
    return np.asarray(np.where(flow > 0, flow * (1.0 - exposure.haircut), flow))


@dataclass(frozen=True)
class _Schedule:
    days: npt.NDArray[np.int64]  # trading day of each slice (0-based)
    quantity: Float  # the case's signed units in each slice
    impact: Float  # fraction f of each slice's price


def _schedule(exposure: Exposure, params: Params) -> _Schedule:
    """The case's slices of one position, sharing the cap and the impact with the co-sellers."""
    own = abs(exposure.quantity)
    if own == 0 or exposure.daily_volume <= 0:
        return _Schedule(np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    total = own + max(exposure.co_sold, 0.0)
    cap = params.participation * exposure.daily_volume
    days = max(1, math.ceil(total / cap - _DAYS_DUST))
    days = min(days, params.horizon_days)
    combined = np.full(days, cap)
    combined[-1] = total - cap * (days - 1)  # the remainder (or all of what is left at the horizon)
    combined = np.maximum(combined, 0.0)
    share = own / total
    impact = params.impact_coefficient * exposure.daily_volatility * np.sqrt(combined / exposure.daily_volume)
    if exposure.quantity > 0:
        impact = np.minimum(impact, 1.0)
    return _Schedule(np.arange(days, dtype=np.int64), math.copysign(1.0, exposure.quantity) * combined * share, impact)


def _fill(exposure: Exposure, price: Float, impact: Float | float) -> Float:
    return np.asarray(price * (1.0 - impact) if exposure.quantity > 0 else price * (1.0 + impact))


@dataclass(frozen=True)
class Recovery:
    expected: Estimate  # of cash + net proceeds
    p5: Estimate  # its 5% quantile
    expected_loss: Estimate  # E[max(0, debt - recovery)]
    loss_given_default: Estimate  # expected loss / debt (0 when there is no debt)
    lender_receipt: Estimate  # E[min(debt, max(recovery, 0))]
    # What liquidating now is worth to the lender, the benchmark of every restructuring: the receipt when the
    # sale ends, plus the shortfall collected from the client's capacity, discounted (module docstring).
    lender_value: Estimate
    impact_cost: float  # expected, in money
    market_value: float  # cash + positions at today's prices, no impact, no haircut
    value_after_haircut: float  # cash + positions at today's prices after haircut, no impact
    days: int  # trading days the liquidation takes
    samples: Float = field(repr=False, compare=False)  # recovery per path, for the histogram
    lender_samples: Float = field(repr=False, compare=False)  # the lender's value per path (paired comparisons)


def _mean(samples: Float) -> Estimate:
    n = samples.size
    return Estimate(float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0)


def _quantile(samples: Float, q: float) -> Estimate:
    """The q-quantile and its standard error from the order statistics that bracket it at 95% (the binomial
    distribution of how many samples fall below the true quantile)."""
    ordered = np.sort(samples)
    n = ordered.size
    half = _Z95 * math.sqrt(n * q * (1 - q))
    lo = ordered[max(math.floor(n * q - half), 0)]
    hi = ordered[min(math.ceil(n * q + half), n - 1)]
    return Estimate(float(np.quantile(ordered, q)), float((hi - lo) / (2 * _Z95)))


def _price_paths(log_returns: Float, drivers: Sequence[Driver]) -> Float:
    """(drivers, steps, paths) prices at the end of each step."""
    levels = log_returns.copy()
    for step in range(1, levels.shape[1]):  # step by step: numpy's cumsum along a middle axis is much slower
        levels[:, step] += levels[:, step - 1]
    np.exp(levels, out=levels)
    for i, driver in enumerate(drivers):
        levels[i] *= driver.price
    return levels


def _check(inputs: AccountInputs) -> None:
    k = len(inputs.drivers)
    corr = np.asarray(inputs.correlation, dtype=np.float64)
    if corr.shape != (k, k):
        raise ValueError(f"correlation is {corr.shape}: must be {k} x {k}, one row per driver")
    for d in inputs.drivers:
        if not (math.isfinite(d.price) and d.price > 0):
            raise ValueError(f"{d.symbol}: price {d.price!r} must be finite and > 0")
        if not (math.isfinite(d.daily_volatility) and d.daily_volatility >= 0):
            raise ValueError(f"{d.symbol}: daily_volatility {d.daily_volatility!r} must be finite and >= 0")
    for e in inputs.exposures:
        if not 0 <= e.driver < k:
            raise ValueError(f"{e.symbol} (position {e.position_id}): driver {e.driver} is not one of the {k}")
        if not (math.isfinite(e.quantity) and 0 <= e.haircut <= 1):
            raise ValueError(f"{e.symbol} (position {e.position_id}): quantity finite, haircut in [0, 1]")
    if not (math.isfinite(inputs.cash) and math.isfinite(inputs.debt) and inputs.debt >= 0):
        raise ValueError("cash and debt must be finite, debt >= 0")
    if k:
        if not (np.diag(corr) == 1.0).all():
            raise ValueError("correlation: the diagonal must be 1")
        if not np.isfinite(corr).all() or (np.abs(corr) > 1).any():
            raise ValueError("correlation: every entry must be finite and in [-1, 1]")
        if (np.abs(corr - corr.T) > 1e-12).any():
            raise ValueError("correlation: must be symmetric")


def today_value(inputs: AccountInputs, params: Params, move: float = 0.0) -> float:
    """Cash + positions valued at today's prices moved uniformly by `move` (-0.1: every driver 10% lower)."""
    return float(value_curve(inputs, params, np.asarray([move]))[0])


def value_curve(inputs: AccountInputs, params: Params, moves: Float) -> Float:
    """Cash + positions at today's prices moved uniformly by each of `moves` (the loss curve, before debt)."""
    moves = np.asarray(moves, dtype=np.float64)
    total = np.full(moves.shape, float(inputs.cash))
    for e in inputs.exposures:
        price = inputs.drivers[e.driver].price * (1.0 + moves)
        flow = _cash_flow(e, e.quantity, _values(e, price, 0.0, params.risk_free_rate))
        total += np.maximum(flow + e.isolated_margin, 0.0) if e.isolated_margin is not None else flow
    return total


def recovery(inputs: AccountInputs, market: MarketPaths) -> Recovery:
    """What liquidating the account now would recover (rules: module docstring)."""
    _check(inputs)
    params = market.params
    schedules = [_schedule(e, params) for e in inputs.exposures]
    days = max((int(s.days[-1]) + 1 for s in schedules if s.days.size), default=0)
    cholesky = correlation_cholesky(np.asarray(inputs.correlation))
    prices = _price_paths(market.log_returns(inputs.drivers, cholesky, _DAILY, days), inputs.drivers)
    total = np.full(params.paths, float(inputs.cash))
    impact_cost = 0.0
    for exposure, schedule in zip(inputs.exposures, schedules, strict=True):
        flow = np.zeros(params.paths)
        driver = inputs.drivers[exposure.driver]
        for day, quantity, impact in zip(schedule.days, schedule.quantity, schedule.impact, strict=True):
            elapsed = (day + 1) / driver.days_per_year
            unit = _values(exposure, prices[exposure.driver, day], elapsed, params.risk_free_rate)
            flow += _cash_flow(exposure, quantity, _fill(exposure, unit, impact))
            # At the expected price: E[S_t] = S_0 e^{mu t} in closed form for the driver's own price (no sampling
            # noise in an expected cost), the paths' mean for an option's value.
            expected_price = (
                driver.price * math.exp(params.drift_annual / driver.days_per_year * (day + 1))
                if exposure.kind in (Kind.SPOT, Kind.LINEAR)
                else float(unit.mean())
            )
            impact_cost += abs(quantity) * expected_price * impact
        total += _as_collateral(exposure, flow)
    lender = np.minimum(inputs.debt, np.maximum(total, 0.0))
    loss = inputs.debt - lender
    expected_loss = _mean(loss)
    debt = inputs.debt
    rate = discount_rate(inputs, params)
    sold_in = days / _month_days(inputs)  # months until the sale ends, when the proceeds are the lender's
    collected = _collected(loss, np.full(params.paths, inputs.external_capacity), params)
    lender_value = lender * _discount(rate, sold_in) + collected * _discount(
        rate, sold_in + params.collection_lag_months
    )
    return Recovery(
        expected=_mean(total),
        p5=_quantile(total, 0.05),
        expected_loss=expected_loss,
        loss_given_default=Estimate(
            expected_loss.value / debt if debt > 0 else 0.0,
            expected_loss.standard_error / debt if debt > 0 else 0.0,
        ),
        lender_receipt=_mean(lender),
        lender_value=_mean(lender_value),
        impact_cost=impact_cost,
        market_value=today_value(inputs, params),
        value_after_haircut=_value_after_haircut(inputs, params),
        days=days,
        samples=total,
        lender_samples=lender_value,
    )


def discount_rate(inputs: AccountInputs, params: Params, candidate_rate: float | None = None) -> float:
    """The one discount rate of a case: the loan's own rate (its original effective rate, IFRS 9 5.4.3), or a
    restructuring's new rate when that is higher, so that no claim grows faster than it is discounted."""
    base = inputs.contract_rate if inputs.contract_rate is not None else params.discount_rate
    return max(base, candidate_rate) if candidate_rate is not None else base


def _discount(rate_annual: float, months: float | Float) -> Float:
    """Monthly compounding at the annual rate, over `months` (a fraction of a month too)."""
    return np.asarray((1.0 + rate_annual / 12.0) ** -np.asarray(months, dtype=np.float64))


def _month_days(inputs: AccountInputs) -> float:
    """Trading days in a month for this account (its drivers' year: 365 when it holds crypto)."""
    return max((d.days_per_year for d in inputs.drivers), default=252.0) / 12.0


def _collected(shortfall: Float, capacity: Float, params: Params) -> Float:
    """What recourse to the client's declared capacity brings on a shortfall (net of the costs of collecting)."""
    return np.asarray(params.collection_rate * np.minimum(np.maximum(shortfall, 0.0), np.maximum(capacity, 0.0)))


def _value_after_haircut(inputs: AccountInputs, params: Params) -> float:
    total = inputs.cash
    for e in inputs.exposures:
        price = np.asarray(inputs.drivers[e.driver].price)
        flow = _cash_flow(e, e.quantity, _values(e, price, 0.0, params.risk_free_rate))
        total += float(_as_collateral(e, flow))
    return total


# ------------------------------------------------------------------------------------------- loss capacity


@dataclass(frozen=True)
class LossCapacity:
    equity: float
    move: float | None  # signed uniform move at which equity reaches 0; None when no move in range does
    move_with_external: float | None  # the same for equity + external capacity
    portfolio_volatility: float  # daily, as a fraction of the gross delta exposure
    pnl_volatility: float  # daily standard deviation of the account's P&L, in money
    sigmas: float | None  # equity / pnl_volatility: how many of a day's P&L standard deviations the equity absorbs
    sigmas_with_external: float | None  # (equity + declared capacity) / pnl_volatility
    days_to_default: float | None  # expected trading days under the stressed drift


_MOVE_GRID = np.concatenate([-np.linspace(0.0, 0.999, 200)[1:], np.linspace(0.0, 5.0, 300)[1:]])


def loss_capacity(inputs: AccountInputs, params: Params) -> LossCapacity:
    """How much further the prices can move against the account before its equity is gone (module docstring)."""
    _check(inputs)
    equity = today_value(inputs, params) - inputs.debt
    deltas = _delta_exposures(inputs, params)
    gross = float(np.abs(deltas).sum())
    cov = _covariance(inputs)
    by_driver = np.zeros(len(inputs.drivers))
    np.add.at(by_driver, [e.driver for e in inputs.exposures], deltas)
    pnl_volatility = math.sqrt(max(float(by_driver @ cov @ by_driver), 0.0))
    volatility = pnl_volatility / gross if gross > 0 else 0.0

    curve = value_curve(inputs, params, _MOVE_GRID) - inputs.debt

    def move_to(level: float) -> float | None:
        if equity + level <= 0:
            return 0.0
        # The first sign change on either side of today on the grid, refined by Brent's method.
        best: float | None = None
        for side in (_MOVE_GRID < 0, _MOVE_GRID > 0):
            moves, values = _MOVE_GRID[side], curve[side]
            order = np.argsort(np.abs(moves))
            below = np.flatnonzero(values[order] + level <= 0)
            if below.size == 0:
                continue
            first = int(below[0])
            outer = float(moves[order][first])
            inner = float(moves[order][first - 1]) if first > 0 else 0.0
            root = float(optimize.brentq(lambda m: today_value(inputs, params, m) - inputs.debt + level, inner, outer))
            if best is None or abs(root) < abs(best):
                best = root
        return best

    move = move_to(0.0)
    with_external = move_to(inputs.external_capacity)

    def in_sigmas(buffer: float) -> float | None:
        # On the net P&L, not the gross exposure: a hedged book moves less than its gross size says.
        return max(buffer, 0.0) / pnl_volatility if pnl_volatility > 0 else None

    days = None
    if move is not None and volatility > 0 and params.stressed_drift_sigmas > 0:
        days = abs(math.log1p(move)) / (params.stressed_drift_sigmas * volatility) if move > -1 else None
    return LossCapacity(
        equity=equity,
        move=move,
        move_with_external=with_external,
        portfolio_volatility=volatility,
        pnl_volatility=pnl_volatility,
        sigmas=in_sigmas(equity),
        sigmas_with_external=in_sigmas(equity + inputs.external_capacity),
        days_to_default=days,
    )


def _delta_exposures(inputs: AccountInputs, params: Params) -> Float:
    """Money change of each position per unit relative move of its driver (delta x price), by central
    difference (exact for linear positions)."""
    h = 1e-4
    out = np.zeros(len(inputs.exposures))
    for k, e in enumerate(inputs.exposures):
        price = inputs.drivers[e.driver].price
        up = _values(e, np.asarray(price * (1 + h)), 0.0, params.risk_free_rate)
        down = _values(e, np.asarray(price * (1 - h)), 0.0, params.risk_free_rate)
        out[k] = e.quantity * float(up - down) / (2 * h)
    return out


def _covariance(inputs: AccountInputs) -> Float:
    """Daily covariance of the drivers, from the correlation as the simulation uses it (repaired if need be)."""
    sigma = np.array([d.daily_volatility for d in inputs.drivers])
    factor = correlation_cholesky(np.asarray(inputs.correlation, dtype=np.float64).reshape(len(sigma), len(sigma)))
    return np.asarray((factor @ factor.T) * sigma[:, None] * sigma[None, :])


# ------------------------------------------------------------------------------- restructuring valuation


@dataclass(frozen=True)
class Candidate:
    """One set of terms to value. Schedules come from restructuring.schedules (as floats, month 1 first)."""

    name: str
    installments: tuple[float, ...]  # amount due at the end of each month of the term
    owed: tuple[float, ...]  # what the client owes just before each installment (balance + interest + arrears)
    collateral_added: float = 0.0  # cash the client brings now
    reduce: tuple[tuple[int, float], ...] = ()  # (exposure index, fraction in (0, 1]) sold now
    principal_haircut: float = 0.0  # forgiven now (informative: the schedule is already net of it)
    rate_annual: float | None = None  # the new contract rate (None: the loan's)


@dataclass(frozen=True)
class Valuation:
    name: str
    affordable: bool
    expected_pv: Estimate  # the lender's
    default_probability: Estimate  # during the term
    advantage: Estimate  # expected_pv - what liquidating now is worth, path by path (common random numbers)
    reduction_proceeds: float
    months: int
    funding_miss_probability: Estimate = Estimate(0.0, 0.0)  # a payment missed for lack of funds
    why_not_affordable: tuple[str, ...] = ()


def reduction_proceeds(inputs: AccountInputs, reduce: Sequence[tuple[int, float]], params: Params) -> float:
    """Expected cash from selling the given fractions of positions now, at today's prices with their impact
    (no price risk over the days it takes), counted as liquidation counts it (after haircuts; an isolated
    position's part returns its part of the margin): what pays the loan down before the new schedule starts."""
    total = 0.0
    for index, fraction in _reduce_check(inputs, reduce).items():
        part = _scaled(inputs.exposures[index], fraction)
        price = np.asarray(inputs.drivers[part.driver].price)
        unit = _values(part, price, 0.0, params.risk_free_rate)
        schedule = _schedule(part, params)
        flow = math.fsum(
            float(_cash_flow(part, q, _fill(part, unit, f)))
            for q, f in zip(schedule.quantity, schedule.impact, strict=True)
        )
        total += float(_as_collateral(part, np.asarray(flow)))
    return total


def _scaled(exposure: Exposure, fraction: float) -> Exposure:
    """That fraction of a position: its quantity, its co-sellers unchanged, its isolated margin in proportion."""
    margin = None if exposure.isolated_margin is None else exposure.isolated_margin * fraction
    return Exposure(**{**exposure.__dict__, "quantity": exposure.quantity * fraction, "isolated_margin": margin})


def _reduce_check(inputs: AccountInputs, reduce: Sequence[tuple[int, float]]) -> dict[int, float]:
    fractions: dict[int, float] = {}
    for index, fraction in reduce:
        if not (0 <= index < len(inputs.exposures)) or not (0 < fraction <= 1):
            raise ValueError(f"reduce ({index}, {fraction}): needs a position index and a fraction in (0, 1]")
        if index in fractions:
            raise ValueError(f"reduce: position index {index} is given more than once")
        fractions[index] = fraction
    return fractions


def _reduced(inputs: AccountInputs, reduce: Sequence[tuple[int, float]]) -> AccountInputs:
    """The account after the reductions: each reduced position keeps the rest of itself."""
    fractions = _reduce_check(inputs, reduce)
    exposures = tuple(_scaled(e, 1.0 - fractions[k]) if k in fractions else e for k, e in enumerate(inputs.exposures))
    return AccountInputs(**{**inputs.__dict__, "exposures": exposures})


def valuation(
    inputs: AccountInputs,
    candidate: Candidate,
    market: MarketPaths,
    case_seed: int,
    liquidation: Recovery | None = None,
) -> Valuation:
    """The lender's expected PV of one candidate's cash flows (module docstring), against liquidating now."""
    return valuations(inputs, [candidate], market, case_seed, liquidation)[0]


def valuations(
    inputs: AccountInputs,
    candidates: Sequence[Candidate],
    market: MarketPaths,
    case_seed: int,
    liquidation: Recovery | None = None,
) -> list[Valuation]:
    """Value every candidate on the same monthly paths and the same missed-payment draws (common random numbers:
    their differences are not blurred by sampling noise), and against liquidating now on the same paths (the first
    month of the monthly grid is the daily grid's first days): `liquidation` is `recovery(inputs, market)`,
    computed here when not given."""
    _check(inputs)
    params = market.params
    for candidate in candidates:
        months = len(candidate.installments)
        if months != len(candidate.owed) or not 1 <= months <= params.max_term_months:
            raise ValueError(
                f"candidate {candidate.name!r}: {months} installments and {len(candidate.owed)} owed amounts; "
                f"they must match and be 1..{params.max_term_months}"
            )
    if not candidates:
        return []
    liquidation = liquidation if liquidation is not None else recovery(inputs, market)
    horizon = max(len(c.installments) for c in candidates) + 1  # a default's liquidation sells a month later
    cholesky = correlation_cholesky(np.asarray(inputs.correlation))
    prices = _price_paths(market.log_returns(inputs.drivers, cholesky, _MONTHLY, horizon), inputs.drivers)
    elapsed = np.asarray((np.arange(horizon) + 1.0) / 12.0, dtype=np.float64)[:, None]
    # Unit values of every position at every month end and path, one row per position (month-major columns,
    # so that the first `months` months of every row are one slice).
    cube = np.empty((len(inputs.exposures), horizon, params.paths))
    for k, e in enumerate(inputs.exposures):
        cube[k] = _values(e, prices[e.driver], elapsed, params.risk_free_rate)
    units: Float = cube.reshape(len(inputs.exposures), horizon * params.paths)
    misses = np.random.default_rng([int(case_seed), market.seed, 1]).random((horizon, params.paths))
    # Candidates that reduce the same positions share their month-end values (the first months of the longest).
    values: dict[tuple[tuple[int, float], ...], tuple[Float, Float]] = {}
    for c in candidates:
        if c.reduce not in values:
            values[c.reduce] = _month_values(_reduced(inputs, c.reduce), units, horizon, params)
    return [_valuation(inputs, c, values[c.reduce], misses, params, liquidation) for c in candidates]


def _is_linear(e: Exposure) -> bool:
    """Whether the position's marked and liquidation values are linear in its unit value (one sign of flow, no
    isolated floor), so that all such positions are summed in one matrix product."""
    return e.isolated_margin is None and (e.kind != Kind.LINEAR or e.haircut == 0.0)


def _month_values(account: AccountInputs, units: Float, months: int, params: Params) -> tuple[Float, Float]:
    """(months, paths) value of the positions marked to market, and if liquidated (impact, haircuts)."""
    paths = params.paths
    columns = units[:, : months * paths]
    marked_w = np.zeros(len(account.exposures))
    liquid_w = np.zeros(len(account.exposures))
    marked = np.zeros(months * paths)
    liquidation = np.zeros(months * paths)
    for k, e in enumerate(account.exposures):
        factor = float(_mean_impact_factor(e, params))
        fill_factor = 1.0 - factor if e.quantity > 0 else 1.0 + factor
        if _is_linear(e):
            entry = e.entry_price if e.kind == Kind.LINEAR else 0.0
            marked_w[k] = e.quantity
            marked -= e.quantity * entry
            # A long sale's proceeds are positive: after the haircut; a short's buy-back cost counts in full.
            haircut = (1.0 - e.haircut) if e.quantity > 0 and e.kind != Kind.LINEAR else 1.0
            liquid_w[k] = e.quantity * fill_factor * haircut
            liquidation -= e.quantity * entry
            continue
        unit = columns[k]
        flow = _cash_flow(e, e.quantity, unit)
        marked += np.maximum(flow + e.isolated_margin, 0.0) if e.isolated_margin is not None else flow
        liquidation += _as_collateral(e, _cash_flow(e, e.quantity, unit * fill_factor))
    marked += marked_w @ columns
    liquidation += liquid_w @ columns
    return marked.reshape(months, paths), liquidation.reshape(months, paths)


def _valuation(
    inputs: AccountInputs,
    candidate: Candidate,
    month_values: tuple[Float, Float],
    misses: Float,
    params: Params,
    liquidation_now: Recovery,
) -> Valuation:
    """One candidate, path by path (the rules: module docstring, "Restructuring valuation")."""
    months = len(candidate.installments)
    paths = params.paths
    rate = discount_rate(inputs, params, candidate.rate_annual)
    month_days = _month_days(inputs)
    account = _reduced(inputs, candidate.reduce)
    marked, liquidation = month_values
    collateral_met = candidate.collateral_added <= inputs.external_capacity + 1e-9
    # A default at the start: collateral the client cannot bring (due within days: taken as now), or an account
    # under water beyond what the client's capacity covers. The terms never take effect: the case is liquidated as
    # it stands, on liquidating now's paths, a few days late, with the second workout's costs.
    under_water = today_value(inputs, params) + inputs.external_capacity - inputs.debt < -1e-9
    at_start = not collateral_met or under_water
    reduction = reduction_proceeds(inputs, candidate.reduce, params)
    if at_start:
        pv = _default_value(
            np.full(paths, inputs.debt),
            np.zeros(paths),
            np.full(paths, inputs.external_capacity),
            liquidation_now.samples,
            _month_days_of(inputs, liquidation_now),
            rate,
            params,
        )
        alive = np.zeros(paths, dtype=np.bool_)
        means = inputs.external_capacity + inputs.cash
    else:
        # Reductions now: the lender takes what is owed, when the sale ends; the rest is the client's (the cash).
        to_lender = min(max(reduction, 0.0), inputs.debt)
        sold_in = _reduction_days(inputs, candidate.reduce, params) / month_days
        pv = np.full(paths, to_lender * float(_discount(rate, sold_in)))
        brought = candidate.collateral_added
        reserve = np.full(paths, inputs.external_capacity - brought)
        cash = np.full(paths, account.cash + brought + (reduction - to_lender))
        means = inputs.external_capacity - brought + account.cash + reduction - to_lender
        alive = np.ones(paths, dtype=np.bool_)
    means /= months
    funding_missed = np.zeros(paths, dtype=np.bool_)
    for m in range(months if not at_start else 0):
        due = candidate.installments[m]
        owed = candidate.owed[m]
        from_reserve = np.minimum(np.maximum(reserve, 0.0), due)
        from_cash = np.minimum(np.maximum(cash, 0.0), due - from_reserve)
        short = (from_reserve + from_cash < due - 1e-9) if due > 0 else np.zeros(paths, dtype=np.bool_)
        hazard = (misses[m] < account.monthly_miss_probability) if due > 0 else np.zeros(paths, dtype=np.bool_)
        # Insolvent: the account's equity and what is left of the client's declared capacity are both gone.
        insolvent = cash + marked[m] + np.maximum(reserve, 0.0) - owed < -1e-9
        defaults = alive & (short | hazard | insolvent)
        funding_missed |= alive & short
        paying = alive & ~defaults
        pv += float(_discount(rate, m + 1)) * np.where(paying, due, 0.0)
        if defaults.any():
            pv += np.where(
                defaults,
                _default_value(np.full(paths, owed), cash, reserve, liquidation[m + 1], m + 2, rate, params),
                0.0,
            )
        reserve -= np.where(paying, from_reserve, 0.0)
        cash -= np.where(paying, from_cash, 0.0)
        alive &= ~defaults
    expected = _mean(pv)
    funding = _mean(funding_missed.astype(np.float64))
    why = _why_not_affordable(candidate, inputs, means, funding.value, params)
    if under_water:
        why = ("the account is under water beyond the client's declared capacity", *why)
    return Valuation(
        name=candidate.name,
        affordable=not why,
        expected_pv=expected,
        default_probability=_mean((~alive).astype(np.float64)),
        advantage=_mean(pv - liquidation_now.lender_samples),
        reduction_proceeds=reduction,
        months=months,
        funding_miss_probability=funding,
        why_not_affordable=why,
    )


def _default_value(
    owed: Float, cash: Float, reserve: Float, liquidation: Float, sold_at: float, rate: float, params: Params
) -> Float:
    """What a default brings the lender, discounted: the account liquidated over the following month (sold at that
    month end's prices on the same path, `sold_at` months from now, with impact and haircuts), less the second
    workout's costs, then recourse to what is left of the client's capacity for the shortfall."""
    gross = np.minimum(owed, np.maximum(cash + liquidation, 0.0))
    net = np.maximum(gross - params.redefault_cost_fixed - params.redefault_cost_rate * gross, 0.0)
    collected = _collected(owed - gross, reserve, params)
    return np.asarray(
        net * _discount(rate, sold_at) + collected * _discount(rate, sold_at + params.collection_lag_months)
    )


def _month_days_of(inputs: AccountInputs, liquidation: Recovery) -> float:
    """When liquidating now's sale ends, in months."""
    return liquidation.days / _month_days(inputs)


def gettext_noop(message: str) -> str:
    """Marks a text for the translation catalogue (Django's makemessages finds it by this name) and returns it as
    it is: this module stays pure; the pages translate the reasons when they show them."""
    return message


def _why_not_affordable(
    candidate: Candidate, inputs: AccountInputs, means: float, funding_miss: float, params: Params
) -> tuple[str, ...]:
    """The payment test (HAMP's, on the client's means: Workout holds declared capacity, not income)."""
    why = []
    if candidate.collateral_added > inputs.external_capacity + 1e-9:
        why.append(gettext_noop("collateral beyond the client's declared capacity"))
    largest = max(candidate.installments, default=0.0)
    if largest > params.affordability_share * max(means, 0.0) + 1e-9:
        why.append(gettext_noop("installments above the share of the client's means over the term"))
    if funding_miss > params.max_funding_miss_probability:
        why.append(gettext_noop("a payment likely missed for lack of funds"))
    return tuple(why)


def _reduction_days(inputs: AccountInputs, reduce: Sequence[tuple[int, float]], params: Params) -> float:
    """Trading days the reductions take to sell under the participation cap (their proceeds arrive then)."""
    days = 0
    for index, fraction in _reduce_check(inputs, reduce).items():
        schedule = _schedule(_scaled(inputs.exposures[index], fraction), params)
        if schedule.days.size:
            days = max(days, int(schedule.days[-1]) + 1)
    return float(days)


def _mean_impact_factor(exposure: Exposure, params: Params) -> Float:
    """The quantity-weighted impact fraction of closing the whole position under its schedule."""
    schedule = _schedule(exposure, params)
    weight = np.abs(schedule.quantity)
    if weight.sum() == 0:
        return np.asarray(0.0)
    return np.asarray(float((schedule.impact * weight).sum() / weight.sum()))


# A candidate beats liquidating now only by more than this many standard errors of the paired advantage: on a true
# tie, noise alone passes 2 SE about 2.3% of the time (one-sided normal tail), instead of half the time.
RECOMMEND_BEYOND_STANDARD_ERRORS = 2.0


def beats_liquidation(advantage: Estimate) -> bool:
    """Whether an advantage over liquidating now is beyond the noise of the simulation."""
    return advantage.value > RECOMMEND_BEYOND_STANDARD_ERRORS * advantage.standard_error


def recommendation(valuations: Sequence[Valuation]) -> str | None:
    """The affordable candidate with the highest expected PV among those that beat liquidating now by more than two
    standard errors of the paired advantage (noise never decides); None: liquidate."""
    better = [v for v in valuations if v.affordable and beats_liquidation(v.advantage)]
    if not better:
        return None
    return max(better, key=lambda v: (v.expected_pv.value, v.name)).name


def ranked(valuations: Sequence[Valuation]) -> list[Valuation]:
    """Best first: affordable candidates before unaffordable ones, then by expected PV."""
    return sorted(valuations, key=lambda v: (not v.affordable, -v.expected_pv.value, v.name))
