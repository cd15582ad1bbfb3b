"""Read paths of the book. `book_arrays_load` turns the database into the risk kernel's arrays in a handful
of statements (binary COPY on PostgreSQL), never a query per account or position."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings

from accounts import risk
from accounts.models import Instrument, InstrumentKind, MarginAccount, ScenarioClass
from core.bulk import fetch_columns, nan_sql
from core.errors import ValidationError
from core.money import DEFAULT_DECIMALS

SECONDS_PER_YEAR = 365.0 * 86400.0
# Trading days a year by scenario class, to annualise a daily volatility when an underlying has no
# implied volatility quoted (crypto trades every day).
_DAYS_PER_YEAR: dict[str, float] = {ScenarioClass.CRYPTO.value: 365.0}
_DEFAULT_DAYS_PER_YEAR = 252.0


class MissingPriceError(ValidationError):
    code = "missing_price"


@dataclass(frozen=True)
class InstrumentArrays:
    ids: np.ndarray  # database ids, in kernel order
    symbols: list[str]
    instruments: risk.Instruments
    reference_volatility_annual: np.ndarray
    ewma_volatility: np.ndarray
    stressed_volatility: np.ndarray


@dataclass(frozen=True)
class LoadedBook:
    """The book as the kernel sees it, with the database ids to map results back."""

    book: risk.Book
    market: risk.Market
    account_ids: np.ndarray
    account_decimals: np.ndarray  # decimal places of each account's currency
    instrument_ids: np.ndarray
    prices_used: dict[str, list[Any]]  # {instrument id: [price, implied vol, ewma vol, stressed vol]}


def instrument_arrays_load(*, as_of: datetime) -> InstrumentArrays:
    rows = list(
        Instrument.objects.order_by("id").values_list(
            "id",
            "symbol",
            "kind",
            "underlying_id",
            "contract_size",
            "initial_rate",
            "maintenance_rate",
            "haircut",
            "scenario_class",
            "strike",
            "expiry",
            "option_type",
            "carry_yield",
            "daily_volatility",
            "ewma_volatility",
            "stressed_volatility",
        )
    )
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    position = {instrument_id: i for i, instrument_id in enumerate(ids.tolist())}
    kinds = {name: code for code, name in enumerate(risk.KINDS)}
    classes = {name: code for code, name in enumerate(risk.SCENARIO_CLASSES)}

    def as_float(value: Any) -> float:
        return math.nan if value is None else float(value)

    expiry_years = [
        (r[10] - as_of).total_seconds() / SECONDS_PER_YEAR
        if r[10] is not None and r[2] == InstrumentKind.OPTION
        else math.nan
        for r in rows
    ]
    instruments = risk.Instruments(
        kind=np.array([kinds[r[2]] for r in rows], dtype=np.int8),
        root=np.array([position[r[3]] if r[3] is not None else i for i, r in enumerate(rows)], dtype=np.int64),
        contract_size=np.array([float(r[4]) for r in rows]),
        initial_rate=np.array([float(r[5]) for r in rows]),
        maintenance_rate=np.array([float(r[6]) for r in rows]),
        haircut=np.array([float(r[7]) for r in rows]),
        scenario_class=np.array([classes[r[8]] for r in rows], dtype=np.int8),
        strike=np.array([as_float(r[9]) for r in rows]),
        expiry_years=np.array(expiry_years),
        is_call=np.array([r[11] == "call" for r in rows], dtype=np.bool_),
        carry_yield=np.array([float(r[12]) for r in rows]),
        reference_volatility=np.array([float(r[13]) for r in rows]),
    )
    annualise = np.sqrt([_DAYS_PER_YEAR.get(r[8], _DEFAULT_DAYS_PER_YEAR) for r in rows])
    return InstrumentArrays(
        ids=ids,
        symbols=[r[1] for r in rows],
        instruments=instruments,
        reference_volatility_annual=instruments.reference_volatility * annualise,
        ewma_volatility=np.array([as_float(r[14]) for r in rows]),
        stressed_volatility=np.array([as_float(r[15]) for r in rows]),
    )


def latest_prices_load(*, instrument_ids: np.ndarray, as_of: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Latest price and implied volatility at or before `as_of` per instrument (NaN where none).

    One index probe per instrument (price_latest_idx), so the cost follows the number of instruments, not
    the length of the price history."""
    latest = (
        "SELECT {column} FROM accounts_price p WHERE p.instrument_id = i.id AND p.time <= %s"
        " ORDER BY p.time DESC LIMIT 1"
    )
    ids, price, implied = fetch_columns(
        f"""
        SELECT i.id, CAST(({latest.format(column="price")}) AS float8),
               CAST(({latest.format(column="implied_volatility")}) AS float8)
        FROM accounts_instrument i ORDER BY i.id
        """,
        [as_of, as_of],
        ["int8", "float8", "float8"],
    )
    asked = np.isin(ids, instrument_ids)  # the query reads every instrument; keep those asked for
    index = np.searchsorted(instrument_ids, ids[asked])
    prices = np.full(len(instrument_ids), np.nan)
    implied_vols = np.full(len(instrument_ids), np.nan)
    prices[index] = price[asked]
    implied_vols[index] = implied[asked]
    return prices, implied_vols


