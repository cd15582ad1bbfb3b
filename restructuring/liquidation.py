"""Liquidation plan of one margin account: how its positions are closed day by day under a participation cap,
and what the fills are expected to bring after market impact.

Pure numpy: dataclasses in, a frozen plan out, no Django, so it can be property-tested and reused by the
feasibility and cascade engines. The service at the boundary converts Decimal to float64 going in (quantity
already multiplied by the contract size) and quantizes back to Decimal coming out; it should allocate the
quantization of a holding's slices so that they still sum to the position (docs/domain.md, "Repayment schedules").

Rules (docs/domain.md, "Liquidation cost: market impact"):
- Participation cap. A holding of signed quantity q, average daily volume V, is closed in daily slices of at
  most p * V units (p = `participation`, 10% by default); the last slice takes the remainder, so a holding
  needs ceil(|q| / (p V)) trading days. A holding needing more than `max_days` is refused, as is one with no
  volume (it cannot be sold at all).
- Exact slices. The slices of a holding sum exactly to q, whatever the order or method of summation (a
  running sum, its reverse, numpy's pairwise sum, math.fsum). The daily slice is p V rounded down to a
  multiple of the unit in the last place of |q| (less than n x 2.2e-16 of the slice over n days: 7e-15 at
  30 days), the remainder is |q| minus the full slices, computed exactly by subtraction; every
  slice and every partial sum is then a multiple of that unit no larger than |q|, hence exactly
  representable, and no addition can round.
- Float dust. A ratio |q| / (p V) within 1e-9 of a day above a whole number is taken as that whole number:
  the last slice absorbs the dust (exceeding p V by at most 1e-9 of it) rather than trading it on a day of its
  own. Without this, 0.9 units at p V = 0.1 x 0.3 = 0.03 (0.9 / 0.03 = 30.000000000000004 in floats) would
  need 31 days and be refused at the default max_days of 30.
- Square-root impact (Almgren, Thum, Hauptmann and Li, "Direct estimation of equity market impact", Risk
  2005; Toth et al., "Anomalous price impact and the critical nature of liquidity in financial markets",
  Phys. Rev. X 2011): trading Q units costs about Y * sigma * sqrt(Q / V) of the notional, sigma the daily
  volatility of returns, Y of order 0.5 to 1 (`impact_coefficient`, 0.7 by default). Each day is a new
  trading session and impact is not carried over between days, so day d's slice q_d moves its own fill by
  the fraction f_d = Y * sigma * sqrt(|q_d| / V):
      sale      expected price = price * (1 - f_d), floored at 0 (f_d capped at 1)
      buy-back  expected price = price * (1 + f_d)
      impact cost = |q_d| * price * f_d (the adverse difference to the current price), for a sale capped at
      the slice's notional, so that for a sale expected proceeds + impact cost = notional.
  Expected proceeds are q_d * expected price: positive for sales, negative (cash paid) for buy-backs. The
  price is the current one on every day (no drift): price risk over the horizon is the feasibility engine's
  Monte Carlo, not this plan's.
- Order within a day: buy-backs of shorts first (they remove risk), then sales by increasing impact cost per
  unit of notional (f_d, capped for sales: the most liquid first); buy-backs among themselves by the same
  key; ties by symbol, then position id, so the plan is deterministic. Slices are listed by day, then by this
  order.

What this plan does not model. Sellers of the same asset at the same time share the impact (their quantities
add before the square root): a holding list with a symbol twice is refused (one account holds one position per
instrument, and two slices of one symbol a day would together exceed the participation cap); other accounts
liquidated at the same time (docs/domain.md, "Liquidation cascades") are the cascade engine's to add. Reading the
square-root law per day with no carry-over is the optimistic side of it: part of the impact is permanent
(Almgren et al. 2005), so later days start from a lower price than assumed here. The plan closes every
position in full; partial liquidations to a target health factor (Aave's close factor, Maker's per-collateral
auction limits, docs/domain.md "Reference liquidation engines") are decided before, by choosing the holdings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MODEL_VERSION = "liquidation-1.0"

Float = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

# A ratio |q| / (p V) at most this far above a whole number of days is that whole number (float dust; see the
# module docstring). Far above the rounding of one division, far below anything a trader would see.
_DAYS_DUST = 1e-9
# How many offending holdings an error message names.
_NAMED = 5


@dataclass(frozen=True)
class Holding:
    """One position to close. `quantity` is signed units (contract size applied): > 0 is sold, < 0 bought back."""

    position_id: int
    symbol: str
    quantity: float
    price: float  # current price per unit, > 0
    daily_volume: float  # average daily volume in units; 0 or less: cannot be sold
    daily_volatility: float  # of returns, > 0
    haircut: float = 0.0  # informative only


@dataclass(frozen=True)
class PlanParams:
    participation: float = 0.10  # at most this fraction of the daily volume per day, in (0, 1]
    impact_coefficient: float = 0.7  # Y in Y * sigma * sqrt(Q / V), >= 0
    max_days: int = 30

    def __post_init__(self) -> None:
        if not (math.isfinite(self.participation) and 0 < self.participation <= 1):
            raise ValueError(f"participation {self.participation}: must be in (0, 1]")
        if not (math.isfinite(self.impact_coefficient) and self.impact_coefficient >= 0):
            raise ValueError(f"impact_coefficient {self.impact_coefficient}: must be finite and >= 0")
        if isinstance(self.max_days, bool) or not isinstance(self.max_days, int) or self.max_days < 1:
            raise ValueError(f"max_days {self.max_days!r}: must be an integer >= 1")


@dataclass(frozen=True)
class Slice:
    position_id: int
    symbol: str
    day: int  # 0-based trading day
    quantity: float  # signed units traded that day, same sign as the holding's quantity
    expected_price: float  # expected average fill price of the day's slice
    expected_proceeds: float  # quantity * expected_price: > 0 for sales, < 0 for buy-backs
    impact_cost: float  # >= 0, in money


@dataclass(frozen=True)
class LiquidationPlan:
    slices: tuple[Slice, ...]  # by day, then buy-backs, then sales by impact per unit of notional, symbol, id
    days: int
    expected_proceeds: float  # sum of the slices' (math.fsum: correctly rounded, independent of their order)
    impact_cost: float  # sum of the slices'
    model_version: str
    params: PlanParams


@dataclass(frozen=True)
class _Columns:
    """The holdings as arrays, one entry per holding, in input order."""

    position_id: Int
    symbol: list[str]
    quantity: Float
    price: Float
    daily_volume: Float
    daily_volatility: Float

    @classmethod
    def of(cls, holdings: Sequence[Holding]) -> _Columns:
        def column(name: str) -> Float:
            return np.array([getattr(h, name) for h in holdings], dtype=np.float64)

        return cls(
            position_id=np.array([h.position_id for h in holdings], dtype=np.int64),
            symbol=[h.symbol for h in holdings],
            quantity=column("quantity"),
            price=column("price"),
            daily_volume=column("daily_volume"),
            daily_volatility=column("daily_volatility"),
        )

    def named(self, bad: Bool, detail: Callable[[int], str] = lambda i: "") -> str:
        """The first few holdings where `bad` holds: 'SYMBOL (position 12)<detail of holding i>, ...'."""
        where = np.flatnonzero(bad)
        names = [f"{self.symbol[i]} (position {int(self.position_id[i])}){detail(i)}" for i in where[:_NAMED].tolist()]
        more = f" and {len(where) - _NAMED} more" if len(where) > _NAMED else ""
        return ", ".join(names) + more


def _value(values: Float) -> Callable[[int], str]:
    return lambda i: f" is {float(values[i])!r}"


def _check(columns: _Columns) -> None:
    for name in ("quantity", "price", "daily_volume", "daily_volatility"):
        values: Float = getattr(columns, name)
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"{name} must be finite: {columns.named(bad, _value(values))}")
    if (bad := columns.daily_volume <= 0).any():
        raise ValueError(f"cannot be sold, no daily volume: {columns.named(bad, _value(columns.daily_volume))}")
    for name in ("price", "daily_volatility"):
        values = getattr(columns, name)
        if (bad := values <= 0).any():
            raise ValueError(f"{name} must be > 0: {columns.named(bad, _value(values))}")
    # One account holds one position per instrument; two holdings of one symbol would each take the whole
    # participation cap and be priced as if the other were not selling (docs/domain.md: their quantities add).
    for name, keys in (("symbol", columns.symbol), ("position_id", columns.position_id.tolist())):
        _, first, counts = np.unique(np.asarray(keys), return_index=True, return_counts=True)
        if (counts > 1).any():
            repeated = np.zeros(len(keys), dtype=np.bool_)
            repeated[first[counts > 1]] = True
            raise ValueError(f"{name} given more than once: {columns.named(repeated)}")


def _days_and_slices(columns: _Columns, params: PlanParams) -> tuple[Int, Float, Float]:
    """Per holding: trading days n, full daily slice and last slice (both >= 0, in units of |q|).

    With u the unit in the last place of |q|, |q| = M u and the full slice s = m u, m = floor(p V / u), for
    integers M, m < 2**53; the last slice is (M - (n - 1) m) u, computed in integers, so it is exact.
    """
    size = np.abs(columns.quantity)
    cap = params.participation * columns.daily_volume
    with np.errstate(divide="ignore", over="ignore"):  # a denormal cap: infinitely many days, refused below
        ratio = size / cap
    needed = np.where(size > 0, np.maximum(np.ceil(ratio - _DAYS_DUST), 1.0), 0.0)
    if (too_long := needed > params.max_days).any():
        raise ValueError(
            f"cannot be closed within max_days={params.max_days} at participation {params.participation:g}, "
            f"{columns.named(too_long, lambda i: f' needs {needed[i]:.0f} days')}"
        )
    days = needed.astype(np.int64)
    several = days > 1
    ulp = np.spacing(np.where(several, size, 1.0))  # several days implies cap < |q|: m <= M below
    units_total = (np.where(several, size, 0.0) / ulp).astype(np.int64)  # exact: a power-of-two scaling
    units_full = np.floor(np.where(several, cap, 0.0) / ulp).astype(np.int64)
    units_last = units_total - (days - 1) * units_full
    # The ratio is a rounded float: should it have overstated the days by one, fold the empty day back.
    empty = several & (units_last <= 0)
    days = np.where(empty, days - 1, days)
    units_last = np.where(empty, units_last + units_full, units_last)
    several = days > 1
    full = np.where(several, units_full * ulp, size)
    last = np.where(several, units_last * ulp, size)
    return days, full, last


def liquidation_plan(holdings: Sequence[Holding], params: PlanParams | None = None) -> LiquidationPlan:
    """Plan the liquidation of one account's holdings and value its expected fills (rules: module docstring).

    Raises ValueError naming the holdings at fault for a non-finite or non-positive price, volume or
    volatility, a non-finite quantity, a symbol or position id given twice, or a holding that needs more than
    `params.max_days` days.
    """
    params = params if params is not None else PlanParams()
    columns = _Columns.of(tuple(holdings))
    _check(columns)
    days, full, last = _days_and_slices(columns, params)
    if not days.any():
        return LiquidationPlan(
            slices=(), days=0, expected_proceeds=0.0, impact_cost=0.0, model_version=MODEL_VERSION, params=params
        )

    # One row per (holding, day): `holding` indexes the columns, `day` counts from 0 within the holding.
    holding = np.repeat(np.arange(len(days)), days)
    first_row = np.cumsum(days) - days
    day = np.arange(len(holding)) - first_row[holding]
    size = np.where(day == days[holding] - 1, last[holding], full[holding])
    sale = columns.quantity[holding] > 0
    quantity = np.where(sale, size, -size)

    price = columns.price[holding]
    fraction = (
        params.impact_coefficient * columns.daily_volatility[holding] * np.sqrt(size / columns.daily_volume[holding])
    )
    fraction = np.where(sale, np.minimum(fraction, 1.0), fraction)  # a sale cannot fill below 0
    expected_price = np.where(sale, price * (1.0 - fraction), price * (1.0 + fraction))
    expected_proceeds = quantity * expected_price
    impact_cost = size * price * fraction

    _, symbol_rank = np.unique(np.asarray(columns.symbol), return_inverse=True)
    # np.lexsort sorts by its last key first.
    order = np.lexsort(
        (columns.position_id[holding], symbol_rank[holding], fraction, sale, day),
    )
    rows = zip(
        columns.position_id[holding][order].tolist(),
        holding[order].tolist(),
        day[order].tolist(),
        quantity[order].tolist(),
        expected_price[order].tolist(),
        expected_proceeds[order].tolist(),
        impact_cost[order].tolist(),
        strict=True,
    )
    slices = tuple(
        Slice(
            position_id=position_id,
            symbol=columns.symbol[h],
            day=d,
            quantity=q,
            expected_price=p,
            expected_proceeds=proceeds,
            impact_cost=cost,
        )
        for position_id, h, d, q, p, proceeds, cost in rows
    )
    return LiquidationPlan(
        slices=slices,
        days=int(days.max()),
        expected_proceeds=math.fsum(expected_proceeds.tolist()),
        impact_cost=math.fsum(impact_cost.tolist()),
        model_version=MODEL_VERSION,
        params=params,
    )
