"""The rows of a book file and of a prices file: one spec per row, read and checked on its own."""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import count
from pathlib import Path

from django.db import models

from accounts.models import (
    Client,
    ClientGroup,
    CreditTier,
    Instrument,
    InstrumentKind,
    MarginAccount,
    MarginLoan,
    MarginMode,
    MarginModel,
    OptionType,
    Position,
    ScenarioClass,
)
from accounts.services.book_import.readers import (
    _a,
    _at_most_one,
    _column,
    _first_occurrence,
    _json_rows,
    _not_negative,
    _positive,
    _Problems,
    _quantity_in_range,
    _read_json,
    _Row,
    _RowReader,
    _show,
)
from core.errors import ImportFileError

BOOK_SECTIONS = ("groups", "clients", "instruments", "accounts")
GROUP_FIELDS = ("code", "name")
CLIENT_FIELDS = ("code", "name", "credit_tier", "group", "external_capacity")
INSTRUMENT_FIELDS = (
    "symbol",
    "kind",
    "currency",
    "underlying",
    "strike",
    "expiry",
    "option_type",
    "contract_size",
    "initial_rate",
    "maintenance_rate",
    "haircut",
    "scenario_class",
    "average_daily_volume",
    "daily_volatility",
    "carry_yield",
)
ACCOUNT_FIELDS = ("code", "client", "mode", "margin_model", "base_currency", "cash", "loan", "positions")
LOAN_FIELDS = ("principal", "rate_annual", "accrued_interest", "maturity_date")
POSITION_FIELDS = ("instrument", "quantity", "entry_price", "isolated_margin")
POSITION_CSV_COLUMNS = ("account", *POSITION_FIELDS)
PRICE_COLUMNS = ("instrument", "time", "price", "implied_volatility")

# Which kind-specific terms each instrument kind needs (True), may have (None) or must not have (False).
# They mirror the instrument CHECK constraints, plus: no expiry on spot assets and perpetuals.
_TERMS_BY_KIND: dict[str, dict[str, bool | None]] = {
    InstrumentKind.SPOT: {"underlying": False, "strike": False, "expiry": False, "option_type": False},
    InstrumentKind.PERPETUAL: {"underlying": None, "strike": False, "expiry": False, "option_type": False},
    InstrumentKind.FUTURE: {"underlying": None, "strike": False, "expiry": True, "option_type": False},
    InstrumentKind.OPTION: {"underlying": True, "strike": True, "expiry": True, "option_type": True},
}
# Isolated margin caps the loss of one leveraged position; spot assets and options are paid in full.


# --- Rows of the book ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _GroupSpec:
    row: _Row
    code: str
    name: str


@dataclass(frozen=True)
class _ClientSpec:
    row: _Row
    code: str
    name: str
    credit_tier: str
    group: str | None
    external_capacity: Decimal


@dataclass(frozen=True)
class _InstrumentSpec:
    row: _Row
    ok: bool
    symbol: str
    kind: str
    currency: str
    underlying: str | None
    strike: Decimal | None
    expiry: datetime | None
    option_type: str | None
    contract_size: Decimal
    initial_rate: Decimal
    maintenance_rate: Decimal
    haircut: Decimal
    scenario_class: str
    average_daily_volume: Decimal
    daily_volatility: Decimal
    carry_yield: Decimal


@dataclass(frozen=True)
class _LoanSpec:
    principal: Decimal
    rate_annual: Decimal
    accrued_interest: Decimal
    maturity_date: date | None


@dataclass(frozen=True)
class _PositionSpec:
    row: _Row
    account: str
    instrument: str
    quantity: Decimal  # 0: the account holds none of it
    entry_price: Decimal
    isolated_margin: Decimal | None


@dataclass(frozen=True)
class _AccountSpec:
    row: _Row
    ok: bool
    code: str
    client: str
    mode: str
    margin_model: str
    base_currency: str
    cash: Decimal
    loan: _LoanSpec | None  # None: the account's loans stay as they are
    positions: tuple[_PositionSpec, ...] | None  # None: positions stay; a tuple replaces them all


@dataclass(frozen=True)
class _PriceSpec:
    row: _Row
    instrument: str
    time: datetime
    price: Decimal
    implied_volatility: Decimal | None


@dataclass(frozen=True)
class _BookFile:
    groups: list[_GroupSpec]
    clients: list[_ClientSpec]
    instruments: list[_InstrumentSpec]
    accounts: list[_AccountSpec]


def _group_spec(reader: _RowReader, seen: dict[Hashable, int | str]) -> _GroupSpec:
    code = reader.text("code")
    name = reader.text("name")
    if reader.valid("code"):
        _first_occurrence(reader, seen, code, "code", f"group {code!r}")
    return _GroupSpec(reader.row, code, name)


