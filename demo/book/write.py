"""Writing the demo book: one transaction, COPY on PostgreSQL, bulk_create elsewhere, replacing the book or not."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeAlias

import numpy as np
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone

from accounts.models import (
    Client,
    ClientGroup,
    Instrument,
    LoanStatus,
    MarginAccount,
    MarginLoan,
    MarginMode,
    MarginModel,
    MessagePreferences,
    Position,
    Price,
    RiskSnapshot,
    RiskState,
    Sweep,
    SweepShard,
)
from core.errors import ConflictError
from demo.book.clients import CREDIT_TIERS
from demo.book.rows import DemoBook, FloatArray, IntArray

# Children before parents, so that no statement leaves a row pointing at a deleted one. Sweeps, their shards
# and the risk figures they wrote describe this book and go with it.
_BOOK_MODELS: Final[tuple[type[models.Model], ...]] = (
    RiskSnapshot,
    RiskState,
    SweepShard,
    Sweep,
    Position,
    MarginLoan,
    Price,
    MarginAccount,
    MessagePreferences,
    Client,
    ClientGroup,
    Instrument,
)
_WRITTEN_MODELS: Final[tuple[type[models.Model], ...]] = (
    ClientGroup,
    Client,
    Instrument,
    Price,
    MarginAccount,
    MarginLoan,
    Position,
)
_BULK_CREATE_BATCH: Final = 2000

Column: TypeAlias = list[str | None]


@dataclass(frozen=True)
class _Table:
    """Rows of one model as text columns (None is NULL): the same text goes to COPY and, through the
    field's own parser, to bulk_create, so both backends store exactly the same Decimals."""

    model: type[models.Model]
    columns: dict[str, Column]  # field name -> values

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


def demo_book_write(*, book: DemoBook, replace: bool = True) -> dict[str, int]:
    """Write `book` in one transaction and return the counts written.

    With `replace`, the book already in the database is deleted first, with the sweeps (and their shards),
    risk states and snapshots that refer to it; rows of other apps that point into the book make this refuse
    (ConflictError) rather than delete them too. Without `replace`, the book tables must be empty.
    """
    postgres = connection.vendor == "postgresql"
    with transaction.atomic():
        if postgres:
            _book_tables_lock()
        # New ids continue after the old ones, so nothing cached under an old id can match a new row.
        id_base = {model: _max_id(model) for model in _WRITTEN_MODELS}
        if replace:
            _book_delete(postgres=postgres)
        else:
            _book_must_be_empty()
        for table in _book_tables(book, id_base=id_base, now=timezone.now()):
            if postgres:
                _copy(table)
            else:
                _bulk_create(table)
        _sequences_reset()
    if postgres:
        # Fresh statistics for the tables just replaced: planned on the old ones (or none), the sweep's joins
        # over a new book of 100,000 accounts sorted on disk. Autovacuum would get there, later or never.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE " + ", ".join(_quoted_table(model) for model in _WRITTEN_MODELS))
    return book.counts()


