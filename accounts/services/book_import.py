"""Import of the book (groups, clients, instruments, accounts, loans, positions) and of prices.

The formats are documented in docs/import-formats.md. A file is applied whole or not at all: every row
is read and checked first, every problem found is reported at once (an operator fixing a file wants the
whole list, not one problem per run), and only a clean file is written, in one transaction. What the
book already holds is looked up by natural key in a few queries and the writes are bulk upserts, so the
number of queries does not grow with the number of rows (beyond SQLite's batching of parameters).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, models, transaction

from accounts.models import (
    Client,
    ClientGroup,
    CreditTier,
    Instrument,
    InstrumentKind,
    LoanStatus,
    MarginAccount,
    MarginLoan,
    MarginMode,
    MarginModel,
    OptionType,
    Position,
    Price,
    ScenarioClass,
)
from accounts.tasks import instrument_volatility_refresh_task
from core.amounts import AmountError, parse_decimal, shown
from core.dispatch import dispatch_on_commit
from core.errors import ImportFileError, ImportRowError
from core.jsonparse import JsonInputError
from core.jsonparse import loads as json_loads

_T = TypeVar("_T")
_M = TypeVar("_M", bound=models.Model)

MAX_REPORTED_PROBLEMS = 50
# A JSON number longer than this is refused as the file is read (the longest a column holds is 29 characters).
_MAX_NUMBER_CHARS = 100
MAX_QUANTITY = Decimal(10) ** 15

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
_ISOLATED_KINDS = (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)
_CURRENCY_CODE = re.compile(r"[A-Z][A-Z0-9]{1,7}")
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # placeholder for a bad time; the row is never written


# --- Result -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EntityCounts:
    created: int = 0
    # Rows that were already in the book and were rewritten from the file, changed or not.
    updated: int = 0
    deleted: int = 0


@dataclass(frozen=True)
class ImportResult:
    file: str
    groups: EntityCounts = EntityCounts()
    clients: EntityCounts = EntityCounts()
    instruments: EntityCounts = EntityCounts()
    accounts: EntityCounts = EntityCounts()
    loans: EntityCounts = EntityCounts()
    positions: EntityCounts = EntityCounts()
    prices: EntityCounts = EntityCounts()
    # Prices import: the instruments that got at least one price (their volatility state is now stale).
    priced_instrument_ids: frozenset[int] = frozenset()

    def counts(self) -> dict[str, EntityCounts]:
        """The counts of every entity the import touched, in book order."""
        by_entity = {
            "groups": self.groups,
            "clients": self.clients,
            "instruments": self.instruments,
            "accounts": self.accounts,
            "loans": self.loans,
            "positions": self.positions,
            "prices": self.prices,
        }
        return {name: counts for name, counts in by_entity.items() if counts != EntityCounts()}


# --- Services -----------------------------------------------------------------------------------------


@transaction.atomic
def book_import(*, path: Path) -> ImportResult:
    """Import a whole book (.json) or positions only (.csv). All or nothing: raises ImportFileError,
    listing every bad row, and writes nothing when any row is bad."""
    file = str(path)
    suffix = path.suffix.lower()
    if suffix == ".json":
        return _book_json_import(path, file)
    if suffix == ".csv":
        return _positions_csv_import(path, file)
    raise ImportFileError(
        file=file, problem=f"unsupported file type {path.suffix!r}: give a .json book or a .csv of positions"
    )


@transaction.atomic
def prices_import(*, path: Path) -> ImportResult:
    """Import prices (.csv or .json), upserting on (instrument, time). All or nothing, as book_import."""
    file = str(path)
    problems = _Problems(file)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(problems, path, file, PRICE_COLUMNS)
    elif suffix == ".json":
        rows = _json_list_rows(problems, path, file)
    else:
        raise ImportFileError(file=file, problem=f"unsupported file type {path.suffix!r}: give a .csv or .json file")

    seen: dict[Hashable, int | str] = {}
    prices = [_price_spec(_RowReader(problems, row, Price, PRICE_COLUMNS), seen) for row in rows]
    instrument_ids = {
        symbol: instrument.pk
        for symbol, instrument in Instrument.objects.only("pk", "symbol")
        .in_bulk({price.instrument for price in prices if price.instrument}, field_name="symbol")
        .items()
    }
    for price in prices:
        if price.instrument and price.instrument not in instrument_ids:
            problems.add(price.row, "instrument", _unknown("instrument", price.instrument))
    problems.raise_if_any()
    priced = frozenset(instrument_ids[price.instrument] for price in prices)
    with transaction.atomic():
        result = ImportResult(file=file, prices=_upsert_prices(prices, instrument_ids), priced_instrument_ids=priced)
        # Dynamic margin reads each instrument's EWMA volatility: recompute it from the new closes.
        dispatch_on_commit(
            instrument_volatility_refresh_task,
            {"instrument_ids": sorted(priced)},
            redrive="the volatility re-drive beat (volatility_redrive_task)",
        )
    return result


# --- The two imports of the book ---------------------------------------------------------------------


def _book_json_import(path: Path, file: str) -> ImportResult:
    """Read every row; check it on its own, against the file and against the book; write only when no
    problem was found."""
    problems = _Problems(file)
    book = _book_file(problems, path, file)
    existing = _Existing.load(
        groups=[*(spec.code for spec in book.groups), *(spec.group or "" for spec in book.clients)],
        clients=[*(spec.code for spec in book.clients), *(spec.client for spec in book.accounts)],
        instruments=[
            *(spec.symbol for spec in book.instruments),
            *(spec.underlying or "" for spec in book.instruments),
            *(position.instrument for account in book.accounts for position in account.positions or ()),
        ],
        accounts=[spec.code for spec in book.accounts],
    )
    _check_book(problems, book, existing)
    problems.raise_if_any()
    return _write_book(file, book, existing)


def _positions_csv_import(path: Path, file: str) -> ImportResult:
    """Positions only: each row upserts one position; a quantity of 0 deletes it. Other positions stay."""
    problems = _Problems(file)
    seen: dict[Hashable, int | str] = {}
    positions = [
        _csv_position_spec(_RowReader(problems, row, Position, POSITION_CSV_COLUMNS), seen)
        for row in _csv_rows(problems, path, file, POSITION_CSV_COLUMNS)
    ]
    existing = _Existing.load(
        groups=(),
        clients=(),
        instruments=[position.instrument for position in positions],
        accounts=[position.account for position in positions],
    )
    for position in positions:
        if position.account and position.account not in existing.accounts:
            problems.add(position.row, "account", _unknown("account", position.account))
    _check_positions(
        problems,
        positions,
        {code: _AccountFacts(obj.mode, obj.base_currency) for code, obj in existing.accounts.items()},
        {symbol: _InstrumentFacts(obj.kind, obj.currency) for symbol, obj in existing.instruments.items()},
        existing.instruments,
    )
    problems.raise_if_any()

    keyed = {(existing.accounts[spec.account].pk, existing.instruments[spec.instrument].pk): spec for spec in positions}
    held = _held_positions(sorted({account_id for account_id, _ in keyed}))
    deleted = _delete_positions([held[key] for key, spec in keyed.items() if spec.quantity == 0 and key in held])
    wanted = {key: spec for key, spec in keyed.items() if spec.quantity != 0}
    _upsert_positions(wanted)
    created = len(wanted.keys() - held.keys())
    return ImportResult(
        file=file, positions=EntityCounts(created=created, updated=len(wanted) - created, deleted=deleted)
    )


# --- Problems -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    ordinal: int  # where the row is in the file: problems are reported in file order
    label: int | str  # what messages call it: a CSV line number or a JSON path
    values: Mapping[str, object]  # None stands for absent: a missing key, null or an empty CSV cell
    duplicate_fields: frozenset[str] = frozenset()


class _Problems:
    """Every problem of a file, reported together, in file order, at most MAX_REPORTED_PROBLEMS of them."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._found: list[tuple[int, ImportRowError]] = []

    def add(self, row: _Row, field: str, problem: str) -> None:
        self._found.append((row.ordinal, ImportRowError(file=self.file, row=row.label, field=field, problem=problem)))

    def raise_if_any(self) -> None:
        if not self._found:
            return
        found = [error for _, error in sorted(self._found, key=lambda found: found[0])]
        shown = found[:MAX_REPORTED_PROBLEMS]
        total = len(found)
        raise ImportFileError(
            file=self.file,
            problem=f"{total} problem{'s' if total > 1 else ''} found; nothing was imported",
            errors=shown,
            not_shown=total - len(shown),
        )


