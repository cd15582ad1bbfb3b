"""The demo book as columns: numpy arrays and lists, one object a table, rows referring to rows by index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
BoolArray: TypeAlias = NDArray[np.bool_]


@dataclass(frozen=True)
class GroupRows:
    code: list[str]
    name: list[str]


@dataclass(frozen=True)
class ClientRows:
    code: list[str]
    name: list[str]
    credit_tier: IntArray  # index into CREDIT_TIERS
    group: IntArray  # row in GroupRows, -1 when the client is in no group
    external_capacity: FloatArray  # USD, cents


@dataclass(frozen=True)
class InstrumentRows:
    symbol: list[str]
    kind: list[str]
    underlying: IntArray  # row in InstrumentRows, -1 when none
    strike: FloatArray  # NaN when none
    expiry: list[datetime | None]
    option_type: list[str]
    contract_size: FloatArray
    initial_rate: FloatArray
    maintenance_rate: FloatArray
    haircut: FloatArray
    scenario_class: list[str]
    average_daily_volume: FloatArray
    daily_volatility: FloatArray
    carry_yield: FloatArray
    ewma_volatility: FloatArray  # NaN for options (no price history of their own)
    stressed_volatility: FloatArray
    asset_class: IntArray  # CLASS_CRYPTO / CLASS_EQUITY / CLASS_INDEX (not stored: it picks the universe)
    price_row: IntArray  # row in PriceRows, -1 for options


@dataclass(frozen=True)
class PriceRows:
    """Daily closes: `price[row, day]` of instrument `instrument[row]` at `time[day]`."""

    time: list[datetime]
    instrument: IntArray
    price: FloatArray
    implied_volatility: FloatArray  # annualised; NaN where none (perpetuals)

    @property
    def count(self) -> int:
        return int(self.price.size)


@dataclass(frozen=True)
class AccountRows:
    code: list[str]
    client: IntArray
    isolated: BoolArray  # mode isolated (else cross)
    portfolio_margin: BoolArray  # margin model portfolio (else standard)
    cash: FloatArray  # USD, cents, >= 0
    archetype: IntArray  # index into ARCHETYPES (not stored)
    margin_ratio_target: FloatArray  # what the calibration aimed at (not stored)


@dataclass(frozen=True)
class LoanRows:
    account: IntArray
    principal: FloatArray  # USD, cents
    rate_annual: FloatArray
    accrued_interest: FloatArray  # USD, cents
    maturity_date: list[date | None]


@dataclass(frozen=True)
class PositionRows:
    account: IntArray
    instrument: IntArray
    quantity: FloatArray
    entry_price: FloatArray
    isolated_margin: FloatArray  # USD, cents; NaN when the position is not isolated


@dataclass(frozen=True)
class DemoBook:
    seed: int
    as_of: datetime
    groups: GroupRows
    clients: ClientRows
    instruments: InstrumentRows
    prices: PriceRows
    accounts: AccountRows
    loans: LoanRows
    positions: PositionRows

    def counts(self) -> dict[str, int]:
        return {
            "groups": len(self.groups.code),
            "clients": len(self.clients.code),
            "instruments": len(self.instruments.symbol),
            "prices": self.prices.count,
            "accounts": len(self.accounts.code),
            "loans": len(self.loans.account),
            "positions": len(self.positions.account),
        }
