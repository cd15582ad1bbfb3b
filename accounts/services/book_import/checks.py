"""Checks of a whole file, against itself and against the book: unknown keys, loops of underlyings, positions
against their accounts and instruments (those the file lists and those the book keeps).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

from django.db import connection, models

from accounts.models import Client, ClientGroup, Instrument, InstrumentKind, MarginAccount, MarginMode, Position
from accounts.services.book_import.readers import _a, _Problems, _Row, _unknown
from accounts.services.book_import.specs import _BookFile, _InstrumentSpec, _PositionSpec

_T = TypeVar("_T")

# Isolated margin caps the loss of one leveraged position; spot assets and options are paid in full.
_ISOLATED_KINDS = (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)


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


def _batches(values: Sequence[_T]) -> Iterator[Sequence[_T]]:
    """SQLite refuses a statement with more parameters than its limit (Django assumes 999); others don't."""
    size = connection.features.max_query_params or len(values) or 1
    for start in range(0, len(values), size):
        yield values[start : start + size]