class _Bad(Exception):
    """A field's value is unusable; the message says why, in the operator's terms."""


# --- Reading files ------------------------------------------------------------------------------------


class _JsonObject(dict[str, object]):
    """A JSON object that remembers the keys given twice: `json` would silently keep the last."""

    duplicate_keys: frozenset[str] = frozenset()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, object]]) -> _JsonObject:
        obj = cls(pairs)
        if len(obj) < len(pairs):
            keys = [key for key, _ in pairs]
            obj.duplicate_keys = frozenset(key for key in keys if keys.count(key) > 1)
        return obj


class _JsonNumber:
    """A JSON number as the file writes it, read by the one grammar of numbers (core.amounts) with its row and
    field named: never through a float, nor int() (which fails past 4,300 digits)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _read_json(path: Path, file: str) -> object:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ImportFileError(file=file, problem=f"cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ImportFileError(file=file, problem="not UTF-8 text") from None
    try:
        # Numbers stay as written, read by the row reader (NaN and Infinity too, so that it refuses them with the
        # row and field named). The nesting depth is bounded before parsing (WORKOUT_JSON_MAX_DEPTH).
        return json_loads(
            text,
            max_depth=settings.WORKOUT_JSON_MAX_DEPTH,
            max_number_chars=_MAX_NUMBER_CHARS,
            parse_float=_JsonNumber,
            parse_int=_JsonNumber,
            parse_constant=_JsonNumber,
            object_pairs_hook=_JsonObject.from_pairs,
        )
    except JsonInputError as error:
        raise ImportFileError(file=file, problem=error.message) from None


def _json_rows(problems: _Problems, items: Sequence[object], path: str, ordinals: Iterator[int]) -> Iterator[_Row]:
    """The objects of a JSON list as rows labelled by their path (`accounts[3]`, 0-based like jq)."""
    for index, item in enumerate(items):
        row = _Row(ordinal=next(ordinals), label=f"{path}[{index}]", values={})
        if not isinstance(item, dict):
            problems.add(row, "(row)", f"expected an object, got {_show(item)}")
            continue
        yield _Row(row.ordinal, row.label, item, getattr(item, "duplicate_keys", frozenset()))


def _json_list_rows(problems: _Problems, path: Path, file: str) -> list[_Row]:
    document = _read_json(path, file)
    if not isinstance(document, list):
        raise ImportFileError(file=file, problem=f"expected a JSON list of objects, got {_show(document)}")
    # A bare list has no name; its rows are labelled [0], [1], ...
    return list(_json_rows(problems, document, "", count()))


def _csv_rows(problems: _Problems, path: Path, file: str, columns: Sequence[str]) -> list[_Row]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return list(_csv_records(problems, handle, file, columns))
    except OSError as error:
        raise ImportFileError(file=file, problem=f"cannot read the file: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ImportFileError(file=file, problem="not UTF-8 text") from None
    except csv.Error as error:
        raise ImportFileError(file=file, problem=f"not readable as CSV: {error}") from None


def _csv_records(problems: _Problems, handle: Iterable[str], file: str, columns: Sequence[str]) -> Iterator[_Row]:
    """Data rows labelled by their line in the file, the header being line 1."""
    reader = csv.reader(handle)
    header = [cell.strip() for cell in next(reader, [])]
    if header != list(columns):
        raise ImportFileError(
            file=file, problem=f"line 1 must be the header {','.join(columns)!r}, got {','.join(header)!r}"
        )
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        line = reader.line_num
        row = _Row(ordinal=line, label=line, values={})
        if len(cells) < len(columns):
            problems.add(
                row, columns[len(cells)], f"missing: the row has {len(cells)} values, the header {len(columns)}"
            )
        elif len(cells) > len(columns):
            problems.add(
                row,
                f"column {len(columns) + 1}",
                f"unexpected: the row has {len(cells)} values, the header {len(columns)}",
            )
        else:
            yield _Row(line, line, {name: cell.strip() or None for name, cell in zip(columns, cells, strict=True)})


# --- Reading fields -----------------------------------------------------------------------------------


def _show(value: object) -> str:
    """A value as the operator wrote it: strings quoted, JSON numbers and literals bare."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _JsonNumber):
        return _number_text(value.text)
    if isinstance(value, int | Decimal):
        return _number_text(value)
    if value is None:
        return "null"
    return "an object" if isinstance(value, dict) else "a list" if isinstance(value, list) else type(value).__name__