def _quoted_table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _book_tables_lock() -> None:
    """EXCLUSIVE: readers go on reading the old book until we commit; no one else writes meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {', '.join(_quoted_table(m) for m in _BOOK_MODELS)} IN EXCLUSIVE MODE")


def _max_id(model: type[models.Model]) -> int:
    result = model._default_manager.aggregate(top=models.Max("pk"))["top"]
    return int(result or 0)


def _foreign_relations() -> list[models.ForeignObjectRel]:
    """Relations from models outside the book (restructuring cases, say) to models of the book.

    Hidden ones too (related_name="+"): `_meta.related_objects` leaves them out, and a foreign key without
    a database constraint would not stop the DELETE either, so its rows would be left pointing at nothing.
    """
    book = set(_BOOK_MODELS)
    return [
        relation
        for model in _BOOK_MODELS
        for relation in model._meta.get_fields(include_hidden=True)
        if isinstance(relation, models.ForeignObjectRel) and relation.related_model not in book
    ]


def _book_delete(*, postgres: bool) -> None:
    foreign = _foreign_relations()
    for relation in foreign:
        referring = relation.related_model._default_manager.filter(**{f"{relation.field.name}__isnull": False})
        if referring.exists():
            label = relation.related_model._meta.label
            raise ConflictError(
                f"{label} rows refer to the book ({relation.field.name}); remove them before replacing the book",
                model=label,
            )
    with connection.cursor() as cursor:
        if postgres and not foreign:
            # TRUNCATE skips the per-row work of DELETE; it is only allowed when no other table refers here.
            # It is not MVCC-safe (a transaction whose snapshot predates the load sees empty tables
            # afterwards), which a demo or benchmark reload can live with. PostgreSQL also refuses it on a
            # table with foreign-key checks still deferred in this transaction (rows the caller's transaction
            # wrote into the book, say): run them now (SET CONSTRAINTS ALL IMMEDIATE, then back to deferred).
            connection.check_constraints()
            cursor.execute(f"TRUNCATE {', '.join(_quoted_table(m) for m in _BOOK_MODELS)}")
            return
        for model in _BOOK_MODELS:
            cursor.execute(f"DELETE FROM {_quoted_table(model)}")


def _book_must_be_empty() -> None:
    holding = [model._meta.label for model in _WRITTEN_MODELS if model._default_manager.exists()]
    if holding:
        raise ConflictError(f"a book is already loaded ({', '.join(holding)}); replace it instead", models=holding)


def _sequences_reset() -> None:
    """Explicit ids leave PostgreSQL's identity sequences behind; move them past the new rows."""
    statements = connection.ops.sequence_reset_sql(no_style(), list(_WRITTEN_MODELS))
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _fields(table: _Table) -> list[models.Field[Any, Any]]:
    fields = [table.model._meta.get_field(name) for name in table.columns]
    concrete = [field for field in fields if isinstance(field, models.Field)]
    if len(concrete) != len(fields):
        raise AssertionError(f"{table.model.__name__}: only concrete fields can be written")
    return concrete


def _copy(table: _Table) -> None:
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in _fields(table))
    sql = f"COPY {_quoted_table(table.model)} ({columns}) FROM STDIN"
    # cursor.cursor is the psycopg 3 cursor inside Django's wrapper.
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in zip(*table.columns.values(), strict=True):
            copy.write_row(row)


def _bulk_create(table: _Table) -> None:
    fields = _fields(table)
    parsed = [
        [None if text is None else field.to_python(text) for text in values]
        for field, values in zip(fields, table.columns.values(), strict=True)
    ]
    attnames = [field.attname for field in fields]
    objects = [table.model(**dict(zip(attnames, row, strict=True))) for row in zip(*parsed, strict=True)]
    table.model._default_manager.bulk_create(objects, batch_size=_BULK_CREATE_BATCH)


