"""Small constructors for the kernel's input arrays, so a test can write its book as a list of rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accounts import risk

NAN = math.nan
EQUITY, BROAD_INDEX, INDEX, CRYPTO = range(4)  # positions in risk.SCENARIO_CLASSES


@dataclass(frozen=True)
class Instrument:
    kind: int
    root: int
    contract_size: float = 1.0
    initial_rate: float = 0.0
    maintenance_rate: float = 0.0
    haircut: float = 0.0
    scenario_class: int = EQUITY
    strike: float = NAN
    expiry_years: float = NAN
    is_call: bool = False
    carry_yield: float = 0.0
    reference_volatility: float = NAN


@dataclass(frozen=True)
class Account:
    cash: float = 0.0
    debt: float = 0.0
    portfolio: bool = False


@dataclass(frozen=True)
class Position:
    account: int
    instrument: int
    quantity: float
    entry_price: float = NAN
    isolated_margin: float = NAN  # NaN: a cross position


def instruments(rows: Sequence[Instrument]) -> risk.Instruments:
    return risk.Instruments(
        kind=np.array([r.kind for r in rows], dtype=np.int8),
        root=np.array([r.root for r in rows], dtype=np.int64),
        contract_size=np.array([r.contract_size for r in rows], dtype=np.float64),
        initial_rate=np.array([r.initial_rate for r in rows], dtype=np.float64),
        maintenance_rate=np.array([r.maintenance_rate for r in rows], dtype=np.float64),
        haircut=np.array([r.haircut for r in rows], dtype=np.float64),
        scenario_class=np.array([r.scenario_class for r in rows], dtype=np.int8),
        strike=np.array([r.strike for r in rows], dtype=np.float64),
        expiry_years=np.array([r.expiry_years for r in rows], dtype=np.float64),
        is_call=np.array([r.is_call for r in rows], dtype=np.bool_),
        carry_yield=np.array([r.carry_yield for r in rows], dtype=np.float64),
        reference_volatility=np.array([r.reference_volatility for r in rows], dtype=np.float64),
    )


def book(
    instrument_rows: Sequence[Instrument], account_rows: Sequence[Account], position_rows: Sequence[Position]
) -> risk.Book:
    return risk.Book(
        accounts=risk.Accounts(
            cash=np.array([a.cash for a in account_rows], dtype=np.float64),
            debt=np.array([a.debt for a in account_rows], dtype=np.float64),
            portfolio=np.array([a.portfolio for a in account_rows], dtype=np.bool_),
        ),
        instruments=instruments(instrument_rows),
        positions=risk.Positions(
            account=np.array([p.account for p in position_rows], dtype=np.int64),
            instrument=np.array([p.instrument for p in position_rows], dtype=np.int64),
            quantity=np.array([p.quantity for p in position_rows], dtype=np.float64),
            entry_price=np.array([p.entry_price for p in position_rows], dtype=np.float64),
            isolated_margin=np.array([p.isolated_margin for p in position_rows], dtype=np.float64),
        ),
    )


def market(
    price: Sequence[float],
    implied_volatility: Sequence[float] | None = None,
    ewma_volatility: Sequence[float] | None = None,
    stressed_volatility: Sequence[float] | None = None,
    risk_free_rate: float = 0.0,
) -> risk.Market:
    n = len(price)

    def column(values: Sequence[float] | None) -> np.ndarray:
        return np.full(n, np.nan) if values is None else np.array(values, dtype=np.float64)

    return risk.Market(
        price=np.array(price, dtype=np.float64),
        implied_volatility=column(implied_volatility),
        ewma_volatility=column(ewma_volatility),
        stressed_volatility=column(stressed_volatility),
        risk_free_rate=risk_free_rate,
    )
