"""A per-account reference implementation of the risk figures of `accounts.risk`, for testing the kernel.

Written from the definitions (the module docstring of `accounts/risk.py` and docs/domain.md), not
from the kernel's code: plain Python loops over accounts and positions, `math` for Black-Scholes-Merton
(normal CDF from `math.erfc`), full revaluation of every position in every scenario (no delta shortcuts),
and the distance to liquidation found by scanning the uniform move outward from 0 and bisecting, on full
revaluations, for every account (the kernel uses a closed form without options and regula falsi with
them). It shares nothing with the kernel but the input dataclasses, the kind codes and the band codes.

One choice the documents leave open is taken from the kernel: the band "critical" (equity below 0, or at
0 with something required). An account paid in full (no debt, no debit cash, only long spot and long options
among its cross positions: docs/domain.md) is healthy, with no distance to liquidation. Where the documents
are silent on an isolated *option* position, its own maintenance requirement follows the standard
definition (a long position's is capped at its value).

Every figure comes with what a test needs to compare it honestly: `magnitude`, the sum of the absolute
money terms of the account (float rounding of its sums is a small multiple of 1e-16 of it), and flags
for figures decided by a comparison that rounding could tip either way.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from accounts.risk import (
    BAND_CRITICAL,
    BAND_HEALTHY,
    BAND_MARGIN_CALL,
    BAND_WARNING,
    KIND_FUTURE,
    KIND_OPTION,
    KIND_PERPETUAL,
    KIND_SPOT,
    Book,
    Market,
    RiskParams,
)

# Relative rounding allowance: the sums have a handful of terms, each a product of 2 to 4 floats and a
# Black-Scholes value accurate to ~1e-14 relative; 1e-9 of the magnitude is far above their rounding and
# far below any modelling difference a bug would make.
RELATIVE_ROUNDING = 1e-9
DISTANCE_MIN, DISTANCE_MAX = -1.0, 3.0
SCAN_STEP = 0.005  # outward scan for the nearest sign change of f(x), before bisection
BISECTION_WIDTH = 1e-12


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def bs_price(spot: float, strike: float, years: float, rate: float, carry: float, vol: float, is_call: bool) -> float:
    """Black-Scholes-Merton: C = S e^{-qT} N(d1) - K e^{-rT} N(d2), P = K e^{-rT} N(-d2) - S e^{-qT} N(-d1);
    intrinsic value at or after expiry; at S = 0 a call is worth 0 and a put K e^{-rT}."""
    if years <= 0:
        return max(spot - strike, 0.0) if is_call else max(strike - spot, 0.0)
    if spot == 0:
        return 0.0 if is_call else strike * math.exp(-rate * years)
    sd = vol * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate - carry + 0.5 * vol * vol) * years) / sd
    d2 = d1 - sd
    forward_part = spot * math.exp(-carry * years)
    strike_part = strike * math.exp(-rate * years)
    if is_call:
        return forward_part * normal_cdf(d1) - strike_part * normal_cdf(d2)
    return strike_part * normal_cdf(-d2) - forward_part * normal_cdf(-d1)


def dynamic_scale(ewma: float, stressed: float, reference: float, stress_weight: float) -> float:
    """max(1, ((1 - w) sigma_ewma + w sigma_stressed) / sigma_ref); 1 where any input is unknown (NaN)."""
    if not (math.isfinite(ewma) and math.isfinite(stressed) and math.isfinite(reference)) or reference <= 0:
        return 1.0
    return max(1.0, ((1.0 - stress_weight) * ewma + stress_weight * stressed) / reference)


def ewma_series(returns: list[float], lam: float = 0.94, seed_observations: int = 20) -> tuple[float, float]:
    """RiskMetrics EWMA volatility of one series of daily returns (oldest first, NaN = no return that day).

    The variance is seeded with the mean square of the first `seed_observations` returns; every later
    return updates it, s2 = lam s2 + (1 - lam) r^2; a day without a return leaves it unchanged. Returns
    (latest sigma, largest sigma from the end of the seed on). NaN, NaN without any return.
    """
    observed = [r for r in returns if math.isfinite(r)]
    if not observed:
        return math.nan, math.nan
    seed = observed[:seed_observations]
    variance = sum(r * r for r in seed) / len(seed)
    largest = variance
    for r in observed[len(seed) :]:
        variance = lam * variance + (1.0 - lam) * r * r
        largest = max(largest, variance)
    return math.sqrt(variance), math.sqrt(largest)


def price_moves(params: RiskParams, scenario_class: int) -> list[float]:
    grid = params.grid
    fall, rise = grid.ranges[scenario_class]
    steps = grid.steps_per_side
    return [0.0] + [fall * k / steps for k in range(1, steps + 1)] + [rise * k / steps for k in range(1, steps + 1)]


def vol_factors(params: RiskParams) -> list[float]:
    return [1.0, 1.0 + params.grid.vol_shift_up, 1.0 - params.grid.vol_shift_down]


@dataclass(frozen=True)
class AccountFigures:
    market_value: float
    equity: float
    collateral_value: float
    initial_requirement: float
    maintenance_requirement: float
    margin_ratio: float
    shortfall_maintenance: float
    shortfall_initial: float
    worst_scenario_loss: float
    distance_to_liquidation: float  # the nearer of distance_fall and distance_rise
    isolated_equity: float
    isolated_breaches: int
    band: int
    magnitude: float  # sum of |money terms|: the scale of the float rounding in this account's figures
    band_ambiguous: bool  # equity or ratio within rounding of a band threshold
    breaches_ambiguous: bool  # an isolated position within rounding of its own maintenance requirement
    headroom_ambiguous: bool  # equity within rounding of maintenance: distance 0 or a tiny move
    range_ambiguous: bool  # f within rounding of 0 at an end of [-1, 3]: a root there or none
    distance_fall: float  # first root of headroom_at on the fall side (0 when already at maintenance)
    distance_rise: float  # first root on the rise side
    headroom_at: Callable[[float], float]  # x -> equity(x) - maintenance (1 + x), by full revaluation


class _Pricing:
    """Unit values (per unit of q * cs) of the instruments at a market, optionally moved."""

    def __init__(self, book: Book, market: Market) -> None:
        self.ins = book.instruments
        self.market = market

    def root_price(self, i: int) -> float:
        return float(self.market.price[int(self.ins.root[i])])

    def unit_value(self, i: int, move: float = 0.0, vol_factor: float = 1.0) -> float:
        """Price of one unit of instrument i with every underlying moved by `move` (a fraction) and implied
        volatilities scaled by `vol_factor`. Options: Black-Scholes-Merton on the root."""
        ins, market = self.ins, self.market
        if int(ins.kind[i]) != KIND_OPTION:
            return float(market.price[i]) * (1.0 + move)
        root = int(ins.root[i])
        return bs_price(
            float(market.price[root]) * (1.0 + move),
            float(ins.strike[i]),
            float(ins.expiry_years[i]),
            float(market.risk_free_rate),
            float(ins.carry_yield[root]),
            float(market.implied_volatility[root]) * vol_factor,
            bool(ins.is_call[i]),
        )

    def notional_unit(self, i: int) -> float:
        """Notional of one unit: its own price for linear instruments, the underlying's for options."""
        return self.root_price(i) if int(self.ins.kind[i]) == KIND_OPTION else float(self.market.price[i])

    def scale(self, i: int, params: RiskParams) -> float:
        if not params.dynamic_margin:
            return 1.0
        root = int(self.ins.root[i])
        return dynamic_scale(
            float(self.market.ewma_volatility[root]),
            float(self.market.stressed_volatility[root]),
            float(self.ins.reference_volatility[root]),
            params.stress_weight,
        )

    def requirement(self, i: int, quantity: float, rate: float, params: RiskParams) -> float:
        """|notional| x rate x dynamic scale; a long position's never more than its value (what it can lose:
        an option's premium, a linear instrument's price down to zero)."""
        units = quantity * float(self.ins.contract_size[i])
        required = abs(units) * self.notional_unit(i) * rate * self.scale(i, params)
        if units > 0:
            required = min(required, units * self.unit_value(i))
        return required