def _book_tables(book: DemoBook, *, id_base: dict[type[models.Model], int], now: datetime) -> list[_Table]:
    """The rows to write, parents first."""
    stamp = now.isoformat()
    groups, clients, instruments, prices = book.groups, book.clients, book.instruments, book.prices
    accounts, loans, positions = book.accounts, book.loans, book.positions
    n_clients, n_instruments, n_accounts = len(clients.code), len(instruments.symbol), len(accounts.code)
    n_prices, n_loans, n_positions = prices.count, len(loans.account), len(positions.account)
    n_days = len(prices.time)

    def ids(model: type[models.Model], count: int) -> Column:
        return [str(id_base[model] + k) for k in range(1, count + 1)]

    def refs(model: type[models.Model], rows: IntArray) -> Column:
        base = id_base[model] + 1
        return [None if row < 0 else str(base + row) for row in rows.tolist()]

    return [
        _Table(
            ClientGroup,
            {"id": ids(ClientGroup, len(groups.code)), "code": _text(groups.code), "name": _text(groups.name)},
        ),
        _Table(
            Client,
            {
                "id": ids(Client, n_clients),
                "code": _text(clients.code),
                "name": _text(clients.name),
                "credit_tier": [CREDIT_TIERS[k] for k in clients.credit_tier.tolist()],
                "group": refs(ClientGroup, clients.group),
                "external_capacity": _decimal_text(clients.external_capacity, 2),
                "created_at": [stamp] * n_clients,
            },
        ),
        _Table(
            Instrument,
            {
                "id": ids(Instrument, n_instruments),
                "symbol": _text(instruments.symbol),
                "kind": [str(kind) for kind in instruments.kind],
                "currency": ["USD"] * n_instruments,
                "underlying": refs(Instrument, instruments.underlying),
                "strike": _decimal_text(instruments.strike, 8),
                "expiry": [None if expiry is None else expiry.isoformat() for expiry in instruments.expiry],
                "option_type": [str(kind) for kind in instruments.option_type],
                "contract_size": _decimal_text(instruments.contract_size, 8),
                "initial_rate": _decimal_text(instruments.initial_rate, 8),
                "maintenance_rate": _decimal_text(instruments.maintenance_rate, 8),
                "haircut": _decimal_text(instruments.haircut, 8),
                "scenario_class": [str(name) for name in instruments.scenario_class],
                "average_daily_volume": _decimal_text(instruments.average_daily_volume, 8),
                "daily_volatility": _decimal_text(instruments.daily_volatility, 8),
                "carry_yield": _decimal_text(instruments.carry_yield, 8),
                "ewma_volatility": _float_text(instruments.ewma_volatility),
                "stressed_volatility": _float_text(instruments.stressed_volatility),
                "volatility_as_of": [
                    None if np.isnan(sigma) else book.as_of.isoformat()
                    for sigma in instruments.ewma_volatility.tolist()
                ],
            },
        ),
        _Table(
            Price,
            {
                "id": ids(Price, n_prices),
                "instrument": refs(Instrument, np.repeat(prices.instrument, n_days)),
                "time": _text([moment.isoformat() for moment in prices.time] * len(prices.instrument)),
                "price": _decimal_text(prices.price.ravel(), 8),
                "implied_volatility": _decimal_text(prices.implied_volatility.ravel(), 8),
            },
        ),
        _Table(
            MarginAccount,
            {
                "id": ids(MarginAccount, n_accounts),
                "code": _text(accounts.code),
                "client": refs(Client, accounts.client),
                "mode": [MarginMode.ISOLATED if flag else MarginMode.CROSS for flag in accounts.isolated.tolist()],
                "margin_model": [
                    MarginModel.PORTFOLIO if flag else MarginModel.STANDARD
                    for flag in accounts.portfolio_margin.tolist()
                ],
                "base_currency": ["USD"] * n_accounts,
                "cash": _decimal_text(accounts.cash, 2),
                "created_at": [stamp] * n_accounts,
                "updated_at": [stamp] * n_accounts,
            },
        ),
        _Table(
            MarginLoan,
            {
                "id": ids(MarginLoan, n_loans),
                "account": refs(MarginAccount, loans.account),
                "principal": _decimal_text(loans.principal, 2),
                "rate_annual": _decimal_text(loans.rate_annual, 8),
                "accrued_interest": _decimal_text(loans.accrued_interest, 2),
                "status": [str(LoanStatus.ACTIVE)] * n_loans,
                "opened_at": [stamp] * n_loans,
                "maturity_date": [None if day is None else day.isoformat() for day in loans.maturity_date],
            },
        ),
        _Table(
            Position,
            {
                "id": ids(Position, n_positions),
                "account": refs(MarginAccount, positions.account),
                "instrument": refs(Instrument, positions.instrument),
                "quantity": _decimal_text(positions.quantity, 8),
                "entry_price": _decimal_text(positions.entry_price, 8),
                "isolated_margin": _decimal_text(positions.isolated_margin, 2),
                "updated_at": [stamp] * n_positions,
            },
        ),
    ]


def _decimal_text(values: FloatArray, places: int) -> Column:
    """Float64 to decimal text rounded to `places` (NaN is NULL). The generator has already rounded money to
    cents and quantities to lots, so this rounding only removes binary noise."""
    text = f"{{:.{places}f}}".format
    # NaN is the only value not equal to itself.
    return [None if value != value else text(value + 0.0) for value in values.tolist()]


def _text(values: Sequence[str]) -> Column:
    return list(values)


def _float_text(values: FloatArray) -> Column:
    return [None if value != value else repr(value) for value in values.tolist()]