def _client_spec(reader: _RowReader, seen: dict[Hashable, int | str]) -> _ClientSpec:
    code = reader.text("code")
    name = reader.text("name")
    credit_tier = reader.choice("credit_tier", CreditTier, default=CreditTier.B)
    group = reader.optional_text("group", column=_column(ClientGroup, "code"))
    external_capacity = reader.number("external_capacity", checks=(_not_negative,), default=Decimal(0))
    if reader.valid("code"):
        _first_occurrence(reader, seen, code, "code", f"client {code!r}")
    return _ClientSpec(reader.row, code, name, credit_tier, group, external_capacity)


def _instrument_spec(reader: _RowReader, seen: dict[Hashable, int | str]) -> _InstrumentSpec:
    symbol = reader.text("symbol")
    kind = reader.choice("kind", InstrumentKind)
    currency = reader.currency("currency")
    underlying = reader.optional_text("underlying", column=_column(Instrument, "symbol"))
    strike = reader.optional_number("strike", checks=(_positive,))
    expiry = reader.optional_moment("expiry")
    option_type = reader.optional_choice("option_type", OptionType)
    contract_size = reader.number("contract_size", checks=(_positive,), default=Decimal(1))
    initial_rate = reader.number("initial_rate", checks=(_positive, _at_most_one))
    maintenance_rate = reader.number("maintenance_rate", checks=(_positive, _at_most_one))
    haircut = reader.number("haircut", checks=(_not_negative, _at_most_one), default=Decimal(0))
    scenario_class = reader.choice("scenario_class", ScenarioClass, default=ScenarioClass.EQUITY)
    average_daily_volume = reader.number("average_daily_volume", checks=(_not_negative,), default=Decimal(0))
    daily_volatility = reader.number("daily_volatility", checks=(_positive,))
    carry_yield = reader.number("carry_yield", default=Decimal(0))

    if reader.valid("initial_rate", "maintenance_rate") and maintenance_rate > initial_rate:
        reader.problem(
            "maintenance_rate",
            f"{maintenance_rate} is above initial_rate {initial_rate}; need 0 < maintenance_rate <= initial_rate <= 1",
        )
    if reader.valid("kind"):
        for term, needed in _TERMS_BY_KIND[kind].items():
            if needed and not reader.present(term):
                reader.problem(term, f"required for {_a(kind)}")
            elif needed is False and reader.present(term):
                reader.problem(term, f"{_a(kind)} instrument has no {term.replace('_', ' ')}")
    if reader.valid("symbol", "underlying") and underlying == symbol:
        reader.problem("underlying", "an instrument cannot be its own underlying")
    if reader.valid("symbol"):
        _first_occurrence(reader, seen, symbol, "symbol", f"instrument {symbol!r}")
    return _InstrumentSpec(
        row=reader.row,
        ok=reader.ok,
        symbol=symbol,
        kind=kind,
        currency=currency,
        underlying=underlying,
        strike=strike,
        expiry=expiry,
        option_type=option_type,
        contract_size=contract_size,
        initial_rate=initial_rate,
        maintenance_rate=maintenance_rate,
        haircut=haircut,
        scenario_class=scenario_class,
        average_daily_volume=average_daily_volume,
        daily_volatility=daily_volatility,
        carry_yield=carry_yield,
    )


def _account_spec(
    reader: _RowReader, seen: dict[Hashable, int | str], problems: _Problems, ordinals: Iterator[int]
) -> _AccountSpec:
    code = reader.text("code")
    client = reader.text("client", column=_column(Client, "code"))
    mode = reader.choice("mode", MarginMode, default=MarginMode.CROSS)
    margin_model = reader.choice("margin_model", MarginModel, default=MarginModel.STANDARD)
    base_currency = reader.currency("base_currency")
    cash = reader.number("cash", checks=(_not_negative,), default=Decimal(0))
    if reader.valid("code"):
        _first_occurrence(reader, seen, code, "code", f"account {code!r}")
    # The account's own fields are read: whether they are `ok` decides if its positions can be checked
    # against them. Its loan and positions are rows of their own, with their own problems.
    ok = reader.ok
    loan = _account_loan(reader, problems, ordinals)
    positions = _account_positions(reader, problems, ordinals, account=code)
    return _AccountSpec(reader.row, ok, code, client, mode, margin_model, base_currency, cash, loan, positions)


def _account_loan(reader: _RowReader, problems: _Problems, ordinals: Iterator[int]) -> _LoanSpec | None:
    value = reader.row.values.get("loan")
    if value is None:
        return None
    if not isinstance(value, dict):
        reader.problem("loan", f"expected an object or null, got {_show(value)}")
        return None
    row = _Row(next(ordinals), f"{reader.row.label}.loan", value, getattr(value, "duplicate_keys", frozenset()))
    loan = _RowReader(problems, row, MarginLoan, LOAN_FIELDS)
    return _LoanSpec(
        principal=loan.number("principal", checks=(_not_negative,)),
        rate_annual=loan.number("rate_annual", checks=(_not_negative,)),
        accrued_interest=loan.number("accrued_interest", checks=(_not_negative,), default=Decimal(0)),
        maturity_date=loan.optional_date("maturity_date"),
    )


