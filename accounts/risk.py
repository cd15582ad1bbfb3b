"""The risk engine: equity, requirements, scenario (portfolio) margin and distance to liquidation for every
account of the book at once.

Pure numpy (and scipy for the normal CDF and sparse products): arrays in, arrays out, no Django, so it can be
benchmarked, property-tested and replaced without touching the ORM. The service at the boundary converts
Decimal to float64 going in and quantizes back to Decimal coming out.

Definitions (DOMAIN.md), per account, over its *cross* positions:
- value of a position: q * cs * price (options: q * cs * Black-Scholes-Merton price from the underlying's
  price and implied volatility). Linear derivatives (perpetuals, futures) count their unrealised PnL,
  q * cs * (price - entry), in equity; spot holdings and options count their value.
- equity = cash + spot value + derivative PnL + option value - debt (loan principal + accrued interest).
- collateral value = cash + sum over long spot holdings of q * cs * price * (1 - haircut).
- standard requirement = sum |notional| * rate * dynamic scale, notional = |q| * cs * price for linear
  instruments and |q| * cs * underlying price for options; a long option never requires more than its value
  (its loss cannot exceed the premium).
- scenario (portfolio) margin, Cboe/OCC TIMS: positions are grouped by underlying (a "class"); each class is
  revalued at `steps` equally spaced moves on each side up to its range (e.g. +/-15% for single names,
  -8%/+6% for broad indexes) and at no move, each with implied volatility unchanged, up and down; the class
  requirement is its largest loss, and the account's is the sum over classes (no offsets between classes, the
  conservative side of TIMS). Portfolio-model accounts use it as their maintenance requirement and
  `portfolio_initial_factor` times it as their initial requirement; every account reports it.
- dynamic margin: rates scale by max(1, sigma_eff / sigma_ref) of the underlying, sigma_eff =
  (1 - w) * EWMA volatility + w * stressed volatility (EMIR anti-procyclicality, w >= 25%).
- margin ratio = equity / maintenance requirement; shortfall = max(0, requirement - equity).
- distance to liquidation: the uniform move x of every underlying price at which equity(x) equals the
  maintenance requirement(x), the requirement scaled with the price level (1 + x); negative is a fall.
  Exact in closed form for accounts without options; for accounts with options it is bracketed on a grid
  of moves and refined by regula falsi on exact revaluations. 0 when already at or below maintenance;
  NaN when no move in [-100%, +300%] reaches it.
- isolated positions (those with an allocated margin) are outside the cross pool: their equity is
  allocation + PnL, their loss is capped at the allocation, and they are reported separately
  (isolated equity, and how many are below their own maintenance requirement).
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from functools import cache

import numpy as np
import numpy.typing as npt
from scipy import sparse
from scipy.special import ndtr

MODEL_VERSION = "risk-1.0"

KIND_SPOT, KIND_PERPETUAL, KIND_FUTURE, KIND_OPTION = 0, 1, 2, 3
KINDS = ("spot", "perpetual", "future", "option")
BAND_HEALTHY, BAND_WARNING, BAND_MARGIN_CALL, BAND_CRITICAL = 0, 1, 2, 3
BANDS = ("healthy", "warning", "margin_call", "critical")
SCENARIO_CLASSES = ("equity", "broad_index", "index", "crypto")

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

# Uniform moves on which the distance to liquidation of accounts with options is bracketed.
_DISTANCE_MAGNITUDES = np.concatenate(
    [np.arange(1, 7) / 100, np.arange(8, 21, 2) / 100, [0.23, 0.26, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]]
)
DISTANCE_GRID = np.concatenate([-_DISTANCE_MAGNITUDES[::-1], [0.0], _DISTANCE_MAGNITUDES, [1.25, 1.5, 2.0, 2.5, 3.0]])
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
    distance_refinements: int = 2


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


class _BlackScholesLegs:
    """The parts of Black-Scholes-Merton that do not depend on the spot, computed once, so an option can be
    revalued at many spots cheaply. Uses w = +1 (call) / -1 (put): V = w (S e^{-qT} N(w d1) - K e^{-rT} N(w d2))."""

    def __init__(
        self, strike: Float, years: Float, rate: float, carry: Float, volatility: Float, is_call: Bool
    ) -> None:
        self.live = years > 0
        t = np.where(self.live, years, 1.0)
        self.vol_sqrt_t = volatility * np.sqrt(t)
        self.drift = (rate - carry + 0.5 * volatility * volatility) * t
        self.strike = strike
        self.strike_discounted = strike * np.exp(-rate * t)
        self.carry_discount = np.exp(-carry * t)
        self.sign = np.where(is_call, 1.0, -1.0)

    def value(self, spot: Float) -> Float:
        with np.errstate(divide="ignore"):  # a spot of 0 (a -100% move) gives d1 = -inf, which is exact
            d1 = (np.log(spot / self.strike) + self.drift) / self.vol_sqrt_t
        d2 = d1 - self.vol_sqrt_t
        w = self.sign
        value = w * (spot * self.carry_discount * ndtr(w * d1) - self.strike_discounted * ndtr(w * d2))
        intrinsic = np.maximum(w * (spot - self.strike), 0.0)
        return np.asarray(np.where(self.live, value, intrinsic), dtype=np.float64)


# ------------------------------------------------------------------------------- dynamic margin inputs


def ewma_volatility(returns: Float, lam: float = 0.94, seed_observations: int = 20) -> tuple[Float, Float]:
    """EWMA (RiskMetrics) volatility of daily returns, per series.

    `returns` is (series, days), oldest first, NaN where a series has no return that day (the variance is
    carried over). sigma_t^2 = lam sigma_{t-1}^2 + (1 - lam) r_t^2, seeded with the mean square of the first
    `seed_observations` returns. Returns (latest sigma, stressed sigma), the stressed one being the largest
    sigma seen after the seed period: the "stressed observations" of the anti-procyclicality floor. NaN
    where a series has no return at all.
    """
    returns = np.atleast_2d(np.asarray(returns, dtype=np.float64))
    n_days = returns.shape[1]
    observed = np.isfinite(returns)
    squares = np.where(observed, returns * returns, 0.0)
    seed_days = min(seed_observations, n_days)
    seed_count = observed[:, :seed_days].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = squares[:, :seed_days].sum(axis=1) / seed_count
    stressed = np.where(seed_count > 0, variance, np.nan)
    for day in range(seed_days, n_days):  # a loop over days (not series): each step is one vector op
        updated = lam * variance + (1.0 - lam) * squares[:, day]
        variance = np.where(observed[:, day] & np.isfinite(variance), updated, variance)
        variance = np.where(observed[:, day] & ~np.isfinite(variance), squares[:, day], variance)
        stressed = np.fmax(stressed, variance)
    return np.sqrt(variance), np.sqrt(stressed)


def dynamic_margin_scale(ewma: Float, stressed: Float, reference: Float, stress_weight: float = 0.25) -> Float:
    """max(1, ((1 - w) sigma_t + w sigma_stressed) / sigma_ref); 1 where any input is unknown."""
    effective = (1.0 - stress_weight) * ewma + stress_weight * np.fmax(stressed, ewma)
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
    segment_account: Int
    segment_class: npt.NDArray[np.int8]
    segment_linear_units: sparse.csr_matrix  # segments x instruments: q * cs, linear instruments only
    option_instruments: Int  # indices of option instruments held in a cross position
    option_segment_rows: Int  # segments holding options
    option_segment_units: sparse.csr_matrix  # option segments x option instruments: q * cs
    option_account_rows: Int  # accounts holding cross options
    option_account_units: sparse.csr_matrix  # option accounts x option instruments: q * cs
    isolated: Int  # indices of isolated positions
    held: Int  # instruments held in any position


def _sum_by(index: Int, weights: Float, length: int) -> Float:
    """Sum of `weights` per value of `index` (0..length-1)."""
    return np.bincount(index, weights=weights, minlength=length).astype(np.float64, copy=False)


def _csr(rows: Int, cols: Int, data: Float, shape: tuple[int, int]) -> sparse.csr_matrix:
    matrix = sparse.csr_matrix((data, (rows, cols)), shape=shape)
    matrix.sum_duplicates()
    return matrix


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

    option_instruments, option_column = np.unique(inst_c[is_option], return_inverse=True)
    option_segment_rows, option_segment_row = np.unique(segment_of_position[is_option], return_inverse=True)
    option_segment_units = _csr(
        option_segment_row, option_column, units_c[is_option], (len(option_segment_rows), len(option_instruments))
    )
    option_account_rows, option_account_row = np.unique(acc_c[is_option], return_inverse=True)
    option_account_units = _csr(
        option_account_row, option_column, units_c[is_option], (len(option_account_rows), len(option_instruments))
    )
    return PreparedBook(
        book=book,
        long_units=long_units,
        short_units=short_units,
        entry_cost=entry_cost,
        segment_account=segment_account,
        segment_class=segment_class,
        segment_linear_units=segment_linear_units,
        option_instruments=option_instruments,
        option_segment_rows=option_segment_rows,
        option_segment_units=option_segment_units,
        option_account_rows=option_account_rows,
        option_account_units=option_account_units,
        isolated=np.flatnonzero(~cross),
        held=np.unique(inst),
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
    # A long option never requires more than it is worth: its loss is capped at the premium.
    initial_long = np.where(is_option, np.minimum(initial_short, unit_value), initial_short)
    maintenance_long = np.where(is_option, np.minimum(maintenance_short, unit_value), maintenance_short)
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

    isolated_equity, isolated_breaches, isolated_value = _isolated(book, unit_value, maintenance_short)
    distance = _distance_to_liquidation(prepared, pricer, option_price, equity, maintenance, linear_delta, params)

    with np.errstate(divide="ignore", invalid="ignore"):
        margin_ratio = np.where(maintenance > 0, equity / maintenance, np.nan)
    band = np.full(len(accounts), BAND_HEALTHY, dtype=np.int8)
    band[(maintenance > 0) & (margin_ratio < params.warning_level)] = BAND_WARNING
    band[(maintenance > 0) & (margin_ratio < 1.0)] = BAND_MARGIN_CALL
    band[(equity < 0) | ((equity <= 0) & (maintenance > 0))] = BAND_CRITICAL

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
    worst = np.maximum(
        np.maximum(-segment_delta * moves.min(axis=1)[classes], -segment_delta * moves.max(axis=1)[classes]), 0.0
    )
    if len(prepared.option_instruments):
        instruments = prepared.book.instruments
        option_moves = moves[instruments.scenario_class[instruments.root[prepared.option_instruments]]]
        vols = grid.vol_factors()
        # (vols, moves, options): change in unit value of each held option in each scenario.
        change = pricer.unit_values(option_moves.T[None, :, :], vols[:, None, None]) - option_price
        n_vols, n_moves = change.shape[0], change.shape[1]
        pnl = prepared.option_segment_units @ change.reshape(n_vols * n_moves, -1).T  # (option segments, sc.)
        rows = prepared.option_segment_rows
        pnl = pnl.reshape(len(rows), n_vols, n_moves)
        pnl += (segment_delta[rows, None] * moves[classes[rows]])[:, None, :]
        worst[rows] = np.maximum(-pnl.reshape(len(rows), -1).min(axis=1), 0.0)
    return _sum_by(prepared.segment_account, worst, len(prepared.book.accounts))


def _isolated(book: Book, unit_value: Float, maintenance_unit: Float) -> tuple[Float, Int, Float]:
    positions = book.positions
    n_accounts = len(book.accounts)
    idx = np.flatnonzero(np.isfinite(positions.isolated_margin))
    inst = positions.instrument[idx]
    units = positions.quantity[idx] * book.instruments.contract_size[inst]
    value = units * unit_value[inst]
    pnl = value - units * positions.entry_price[idx]
    own_equity = positions.isolated_margin[idx] + pnl
    breach = own_equity < np.abs(units) * maintenance_unit[inst]
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

    f(x) = (E0 - M0) + (delta - M0) x + option PnL(x): linear in x without options (closed form).
    """
    headroom = equity - maintenance
    slope = linear_delta - maintenance
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(slope != 0, -headroom / slope, np.nan)
    x = np.where((x >= DISTANCE_MIN) & (x <= DISTANCE_MAX), x, np.nan)

    rows = prepared.option_account_rows
    if len(rows):
        units = prepared.option_account_units
        grid = DISTANCE_GRID
        f = units @ (pricer.unit_values(grid[:, None]) - option_price).T  # option PnL: (option accounts, grid)
        f += slope[rows, None] * grid
        f += headroom[rows, None]
        x[rows] = _bracket_and_refine(f, grid, headroom[rows], slope[rows], units, pricer, option_price, params)

    return np.where(headroom <= 0, 0.0, x)