def _number_text(number: int | Decimal | str) -> str:
    """A number as a message quotes it, cut short: a 5,000-digit value is not echoed whole."""
    text = str(number)
    return text if len(text) <= 40 else f"{text[:40]}... ({len(text)} characters)"


def _to_decimal(value: object) -> Decimal:
    """Strings (a CSV cell, trimmed as a cell; a JSON string, as it is) and JSON numbers as written, in the one
    grammar of numbers (core.amounts: ASCII digits, an optional point and decimals; no exponent, underscores,
    spaces or other digits), with messages that read well in a row report. The column's bounds are checked
    after (_fits_column)."""
    if isinstance(value, bool) or not isinstance(value, _JsonNumber | str | int | Decimal):
        raise _Bad(f"expected a number, got {_show(value)}")
    text = value.text if isinstance(value, _JsonNumber) else value if isinstance(value, str) else str(value)
    try:
        return parse_decimal(text, places=None, whole_digits=None)
    except AmountError as refused:
        try:
            python_reads = Decimal(text)
        except InvalidOperation:
            hint = "; use a point for decimals and no thousands separator" if "," in text else ""
            raise _Bad(f"{_show(value)} is not a number{hint}") from None
        if not python_reads.is_finite():
            raise _Bad(f"{_show(value)} is not a finite number") from None
        raise _Bad(refused.message) from None


def _positive(number: Decimal) -> str | None:
    return None if number > 0 else f"{number} must be greater than 0"


def _not_negative(number: Decimal) -> str | None:
    return None if number >= 0 else f"{number} must not be negative"


def _at_most_one(number: Decimal) -> str | None:
    return None if number <= 1 else f"{number} must be at most 1"


def _quantity_in_range(number: Decimal) -> str | None:
    return None if abs(number) <= MAX_QUANTITY else f"{_number_text(number)} is out of range: at most 10^15 either way"


def _fits_column(column: models.DecimalField[Any, Any]) -> Callable[[Decimal], str | None]:
    """Refuse what the column would round or overflow: the file's number must be stored exactly."""
    whole_digits = column.max_digits - column.decimal_places
    quantum = Decimal(1).scaleb(-column.decimal_places)

    def check(number: Decimal) -> str | None:
        if abs(number) >= Decimal(10) ** whole_digits:
            return f"{_number_text(number)} is too large: at most {whole_digits} digits before the decimal point"
        if number != number.quantize(quantum):
            return f"{_number_text(number)} has more than {column.decimal_places} decimal places"
        return None

    return check