def _account_positions(
    reader: _RowReader, problems: _Problems, ordinals: Iterator[int], *, account: str
) -> tuple[_PositionSpec, ...] | None:
    if "positions" not in reader.row.values:
        return None
    value = reader.row.values["positions"]
    if not isinstance(value, list):
        reader.problem(
            "positions", f"expected a list (leave the key out to keep the positions as they are), got {_show(value)}"
        )
        return None
    seen: dict[Hashable, int | str] = {}
    positions = []
    for row in _json_rows(problems, value, f"{reader.row.label}.positions", ordinals):
        position_reader = _RowReader(problems, row, Position, POSITION_FIELDS)
        position = _position_spec(position_reader, account=account)
        if position_reader.valid("instrument"):
            _first_occurrence(position_reader, seen, position.instrument, "instrument", f"{position.instrument!r}")
        positions.append(position)
    return tuple(positions)


def _position_spec(reader: _RowReader, *, account: str) -> _PositionSpec:
    instrument = reader.text("instrument", column=_column(Instrument, "symbol"))
    quantity = reader.number("quantity", checks=(_quantity_in_range,))
    entry_price = reader.number("entry_price", checks=(_not_negative,), default=Decimal(0))
    isolated_margin = reader.optional_number("isolated_margin", checks=(_not_negative,))
    return _PositionSpec(reader.row, account, instrument, quantity, entry_price, isolated_margin)


def _csv_position_spec(reader: _RowReader, seen: dict[Hashable, int | str]) -> _PositionSpec:
    account = reader.text("account", column=_column(MarginAccount, "code"))
    position = _position_spec(reader, account=account)
    if reader.valid("account", "instrument"):
        key = (account, position.instrument)
        _first_occurrence(reader, seen, key, "instrument", f"position {account}/{position.instrument}")
    return position


def _price_spec(reader: _RowReader, seen: dict[Hashable, int | str]) -> _PriceSpec:
    instrument = reader.text("instrument", column=_column(Instrument, "symbol"))
    time = reader.moment("time")
    price = reader.number("price", checks=(_positive,))
    implied_volatility = reader.optional_number("implied_volatility", checks=(_positive,))
    if reader.valid("instrument", "time"):
        # Aware datetimes compare as instants: 10:00Z and 11:00+01:00 are the same price time.
        _first_occurrence(reader, seen, (instrument, time), "time", f"price of {instrument} at {time.isoformat()}")
    return _PriceSpec(reader.row, instrument, time, price, implied_volatility)


def _book_file(problems: _Problems, path: Path, file: str) -> _BookFile:
    document = _read_json(path, file)
    if not isinstance(document, dict):
        raise ImportFileError(
            file=file,
            problem=f"a book is a JSON object with the sections {', '.join(BOOK_SECTIONS)}; got {_show(document)}",
        )
    unknown = [name for name in document if name not in BOOK_SECTIONS]
    if unknown:
        raise ImportFileError(
            file=file, problem=f"unknown section {unknown[0]!r}; a book has the sections {', '.join(BOOK_SECTIONS)}"
        )
    if twice := sorted(getattr(document, "duplicate_keys", ())):
        raise ImportFileError(file=file, problem=f"section {twice[0]!r} is given twice")
    sections: dict[str, list[object]] = {}
    for name in BOOK_SECTIONS:
        items = document.get(name, [])
        if not isinstance(items, list):
            raise ImportFileError(file=file, problem=f"section {name!r} must be a list, got {_show(items)}")
        sections[name] = items

    ordinals = count()
    seen: dict[str, dict[Hashable, int | str]] = {name: {} for name in BOOK_SECTIONS}

    def rows(section: str) -> Iterator[_Row]:
        return _json_rows(problems, sections[section], section, ordinals)

    def reader(row: _Row, model: type[models.Model], fields: Sequence[str]) -> _RowReader:
        return _RowReader(problems, row, model, fields)

    return _BookFile(
        groups=[_group_spec(reader(row, ClientGroup, GROUP_FIELDS), seen["groups"]) for row in rows("groups")],
        clients=[_client_spec(reader(row, Client, CLIENT_FIELDS), seen["clients"]) for row in rows("clients")],
        instruments=[
            _instrument_spec(reader(row, Instrument, INSTRUMENT_FIELDS), seen["instruments"])
            for row in rows("instruments")
        ],
        accounts=[
            _account_spec(reader(row, MarginAccount, ACCOUNT_FIELDS), seen["accounts"], problems, ordinals)
            for row in rows("accounts")
        ],
    )