def _bracket_and_refine(
    f: Float,
    grid: Float,
    headroom: Float,
    slope: Float,
    units: sparse.csr_matrix,
    pricer: _OptionPricer,
    option_price: Float,
    params: RiskParams,
) -> Float:
    zero = int(np.flatnonzero(grid == 0.0)[0])
    n = f.shape[0]
    below = f <= 0
    # Nearest crossing on each side of 0: the first grid point (walking outward) where f <= 0.
    down_hit = below[:, :zero][:, ::-1]
    up_hit = below[:, zero + 1 :]
    down_any, up_any = down_hit.any(axis=1), up_hit.any(axis=1)
    down_index = zero - 1 - down_hit.argmax(axis=1)
    up_index = zero + 1 + up_hit.argmax(axis=1)
    use_down = down_any & (~up_any | (-grid[down_index] <= grid[up_index]))
    found = down_any | up_any
    outer = np.where(use_down, down_index, up_index)
    inner = np.where(use_down, outer + 1, outer - 1)
    rows = np.arange(n)
    lo_x, hi_x = grid[inner], grid[outer]
    lo_f, hi_f = f[rows, inner], f[rows, outer]  # lo_f > 0 >= hi_f

    coo = units.tocoo()  # one entry per (account, option) held
    legs = _BlackScholesLegs(
        pricer.strike[coo.col],
        pricer.years[coo.col],
        pricer.rate,
        pricer.carry[coo.col],
        pricer.volatility[coo.col],
        pricer.is_call[coo.col],
    )
    spot = pricer.spot[coo.col]
    held_units = coo.data * pricer.contract_size[coo.col]
    held_value = held_units * option_price[coo.col]

    def exact_f(x: Float) -> Float:
        # Each option position revalued at its own account's move.
        pnl = _sum_by(coo.row, held_units * legs.value(spot * (1.0 + x[coo.row])) - held_value, n)
        return headroom + slope * x + pnl

    # Regula falsi with the Illinois modification: when the same end survives twice, its f is halved, so
    # a convex or concave f cannot pin one end and stall the convergence.
    last_crossed = np.zeros(n, dtype=np.int8)  # +1: hi was replaced last, -1: lo was
    for _ in range(params.distance_refinements):
        with np.errstate(divide="ignore", invalid="ignore"):
            guess = lo_x - lo_f * (hi_x - lo_x) / (hi_f - lo_f)
        guess = np.clip(np.where(np.isfinite(guess), guess, hi_x), DISTANCE_MIN, DISTANCE_MAX)
        value = exact_f(guess)
        crossed = value <= 0
        lo_f = np.where(crossed & (last_crossed == 1), lo_f * 0.5, lo_f)
        hi_f = np.where(~crossed & (last_crossed == -1), hi_f * 0.5, hi_f)
        hi_x, hi_f = np.where(crossed, guess, hi_x), np.where(crossed, value, hi_f)
        lo_x, lo_f = np.where(crossed, lo_x, guess), np.where(crossed, lo_f, value)
        last_crossed = np.where(crossed, 1, -1).astype(np.int8)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = lo_x - lo_f * (hi_x - lo_x) / (hi_f - lo_f)
    result = np.where(np.isfinite(result), result, hi_x)
    return np.where(found, result, np.nan)