def _column(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    column = model._meta.get_field(name)
    if not isinstance(column, models.Field):
        raise TypeError(f"{model.__name__}.{name} is not a column")
    return column


class _RowReader:
    """Reads the fields of one row against the model it describes, recording every bad field instead of
    stopping at the first. A bad or missing field reads as a placeholder of the right type so the rest
    of the row is still checked; checks across fields run only on fields that read well (`valid`), so
    one mistake is reported once. A file with any problem is never written, placeholders included."""

    def __init__(self, problems: _Problems, row: _Row, model: type[models.Model], allowed: Sequence[str]) -> None:
        self.row = row
        self._problems = problems
        self._model = model
        self._bad: set[str] = set()
        for name in row.values:
            if name not in allowed:
                self.problem(name, f"unknown field; expected one of: {', '.join(allowed)}")
        for name in sorted(row.duplicate_fields):
            self.problem(name, "given twice in this object")

    @property
    def ok(self) -> bool:
        return not self._bad

    def valid(self, *names: str) -> bool:
        return not self._bad.intersection(names)

    def present(self, name: str) -> bool:
        return self.row.values.get(name) is not None

    def problem(self, name: str, problem: str) -> None:
        self._bad.add(name)
        self._problems.add(self.row, name, problem)

    def text(self, name: str, *, column: models.Field[Any, Any] | None = None) -> str:
        return self._required(name, self._text_parser(column or _column(self._model, name)), "")

    def optional_text(self, name: str, *, column: models.Field[Any, Any] | None = None) -> str | None:
        return self._optional(name, self._text_parser(column or _column(self._model, name)))

    def currency(self, name: str) -> str:
        if not self.present(name):
            return str(_column(self._model, name).default)
        return self._required(name, _parse_currency, "")

    def choice(self, name: str, choices: type[models.TextChoices], *, default: str | None = None) -> str:
        if default is not None and not self.present(name):
            return default
        return self._required(name, _choice_parser(choices), "")

    def optional_choice(self, name: str, choices: type[models.TextChoices]) -> str | None:
        return self._optional(name, _choice_parser(choices))

    def number(
        self, name: str, *, checks: Sequence[Callable[[Decimal], str | None]] = (), default: Decimal | None = None
    ) -> Decimal:
        if default is not None and not self.present(name):
            return default
        return self._required(name, self._number_parser(name, checks), Decimal(0))

    def optional_number(self, name: str, *, checks: Sequence[Callable[[Decimal], str | None]] = ()) -> Decimal | None:
        return self._optional(name, self._number_parser(name, checks))

    def moment(self, name: str) -> datetime:
        return self._required(name, _parse_moment, _NO_TIME)

    def optional_moment(self, name: str) -> datetime | None:
        return self._optional(name, _parse_moment)

    def optional_date(self, name: str) -> date | None:
        return self._optional(name, _parse_date)

    def _optional(self, name: str, parse: Callable[[object], _T]) -> _T | None:
        value = self.row.values.get(name)
        if value is None:
            return None
        try:
            return parse(value)
        except _Bad as bad:
            self.problem(name, str(bad))
            return None

    def _required(self, name: str, parse: Callable[[object], _T], placeholder: _T) -> _T:
        if not self.present(name):
            self.problem(name, "required")
            return placeholder
        parsed = self._optional(name, parse)
        return placeholder if parsed is None else parsed

    def _number_parser(
        self, name: str, checks: Sequence[Callable[[Decimal], str | None]]
    ) -> Callable[[object], Decimal]:
        column = _column(self._model, name)
        if not isinstance(column, models.DecimalField):
            raise TypeError(f"{self._model.__name__}.{name} is not a decimal column")
        all_checks = (*checks, _fits_column(column))

        def parse(value: object) -> Decimal:
            number = _to_decimal(value)
            for check in all_checks:
                if problem := check(number):
                    raise _Bad(problem)
            return number

        return parse

    @staticmethod
    def _text_parser(column: models.Field[Any, Any]) -> Callable[[object], str]:
        max_length = column.max_length

        def parse(value: object) -> str:
            if not isinstance(value, str):
                raise _Bad(f"expected a string, got {_show(value)}")
            text = value.strip()
            if not text:
                raise _Bad("is empty")
            if max_length is not None and len(text) > max_length:
                raise _Bad(f"is longer than {max_length} characters")
            return text

        return parse


def _choice_parser(choices: type[models.TextChoices]) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if value not in choices.values:
            raise _Bad(f"{_show(value)} is not one of: {', '.join(choices.values)}")
        return str(value)

    return parse


def _parse_currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY_CODE.fullmatch(value.strip()):
        raise _Bad(f"{_show(value)} is not a currency code (upper case, 2 to 8 letters or digits, like USD or BTC)")
    return value.strip()


def _parse_moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise _Bad(f"expected an ISO 8601 date and time as a string, got {_show(value)}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Bad(f"{_show(value)} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        # A naive time would be read in the server's zone: the same file would mean different instants.
        raise _Bad(f"{_show(value)} has no timezone; add an offset such as Z or +00:00")
    return moment


def _parse_date(value: object) -> date:
    if not isinstance(value, str):
        raise _Bad(f"expected an ISO 8601 date (YYYY-MM-DD) as a string, got {_show(value)}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _Bad(f"{_show(value)} is not an ISO 8601 date (YYYY-MM-DD)") from None


def _first_occurrence(
    reader: _RowReader, seen: dict[Hashable, int | str], key: Hashable, field: str, what: str
) -> None:
    """Two rows for one key would leave the result depending on row order; refuse them instead."""
    first = seen.setdefault(key, reader.row.label)
    if first != reader.row.label:
        reader.problem(field, f"{what} is given twice; first in row {first}")


def _unknown(entity: str, key: str) -> str:
    return f"unknown {entity} {key!r}: neither in this file nor in the book"


def _a(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


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


# --- Checks against the book --------------------------------------------------------------------------


@dataclass(frozen=True)
class _InstrumentFacts:
    """What a position must agree with; from the file's row when the file has one, else from the book."""

    kind: str
    currency: str


@dataclass(frozen=True)
class _AccountFacts:
    mode: str
    base_currency: str


@dataclass(frozen=True)
class _Existing:
    """The rows of the book the file names, by natural key, loaded in one query per table."""

    group_ids: dict[str, int]
    client_ids: dict[str, int]
    instruments: dict[str, Instrument]
    accounts: dict[str, MarginAccount]

    @classmethod
    def load(
        cls, *, groups: Iterable[str], clients: Iterable[str], instruments: Iterable[str], accounts: Iterable[str]
    ) -> _Existing:
        return cls(
            group_ids=_ids(ClientGroup, "code", groups),
            client_ids=_ids(Client, "code", clients),
            instruments=Instrument.objects.only("pk", "symbol", "kind", "currency").in_bulk(
                {symbol for symbol in instruments if symbol}, field_name="symbol"
            ),
            accounts=MarginAccount.objects.only("pk", "code", "mode", "base_currency").in_bulk(
                {code for code in accounts if code}, field_name="code"
            ),
        )


def _ids(model: type[models.Model], key: str, values: Iterable[str]) -> dict[str, int]:
    """Natural key -> primary key of the given keys that exist (batched by in_bulk where SQLite needs it)."""
    found = model._default_manager.only("pk", key).in_bulk({value for value in values if value}, field_name=key)
    return {value: obj.pk for value, obj in found.items()}


def _currency_problem(
    account: str, facts: _AccountFacts, instrument: str, instrument_facts: _InstrumentFacts
) -> str | None:
    if facts.base_currency == instrument_facts.currency:
        return None
    return (
        f"{instrument} is in {instrument_facts.currency} but account {account} is in {facts.base_currency}; "
        "a position must be in the account's base currency (no FX in this version)"
    )


def _isolated_margin_problem(
    account: str, facts: _AccountFacts, instrument: str, instrument_facts: _InstrumentFacts
) -> str | None:
    if facts.mode != MarginMode.ISOLATED:
        return f"account {account} is in {facts.mode} mode; isolated margin needs an isolated account"
    if instrument_facts.kind not in _ISOLATED_KINDS:
        return f"{instrument} is {_a(instrument_facts.kind)}; isolated margin is for perpetuals and futures only"
    return None


def _check_positions(
    problems: _Problems,
    positions: Iterable[_PositionSpec],
    accounts: Mapping[str, _AccountFacts],
    instruments: Mapping[str, _InstrumentFacts],
    known_instruments: Collection[str],
) -> None:
    """Each position against its account and instrument. Facts are missing for an unknown account or
    instrument (reported on its own) or one whose own row is bad (reported there): skip those."""
    for position in positions:
        if position.instrument and position.instrument not in known_instruments:
            problems.add(position.row, "instrument", _unknown("instrument", position.instrument))
            continue
        account, instrument = accounts.get(position.account), instruments.get(position.instrument)
        if position.quantity == 0 or account is None or instrument is None:
            continue
        if problem := _currency_problem(position.account, account, position.instrument, instrument):
            problems.add(position.row, "instrument", problem)
        if position.isolated_margin is not None and (
            problem := _isolated_margin_problem(position.account, account, position.instrument, instrument)
        ):
            problems.add(position.row, "isolated_margin", problem)


def _instrument_layers(specs: Sequence[_InstrumentSpec]) -> tuple[list[list[_InstrumentSpec]], list[_InstrumentSpec]]:
    """Order the file's instruments so that an underlying the file defines is written before what is
    written on it: an option cannot be inserted without its underlying's id (a CHECK constraint, which
    cannot be deferred). Returns the layers and what is left over: instruments on a loop of underlyings."""
    in_file = {spec.symbol for spec in specs}
    written: set[str] = set()
    layers: list[list[_InstrumentSpec]] = []
    pending = list(specs)
    while pending:
        layer = [s for s in pending if s.underlying is None or s.underlying not in in_file or s.underlying in written]
        if not layer:
            break
        layers.append(layer)
        written.update(spec.symbol for spec in layer)
        pending = [spec for spec in pending if spec.symbol not in written]
    return layers, pending


def _check_book(problems: _Problems, book: _BookFile, existing: _Existing) -> None:
    groups = {spec.code for spec in book.groups if spec.code} | existing.group_ids.keys()
    for client in book.clients:
        if client.group is not None and client.group not in groups:
            problems.add(client.row, "group", _unknown("group", client.group))

    clients = {spec.code for spec in book.clients if spec.code} | existing.client_ids.keys()
    for account in book.accounts:
        if account.client and account.client not in clients:
            problems.add(account.row, "client", _unknown("client", account.client))

    instruments = {spec.symbol for spec in book.instruments if spec.symbol} | existing.instruments.keys()
    for spec in book.instruments:
        if spec.underlying is not None and spec.underlying not in instruments:
            problems.add(spec.row, "underlying", _unknown("instrument", spec.underlying))
    # An instrument that is its own underlying is reported by its row, not as a loop.
    _, looped = _instrument_layers(
        [spec for spec in book.instruments if spec.symbol and spec.underlying != spec.symbol]
    )
    for spec in looped:
        problems.add(spec.row, "underlying", f"the chain of underlyings from {spec.symbol} loops back on itself")

    instrument_facts = _instrument_facts(book, existing)
    account_facts = {spec.code: _AccountFacts(spec.mode, spec.base_currency) for spec in book.accounts if spec.ok}
    listed = (position for account in book.accounts for position in account.positions or ())
    _check_positions(problems, listed, account_facts, instrument_facts, instruments)
    _check_kept_positions(problems, book, existing)


def _instrument_facts(book: _BookFile, existing: _Existing) -> dict[str, _InstrumentFacts]:
    facts = {symbol: _InstrumentFacts(obj.kind, obj.currency) for symbol, obj in existing.instruments.items()}
    for spec in book.instruments:
        if spec.ok:
            facts[spec.symbol] = _InstrumentFacts(spec.kind, spec.currency)
        else:
            facts.pop(spec.symbol, None)
    return facts


def _check_kept_positions(problems: _Problems, book: _BookFile, existing: _Existing) -> None:
    """Positions the file does not list stay in the book. A change of an account's currency or mode, or
    of an instrument's currency or kind, must still hold for them. Usually the file changes none of
    these, and then this costs no query."""
    accounts = {spec.code: spec for spec in book.accounts if spec.code}
    instruments = {spec.symbol: spec for spec in book.instruments if spec.symbol}
    changed_account_ids = [
        old.pk
        for code, old in existing.accounts.items()
        if (new := accounts.get(code)) is not None
        and new.ok
        and new.positions is None
        and (old.mode, old.base_currency) != (new.mode, new.base_currency)
    ]
    changed_instrument_ids = [
        old.pk
        for symbol, old in existing.instruments.items()
        if (spec := instruments.get(symbol)) is not None
        and spec.ok
        and (old.kind, old.currency) != (spec.kind, spec.currency)
    ]
    for kept in _kept_positions(account_ids=changed_account_ids, instrument_ids=changed_instrument_ids):
        account, instrument = accounts.get(kept.account), instruments.get(kept.instrument)
        if account is not None and (not account.ok or account.positions is not None):
            continue  # its row's problems are reported there, or the file replaces its positions
        if instrument is not None and not instrument.ok:
            continue
        account_facts = _AccountFacts(account.mode, account.base_currency) if account else kept.account_facts
        instrument_facts = (
            _InstrumentFacts(instrument.kind, instrument.currency) if instrument else kept.instrument_facts
        )
        # Blame the row whose change breaks the position: the account's if it changed that, else the
        # instrument's.
        if problem := _currency_problem(kept.account, account_facts, kept.instrument, instrument_facts):
            if account is not None and account.base_currency != kept.account_facts.base_currency:
                _blame(problems, account.row, "base_currency", kept, problem)
            elif instrument is not None:
                _blame(problems, instrument.row, "currency", kept, problem)
        if kept.isolated_margin is not None and (
            problem := _isolated_margin_problem(kept.account, account_facts, kept.instrument, instrument_facts)
        ):
            if account is not None and account.mode != kept.account_facts.mode:
                _blame(problems, account.row, "mode", kept, problem)
            elif instrument is not None:
                _blame(problems, instrument.row, "kind", kept, problem)


@dataclass(frozen=True)
class _KeptPosition:
    account: str
    instrument: str
    isolated_margin: Decimal | None
    account_facts: _AccountFacts  # as the book has them now
    instrument_facts: _InstrumentFacts


def _kept_positions(*, account_ids: Sequence[int], instrument_ids: Sequence[int]) -> set[_KeptPosition]:
    found: set[_KeptPosition] = set()
    for ids, lookup in ((account_ids, "account_id__in"), (instrument_ids, "instrument_id__in")):
        for batch in _batches(ids):
            rows = Position.objects.filter(**{lookup: batch}).values_list(
                "account__code",
                "instrument__symbol",
                "isolated_margin",
                "account__mode",
                "account__base_currency",
                "instrument__kind",
                "instrument__currency",
            )
            found.update(
                _KeptPosition(code, symbol, margin, _AccountFacts(mode, base), _InstrumentFacts(kind, currency))
                for code, symbol, margin, mode, base, kind, currency in rows
            )
    return found


def _blame(problems: _Problems, row: _Row, field: str, kept: _KeptPosition, problem: str) -> None:
    problems.add(
        row,
        field,
        f"the book keeps the position of account {kept.account} in {kept.instrument}: {problem}; "
        "list the account's positions in this file to replace them",
    )


# --- Writing ------------------------------------------------------------------------------------------


def _batches(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """SQLite refuses a statement with more parameters than its limit (Django assumes 999); others don't."""
    size = connection.features.max_query_params or len(values) or 1
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _in_key_order(objs: Iterable[_M], key: Callable[[_M], Any]) -> list[_M]:
    """Rows written in key order: two imports running at once then take their row locks in the same
    order and wait for each other instead of deadlocking."""
    return sorted(objs, key=key)


def _upsert(
    model: type[_M], objs: Sequence[_M], *, key: str, update_fields: Sequence[str], existing: Collection[str]
) -> tuple[dict[str, int], EntityCounts]:
    """Insert or update by the natural key; returns the id of every key written and the counts.

    Ids are read back by key rather than taken from RETURNING: SQLite does not promise that RETURNING
    lists rows in the order of VALUES."""
    if not objs:
        return {}, EntityCounts()
    model._default_manager.bulk_create(
        _in_key_order(objs, lambda obj: getattr(obj, key)),
        update_conflicts=True,
        unique_fields=[key],
        update_fields=update_fields,
    )
    keys = [getattr(obj, key) for obj in objs]
    created = sum(1 for value in keys if value not in existing)
    return _ids(model, key, keys), EntityCounts(created=created, updated=len(keys) - created)


def _write_book(file: str, book: _BookFile, existing: _Existing) -> ImportResult:
    """Upsert in reference order (groups, clients, instruments, accounts, then loans and positions), each
    table in a statement or a few, resolving natural keys to the ids just written."""
    group_ids, groups = _upsert(
        ClientGroup,
        [ClientGroup(code=spec.code, name=spec.name) for spec in book.groups],
        key="code",
        update_fields=["name"],
        existing=existing.group_ids,
    )
    group_ids = existing.group_ids | group_ids
    client_ids, clients = _upsert(
        Client,
        [
            Client(
                code=spec.code,
                name=spec.name,
                credit_tier=spec.credit_tier,
                group_id=group_ids[spec.group] if spec.group else None,
                external_capacity=spec.external_capacity,
            )
            for spec in book.clients
        ],
        key="code",
        update_fields=["name", "credit_tier", "group", "external_capacity"],
        existing=existing.client_ids,
    )
    client_ids = existing.client_ids | client_ids
    instrument_ids, instruments = _write_instruments(book.instruments, existing)
    account_ids, accounts = _upsert(
        MarginAccount,
        [
            MarginAccount(
                code=spec.code,
                client_id=client_ids[spec.client],
                mode=spec.mode,
                margin_model=spec.margin_model,
                base_currency=spec.base_currency,
                cash=spec.cash,
            )
            for spec in book.accounts
        ],
        key="code",
        update_fields=["client", "mode", "margin_model", "base_currency", "cash", "updated_at"],
        existing=existing.accounts,
    )
    return ImportResult(
        file=file,
        groups=groups,
        clients=clients,
        instruments=instruments,
        accounts=accounts,
        loans=_write_loans(book.accounts, account_ids, existing),
        positions=_write_listed_positions(book.accounts, account_ids, instrument_ids, existing),
    )


def _write_instruments(specs: Sequence[_InstrumentSpec], existing: _Existing) -> tuple[dict[str, int], EntityCounts]:
    ids = {symbol: obj.pk for symbol, obj in existing.instruments.items()}
    created = updated = 0
    layers, _ = _instrument_layers(specs)
    for layer in layers:
        layer_ids, counts = _upsert(
            Instrument,
            [_instrument(spec, ids) for spec in layer],
            key="symbol",
            update_fields=[name for name in INSTRUMENT_FIELDS if name != "symbol"],
            existing=existing.instruments,
        )
        ids |= layer_ids
        created, updated = created + counts.created, updated + counts.updated
    return ids, EntityCounts(created=created, updated=updated)


def _instrument(spec: _InstrumentSpec, ids: Mapping[str, int]) -> Instrument:
    return Instrument(
        symbol=spec.symbol,
        kind=spec.kind,
        currency=spec.currency,
        underlying_id=ids[spec.underlying] if spec.underlying else None,
        strike=spec.strike,
        expiry=spec.expiry,
        option_type=spec.option_type or "",
        contract_size=spec.contract_size,
        initial_rate=spec.initial_rate,
        maintenance_rate=spec.maintenance_rate,
        haircut=spec.haircut,
        scenario_class=spec.scenario_class,
        average_daily_volume=spec.average_daily_volume,
        daily_volatility=spec.daily_volatility,
        carry_yield=spec.carry_yield,
    )


def _write_loans(accounts: Sequence[_AccountSpec], account_ids: Mapping[str, int], existing: _Existing) -> EntityCounts:
    """The file's loan replaces the terms of the account's one active loan, or opens it."""
    loans = {account_ids[spec.code]: spec.loan for spec in accounts if spec.loan is not None}
    active: dict[int, MarginLoan] = {}
    # Only accounts that were in the book before can have a loan already.
    for batch in _batches([old.pk for old in existing.accounts.values() if old.pk in loans]):
        locked = MarginLoan.objects.select_for_update().filter(status=LoanStatus.ACTIVE, account_id__in=batch)
        for loan in locked.order_by("pk"):
            active[loan.account_id] = loan
    to_create: list[MarginLoan] = []
    for account_id, terms in loans.items():
        loan = active.get(account_id) or MarginLoan(account_id=account_id, status=LoanStatus.ACTIVE)
        loan.principal = terms.principal
        loan.rate_annual = terms.rate_annual
        loan.accrued_interest = terms.accrued_interest
        loan.maturity_date = terms.maturity_date
        if loan.pk is None:
            to_create.append(loan)
    MarginLoan.objects.bulk_update(
        _in_key_order(active.values(), lambda loan: loan.pk),
        ["principal", "rate_annual", "accrued_interest", "maturity_date"],
    )
    MarginLoan.objects.bulk_create(to_create)
    return EntityCounts(created=len(to_create), updated=len(active))


def _write_listed_positions(
    accounts: Sequence[_AccountSpec],
    account_ids: Mapping[str, int],
    instrument_ids: Mapping[str, int],
    existing: _Existing,
) -> EntityCounts:
    """An account's listed positions are all it holds: the others are deleted."""
    listed = [spec for spec in accounts if spec.positions is not None]
    held = _held_positions([account_ids[spec.code] for spec in listed if spec.code in existing.accounts])
    wanted = {
        (account_ids[spec.code], instrument_ids[position.instrument]): position
        for spec in listed
        for position in spec.positions or ()
        if position.quantity != 0
    }
    deleted = _delete_positions([pk for key, pk in held.items() if key not in wanted])
    _upsert_positions(wanted)
    created = len(wanted.keys() - held.keys())
    return EntityCounts(created=created, updated=len(wanted) - created, deleted=deleted)


def _held_positions(account_ids: Sequence[int]) -> dict[tuple[int, int], int]:
    """(account id, instrument id) -> position id of what the accounts hold now."""
    held: dict[tuple[int, int], int] = {}
    for batch in _batches(account_ids):
        for account_id, instrument_id, pk in Position.objects.filter(account_id__in=batch).values_list(
            "account_id", "instrument_id", "pk"
        ):
            held[account_id, instrument_id] = pk
    return held


def _delete_positions(position_ids: Sequence[int]) -> int:
    return sum(Position.objects.filter(pk__in=batch).delete()[0] for batch in _batches(position_ids))


def _upsert_positions(wanted: Mapping[tuple[int, int], _PositionSpec]) -> None:
    if not wanted:
        return
    positions = [
        Position(
            account_id=account_id,
            instrument_id=instrument_id,
            quantity=spec.quantity,
            entry_price=spec.entry_price,
            isolated_margin=spec.isolated_margin,
        )
        for (account_id, instrument_id), spec in wanted.items()
    ]
    Position.objects.bulk_create(
        _in_key_order(positions, lambda position: (position.account_id, position.instrument_id)),
        update_conflicts=True,
        unique_fields=["account", "instrument"],
        update_fields=["quantity", "entry_price", "isolated_margin", "updated_at"],
    )


def _upsert_prices(prices: Sequence[_PriceSpec], instrument_ids: Mapping[str, int]) -> EntityCounts:
    """Upsert on (instrument, time). What is stored already is read only to count created and updated."""
    if not prices:
        return EntityCounts()
    keyed = {(instrument_ids[price.instrument], price.time): price for price in prices}
    times = [price.time for price in prices]
    stored: set[tuple[int, datetime]] = set()
    for batch in _batches(sorted({instrument_id for instrument_id, _ in keyed})):
        stored.update(
            Price.objects.filter(instrument_id__in=batch, time__range=(min(times), max(times))).values_list(
                "instrument_id", "time"
            )
        )
    rows = [
        Price(instrument_id=instrument_id, time=time, price=price.price, implied_volatility=price.implied_volatility)
        for (instrument_id, time), price in keyed.items()
    ]
    Price.objects.bulk_create(
        _in_key_order(rows, lambda row: (row.instrument_id, row.time)),
        update_conflicts=True,
        unique_fields=["instrument", "time"],
        update_fields=["price", "implied_volatility"],
    )
    created = len(keyed.keys() - stored)
    return EntityCounts(created=created, updated=len(keyed) - created)
