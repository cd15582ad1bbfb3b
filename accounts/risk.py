"""The risk engine: equity, requirements, scenario (portfolio) margin and distance to liquidation for every
account of the book at once.

Pure numpy (and scipy for the normal CDF and sparse products): arrays in, arrays out, no Django, so it can be
benchmarked, property-tested and replaced without touching the ORM. The service at the boundary converts
Decimal to float64 going in and quantizes back to Decimal coming out.

Definitions (docs/domain.md), per account, over its *cross* positions:
- value of a position: q * cs * price (options: q * cs * Black-Scholes-Merton price from the underlying's
  price and implied volatility). Linear derivatives (perpetuals, futures) count their unrealised PnL,
  q * cs * (price - entry), in equity; spot holdings and options count their value.
- equity = cash + spot value + derivative PnL + option value - debt (loan principal + accrued interest).
- collateral value = cash + sum over long spot holdings of q * cs * price * (1 - haircut).
- standard requirement = sum |notional| * rate * dynamic scale, notional = |q| * cs * price for linear
  instruments and |q| * cs * underlying price for options; a long position never requires more than it can
  lose, its value: a long option its premium, long spot its value, a long future or perpetual its notional
  (the price can only fall to zero). Rates scaled up by a volatile market can exceed 100%; the cap keeps a
  paid-for holding from showing a shortfall it cannot have.
- scenario (portfolio) margin, Cboe/OCC TIMS: positions are grouped by underlying (a "class"); each class is
  revalued at `steps` equally spaced moves on each side up to its range (e.g. +/-15% for single names,
  -8%/+6% for broad indexes) and at no move, each with implied volatility unchanged, up and down; the class
  requirement is its largest loss, and the account's is the sum over classes (no offsets between classes, the
  conservative side of TIMS). Portfolio-model accounts use it as their maintenance requirement and
  `portfolio_initial_factor` times it as their initial requirement; every account reports it.
- dynamic margin: rates scale by max(1, sigma_eff / sigma_ref) of the underlying, sigma_eff =
  (1 - w) * EWMA volatility + w * stressed volatility (EMIR anti-procyclicality, w >= 25%).
- margin ratio = equity / maintenance requirement; shortfall = max(0, requirement - equity).
- bands: critical (equity < 0, or 0 with something required), margin call (ratio < 1), warning (ratio <
  warning level), else healthy; except that an account *paid in full* is healthy whatever its ratio. Paid in
  full: no debt (loan principal and accrued interest 0), no debit cash, and among its cross positions no
  short of any kind and no perpetual or future (they are margined, not paid for: their loss can exceed
  what the account holds), so only long spot and long options. Such an account cannot lose more than it
  holds (its equity, every price at zero, is its cash), so nobody is exposed to it: a long option's
  requirement is its value (it has no loan value), which puts its ratio at exactly 1, a number that
  measures nothing here. Isolated positions do not count either way: their loss stops at their allocation,
  already out of the cash. Its distance to liquidation is NaN: no move brings it there.
- distance to liquidation: the uniform move x of every underlying price at which equity(x) equals the
  maintenance requirement(x), the requirement scaled with the price level (1 + x); negative is a fall.
  Exact in closed form for accounts without options; for accounts with options it is bracketed on a grid
  of moves and refined by regula falsi on exact revaluations. 0 when already at or below maintenance;
  NaN when no move in [-100%, +300%] reaches it, and for an account paid in full.
- isolated positions (those with an allocated margin) are outside the cross pool: their equity is
  allocation + PnL, their loss is capped at the allocation, and they are reported separately
  (isolated equity, and how many are below their own maintenance requirement).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from functools import cache

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.special import ndtr

MODEL_VERSION = "risk-1.1"  # 1.1: paid-in-full accounts are healthy; long requirements capped at value

KIND_SPOT, KIND_PERPETUAL, KIND_FUTURE, KIND_OPTION = 0, 1, 2, 3
KINDS = ("spot", "perpetual", "future", "option")
BAND_HEALTHY, BAND_WARNING, BAND_MARGIN_CALL, BAND_CRITICAL = 0, 1, 2, 3
BANDS = ("healthy", "warning", "margin_call", "critical")
SCENARIO_CLASSES = ("equity", "broad_index", "index", "crypto")

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

# Uniform moves on which the distance to liquidation of accounts with options is bracketed, each side
# walking outward from 0: fine near 0, where distances matter most, coarser further out.
_DISTANCE_MAGNITUDES = np.concatenate(
    [np.arange(1, 7) / 100, np.arange(8, 21, 2) / 100, [0.23, 0.26, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]]
)
DISTANCE_DOWN = -_DISTANCE_MAGNITUDES
DISTANCE_UP = np.concatenate([_DISTANCE_MAGNITUDES, [1.25, 1.5, 2.0, 2.5, 3.0]])
DISTANCE_GRID = np.concatenate([DISTANCE_DOWN[::-1], [0.0], DISTANCE_UP])  # both sides, ascending
DISTANCE_MIN, DISTANCE_MAX = -1.0, 3.0


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Instruments:
    """One entry per instrument, indexed 0..n-1.

    `root` is the index of the instrument whose price moves this one in the scenarios: the underlying for
    options (and perpetuals/futures that name one), the instrument itself otherwise. Option fields are NaN
    (or False) elsewhere. `expiry_years` is the time to expiry at the valuation time (ACT/365).
    `reference_volatility` is the daily volatility the rates were set for (dynamic margin's sigma_ref).
    """

    kind: npt.NDArray[np.int8]
    root: Int
    contract_size: Float
    initial_rate: Float
    maintenance_rate: Float
    haircut: Float
    scenario_class: npt.NDArray[np.int8]
    strike: Float
    expiry_years: Float
    is_call: Bool
    carry_yield: Float
    reference_volatility: Float

    def __len__(self) -> int:
        return len(self.kind)


@dataclass(frozen=True)
class Accounts:
    cash: Float
    debt: Float  # loan principal + accrued interest
    portfolio: Bool  # on the portfolio (scenario) margin model

    def __len__(self) -> int:
        return len(self.cash)


@dataclass(frozen=True)
class Positions:
    account: Int
    instrument: Int
    quantity: Float
    entry_price: Float
    isolated_margin: Float  # NaN for cross positions

    def __len__(self) -> int:
        return len(self.account)


@dataclass(frozen=True)
class Book:
    accounts: Accounts
    instruments: Instruments
    positions: Positions


@dataclass(frozen=True)
class Market:
    """Prices per instrument (options' own entries are ignored: they are priced from their root).

    `implied_volatility` is annualised and needed on the roots of options; `ewma_volatility` and
    `stressed_volatility` are daily (NaN where unknown: no dynamic scaling then).
    """

    price: Float
    implied_volatility: Float
    ewma_volatility: Float
    stressed_volatility: Float
    risk_free_rate: float


@dataclass(frozen=True)
class ScenarioGrid:
    """`ranges[c]` = (largest fall, largest rise) of scenario class c, in SCENARIO_CLASSES order."""

    ranges: tuple[tuple[float, float], ...] = ((-0.15, 0.15), (-0.08, 0.06), (-0.10, 0.10), (-0.16, 0.16))
    steps_per_side: int = 5
    vol_shift_up: float = 0.25  # relative: implied volatility x (1 + up)
    vol_shift_down: float = 0.25  # relative: implied volatility x (1 - down)

    def price_moves(self) -> Float:
        """(classes, 2 * steps + 1): no move, then k/steps of the fall and of the rise, k = 1..steps."""
        k = np.arange(1, self.steps_per_side + 1) / self.steps_per_side
        falls = np.array([r[0] for r in self.ranges])[:, None] * k
        rises = np.array([r[1] for r in self.ranges])[:, None] * k
        return np.concatenate([np.zeros((len(self.ranges), 1)), falls, rises], axis=1)

    def vol_factors(self) -> Float:
        return np.array([1.0, 1.0 + self.vol_shift_up, 1.0 - self.vol_shift_down])

    def __post_init__(self) -> None:
        if not 0 <= self.vol_shift_down < 1:
            raise ValueError(f"vol_shift_down {self.vol_shift_down}: must be in [0, 1) (volatility stays positive)")
        if self.vol_shift_up < 0 or self.steps_per_side < 1:
            raise ValueError("vol_shift_up must be >= 0 and steps_per_side >= 1")
        if any(fall > rise for fall, rise in self.ranges):
            raise ValueError(f"ranges {self.ranges}: each is (largest fall, largest rise), fall <= rise")

    @property
    def scenario_count(self) -> int:
        return (2 * self.steps_per_side + 1) * 3


@dataclass(frozen=True)
class RiskParams:
    warning_level: float = 1.25
    portfolio_initial_factor: float = 1.25
    grid: ScenarioGrid = field(default_factory=ScenarioGrid)
    dynamic_margin: bool = True
    stress_weight: float = 0.25
    distance_refinements: int = 3


@dataclass(frozen=True)
class RiskResult:
    """Per account (same order as Book.accounts). Money in the book's currency, unrounded."""

    market_value: Float
    equity: Float
    collateral_value: Float
    initial_requirement: Float
    maintenance_requirement: Float
    margin_ratio: Float  # NaN where nothing is required
    shortfall_maintenance: Float
    shortfall_initial: Float
    worst_scenario_loss: Float
    distance_to_liquidation: Float  # NaN where no move in range reaches maintenance
    isolated_equity: Float
    isolated_breaches: Int
    band: npt.NDArray[np.int8]

    def band_counts(self) -> dict[str, int]:
        counts = np.bincount(self.band, minlength=len(BANDS))
        return {name: int(n) for name, n in zip(BANDS, counts, strict=True)}


# ------------------------------------------------------------------------------------ option pricing


def black_scholes(
    spot: Float | float,
    strike: Float | float,
    years: Float | float,
    rate: float,
    carry: Float | float,
    volatility: Float | float,
    is_call: Bool | bool,
) -> Float:
    """Black-Scholes-Merton price of a European option (arrays broadcast).

    C = S e^{-qT} N(d1) - K e^{-rT} N(d2), P = K e^{-rT} N(-d2) - S e^{-qT} N(-d1),
    d1 = (ln(S/K) + (r - q + s^2/2) T) / (s sqrt T), d2 = d1 - s sqrt T.
    At or after expiry (T <= 0) the option is worth its intrinsic value; a spot of 0 is allowed (a -100%
    move): calls are then worthless and puts worth the discounted strike.
    """
    spot, strike, years, carry, volatility, is_call = np.broadcast_arrays(
        np.asarray(spot, dtype=np.float64),
        np.asarray(strike, dtype=np.float64),
        np.asarray(years, dtype=np.float64),
        np.asarray(carry, dtype=np.float64),
        np.asarray(volatility, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    return _BlackScholesLegs(strike, years, rate, carry, volatility, is_call).value(spot)


def black_scholes_legs(
    strike: Float | float,
    years: Float | float,
    rate: float,
    carry: Float | float,
    volatility: Float | float,
    is_call: Bool | bool,
) -> _BlackScholesLegs:
    """The spot-independent parts of Black-Scholes-Merton for options whose terms broadcast to a small shape
    (e.g. one row per date): `.value(spot)` then broadcasts them against many spots (e.g. paths) cheaply."""
    strike, years, carry, volatility, is_call = np.broadcast_arrays(
        np.asarray(strike, dtype=np.float64),
        np.asarray(years, dtype=np.float64),
        np.asarray(carry, dtype=np.float64),
        np.asarray(volatility, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    return _BlackScholesLegs(strike, years, rate, carry, volatility, is_call)


class _BlackScholesLegs:
    """The parts of Black-Scholes-Merton that do not depend on the spot, computed once, so an option can be
    revalued at many spots cheaply. Uses w = +1 (call) / -1 (put): V = w (S e^{-qT} N(w d1) - K e^{-rT} N(w d2))."""

    def __init__(
        self, strike: Float, years: Float, rate: float, carry: Float, volatility: Float, is_call: Bool
    ) -> None:
        self.live = years > 0
        self.all_live = bool(np.all(self.live))  # the usual case: no intrinsic values to compute and choose
        t = np.where(self.live, years, 1.0)
        self.vol_sqrt_t = volatility * np.sqrt(t)
        self.drift = (rate - carry + 0.5 * volatility * volatility) * t
        self.strike = strike
        self.strike_discounted = strike * np.exp(-rate * t)
        self.carry_discount = np.exp(-carry * t)
        self.sign = np.where(is_call, 1.0, -1.0)

    def take(self, index: Int) -> _BlackScholesLegs:
        """The legs of options `index` (positions of a portfolio, say), gathered rather than computed again."""
        legs = object.__new__(_BlackScholesLegs)
        for name in ("live", "vol_sqrt_t", "drift", "strike", "strike_discounted", "carry_discount", "sign"):
            setattr(legs, name, getattr(self, name)[index])
        legs.all_live = bool(np.all(legs.live))
        return legs

    def _d1(self, spot: Float) -> Float:
        with np.errstate(divide="ignore"):  # a spot of 0 (a -100% move) gives d1 = -inf, which is exact
            return np.asarray((np.log(spot / self.strike) + self.drift) / self.vol_sqrt_t)

    def delta(self, spot: Float) -> Float:
        """dV/dS: w e^{-qT} N(w d1); at or after expiry the slope of the intrinsic value."""
        w = self.sign
        live = w * self.carry_discount * ndtr(w * self._d1(spot))
        if self.all_live:
            return np.asarray(live, dtype=np.float64)
        expired = np.where(w * (spot - self.strike) > 0, w, 0.0)
        return np.asarray(np.where(self.live, live, expired), dtype=np.float64)

    def value(self, spot: Float) -> Float:
        d1 = self._d1(spot)
        d2 = d1 - self.vol_sqrt_t
        w = self.sign
        value = w * (spot * self.carry_discount * ndtr(w * d1) - self.strike_discounted * ndtr(w * d2))
        if self.all_live:
            return np.asarray(value, dtype=np.float64)
        intrinsic = np.maximum(w * (spot - self.strike), 0.0)
        return np.asarray(np.where(self.live, value, intrinsic), dtype=np.float64)


# ------------------------------------------------------------------------------- dynamic margin inputs


def ewma_volatility(returns: Float, lam: float = 0.94, seed_observations: int = 20) -> tuple[Float, Float]:
    """EWMA (RiskMetrics) volatility of daily returns, per series.

    `returns` is (series, days), oldest first, NaN where a series has no return that day (the variance is
    carried over). sigma_t^2 = lam sigma_{t-1}^2 + (1 - lam) r_t^2, seeded with the mean square of each
    series' own first `seed_observations` returns (a series listed late is seeded from its first returns).
    Returns (latest sigma, stressed sigma), the stressed one being the largest sigma from the end of the
    seed on: the "stressed observations" of the anti-procyclicality floor. NaN where a series has no return.
    """
    returns = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    n_series = returns.shape[0]
    observed = np.isfinite(returns)
    squares = np.where(observed, returns * returns, 0.0)
    count = np.zeros(n_series, dtype=np.int64)  # returns seen so far, per series
    seed_sum = np.zeros(n_series)
    variance = np.full(n_series, np.nan)
    stressed = np.full(n_series, np.nan)
    for day in range(returns.shape[1]):  # a loop over days (not series): each step is one vector op
        seen, square = observed[:, day], squares[:, day]
        seeding = seen & (count < seed_observations)
        seed_sum += np.where(seeding, square, 0.0)
        updating = seen & (count >= seed_observations)
        variance = np.where(updating, lam * variance + (1.0 - lam) * square, variance)
        count += seen
        variance = np.where(seeding & (count == seed_observations), seed_sum / seed_observations, variance)
        stressed = np.fmax(stressed, variance)
    # A series with fewer returns than the seed needs is seeded with all it has.
    short = (count > 0) & (count < seed_observations)
    variance[short] = seed_sum[short] / count[short]
    stressed[short] = variance[short]
    return np.sqrt(variance), np.sqrt(stressed)


def dynamic_margin_scale(ewma: Float, stressed: Float, reference: Float, stress_weight: float = 0.25) -> Float:
    """max(1, ((1 - w) sigma_t + w sigma_stressed) / sigma_ref); 1 where any input is unknown."""
    effective = (1.0 - stress_weight) * ewma + stress_weight * stressed
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = effective / reference
    return np.where(np.isfinite(scale), np.maximum(scale, 1.0), 1.0)


# ------------------------------------------------------------------------------------------- the kernel


@dataclass(frozen=True)
class PreparedBook:
    """The book's static structure, built once; re-marking it at new prices only needs `evaluate`.

    Cross positions are held as sparse account x instrument matrices of q * cs, split by sign (long option
    requirements differ from short ones), so every per-account sum is one sparse product. The scenario grid
    works on classes: (account, root) segments; their linear exposure is one number each (the loss of a
    linear position is exactly its dollar delta times the move) and only segments holding options need the
    full scenario vector.
    """

    book: Book
    long_units: sparse.csr_matrix  # accounts x instruments: q * cs of long cross positions
    short_units: sparse.csr_matrix  # accounts x instruments: |q| * cs of short cross positions
    entry_cost: Float  # per account: sum of q * cs * entry over cross linear derivatives (static)
    margined: Bool  # per account: holds a cross short or a cross perpetual/future (not "paid in full")
    segment_account: Int
    segment_class: npt.NDArray[np.int8]
    segment_linear_units: sparse.csr_matrix  # segments x instruments: q * cs, linear instruments only
    option_instruments: Int  # indices of the option instruments held (cross or isolated): each priced once
    option_segment_rows: Int  # segments holding options
    option_segment_units: sparse.csr_matrix  # option segments x option instruments: q * cs
    # The same with one more column per scenario class, holding each segment's linear delta in its class's
    # column (the last entry of its row, at `option_segment_delta_entries` of the data): the structure is
    # the book's, the deltas are filled in at each evaluation.
    option_segment_scenario_units: sparse.csr_matrix
    option_segment_delta_entries: Int
    option_account_rows: Int  # accounts holding cross options
    option_account_units: sparse.csr_matrix  # option accounts x option instruments: q * cs
    option_account_long_units: sparse.csr_matrix  # the same, long positions only (the convex part)
    isolated: Int  # indices of isolated positions
    held: Int  # instruments held in any position


def _sum_by(index: Int, weights: Float, length: int) -> Float:
    """Sum of `weights` per value of `index` (0..length-1)."""
    return np.bincount(index, weights=weights, minlength=length).astype(np.float64, copy=False)


def _csr(rows: Int, cols: Int, data: Float, shape: tuple[int, int]) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix((data, (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return matrix


def present(indices: np.ndarray, size: int) -> np.ndarray:
    """The distinct values of non-negative integer `indices`, sorted, for indices known to be below `size`:
    np.unique by counting, several times faster than its hashing for half a million positions over a thousand
    instruments."""
    return np.flatnonzero(np.bincount(indices, minlength=size))


def prepare(book: Book) -> PreparedBook:
    instruments, positions = book.instruments, book.positions
    n_accounts, n_instruments = len(book.accounts), len(instruments)
    inst = positions.instrument
    units = positions.quantity * instruments.contract_size[inst]
    cross = ~np.isfinite(positions.isolated_margin)
    kind = instruments.kind[inst]
    linear_derivative = (kind == KIND_PERPETUAL) | (kind == KIND_FUTURE)

    acc_c, inst_c, units_c = positions.account[cross], inst[cross], units[cross]
    long_units = _csr(acc_c, inst_c, np.where(units_c > 0, units_c, 0.0), (n_accounts, n_instruments))
    short_units = _csr(acc_c, inst_c, np.where(units_c < 0, -units_c, 0.0), (n_accounts, n_instruments))
    entry_cost = _sum_by(
        acc_c, np.where(linear_derivative[cross], units_c * positions.entry_price[cross], 0.0), n_accounts
    )
    # What can make an account owe more than it holds, besides debt and debit cash (see "paid in full").
    obligations = (units_c < 0) | (linear_derivative[cross] & (units_c != 0))
    margined = np.bincount(acc_c[obligations], minlength=n_accounts) > 0

    # Segments: one per (account, root) pair among cross positions.
    root_c = instruments.root[inst_c]
    pair_key = acc_c.astype(np.int64) * n_instruments + root_c
    segment_keys, segment_of_position = np.unique(pair_key, return_inverse=True)
    n_segments = len(segment_keys)
    segment_account = segment_keys // n_instruments
    segment_class = instruments.scenario_class[segment_keys % n_instruments]
    is_option = instruments.kind[inst_c] == KIND_OPTION
    segment_linear_units = _csr(
        segment_of_position[~is_option], inst_c[~is_option], units_c[~is_option], (n_segments, n_instruments)
    )

    # Every held option is priced, isolated ones too; the matrices below cover the cross ones.
    option_instruments = present(inst[kind == KIND_OPTION], n_instruments)
    option_column = np.searchsorted(option_instruments, inst_c[is_option])
    option_segment_rows, option_segment_row = np.unique(segment_of_position[is_option], return_inverse=True)
    option_segment_units = _csr(
        option_segment_row, option_column, units_c[is_option], (len(option_segment_rows), len(option_instruments))
    )
    n_option_segments = len(option_segment_rows)
    class_columns = sparse.csr_matrix(
        (np.ones(n_option_segments), (np.arange(n_option_segments), segment_class[option_segment_rows])),
        shape=(n_option_segments, len(SCENARIO_CLASSES)),
    )
    scenario_units = sparse.hstack([option_segment_units, class_columns], format="csr")
    scenario_units.sort_indices()  # the class column, after every option column, ends each row
    option_account_rows, option_account_row = np.unique(acc_c[is_option], return_inverse=True)
    option_account_units = _csr(
        option_account_row, option_column, units_c[is_option], (len(option_account_rows), len(option_instruments))
    )
    return PreparedBook(
        book=book,
        long_units=long_units,
        short_units=short_units,
        entry_cost=entry_cost,
        margined=margined,
        segment_account=segment_account,
        segment_class=segment_class,
        segment_linear_units=segment_linear_units,
        option_instruments=option_instruments,
        option_segment_rows=option_segment_rows,
        option_segment_units=option_segment_units,
        option_segment_scenario_units=scenario_units,
        option_segment_delta_entries=scenario_units.indptr[1:] - 1,
        option_account_rows=option_account_rows,
        option_account_units=option_account_units,
        option_account_long_units=option_account_units.multiply(option_account_units > 0).tocsr(),
        isolated=np.flatnonzero(~cross),
        held=present(inst, n_instruments),
    )


@dataclass(frozen=True)
class _OptionPricer:
    """Prices the held option instruments at moved underlying prices and volatilities."""

    spot: Float
    strike: Float
    years: Float
    carry: Float
    volatility: Float
    is_call: Bool
    contract_size: Float
    rate: float

    def unit_values(self, move: Float | float = 0.0, vol_factor: Float | float = 1.0) -> Float:
        """cs * price, with the underlying moved by `move` (fraction) and volatility scaled by `vol_factor`;
        arguments broadcast against the instruments (last axis)."""
        return self.contract_size * black_scholes(
            self.spot * (1.0 + np.asarray(move)),
            self.strike,
            self.years,
            self.rate,
            self.carry,
            self.volatility * np.asarray(vol_factor),
            self.is_call,
        )


def _check_market(prepared: PreparedBook, market: Market) -> None:
    instruments = prepared.book.instruments
    held = prepared.held
    priced = held[instruments.kind[held] != KIND_OPTION]
    roots = np.unique(instruments.root[held])
    missing = np.union1d(priced[~(market.price[priced] > 0)], roots[~(market.price[roots] > 0)])
    if len(missing):
        raise ValueError(f"no usable price for instruments at indices {missing[:20].tolist()}")
    option_roots = np.unique(instruments.root[held[instruments.kind[held] == KIND_OPTION]])
    no_vol = option_roots[~(market.implied_volatility[option_roots] > 0)]
    if len(no_vol):
        raise ValueError(f"no implied volatility for option underlyings at indices {no_vol[:20].tolist()}")


def evaluate(prepared: PreparedBook, market: Market, params: RiskParams | None = None) -> RiskResult:
    """Risk figures of every account at `market`. See the module docstring for the definitions."""
    params = params or RiskParams()
    book = prepared.book
    instruments, accounts = book.instruments, book.accounts
    _check_market(prepared, market)
    kind = instruments.kind
    root = instruments.root
    is_option = kind == KIND_OPTION
    is_linear = ~is_option

    # Per instrument: value of one unit (cs * price), the options priced once each.
    opt = prepared.option_instruments
    pricer = _OptionPricer(
        spot=market.price[root[opt]],
        strike=instruments.strike[opt],
        years=instruments.expiry_years[opt],
        carry=instruments.carry_yield[root[opt]],
        volatility=market.implied_volatility[root[opt]],
        is_call=instruments.is_call[opt],
        contract_size=np.ones(len(opt)),
        rate=market.risk_free_rate,
    )
    option_price = pricer.unit_values()
    price = np.where(is_linear, market.price, 0.0)
    price[opt] = option_price
    price = np.nan_to_num(price, nan=0.0)
    unit_value = price  # per unit of q * cs
    unit_linear = np.where(is_linear, unit_value, 0.0)
    underlying_price = np.nan_to_num(market.price[root], nan=0.0)
    notional = np.where(is_option, underlying_price, unit_value)  # per unit of |q| * cs

    if params.dynamic_margin:
        scale = dynamic_margin_scale(
            market.ewma_volatility, market.stressed_volatility, instruments.reference_volatility, params.stress_weight
        )[root]
    else:
        scale = np.ones(len(instruments))
    initial_short = notional * instruments.initial_rate * scale
    maintenance_short = notional * instruments.maintenance_rate * scale
    # A long position never requires more than it can lose, its value per unit (an option's premium; for a
    # linear instrument its price, which can only fall to zero), however high the scaled rate.
    initial_long = np.minimum(initial_short, unit_value)
    maintenance_long = np.minimum(maintenance_short, unit_value)
    collateral_unit = np.where(kind == KIND_SPOT, unit_value * (1.0 - instruments.haircut), 0.0)

    # Every per-account sum at once: two sparse products with stacked per-instrument columns.
    long_sums = prepared.long_units @ np.column_stack(
        [unit_value, unit_linear, initial_long, maintenance_long, collateral_unit]
    )
    short_sums = prepared.short_units @ np.column_stack([unit_value, unit_linear, initial_short, maintenance_short])
    value = long_sums[:, 0] - short_sums[:, 0]
    linear_delta = long_sums[:, 1] - short_sums[:, 1]  # dollar delta of the linear positions
    equity = accounts.cash + value - prepared.entry_cost - accounts.debt
    collateral_value = accounts.cash + long_sums[:, 4]
    standard_initial = long_sums[:, 2] + short_sums[:, 2]
    standard_maintenance = long_sums[:, 3] + short_sums[:, 3]

    worst_scenario_loss = _worst_scenario_loss(prepared, pricer, option_price, unit_linear, params.grid)
    maintenance = np.where(accounts.portfolio, worst_scenario_loss, standard_maintenance)
    initial = np.where(accounts.portfolio, worst_scenario_loss * params.portfolio_initial_factor, standard_initial)

    isolated_equity, isolated_breaches, isolated_value = _isolated(
        book, unit_value, maintenance_long, maintenance_short
    )
    distance = _distance_to_liquidation(prepared, pricer, option_price, equity, maintenance, linear_delta, params)

    with np.errstate(divide="ignore", invalid="ignore"):
        margin_ratio = np.where(maintenance > 0, equity / maintenance, np.nan)
    band = np.full(len(accounts), BAND_HEALTHY, dtype=np.int8)
    band[(maintenance > 0) & (margin_ratio < params.warning_level)] = BAND_WARNING
    band[(maintenance > 0) & (margin_ratio < 1.0)] = BAND_MARGIN_CALL
    band[(equity < 0) | ((equity <= 0) & (maintenance > 0))] = BAND_CRITICAL
    # Paid in full (module docstring): it cannot lose more than it holds, so no ratio puts it in distress.
    paid_in_full = ~prepared.margined & (accounts.debt <= 0) & (accounts.cash >= 0)
    band[paid_in_full] = BAND_HEALTHY
    distance[paid_in_full] = np.nan

    return RiskResult(
        market_value=value + isolated_value,
        equity=equity,
        collateral_value=collateral_value,
        initial_requirement=initial,
        maintenance_requirement=maintenance,
        margin_ratio=margin_ratio,
        shortfall_maintenance=np.maximum(maintenance - equity, 0.0),
        shortfall_initial=np.maximum(initial - equity, 0.0),
        worst_scenario_loss=worst_scenario_loss,
        distance_to_liquidation=distance,
        isolated_equity=isolated_equity,
        isolated_breaches=isolated_breaches,
        band=band,
    )


def sweep(book: Book, market: Market, params: RiskParams | None = None) -> RiskResult:
    """The whole book in one call (prepare + evaluate)."""
    return evaluate(prepare(book), market, params)


def book_slice(book: Book, start: int, stop: int) -> Book:
    """The accounts start..stop-1 of a book and their positions, account indices renumbered from 0."""
    accounts, positions = book.accounts, book.positions
    keep = (positions.account >= start) & (positions.account < stop)
    return Book(
        accounts=Accounts(
            cash=accounts.cash[start:stop], debt=accounts.debt[start:stop], portfolio=accounts.portfolio[start:stop]
        ),
        instruments=book.instruments,
        positions=Positions(
            account=positions.account[keep] - start,
            instrument=positions.instrument[keep],
            quantity=positions.quantity[keep],
            entry_price=positions.entry_price[keep],
            isolated_margin=positions.isolated_margin[keep],
        ),
    )


def concatenate_results(parts: list[RiskResult]) -> RiskResult:
    return RiskResult(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(RiskResult)})


@dataclass(frozen=True)
class ShardedBook:
    """A book prepared as contiguous account ranges, evaluated in parallel threads (numpy and scipy release
    the GIL in their array loops, so two shards use both cores of a two-core worker)."""

    parts: tuple[PreparedBook, ...]

    @classmethod
    def prepare(cls, book: Book, shards: int = 2) -> ShardedBook:
        bounds = np.linspace(0, len(book.accounts), max(shards, 1) + 1).astype(int)
        return cls(tuple(prepare(book_slice(book, lo, hi)) for lo, hi in itertools.pairwise(bounds)))

    def evaluate(self, market: Market, params: RiskParams | None = None) -> RiskResult:
        if len(self.parts) == 1:
            return evaluate(self.parts[0], market, params)
        results = list(_thread_pool().map(lambda part: evaluate(part, market, params), self.parts))
        return concatenate_results(results)


@cache
def _thread_pool() -> ThreadPoolExecutor:
    # One pool per process, kept: starting threads on every re-mark would cost more than a shard's work.
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="risk")


def _worst_scenario_loss(
    prepared: PreparedBook, pricer: _OptionPricer, option_price: Float, unit_linear: Float, grid: ScenarioGrid
) -> Float:
    moves = grid.price_moves()  # (classes, moves)
    segment_delta = prepared.segment_linear_units @ unit_linear
    classes = prepared.segment_class
    # Linear classes: the loss is delta x move, so the worst is at one end of the class's range.
    largest_fall, largest_rise = moves.min(axis=1), moves.max(axis=1)
    worst = np.where(segment_delta > 0, -segment_delta * largest_fall[classes], -segment_delta * largest_rise[classes])
    worst = np.maximum(worst, 0.0)
    if len(prepared.option_instruments):
        instruments = prepared.book.instruments
        option_moves = moves[instruments.scenario_class[instruments.root[prepared.option_instruments]]]
        vols = grid.vol_factors()
        # (vols, moves, options): change in unit value of each held option in each scenario.
        change = pricer.unit_values(option_moves.T[None, :, :], vols[:, None, None]) - option_price
        n_scenarios = change.shape[0] * change.shape[1]
        rows = prepared.option_segment_rows
        # One sparse product gives each option segment's PnL in every scenario: its option units against
        # the options' changes, and its linear delta (in the column of its class) against the class's moves.
        structure = prepared.option_segment_scenario_units
        data = structure.data.copy()
        data[prepared.option_segment_delta_entries] = segment_delta[rows]
        augmented = sparse.csr_matrix((data, structure.indices, structure.indptr), shape=structure.shape)
        dense = np.vstack([change.reshape(n_scenarios, -1).T, np.tile(moves, len(vols))])
        pnl = np.asarray(augmented @ dense)  # (option segments, scenarios)
        worst[rows] = np.maximum(-pnl.min(axis=1), 0.0)
    return _sum_by(prepared.segment_account, worst, len(prepared.book.accounts))


def _isolated(
    book: Book, unit_value: Float, maintenance_long: Float, maintenance_short: Float
) -> tuple[Float, Int, Float]:
    positions = book.positions
    n_accounts = len(book.accounts)
    idx = np.flatnonzero(np.isfinite(positions.isolated_margin))
    inst = positions.instrument[idx]
    units = positions.quantity[idx] * book.instruments.contract_size[inst]
    value = units * unit_value[inst]
    pnl = value - units * positions.entry_price[idx]
    allocation = positions.isolated_margin[idx]
    own_equity = allocation + pnl
    maintenance = np.abs(units) * np.where(units > 0, maintenance_long[inst], maintenance_short[inst])
    # Grouped as (allocation - cost) + (value - requirement): a long bought with its allocation, whose
    # requirement is its value, compares exactly 0 with 0 instead of two roundings of the same sum (which
    # counted a third of such positions as breached).
    breach = (allocation - units * positions.entry_price[idx]) + (value - maintenance) < 0
    account = positions.account[idx]
    return (
        _sum_by(account, np.maximum(own_equity, 0.0), n_accounts),
        np.bincount(account, weights=breach, minlength=n_accounts).astype(np.int64),
        _sum_by(account, value, n_accounts),
    )


def _distance_to_liquidation(
    prepared: PreparedBook,
    pricer: _OptionPricer,
    option_price: Float,
    equity: Float,
    maintenance: Float,
    linear_delta: Float,
    params: RiskParams,
) -> Float:
    """Solve f(x) = equity(x) - maintenance * (1 + x) = 0 for the uniform move x nearest to 0.

    f(x) = (E0 - M0) + (delta - M0) x + option PnL(x): linear in x without options (closed form). Accounts
    with options go to _OptionDistance.
    """
    headroom = equity - maintenance
    slope = linear_delta - maintenance
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(slope != 0, -headroom / slope, np.nan)
    x = np.where((x >= DISTANCE_MIN) & (x <= DISTANCE_MAX), x, np.nan)
    rows = prepared.option_account_rows
    if len(rows):
        solver = _OptionDistance(
            units=prepared.option_account_units,
            long_units=prepared.option_account_long_units,
            pricer=pricer,
            option_price=option_price,
            headroom=headroom[rows],
            slope=slope[rows],
            refinements=params.distance_refinements,
        )
        x[rows] = solver.solve()
    return np.where(headroom <= 0, 0.0, x)


@dataclass(frozen=True)
class _Bracket:
    """Per account on one side of 0: whether f reaches 0 there, and x_in (f > 0) .. x_out (f <= 0)."""

    hit: Bool
    x_in: Float
    f_in: Float
    x_out: Float
    f_out: Float


@dataclass(frozen=True)
class _LiveTerms:
    """Per live option, what its value at spot S (1 + x) needs besides x (see _OptionDistance._exact)."""

    w_d1_at_spot: Float  # w (ln(S/K) + drift) / s
    w_per_log_move: Float  # w / s
    w_vol_sqrt_t: Float  # w s
    spot_term: Float  # w S e^{-qT}
    strike_term: Float  # w K e^{-rT}

    @classmethod
    def of(cls, legs: _BlackScholesLegs, spot: Float) -> _LiveTerms:
        w = legs.sign
        with np.errstate(divide="ignore", invalid="ignore"):  # an expired option's terms are never used
            return cls(
                w_d1_at_spot=w * (np.log(spot / legs.strike) + legs.drift) / legs.vol_sqrt_t,
                w_per_log_move=w / legs.vol_sqrt_t,
                w_vol_sqrt_t=w * legs.vol_sqrt_t,
                spot_term=w * spot * legs.carry_discount,
                strike_term=w * legs.strike_discounted,
            )


class _OptionDistance:
    """The distance to liquidation of accounts holding options.

    On each side of 0, f is evaluated on a grid of moves (one sparse product); the first grid point where
    f <= 0 brackets the root with its inner neighbour. f can also dip below 0 and back between two grid
    points, where long options (convex in the move) offset a loss only beyond some point: a lower bound of
    f in each cell says whether a dip is possible there, and where it is, a golden-section search on exact
    revaluations looks for it. The bracket nearer to 0 is refined by regula falsi (Illinois) on exact
    revaluations; the other side too when its cell could hold a nearer root.
    """

    GOLDEN_STEPS = 10

    def __init__(
        self,
        *,
        units: sparse.csr_matrix,
        long_units: sparse.csr_matrix,
        pricer: _OptionPricer,
        option_price: Float,
        headroom: Float,
        slope: Float,
        refinements: int,
    ) -> None:
        self.units = units
        self.pricer = pricer
        self.option_price = option_price
        self.headroom = headroom
        self.slope = slope
        self.refinements = refinements
        self.n = units.shape[0]
        # f on a grid is one sparse product: option units, then slope and headroom as two more columns,
        # against the options' PnL at each move, then the moves, then ones.
        linear = sparse.csr_matrix(np.column_stack([slope, headroom]))
        self.augmented = sparse.hstack([units, linear], format="csr")
        self.long_units = long_units
        # The spot-free parts of each held option's price, once: exact revaluations gather them per position.
        self.legs = _BlackScholesLegs(
            pricer.strike, pricer.years, pricer.rate, pricer.carry, pricer.volatility, pricer.is_call
        )
        self.live_terms = _LiveTerms.of(self.legs, pricer.spot)
        self.coo = units.tocoo()
        # Long-option notional per account: it bounds how much the long options' slope can change over any
        # move (each delta moves within [0, 1] or [-1, 0]), and with it how deep f can dip inside a cell.
        self.long_notional = np.asarray(self.long_units @ (pricer.contract_size * pricer.spot)).ravel()

    def solve(self) -> Float:
        down = self._side(DISTANCE_DOWN)
        up = self._side(DISTANCE_UP)
        # The side whose bracket starts nearer to 0 is refined first; the other only where its root could
        # still be nearer than the first side's.
        first_down = down.hit & (~up.hit | (np.abs(down.x_in) <= np.abs(up.x_in)))
        primary = self._select(first_down, down, up)
        secondary = self._select(first_down, up, down)
        root = np.full(self.n, np.nan)
        found = np.flatnonzero(primary.hit)
        root[found] = self._refine(found, primary)
        other = np.flatnonzero(secondary.hit & ~(np.abs(secondary.x_in) >= np.abs(root)))
        if len(other):
            other_root = self._refine(other, secondary)
            nearer = ~(np.abs(root[other]) <= np.abs(other_root))
            root[other[nearer]] = other_root[nearer]
        return root

    @staticmethod
    def _select(condition: Bool, a: _Bracket, b: _Bracket) -> _Bracket:
        return _Bracket(*(np.where(condition, getattr(a, f.name), getattr(b, f.name)) for f in fields(_Bracket)))

    # --- f on a grid, and exactly

    def _grid_values(self, moves: Float) -> Float:
        option_pnl = (self.pricer.unit_values(moves[:, None]) - self.option_price).T
        dense = np.vstack([option_pnl, moves[None, :], np.ones((1, len(moves)))])
        return np.asarray(self.augmented @ dense)

    def _exact(self, accounts: Int) -> Callable[[Float], Float]:
        """f(x) for each of `accounts` (indices into this solver's rows) at its own move x: the per-position
        parts that do not depend on x are built once, for the many calls of a search."""
        # Every row, in order (callers pass sorted distinct rows: n of them from 0 to n - 1 are all of them)
        if len(accounts) == self.n and (not self.n or (accounts[0] == 0 and accounts[-1] == self.n - 1)):
            row, col, units = self.coo.row, self.coo.col, self.coo.data
        else:  # the positions of these accounts, numbered by their place in `accounts`
            place = np.full(self.n, -1)
            place[accounts] = np.arange(len(accounts))
            keep = place[self.coo.row] >= 0
            row, col, units = place[self.coo.row[keep]], self.coo.col[keep], self.coo.data[keep]
        pricer = self.pricer
        held = units * pricer.contract_size[col]
        price_now = self.option_price[col]
        headroom, slope, n = self.headroom[accounts], self.slope[accounts], len(accounts)

        if not self.legs.all_live:  # an expired option among them: its intrinsic value, by the general pricer
            legs, spot = self.legs.take(col), pricer.spot[col]

            def f(x: Float) -> Float:
                pnl = _sum_by(row, held * (legs.value(spot * (1.0 + x[row])) - price_now), n)
                return headroom + slope * x + pnl

            return f

        # Every option live: at spot S (1 + x), w d1 = w (ln(S/K) + drift) / s + w ln(1 + x) / s, so the
        # logarithms are taken once per option and once per account and move, not per position, and
        # held * V = held w S e^{-qT} (1 + x) N(w d1) - held w K e^{-rT} N(w d1 - w s).
        per_option = self.live_terms
        w_d1_at_spot = per_option.w_d1_at_spot[col]
        w_per_log_move = per_option.w_per_log_move[col]
        w_vol_sqrt_t = per_option.w_vol_sqrt_t[col]
        held_spot = held * per_option.spot_term[col]
        held_strike = held * per_option.strike_term[col]
        held_price = held * price_now

        def f_live(x: Float) -> Float:
            with np.errstate(divide="ignore", invalid="ignore"):  # x = -1: ln 0 = -inf, N(-inf) = 0, exact
                w_d1 = w_d1_at_spot + np.log1p(x)[row] * w_per_log_move
            value = held_spot * (1.0 + x[row]) * ndtr(w_d1) - held_strike * ndtr(w_d1 - w_vol_sqrt_t)
            return headroom + slope * x + _sum_by(row, value - held_price, n)

        return f_live

    # --- brackets

    def _side(self, moves: Float) -> _Bracket:
        grid = np.concatenate([[0.0], moves])  # walking outward from 0; f(0) is the headroom
        f = self._grid_values(grid)
        rows = np.arange(self.n)
        below = f <= 0
        out = below.argmax(axis=1)
        hit = below[rows, out]  # argmax is 0 where nothing is below: this reads whether anything is
        inner = np.maximum(out - 1, 0)
        bracket = _Bracket(
            hit=hit,
            x_in=grid[inner],
            f_in=f[rows, inner],
            x_out=np.asarray(grid[out], dtype=np.float64),
            f_out=np.asarray(f[rows, out]),
        )
        return self._with_dips(bracket, grid, f, np.where(hit, out, len(grid)))

    def _with_dips(self, bracket: _Bracket, grid: Float, f: Float, first_out: Int) -> _Bracket:
        """Look inside the cells before each account's first grid crossing for a dip of f below 0.

        f = linear + C + D with C the long options (convex in x) and D the short ones (concave). On a cell
        [a, b], L + D lies above its chord and C at most (b - a)(C'(b) - C'(a)) / 4 below its own, so f can
        fall below 0 inside only if min(f(a), f(b)) <= that gap. C'(b) - C'(a) is at most the long-option
        notional, which screens out almost every cell at no cost; the survivors get the sharper bound of
        the two tangents of C, and where even that allows a dip, a golden-section search on exact values.
        """
        a, b = grid[:-1], grid[1:]
        # Screen per grid point, in one pass over f: a cell can only hide a dip if f at one of its ends is
        # within (its width / 4) x the long notional, so each point is held against its wider neighbour.
        quarter = np.abs(b - a) / 4.0
        reach = np.maximum(np.append(quarter, 0.0), np.insert(quarter, 0, 0.0))
        # The first point within reach comes at or before the first crossing (f <= 0 there is within reach):
        # an account is near when it comes strictly before.
        within = f <= self.long_notional[:, None] * reach
        first_within = within.argmax(axis=1)
        near = within[np.arange(len(f)), first_within] & (first_within < first_out)
        accounts = np.flatnonzero(near)
        if not len(accounts):
            return bracket
        f_a, f_b = f[accounts, :-1], f[accounts, 1:]
        cell = np.arange(len(a))
        open_cell = (f_a > 0) & (f_b > 0) & (cell < first_out[accounts, None] - 1)
        screened = open_cell & (np.minimum(f_a, f_b) <= quarter * self.long_notional[accounts, None])
        keep = screened.any(axis=1)
        accounts, screened, f_a, f_b = accounts[keep], screened[keep], f_a[keep], f_b[keep]
        if not len(accounts):
            return bracket
        pricer = self.pricer
        spot_moved = pricer.spot * (1.0 + grid[:, None])  # (grid, options)
        convex_slope = np.asarray(
            self.long_units[accounts] @ (pricer.contract_size * self.legs.delta(spot_moved) * pricer.spot).T
        )
        # On the down side b < a: convexity orders the slopes by x, so the gap takes the absolute difference.
        gap = quarter * np.abs(convex_slope[:, 1:] - convex_slope[:, :-1])
        possible = screened & (np.minimum(f_a, f_b) <= gap)
        has_dip = possible.any(axis=1)
        if not has_dip.any():
            return bracket
        suspects = accounts[has_dip]
        first_cell = possible[has_dip].argmax(axis=1)
        x_low, f_low = self._golden_minimum(suspects, a[first_cell], b[first_cell])
        dipped = f_low <= 0
        updated = {name: getattr(bracket, name).copy() for name in ("hit", "x_in", "f_in", "x_out", "f_out")}
        rows = suspects[dipped]
        updated["hit"][rows] = True
        updated["x_in"][rows] = a[first_cell[dipped]]
        updated["f_in"][rows] = f[rows, first_cell[dipped]]
        updated["x_out"][rows] = x_low[dipped]
        updated["f_out"][rows] = f_low[dipped]
        return _Bracket(**updated)

    def _golden_minimum(self, accounts: Int, a: Float, b: Float) -> tuple[Float, Float]:
        """The lowest f found by golden-section search on [a, b] (per account), stopping at the first f <= 0
        nearest to a."""
        ratio = (np.sqrt(5.0) - 1.0) / 2.0
        exact = self._exact(accounts)
        lo, hi = a.copy(), b.copy()
        best_x, best_f = a.copy(), np.full(len(accounts), np.inf)
        c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        f_c, f_d = exact(c), exact(d)
        for _ in range(self.GOLDEN_STEPS):
            for x, value in ((c, f_c), (d, f_d)):
                better = value < best_f
                best_x, best_f = np.where(better, x, best_x), np.where(better, value, best_f)
            left = f_c <= f_d  # the minimum lies in [lo, d]
            hi = np.where(left, d, hi)
            lo = np.where(left, lo, c)
            c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            f_c, f_d = exact(c), exact(d)
        for x, value in ((c, f_c), (d, f_d)):
            better = value < best_f
            best_x, best_f = np.where(better, x, best_x), np.where(better, value, best_f)
        return best_x, best_f

    def _refine(self, accounts: Int, bracket: _Bracket) -> Float:
        """Regula falsi with the Illinois modification on [x_in, x_out] of `accounts`: when the same end
        survives twice its f is halved, so a convex or concave f cannot pin one end and stall."""
        lo_x, lo_f = bracket.x_in[accounts], bracket.f_in[accounts]
        hi_x, hi_f = bracket.x_out[accounts], bracket.f_out[accounts]
        exact = self._exact(accounts)
        last_crossed = np.zeros(len(accounts), dtype=np.int8)  # +1: hi was replaced last, -1: lo was
        for _ in range(self.refinements):
            guess = self._secant(lo_x, lo_f, hi_x, hi_f)
            value = exact(guess)
            crossed = value <= 0
            lo_f = np.where(crossed & (last_crossed == 1), lo_f * 0.5, lo_f)
            hi_f = np.where(~crossed & (last_crossed == -1), hi_f * 0.5, hi_f)
            hi_x, hi_f = np.where(crossed, guess, hi_x), np.where(crossed, value, hi_f)
            lo_x, lo_f = np.where(crossed, lo_x, guess), np.where(crossed, lo_f, value)
            last_crossed = np.where(crossed, 1, -1).astype(np.int8)
        return self._secant(lo_x, lo_f, hi_x, hi_f)

    @staticmethod
    def _secant(lo_x: Float, lo_f: Float, hi_x: Float, hi_f: Float) -> Float:
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = lo_x - lo_f * (hi_x - lo_x) / (hi_f - lo_f)
        return np.clip(np.where(np.isfinite(guess), guess, hi_x), DISTANCE_MIN, DISTANCE_MAX)
