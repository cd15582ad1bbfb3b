"""Hypothesis strategies: small random books (a few instruments, options on a couple of roots, several
accounts, cross and isolated positions, standard and portfolio accounts) and their markets.

Instruments, by index: 0 and 1 spot underlyings, 2 a perpetual on 0 (its own price, a small basis away),
3 a future that is its own root, 4.. options on 0, 1 or 3. Isolated positions are linear (spot, perpetual,
future), as exchanges offer them; stressed volatilities are at least the EWMA ones (as
`risk.ewma_volatility` produces them) or both unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import strategies as st

from accounts import risk
from accounts.risk import KIND_FUTURE, KIND_OPTION, KIND_PERPETUAL, KIND_SPOT

from . import builders
from .builders import Account, Instrument, Position

SPOT_A, SPOT_B, PERPETUAL_A, FUTURE = 0, 1, 2, 3
OPTION_ROOTS = (SPOT_A, SPOT_B, FUTURE)
LINEAR = (SPOT_A, SPOT_B, PERPETUAL_A, FUTURE)


@dataclass(frozen=True)
class Case:
    book: risk.Book
    market: risk.Market
    params: risk.RiskParams


def _unit(draw: st.DrawFn, lo: float, hi: float) -> float:
    return draw(st.floats(lo, hi, allow_nan=False, allow_infinity=False))


@st.composite
def instruments_and_market(draw: st.DrawFn, *, max_options: int = 3) -> tuple[list[Instrument], risk.Market]:
    classes = st.integers(0, len(risk.SCENARIO_CLASSES) - 1)
    rows: list[Instrument] = []
    for index, kind in ((SPOT_A, KIND_SPOT), (SPOT_B, KIND_SPOT), (PERPETUAL_A, KIND_PERPETUAL), (FUTURE, KIND_FUTURE)):
        maintenance = _unit(draw, 0.02, 0.3)
        rows.append(
            Instrument(
                kind=kind,
                root=SPOT_A if index == PERPETUAL_A else index,
                contract_size=draw(st.sampled_from([1.0, 0.1, 10.0])),
                initial_rate=maintenance * _unit(draw, 1.0, 2.0),
                maintenance_rate=maintenance,
                haircut=_unit(draw, 0.0, 0.5) if kind == KIND_SPOT else 0.0,
                scenario_class=draw(classes),
                carry_yield=_unit(draw, 0.0, 0.05),
                reference_volatility=_unit(draw, 0.005, 0.04),
            )
        )
    price = [_unit(draw, 5.0, 500.0), _unit(draw, 5.0, 500.0), 0.0, _unit(draw, 5.0, 500.0)]
    price[PERPETUAL_A] = price[SPOT_A] * (1.0 + _unit(draw, -0.03, 0.03))
    for _ in range(draw(st.integers(1, max_options))):
        root = draw(st.sampled_from(OPTION_ROOTS))
        maintenance = _unit(draw, 0.05, 0.3)
        rows.append(
            Instrument(
                kind=KIND_OPTION,
                root=root,
                contract_size=draw(st.sampled_from([1.0, 10.0, 100.0])),
                initial_rate=maintenance * _unit(draw, 1.0, 2.0),
                maintenance_rate=maintenance,
                scenario_class=rows[root].scenario_class,
                strike=price[root] * _unit(draw, 0.7, 1.3),
                expiry_years=draw(st.one_of(st.sampled_from([0.0, 1 / 365, 30 / 365, 2.0]), st.floats(0.02, 2.0))),
                is_call=draw(st.booleans()),
            )
        )
        price.append(math.nan)  # an option's own price entry is not used
    n = len(rows)
    implied = [_unit(draw, 0.05, 1.5) for _ in range(n)]
    ewma, stressed = [], []
    for _ in range(n):
        if draw(st.booleans()):
            sigma = _unit(draw, 0.001, 0.06)
            ewma.append(sigma)
            stressed.append(sigma + _unit(draw, 0.0, 0.05))
        else:
            ewma.append(math.nan)
            stressed.append(math.nan)
    market = builders.market(price, implied, ewma, stressed, risk_free_rate=_unit(draw, 0.0, 0.08))
    return rows, market


@st.composite
def positions_for(
    draw: st.DrawFn, instrument_rows: list[Instrument], market: risk.Market, n_accounts: int, max_positions: int
) -> list[Position]:
    rows = []
    for _ in range(draw(st.integers(0, max_positions))):
        instrument = draw(st.integers(0, len(instrument_rows) - 1))
        quantity = _unit(draw, 0.01, 40.0) * draw(st.sampled_from([1.0, -1.0]))
        kind = instrument_rows[instrument].kind
        entry = math.nan
        allocation = math.nan
        if kind != KIND_OPTION:
            price = float(market.price[instrument])
            entry = price * _unit(draw, 0.5, 1.5)
            if draw(st.booleans()):
                notional = abs(quantity) * instrument_rows[instrument].contract_size * price
                allocation = notional * _unit(draw, 0.0, 0.5)
        rows.append(Position(draw(st.integers(0, n_accounts - 1)), instrument, quantity, entry, allocation))
    return rows


@st.composite
def risk_params(draw: st.DrawFn) -> risk.RiskParams:
    ranges = tuple((-_unit(draw, 0.01, 0.3), _unit(draw, 0.01, 0.3)) for _ in range(len(risk.SCENARIO_CLASSES)))
    grid = risk.ScenarioGrid(
        ranges=ranges,
        steps_per_side=draw(st.integers(1, 5)),
        vol_shift_up=_unit(draw, 0.0, 0.5),
        vol_shift_down=_unit(draw, 0.0, 0.5),
    )
    return risk.RiskParams(
        warning_level=_unit(draw, 1.0, 2.0),
        portfolio_initial_factor=_unit(draw, 1.0, 2.0),
        grid=grid,
        dynamic_margin=draw(st.booleans()),
        stress_weight=_unit(draw, 0.25, 1.0),
    )


@st.composite
def cases(draw: st.DrawFn, *, max_accounts: int = 5, max_positions: int = 10, random_params: bool = True) -> Case:
    instrument_rows, market = draw(instruments_and_market())
    n_accounts = draw(st.integers(1, max_accounts))
    accounts = [
        Account(
            cash=_unit(draw, 0.0, 50_000.0),
            debt=draw(st.one_of(st.just(0.0), st.floats(0.0, 50_000.0))),
            portfolio=draw(st.booleans()),
        )
        for _ in range(n_accounts)
    ]
    position_rows = draw(positions_for(instrument_rows, market, n_accounts, max_positions))
    params = draw(risk_params()) if random_params else risk.RiskParams()
    return Case(builders.book(instrument_rows, accounts, position_rows), market, params)