def book_arrays_load(
    *, as_of: datetime, account_id_range: tuple[int, int] | None = None, risk_free_rate: float | None = None
) -> LoadedBook:
    """Load the accounts (optionally those with lo <= id < hi), their positions and active loans, the
    instruments and the latest prices at `as_of`, as kernel arrays.

    An underlying of a held option without a quoted implied volatility is priced at its reference daily
    volatility annualised (365 days for crypto, 252 otherwise); `prices_used` records which was used.
    """
    lo, hi = account_id_range or (0, 2**62)
    instrument_data = instrument_arrays_load(as_of=as_of)
    instrument_ids = instrument_data.ids

    account_ids, cash, debt, portfolio, decimals = fetch_columns(
        f"""
        SELECT a.id, a.cash_float, COALESCE(l.debt_float, 0),
               a.margin_model = 'portfolio', CAST({_currency_decimals_sql("a.base_currency")} AS int2)
        FROM accounts_marginaccount a
        LEFT JOIN accounts_marginloan l ON l.account_id = a.id AND l.status = 'active'
        WHERE a.id >= %s AND a.id < %s ORDER BY a.id
        """,
        [lo, hi],
        ["int8", "float8", "float8", "bool", "int2"],
    )
    # The float copies (Position.quantity_float, ...) are the Decimal columns as PostgreSQL keeps them in
    # float8: the same values the kernel would get by casting, without the cast's cost at every sweep.
    position_account, position_instrument, quantity, entry_price, isolated_margin = fetch_columns(
        f"""
        SELECT account_id, instrument_id, quantity_float, entry_price_float,
               COALESCE(isolated_margin_float, {nan_sql()})
        FROM accounts_position WHERE account_id >= %s AND account_id < %s AND quantity_float <> 0
        """,
        [lo, hi],
        ["int8", "int8", "float8", "float8", "float8"],
    )
    price, implied = latest_prices_load(instrument_ids=instrument_ids, as_of=as_of)

    book = risk.Book(
        accounts=risk.Accounts(cash=cash, debt=debt, portfolio=portfolio.astype(np.bool_)),
        instruments=instrument_data.instruments,
        positions=risk.Positions(
            account=np.searchsorted(account_ids, position_account.astype(np.int64)),
            instrument=np.searchsorted(instrument_ids, position_instrument.astype(np.int64)),
            quantity=quantity,
            entry_price=entry_price,
            isolated_margin=np.where(np.isfinite(isolated_margin), isolated_margin, np.nan),
        ),
    )
    _require_prices(book, price, instrument_data, as_of)
    implied = np.where(np.isfinite(implied), implied, instrument_data.reference_volatility_annual)
    market = risk.Market(
        price=price,
        implied_volatility=implied,
        ewma_volatility=instrument_data.ewma_volatility,
        stressed_volatility=instrument_data.stressed_volatility,
        risk_free_rate=settings.WORKOUT_RISK_FREE_RATE if risk_free_rate is None else risk_free_rate,
    )
    held = risk.present(book.positions.instrument, len(instrument_ids))
    held = np.union1d(held, book.instruments.root[held])
    prices_used = {
        str(int(instrument_ids[i])): [
            _json_float(price[i]),
            _json_float(implied[i]),
            _json_float(instrument_data.ewma_volatility[i]),
            _json_float(instrument_data.stressed_volatility[i]),
        ]
        for i in held.tolist()
    }
    return LoadedBook(
        book=book,
        market=market,
        account_ids=account_ids.astype(np.int64),
        account_decimals=decimals,
        instrument_ids=instrument_ids,
        prices_used=prices_used,
    )


def _currency_decimals_sql(column: str) -> str:
    cases = " ".join(
        f"WHEN '{currency}' THEN {int(places)}" for currency, places in settings.WORKOUT_CURRENCY_DECIMALS.items()
    )
    return f"CASE {column} {cases} ELSE {DEFAULT_DECIMALS} END"


def _require_prices(book: risk.Book, price: np.ndarray, instruments: InstrumentArrays, as_of: datetime) -> None:
    held = risk.present(book.positions.instrument, len(book.instruments))
    needed = np.unique(
        np.concatenate([held[book.instruments.kind[held] != risk.KIND_OPTION], book.instruments.root[held]])
    )
    missing = needed[~(price[needed] > 0)]
    if len(missing):
        symbols = ", ".join(instruments.symbols[i] for i in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise MissingPriceError(f"no price at or before {as_of.isoformat()} for held instruments: {symbols}{more}")


def _json_float(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def account_id_bounds(*, shards: int) -> list[tuple[int, int]]:
    """Account id ranges [lo, hi) splitting the book into `shards` parts of about equal account counts."""
    (ids,) = fetch_columns(f"SELECT id FROM {MarginAccount._meta.db_table} ORDER BY id", [], ["int8"])
    if not len(ids):
        return [(0, 1)]
    cuts = ids[np.linspace(0, len(ids), shards + 1).astype(int)[1:-1]].tolist()
    edges = [0, *cuts, int(ids[-1]) + 1]
    return [(lo, hi) for lo, hi in itertools.pairwise(edges) if lo < hi]