@dataclass(frozen=True)
class _Holding:
    instrument: int
    quantity: float
    entry_price: float


def _equity_at(pricing: _Pricing, cash: float, debt: float, holdings: list[_Holding], move: float) -> float:
    """cash + spot value + derivative PnL + option value - debt, every underlying moved by `move`."""
    equity = cash - debt
    for h in holdings:
        units = h.quantity * float(pricing.ins.contract_size[h.instrument])
        kind = int(pricing.ins.kind[h.instrument])
        value = units * pricing.unit_value(h.instrument, move)
        if kind in (KIND_PERPETUAL, KIND_FUTURE):
            equity += value - units * h.entry_price
        elif kind in (KIND_SPOT, KIND_OPTION):
            equity += value
        else:  # pragma: no cover - the book has no other kinds
            raise ValueError(kind)
    return equity


def _worst_scenario_loss(pricing: _Pricing, holdings: list[_Holding], params: RiskParams) -> float:
    """Sum over classes (one per root) of the largest loss over the class's price moves x vol factors."""
    by_root: dict[int, list[_Holding]] = defaultdict(list)
    for h in holdings:
        by_root[int(pricing.ins.root[h.instrument])].append(h)
    total = 0.0
    for root, members in by_root.items():
        worst = 0.0
        for move in price_moves(params, int(pricing.ins.scenario_class[root])):
            for vol_factor in vol_factors(params):
                pnl = 0.0
                for h in members:
                    units = h.quantity * float(pricing.ins.contract_size[h.instrument])
                    pnl += units * (
                        pricing.unit_value(h.instrument, move, vol_factor) - pricing.unit_value(h.instrument)
                    )
                worst = max(worst, -pnl)
        total += worst
    return total


