"""Reading an import file: its rows (JSON objects or CSV lines), each field read against its model's column, and
the problems found, reported together, in file order.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from itertools import count
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.db import models

from core.amounts import AmountError, parse_decimal, shown
from core.errors import ImportFileError, ImportRowError
from core.jsonparse import JsonInputError
from core.jsonparse import loads as json_loads

_T = TypeVar("_T")

MAX_REPORTED_PROBLEMS = 50
# A JSON number longer than this is refused as the file is read (the longest a column holds is 29 characters).
_MAX_NUMBER_CHARS = 100
MAX_QUANTITY = Decimal(10) ** 15
_CURRENCY_CODE = re.compile(r"[A-Z][A-Z0-9]{1,7}")
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)  # placeholder for a bad time; the row is never written


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
