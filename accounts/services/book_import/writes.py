"""The writes of a checked file: bulk upserts by natural key, in reference order, in a few statements a table."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db import models

from accounts.models import Client, ClientGroup, Instrument, LoanStatus, MarginAccount, MarginLoan, Position, Price
from accounts.services.book_import.checks import _batches, _Existing, _ids, _instrument_layers
from accounts.services.book_import.results import EntityCounts, ImportResult
from accounts.services.book_import.specs import (
    INSTRUMENT_FIELDS,
    _AccountSpec,
    _BookFile,
    _InstrumentSpec,
    _PositionSpec,
    _PriceSpec,
)

_M = TypeVar("_M", bound=models.Model)

# --- Writing ------------------------------------------------------------------------------------------


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