def _first_crossing(f: Callable[[float], float], direction: float, limit: float) -> float:
    """The first root of f walking from 0 towards `limit`: scan by SCAN_STEP for the first x with f(x) <= 0,
    then bisect the step to BISECTION_WIDTH. NaN if f stays > 0 up to `limit`. Needs f(0) > 0."""
    previous = 0.0
    while True:
        x = min(abs(previous) + SCAN_STEP, abs(limit)) * direction
        if f(x) <= 0:
            lo, hi = previous, x  # f(lo) > 0 >= f(hi)
            while abs(hi - lo) > BISECTION_WIDTH:
                mid = 0.5 * (lo + hi)
                if f(mid) <= 0:
                    hi = mid
                else:
                    lo = mid
            return 0.5 * (lo + hi)
        if x == limit:
            return math.nan
        previous = x


def nearest_roots(f: Callable[[float], float]) -> tuple[float, float]:
    """(first root of f on the fall side in [-1, 0), first root on the rise side in (0, 3]), NaN where none."""
    return _first_crossing(f, -1.0, DISTANCE_MIN), _first_crossing(f, 1.0, DISTANCE_MAX)


def refinement_tolerance(f: Callable[[float], float], root: float, cell: tuple[float, float]) -> float:
    """How far from `root` a bracket-and-refine solver may land when it starts from the grid cell `cell`
    (lo < root <= hi, or the mirror image) and refines by regula falsi.

    One secant step across a bracket [a, b] lands at s with |s - r| <= M2 / (2 m1) |s - a| |s - b|
    <= M2 h^2 / (8 m1), h = b - a, M2 = max |f''| and m1 = min |f'| on the cell (the Lagrange remainder
    of linear interpolation divided by the slope). Further regula falsi (Illinois) steps only shrink the
    bracket; that is no theorem for the Illinois-modified steps, but a refinement landing farther than one
    plain secant step would is a regression (measured on random books, the kernel's refined results
    stay within 5% of this bound). M2 and m1 are measured here by finite differences on 200 steps; where f
    is not smooth or not monotone on the cell (an expiring option's kink) the bound falls back to the cell
    width, the only guarantee a bracketing method gives.
    """
    lo, hi = min(cell), max(cell)
    h = hi - lo
    n = 200
    xs = [lo + h * k / n for k in range(n + 1)]
    values = [f(x) for x in xs]
    step = h / n
    slopes = [(values[k + 1] - values[k]) / step for k in range(n)]
    curvatures = [(values[k + 2] - 2 * values[k + 1] + values[k]) / (step * step) for k in range(n - 1)]
    m1 = min(abs(s) for s in slopes)
    m2 = max(abs(c) for c in curvatures)
    if m1 == 0 or (min(slopes) < 0 < max(slopes)):
        return h
    assert math.isfinite(root)
    return min(h, m2 * h * h / (8.0 * m1))


def slope_at(f: Callable[[float], float], x: float, step: float = 1e-6) -> float:
    """|f'(x)| by a central difference (clipped to [-1, 3])."""
    lo, hi = max(x - step, DISTANCE_MIN), min(x + step, DISTANCE_MAX)
    return abs(f(hi) - f(lo)) / (hi - lo)


