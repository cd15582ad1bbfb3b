"""Import of the book (groups, clients, instruments, accounts, loans, positions) and of prices.

The formats are documented in docs/import-formats.md. A file is applied whole or not at all: every row
is read and checked first, every problem found is reported at once (an operator fixing a file wants the
whole list, not one problem per run), and only a clean file is written, in one transaction. What the
book already holds is looked up by natural key in a few queries and the writes are bulk upserts, so the
number of queries does not grow with the number of rows (beyond SQLite's batching of parameters).
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path

from django.db import transaction

from accounts.models import Instrument, Position, Price
from accounts.services.book_import.checks import (
    _AccountFacts,
    _check_book,
    _check_positions,
    _Existing,
    _InstrumentFacts,
)
from accounts.services.book_import.readers import _csv_rows, _json_list_rows, _Problems, _RowReader, _unknown
from accounts.services.book_import.results import EntityCounts, ImportResult
from accounts.services.book_import.specs import (
    POSITION_CSV_COLUMNS,
    PRICE_COLUMNS,
    _book_file,
    _csv_position_spec,
    _price_spec,
)
from accounts.services.book_import.writes import (
    _delete_positions,
    _held_positions,
    _upsert_positions,
    _upsert_prices,
    _write_book,
)
from accounts.tasks import instrument_volatility_refresh_task
from core.dispatch import dispatch_on_commit
from core.errors import ImportFileError

__all__ = ["EntityCounts", "ImportResult", "book_import", "prices_import"]


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