def account_figures(book: Book, market: Market, params: RiskParams | None = None) -> list[AccountFigures]:
    params = params or RiskParams()
    pricing = _Pricing(book, market)
    ins, positions = book.instruments, book.positions
    cross: dict[int, list[_Holding]] = defaultdict(list)
    isolated: dict[int, list[tuple[_Holding, float]]] = defaultdict(list)
    for p in range(len(positions)):
        holding = _Holding(int(positions.instrument[p]), float(positions.quantity[p]), float(positions.entry_price[p]))
        allocation = float(positions.isolated_margin[p])
        if math.isfinite(allocation):
            isolated[int(positions.account[p])].append((holding, allocation))
        else:
            cross[int(positions.account[p])].append(holding)

    figures = []
    for a in range(len(book.accounts)):
        cash, debt = float(book.accounts.cash[a]), float(book.accounts.debt[a])
        holdings = cross[a]
        magnitude = abs(cash) + abs(debt)
        market_value = collateral = standard_initial = standard_maintenance = 0.0
        for h in holdings:
            i = h.instrument
            units = h.quantity * float(ins.contract_size[i])
            value = units * pricing.unit_value(i)
            market_value += value
            if int(ins.kind[i]) == KIND_SPOT and units > 0:
                collateral += value * (1.0 - float(ins.haircut[i]))
            standard_initial += pricing.requirement(i, h.quantity, float(ins.initial_rate[i]), params)
            standard_maintenance += pricing.requirement(i, h.quantity, float(ins.maintenance_rate[i]), params)
            entry = h.entry_price if math.isfinite(h.entry_price) else 0.0
            strike = float(ins.strike[i]) if int(ins.kind[i]) == KIND_OPTION else 0.0
            magnitude += abs(units) * (abs(pricing.unit_value(i)) + abs(entry) + pricing.notional_unit(i) + strike)
        equity = _equity_at(pricing, cash, debt, holdings, 0.0)
        collateral_value = cash + collateral
        worst = _worst_scenario_loss(pricing, holdings, params)
        if bool(book.accounts.portfolio[a]):
            maintenance, initial = worst, worst * params.portfolio_initial_factor
        else:
            maintenance, initial = standard_maintenance, standard_initial

        isolated_equity, breaches, breaches_ambiguous = 0.0, 0, False
        for h, allocation in isolated[a]:
            i = h.instrument
            units = h.quantity * float(ins.contract_size[i])
            value = units * pricing.unit_value(i)
            market_value += value
            own_equity = allocation + value - units * h.entry_price
            own_maintenance = pricing.requirement(i, h.quantity, float(ins.maintenance_rate[i]), params)
            isolated_equity += max(own_equity, 0.0)
            breaches += own_equity < own_maintenance
            position_magnitude = abs(allocation) + abs(units) * (abs(pricing.unit_value(i)) + abs(h.entry_price))
            magnitude += position_magnitude
            breaches_ambiguous |= abs(own_equity - own_maintenance) <= RELATIVE_ROUNDING * position_magnitude

        def f(
            x: float,
            holdings: list[_Holding] = holdings,
            cash: float = cash,
            debt: float = debt,
            m0: float = maintenance,
        ) -> float:
            return _equity_at(pricing, cash, debt, holdings, x) - m0 * (1.0 + x)

        # Paid in full: no debt, no debit cash, and among the cross holdings only long spot and long options.
        paid_in_full = (
            debt <= 0
            and cash >= 0
            and all(
                h.quantity > 0 and int(ins.kind[h.instrument]) in (KIND_SPOT, KIND_OPTION)
                for h in holdings
                if h.quantity != 0
            )
        )
        if paid_in_full:
            fall = rise = distance = math.nan
        elif equity - maintenance <= 0:
            fall = rise = distance = 0.0
        else:
            fall, rise = nearest_roots(f)
            found = [x for x in (fall, rise) if math.isfinite(x)]
            distance = min(found, key=abs) if found else math.nan

        tolerance = RELATIVE_ROUNDING * magnitude
        ratio = equity / maintenance if maintenance > 0 else math.nan
        if paid_in_full:
            band = BAND_HEALTHY
        elif equity < 0 or (equity <= 0 and maintenance > 0):
            band = BAND_CRITICAL
        elif maintenance > 0 and ratio < 1.0:
            band = BAND_MARGIN_CALL
        elif maintenance > 0 and ratio < params.warning_level:
            band = BAND_WARNING
        else:
            band = BAND_HEALTHY
        band_ambiguous = not paid_in_full and (
            abs(equity) <= tolerance
            or abs(maintenance) <= tolerance
            or abs(equity - maintenance) <= 2 * tolerance
            or abs(equity - params.warning_level * maintenance) <= 3 * tolerance
        )
        figures.append(
            AccountFigures(
                market_value=market_value,
                equity=equity,
                collateral_value=collateral_value,
                initial_requirement=initial,
                maintenance_requirement=maintenance,
                margin_ratio=ratio,
                shortfall_maintenance=max(0.0, maintenance - equity),
                shortfall_initial=max(0.0, initial - equity),
                worst_scenario_loss=worst,
                distance_to_liquidation=distance,
                isolated_equity=isolated_equity,
                isolated_breaches=breaches,
                band=band,
                magnitude=magnitude,
                band_ambiguous=band_ambiguous,
                breaches_ambiguous=breaches_ambiguous,
                headroom_ambiguous=not paid_in_full and abs(equity - maintenance) <= 2 * tolerance,
                range_ambiguous=not paid_in_full
                and (abs(f(DISTANCE_MIN)) <= tolerance or abs(f(DISTANCE_MAX)) <= 4 * tolerance),
                distance_fall=fall,
                distance_rise=rise,
                headroom_at=f,
            )
        )
    return figures
