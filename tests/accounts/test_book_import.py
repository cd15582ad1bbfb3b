from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError

from accounts.models import (
    Client,
    ClientGroup,
    Instrument,
    LoanStatus,
    MarginAccount,
    MarginLoan,
    Position,
)
from accounts.services.book_import import EntityCounts, ImportResult, book_import
from accounts.services.book_import import writes as book_import_writes
from core.errors import ImportFileError
from tests.factories.accounts import (
    ClientFactory,
    InstrumentFactory,
    MarginAccountFactory,
    MarginLoanFactory,
    OptionFactory,
    PerpetualFactory,
    PositionFactory,
)

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
BOOK_EXAMPLE = EXAMPLES / "book.json"
POSITIONS_EXAMPLE = EXAMPLES / "positions.csv"

# A whole import, fresh or repeated: a lookup and an upsert per table, a read-back of the ids, savepoints.
# PostgreSQL needs 20 whatever the size; SQLite splits statements into batches of 999 parameters, so
# there the count creeps up by about one per hundred rows (27 at 300 accounts). Far below one per row.
MAX_IMPORT_QUERIES = 30


def _write_json(tmp_path: Path, document: object, name: str = "book.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document, indent=1))
    return path


def _write_csv(tmp_path: Path, text: str, name: str = "positions.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _small_book() -> dict[str, Any]:
    """One of everything, valid; a test breaks one field of it."""
    return {
        "groups": [{"code": "G1", "name": "Group one"}],
        "clients": [{"code": "C1", "name": "Client one", "group": "G1"}],
        "instruments": [
            {
                "symbol": "XYZ",
                "kind": "spot",
                "initial_rate": "0.5",
                "maintenance_rate": "0.25",
                "daily_volatility": "0.02",
            },
            {
                "symbol": "XYZ-PERP",
                "kind": "perpetual",
                "underlying": "XYZ",
                "initial_rate": "0.1",
                "maintenance_rate": "0.05",
                "daily_volatility": "0.02",
            },
        ],
        "accounts": [
            {
                "code": "A1",
                "client": "C1",
                "mode": "isolated",
                "cash": "1000",
                "loan": {"principal": "5000", "rate_annual": "0.08"},
                "positions": [
                    {"instrument": "XYZ", "quantity": "10", "entry_price": "20"},
                    {"instrument": "XYZ-PERP", "quantity": "-4", "entry_price": "21", "isolated_margin": "9"},
                ],
            }
        ],
    }


def _row_counts() -> dict[str, int]:
    return {
        "groups": ClientGroup.objects.count(),
        "clients": Client.objects.count(),
        "instruments": Instrument.objects.count(),
        "accounts": MarginAccount.objects.count(),
        "loans": MarginLoan.objects.count(),
        "positions": Position.objects.count(),
    }


def _book_snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every stored value of the book, primary keys included, in a stable order."""
    return {
        "groups": list(ClientGroup.objects.order_by("pk").values_list()),
        "clients": list(Client.objects.order_by("pk").values_list()),
        "instruments": list(Instrument.objects.order_by("pk").values_list()),
        # updated_at is left out: it records the write, which a re-import does repeat.
        "accounts": list(
            MarginAccount.objects.order_by("pk").values_list(
                "pk", "code", "client_id", "mode", "margin_model", "base_currency", "cash", "created_at"
            )
        ),
        "loans": list(MarginLoan.objects.order_by("pk").values_list()),
        "positions": list(
            Position.objects.order_by("pk").values_list(
                "pk", "account_id", "instrument_id", "quantity", "entry_price", "isolated_margin"
            )
        ),
    }


def _positions() -> set[tuple[str, str, Decimal, Decimal, Decimal | None]]:
    return set(
        Position.objects.values_list(
            "account__code", "instrument__symbol", "quantity", "entry_price", "isolated_margin"
        )
    )


def _refusal(path: Path) -> ImportFileError:
    with pytest.raises(ImportFileError) as refused:
        book_import(path=path)
    return refused.value


# --- The example book ---------------------------------------------------------------------------------


def test_example_book_imports_every_entity_with_exact_values() -> None:
    # when
    result = book_import(path=BOOK_EXAMPLE)

    # then
    assert result == ImportResult(
        file=str(BOOK_EXAMPLE),
        groups=EntityCounts(created=1),
        clients=EntityCounts(created=3),
        instruments=EntityCounts(created=7),
        accounts=EntityCounts(created=4),
        loans=EntityCounts(created=2),
        positions=EntityCounts(created=9),
    )
    client = Client.objects.select_related("group").get(code="C-1001")
    assert (client.name, client.credit_tier, client.group.code if client.group else None) == (
        "Halvorsen Capital Ltd",
        "C",
        "GRP-HALVORSEN",
    )
    assert client.external_capacity == Decimal("250000.00")
    assert Client.objects.get(code="C-1002").external_capacity == Decimal(0)
    assert Client.objects.get(code="C-2001").group is None

    option = Instrument.objects.select_related("underlying").get(symbol="AAPL-260618-C200")
    assert option.underlying is not None
    assert option.underlying.symbol == "AAPL"
    assert (option.kind, option.option_type, option.strike, option.contract_size) == (
        "option",
        "call",
        Decimal("200"),
        Decimal("100"),
    )
    assert option.expiry == datetime(2026, 6, 18, 20, 0, tzinfo=UTC)
    assert (option.initial_rate, option.maintenance_rate, option.haircut) == (
        Decimal("0.20"),
        Decimal("0.15"),
        Decimal(0),
    )

    aapl = Instrument.objects.get(symbol="AAPL")
    # A JSON number (0.0185) arrives as the exact decimal, not as the nearest float.
    assert aapl.daily_volatility == Decimal("0.0185")
    assert (aapl.haircut, aapl.carry_yield, aapl.average_daily_volume) == (
        Decimal("0.30"),
        Decimal("0.0045"),
        Decimal("55000000"),
    )

    perpetual = Instrument.objects.get(symbol="BTC-PERP")
    assert (perpetual.underlying_id, perpetual.strike, perpetual.expiry, perpetual.option_type) == (
        Instrument.objects.get(symbol="BTC").pk,
        None,
        None,
        "",
    )
    assert Instrument.objects.get(symbol="BTC-260626").expiry == datetime(2026, 6, 26, 8, 0, tzinfo=UTC)
    assert Instrument.objects.get(symbol="SAP.DE").currency == "EUR"

    isolated = MarginAccount.objects.get(code="ACC-1002-ISO")
    assert (isolated.client.code, isolated.mode, isolated.margin_model, isolated.cash) == (
        "C-1002",
        "isolated",
        "standard",
        Decimal("25000.00"),
    )
    euro = MarginAccount.objects.get(code="ACC-1001-EUR")
    assert (euro.mode, euro.margin_model, euro.base_currency, euro.cash) == (
        "cross",
        "standard",
        "EUR",
        Decimal("5000.00"),
    )

    assert set(
        MarginLoan.objects.values_list(
            "account__code", "principal", "rate_annual", "accrued_interest", "maturity_date", "status"
        )
    ) == {
        ("ACC-1001-X", Decimal("850000.00"), Decimal("0.0725"), Decimal("10273.97"), date(2026, 9, 30), "active"),
        ("ACC-2001-PM", Decimal("1200000"), Decimal("0.09"), Decimal(0), None, "active"),
    }
    assert _positions() == {
        ("ACC-1001-X", "AAPL", Decimal("5000"), Decimal("187.50"), None),
        ("ACC-1001-X", "AAPL-260618-C200", Decimal("-20"), Decimal("4.20"), None),
        ("ACC-1001-X", "SPY", Decimal("800"), Decimal("512.30"), None),
        ("ACC-1002-ISO", "BTC-PERP", Decimal("3.5"), Decimal("64250.50"), Decimal("22487.68")),
        ("ACC-1002-ISO", "BTC-260626", Decimal("-2"), Decimal("66100"), Decimal("13220.00")),
        ("ACC-1002-ISO", "BTC", Decimal("1.25"), Decimal("58000"), None),
        ("ACC-2001-PM", "BTC", Decimal("40"), Decimal("61000"), None),
        ("ACC-2001-PM", "BTC-PERP", Decimal("-15"), Decimal("65000"), None),
        ("ACC-1001-EUR", "SAP.DE", Decimal("2000"), Decimal("171.40"), None),
    }


def test_importing_the_same_book_twice_leaves_the_same_book() -> None:
    # given
    book_import(path=BOOK_EXAMPLE)
    before = _book_snapshot()

    # when
    again = book_import(path=BOOK_EXAMPLE)

    # then
    assert _book_snapshot() == before
    assert again == ImportResult(
        file=str(BOOK_EXAMPLE),
        groups=EntityCounts(updated=1),
        clients=EntityCounts(updated=3),
        instruments=EntityCounts(updated=7),
        accounts=EntityCounts(updated=4),
        loans=EntityCounts(updated=2),
        positions=EntityCounts(updated=9),
    )


def test_example_positions_csv_upserts_and_deletes_only_its_rows() -> None:
    # given
    book_import(path=BOOK_EXAMPLE)

    # when
    result = book_import(path=POSITIONS_EXAMPLE)

    # then
    assert result.positions == EntityCounts(created=1, updated=2, deleted=1)
    assert result.counts() == {"positions": EntityCounts(created=1, updated=2, deleted=1)}
    assert _positions() == {
        ("ACC-1001-X", "AAPL", Decimal("4500"), Decimal("187.50"), None),
        ("ACC-1001-X", "AAPL-260618-C200", Decimal("-20"), Decimal("4.20"), None),
        ("ACC-1002-ISO", "BTC-PERP", Decimal("4"), Decimal("64010.25"), Decimal("25604.10")),
        ("ACC-1002-ISO", "BTC-260626", Decimal("-2"), Decimal("66100"), Decimal("13220.00")),
        ("ACC-1002-ISO", "BTC", Decimal("1.25"), Decimal("58000"), None),
        ("ACC-2001-PM", "BTC", Decimal("40"), Decimal("61000"), None),
        ("ACC-2001-PM", "BTC-PERP", Decimal("-15"), Decimal("65000"), None),
        ("ACC-2001-PM", "SPY", Decimal("150"), Decimal("515.00"), None),
        ("ACC-1001-EUR", "SAP.DE", Decimal("2000"), Decimal("171.40"), None),
    }


def test_importing_the_same_positions_csv_twice_changes_nothing_more() -> None:
    # given
    book_import(path=BOOK_EXAMPLE)
    book_import(path=POSITIONS_EXAMPLE)
    before = _book_snapshot()

    # when
    again = book_import(path=POSITIONS_EXAMPLE)

    # then
    assert again.positions == EntityCounts(created=0, updated=3, deleted=0)
    assert _book_snapshot() == before


# --- Upsert semantics ---------------------------------------------------------------------------------


def test_listed_positions_replace_all_of_the_account_and_an_absent_list_keeps_them(tmp_path: Path) -> None:
    # given
    book_import(path=BOOK_EXAMPLE)
    document = {
        "accounts": [
            {
                "code": "ACC-1001-X",
                "client": "C-1001",
                "cash": "15000.00",
                "positions": [
                    {"instrument": "AAPL", "quantity": "5100", "entry_price": "187.10"},
                    {"instrument": "SPY", "quantity": "0"},
                ],
            },
            {"code": "ACC-2001-PM", "client": "C-2001", "margin_model": "portfolio", "positions": []},
            {"code": "ACC-1002-ISO", "client": "C-1002", "mode": "isolated", "cash": "25000.00"},
        ]
    }

    # when
    result = book_import(path=_write_json(tmp_path, document))

    # then
    assert result.positions == EntityCounts(created=0, updated=1, deleted=4)
    assert {(a, i, q) for a, i, q, _, _ in _positions()} == {
        ("ACC-1001-X", "AAPL", Decimal("5100")),
        ("ACC-1002-ISO", "BTC-PERP", Decimal("3.5")),
        ("ACC-1002-ISO", "BTC-260626", Decimal("-2")),
        ("ACC-1002-ISO", "BTC", Decimal("1.25")),
        ("ACC-1001-EUR", "SAP.DE", Decimal("2000")),
    }


def test_a_row_describes_the_whole_entity_so_omitted_optional_fields_take_their_defaults(tmp_path: Path) -> None:
    # given
    book_import(path=BOOK_EXAMPLE)

    # when
    book_import(path=_write_json(tmp_path, {"clients": [{"code": "C-1001", "name": "Halvorsen Capital Ltd"}]}))

    # then
    client = Client.objects.get(code="C-1001")
    assert (client.credit_tier, client.group, client.external_capacity) == ("B", None, Decimal(0))


def test_loan_updates_the_one_active_loan_in_place_and_leaves_closed_loans(tmp_path: Path) -> None:
    # given
    account = MarginAccountFactory.create(code="A1")
    closed = MarginLoanFactory.create(account=account, status=LoanStatus.CLOSED, principal=Decimal("7"))
    active = MarginLoanFactory.create(account=account, principal=Decimal("100000.00"))
    document = {
        "accounts": [
            {
                "code": "A1",
                "client": account.client.code,
                "loan": {
                    "principal": "95000.50",
                    "rate_annual": "0.11",
                    "accrued_interest": "12.34",
                    "maturity_date": "2027-01-31",
                },
            }
        ]
    }

    # when
    result = book_import(path=_write_json(tmp_path, document))

    # then
    assert result.loans == EntityCounts(updated=1)
    active.refresh_from_db()
    closed.refresh_from_db()
    assert (active.status, active.principal, active.rate_annual, active.accrued_interest, active.maturity_date) == (
        "active",
        Decimal("95000.50"),
        Decimal("0.11"),
        Decimal("12.34"),
        date(2027, 1, 31),
    )
    assert (closed.status, closed.principal) == ("closed", Decimal("7"))
    assert MarginLoan.objects.count() == 2


def test_loan_null_or_absent_leaves_the_loans_as_they_are(tmp_path: Path) -> None:
    # given
    loan = MarginLoanFactory.create(account__code="A1", principal=Decimal("100000.00"))
    client_code = loan.account.client.code
    document = {
        "accounts": [
            {"code": "A1", "client": client_code, "loan": None},
            {"code": "A2", "client": client_code},
        ]
    }

    # when
    result = book_import(path=_write_json(tmp_path, document))

    # then
    assert result.loans == EntityCounts()
    assert list(MarginLoan.objects.values_list("account__code", "principal", "status")) == [
        ("A1", Decimal("100000.00"), "active")
    ]


def test_instruments_written_on_instruments_of_the_same_file_are_written_after_them(tmp_path: Path) -> None:
    # given: an option on a future on a spot asset, listed from the top of the chain down
    common = {"initial_rate": "0.2", "maintenance_rate": "0.1", "daily_volatility": "0.02"}
    document = {
        "instruments": [
            {
                "symbol": "OPT",
                "kind": "option",
                "underlying": "FUT",
                "strike": "10",
                "expiry": "2026-09-18T20:00:00Z",
                "option_type": "put",
                **common,
            },
            {"symbol": "FUT", "kind": "future", "underlying": "SPOT", "expiry": "2026-09-18T20:00:00Z", **common},
            {"symbol": "SPOT", "kind": "spot", **common},
        ]
    }

    # when
    result = book_import(path=_write_json(tmp_path, document))

    # then
    assert result.instruments == EntityCounts(created=3)
    assert dict(Instrument.objects.values_list("symbol", "underlying__symbol")) == {
        "OPT": "FUT",
        "FUT": "SPOT",
        "SPOT": None,
    }


def test_references_may_point_at_what_the_book_already_holds(tmp_path: Path) -> None:
    # given
    client = ClientFactory.create(code="C-OLD")
    spot = InstrumentFactory.create(symbol="OLD-SPOT")
    document = {
        "instruments": [
            {
                "symbol": "NEW-PERP",
                "kind": "perpetual",
                "underlying": "OLD-SPOT",
                "initial_rate": "0.1",
                "maintenance_rate": "0.05",
                "daily_volatility": "0.02",
            }
        ],
        "accounts": [{"code": "A-NEW", "client": "C-OLD", "positions": [{"instrument": "OLD-SPOT", "quantity": "3"}]}],
    }

    # when
    book_import(path=_write_json(tmp_path, document))

    # then
    assert Instrument.objects.get(symbol="NEW-PERP").underlying_id == spot.pk
    assert MarginAccount.objects.get(code="A-NEW").client_id == client.pk
    assert _positions() == {("A-NEW", "OLD-SPOT", Decimal("3"), Decimal(0), None)}


# --- Refusals: the message names file, row and field; nothing is written -----------------------------


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Set one field of the small book, by a path like `accounts.0.positions.1.quantity`; an index one past
    the end of a list appends."""

    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if last.isdigit() and int(last) == len(node):
            node.append(value)
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


BAD_BOOK_ROWS = [
    pytest.param(
        _set("accounts.0.client", "C404"),
        "row accounts[0]: field 'client': unknown client 'C404': neither in this file nor in the book",
        id="unknown-client",
    ),
    pytest.param(
        _set("clients.0.group", "G404"),
        "row clients[0]: field 'group': unknown group 'G404': neither in this file nor in the book",
        id="unknown-group",
    ),
    pytest.param(
        _set("accounts.0.positions.0.instrument", "NOPE"),
        "row accounts[0].positions[0]: field 'instrument': unknown instrument 'NOPE': "
        "neither in this file nor in the book",
        id="unknown-instrument",
    ),
    pytest.param(
        _set("instruments.1.underlying", "NOPE"),
        "row instruments[1]: field 'underlying': unknown instrument 'NOPE': neither in this file nor in the book",
        id="unknown-underlying",
    ),
    pytest.param(
        _set("instruments.1.kind", "future"),
        "row instruments[1]: field 'expiry': required for a future",
        id="future-without-expiry",
    ),
    pytest.param(
        _set("instruments.0.underlying", "XYZ-PERP"),
        "row instruments[0]: field 'underlying': a spot instrument has no underlying",
        id="spot-with-underlying",
    ),
    pytest.param(
        _set("instruments.1.expiry", "2026-06-19T20:00:00Z"),
        "row instruments[1]: field 'expiry': a perpetual instrument has no expiry",
        id="perpetual-with-expiry",
    ),
    pytest.param(
        _set("instruments.0.strike", "10"),
        "row instruments[0]: field 'strike': a spot instrument has no strike",
        id="spot-with-strike",
    ),
    pytest.param(
        _set("instruments.1.underlying", "XYZ-PERP"),
        "row instruments[1]: field 'underlying': an instrument cannot be its own underlying",
        id="own-underlying",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", "1000000000000001"),
        "row accounts[0].positions[0]: field 'quantity': 1000000000000001 is out of range: at most 10^15 either way",
        id="quantity-too-large",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", "-1000000000000001"),
        "row accounts[0].positions[0]: field 'quantity': -1000000000000001 is out of range: at most 10^15 either way",
        id="quantity-too-small",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", "12,5"),
        "row accounts[0].positions[0]: field 'quantity': '12,5' is not a number; "
        "use a point for decimals and no thousands separator",
        id="quantity-decimal-comma",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", "abc"),
        "row accounts[0].positions[0]: field 'quantity': 'abc' is not a number",
        id="quantity-not-a-number",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", ""),
        "row accounts[0].positions[0]: field 'quantity': '' is not a number",
        id="quantity-empty-string",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", True),
        "row accounts[0].positions[0]: field 'quantity': expected a number, got true",
        id="quantity-boolean",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", "0.123456789"),
        "row accounts[0].positions[0]: field 'quantity': 0.123456789 has more than 8 decimal places",
        id="quantity-too-precise",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantity", None),
        "row accounts[0].positions[0]: field 'quantity': required",
        id="quantity-missing",
    ),
    pytest.param(
        _set("instruments.0.maintenance_rate", "0.6"),
        "row instruments[0]: field 'maintenance_rate': 0.6 is above initial_rate 0.5; "
        "need 0 < maintenance_rate <= initial_rate <= 1",
        id="rates-out-of-order",
    ),
    pytest.param(
        _set("instruments.0.maintenance_rate", "0"),
        "row instruments[0]: field 'maintenance_rate': 0 must be greater than 0",
        id="maintenance-rate-zero",
    ),
    pytest.param(
        _set("instruments.0.initial_rate", "1.5"),
        "row instruments[0]: field 'initial_rate': 1.5 must be at most 1",
        id="initial-rate-above-one",
    ),
    pytest.param(
        _set("instruments.0.haircut", "1.01"),
        "row instruments[0]: field 'haircut': 1.01 must be at most 1",
        id="haircut-above-one",
    ),
    pytest.param(
        _set("instruments.0.haircut", "-0.1"),
        "row instruments[0]: field 'haircut': -0.1 must not be negative",
        id="haircut-negative",
    ),
    pytest.param(
        _set("accounts.0.mode", "cross"),
        "row accounts[0].positions[1]: field 'isolated_margin': account A1 is in cross mode; "
        "isolated margin needs an isolated account",
        id="isolated-margin-on-cross-account",
    ),
    pytest.param(
        _set("accounts.0.positions.0.isolated_margin", "5"),
        "row accounts[0].positions[0]: field 'isolated_margin': XYZ is a spot; "
        "isolated margin is for perpetuals and futures only",
        id="isolated-margin-on-spot",
    ),
    pytest.param(
        _set("instruments.0.currency", "EUR"),
        "row accounts[0].positions[0]: field 'instrument': XYZ is in EUR but account A1 is in USD; "
        "a position must be in the account's base currency (no FX in this version)",
        id="currency-differs-from-account",
    ),
    pytest.param(
        _set("accounts.0.cash", "-0.01"),
        "row accounts[0]: field 'cash': -0.01 must not be negative",
        id="negative-cash",
    ),
    pytest.param(
        _set("accounts.0.loan.principal", "-5000"),
        "row accounts[0].loan: field 'principal': -5000 must not be negative",
        id="negative-principal",
    ),
    pytest.param(
        _set("accounts.0.loan.maturity_date", "31/01/2027"),
        "row accounts[0].loan: field 'maturity_date': '31/01/2027' is not an ISO 8601 date (YYYY-MM-DD)",
        id="maturity-not-iso",
    ),
    pytest.param(
        _set("clients.0.name", None),
        "row clients[0]: field 'name': required",
        id="missing-name",
    ),
    pytest.param(
        _set("clients.0.name", "   "),
        "row clients[0]: field 'name': is empty",
        id="blank-name",
    ),
    pytest.param(
        _set("groups.0.code", 7),
        "row groups[0]: field 'code': expected a string, got 7",
        id="code-not-a-string",
    ),
    pytest.param(
        _set("groups.0.code", "G" * 65),
        "row groups[0]: field 'code': is longer than 64 characters",
        id="code-too-long",
    ),
    pytest.param(
        _set("instruments.1.kind", "swap"),
        "row instruments[1]: field 'kind': 'swap' is not one of: spot, perpetual, future, option",
        id="unknown-kind",
    ),
    pytest.param(
        _set("accounts.0.mode", "hybrid"),
        "row accounts[0]: field 'mode': 'hybrid' is not one of: cross, isolated",
        id="unknown-mode",
    ),
    pytest.param(
        _set("accounts.0.margin_model", "var"),
        "row accounts[0]: field 'margin_model': 'var' is not one of: standard, portfolio",
        id="unknown-margin-model",
    ),
    pytest.param(
        _set("clients.0.credit_tier", "E"),
        "row clients[0]: field 'credit_tier': 'E' is not one of: A, B, C, D",
        id="unknown-credit-tier",
    ),
    pytest.param(
        _set("instruments.0.scenario_class", "fx"),
        "row instruments[0]: field 'scenario_class': 'fx' is not one of: equity, broad_index, index, crypto",
        id="unknown-scenario-class",
    ),
    pytest.param(
        _set("accounts.0.base_currency", "usd"),
        "row accounts[0]: field 'base_currency': 'usd' is not a currency code "
        "(upper case, 2 to 8 letters or digits, like USD or BTC)",
        id="currency-lower-case",
    ),
    pytest.param(
        _set("clients.0.external_capacity", "-1"),
        "row clients[0]: field 'external_capacity': -1 must not be negative",
        id="negative-external-capacity",
    ),
    pytest.param(
        _set("instruments.0.daily_volatility", "0"),
        "row instruments[0]: field 'daily_volatility': 0 must be greater than 0",
        id="zero-daily-volatility",
    ),
    pytest.param(
        _set("instruments.0.contract_size", "0"),
        "row instruments[0]: field 'contract_size': 0 must be greater than 0",
        id="zero-contract-size",
    ),
    pytest.param(
        _set("instruments.0.average_daily_volume", "1" + "0" * 21),
        "row instruments[0]: field 'average_daily_volume': 1000000000000000000000 is too large: "
        "at most 20 digits before the decimal point",
        id="number-too-large-for-column",
    ),
    *(
        pytest.param(
            _set("accounts.0.cash", written),
            f"row accounts[0]: field 'cash': {written!r} is not a plain decimal number (ASCII digits, optionally a "
            "point and more digits; no spaces, underscores, exponent or other digits)",
            id=f"number-format-{name}",
        )
        # Each of these Python's Decimal reads as a number: the one grammar of numbers (core.amounts) does not.
        for name, written in [
            ("full-width-digits", "\uff11\uff12\uff13"),
            ("underscores", "1_000"),
            ("surrounding-spaces", " 12 "),
            ("exponent", "1e3"),
            ("plus-sign", "+5"),
        ]
    ),
    pytest.param(
        _set("accounts.0.positions", None),
        "row accounts[0]: field 'positions': expected a list (leave the key out to keep the positions as they are), "
        "got null",
        id="positions-null",
    ),
    pytest.param(
        _set("accounts.0.loan", "5000"),
        "row accounts[0]: field 'loan': expected an object or null, got '5000'",
        id="loan-not-an-object",
    ),
    pytest.param(
        _set("accounts.0.positions.0.quantiy", "10"),
        "row accounts[0].positions[0]: field 'quantiy': unknown field; "
        "expected one of: instrument, quantity, entry_price, isolated_margin",
        id="unknown-field",
    ),
    pytest.param(
        _set("accounts.0.positions.1", "XYZ-PERP"),
        "row accounts[0].positions[1]: field '(row)': expected an object, got 'XYZ-PERP'",
        id="row-not-an-object",
    ),
    pytest.param(
        _set("groups.1", {"code": "G1", "name": "Group one again"}),
        "row groups[1]: field 'code': group 'G1' is given twice; first in row groups[0]",
        id="duplicate-group",
    ),
    pytest.param(
        _set("instruments.2", {**_small_book()["instruments"][0], "daily_volatility": "0.03"}),
        "row instruments[2]: field 'symbol': instrument 'XYZ' is given twice; first in row instruments[0]",
        id="duplicate-instrument",
    ),
    pytest.param(
        _set("accounts.0.positions.2", {"instrument": "XYZ", "quantity": "1"}),
        "row accounts[0].positions[2]: field 'instrument': 'XYZ' is given twice; first in row accounts[0].positions[0]",
        id="duplicate-position",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), BAD_BOOK_ROWS)
def test_a_bad_row_refuses_the_whole_file_naming_file_row_and_field(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    # given
    document = _small_book()
    mutate(document)
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert f"{path}: {expected}" in str(refusal).splitlines()
    assert (
        str(refusal).splitlines()[0]
        == f"{path}: {len(refusal.errors)} problem{'s' if len(refusal.errors) > 1 else ''} found; nothing was imported"
    )
    assert _row_counts() == dict.fromkeys(_row_counts(), 0)


def test_the_small_book_itself_is_valid(tmp_path: Path) -> None:
    # The refusal cases above break one field of it: they would prove nothing if it were already bad.
    result = book_import(path=_write_json(tmp_path, _small_book()))

    assert result.positions == EntityCounts(created=2)
    assert result.loans == EntityCounts(created=1)


def test_an_option_without_its_terms_reports_every_missing_term_at_once(tmp_path: Path) -> None:
    # given
    document = {
        "instruments": [
            {
                "symbol": "BARE-OPTION",
                "kind": "option",
                "initial_rate": "0.2",
                "maintenance_rate": "0.1",
                "daily_volatility": "0.02",
            }
        ]
    }
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal) == "\n".join(
        [
            f"{path}: 4 problems found; nothing was imported",
            f"{path}: row instruments[0]: field 'underlying': required for an option",
            f"{path}: row instruments[0]: field 'strike': required for an option",
            f"{path}: row instruments[0]: field 'expiry': required for an option",
            f"{path}: row instruments[0]: field 'option_type': required for an option",
        ]
    )
    assert [(error.row, error.field) for error in refusal.errors] == [
        ("instruments[0]", "underlying"),
        ("instruments[0]", "strike"),
        ("instruments[0]", "expiry"),
        ("instruments[0]", "option_type"),
    ]


def test_an_expiry_without_timezone_is_refused(tmp_path: Path) -> None:
    # given
    document = _small_book()
    document["instruments"][1].update(kind="future", expiry="2026-06-26T08:00:00")
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines()[1:] == [
        f"{path}: row instruments[1]: field 'expiry': '2026-06-26T08:00:00' has no timezone; "
        "add an offset such as Z or +00:00"
    ]


def test_nan_and_infinity_in_json_are_refused_as_not_finite(tmp_path: Path) -> None:
    # given: JSON has no NaN, but Python's parser (and many writers) accept the literals
    path = tmp_path / "book.json"
    path.write_text(
        '{"groups": [], "clients": [{"code": "C1", "name": "One", "external_capacity": NaN}],'
        ' "accounts": [{"code": "A1", "client": "C1", "cash": -Infinity}]}'
    )

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines()[1:] == [
        f"{path}: row clients[0]: field 'external_capacity': NaN is not a finite number",
        f"{path}: row accounts[0]: field 'cash': -Infinity is not a finite number",
    ]


def test_a_key_given_twice_in_one_object_is_refused(tmp_path: Path) -> None:
    # given
    path = tmp_path / "book.json"
    path.write_text('{"groups": [{"code": "G1", "name": "One", "name": "Two"}]}')

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines()[1:] == [f"{path}: row groups[0]: field 'name': given twice in this object"]


def test_a_loop_of_underlyings_is_refused(tmp_path: Path) -> None:
    # given
    common = {"kind": "perpetual", "initial_rate": "0.1", "maintenance_rate": "0.05", "daily_volatility": "0.02"}
    document = {
        "instruments": [
            {"symbol": "P1", "underlying": "P2", **common},
            {"symbol": "P2", "underlying": "P1", **common},
        ]
    }
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines()[1:] == [
        f"{path}: row instruments[0]: field 'underlying': the chain of underlyings from P1 loops back on itself",
        f"{path}: row instruments[1]: field 'underlying': the chain of underlyings from P2 loops back on itself",
    ]


def test_every_problem_is_reported_at_once_in_file_order(tmp_path: Path) -> None:
    # given: problems in three sections, one found only against the book (the unknown client)
    document = _small_book()
    document["clients"][0]["credit_tier"] = "Z"
    document["accounts"][0]["client"] = "C404"
    document["accounts"][0]["positions"][1]["quantity"] = "lots"
    document["instruments"][0]["haircut"] = "2"
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal) == "\n".join(
        [
            f"{path}: 4 problems found; nothing was imported",
            f"{path}: row clients[0]: field 'credit_tier': 'Z' is not one of: A, B, C, D",
            f"{path}: row instruments[0]: field 'haircut': 2 must be at most 1",
            f"{path}: row accounts[0]: field 'client': unknown client 'C404': neither in this file nor in the book",
            f"{path}: row accounts[0].positions[1]: field 'quantity': 'lots' is not a number",
        ]
    )


def test_problems_beyond_the_cap_are_counted_not_listed(tmp_path: Path) -> None:
    # given
    document = {"groups": [{"code": f"G{n}", "name": ""} for n in range(60)]}
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    lines = str(refusal).splitlines()
    assert lines[0] == f"{path}: 60 problems found; nothing was imported"
    assert lines[1] == f"{path}: row groups[0]: field 'name': is empty"
    assert lines[50] == f"{path}: row groups[49]: field 'name': is empty"
    assert lines[51:] == [f"{path}: ... and 10 more not shown"]
    assert (len(refusal.errors), refusal.not_shown) == (50, 10)


def test_a_bad_row_leaves_the_existing_book_untouched(tmp_path: Path) -> None:
    # given
    book_import(path=BOOK_EXAMPLE)
    before = _book_snapshot()
    document = json.loads(BOOK_EXAMPLE.read_text())
    document["clients"][0]["name"] = "Renamed"
    document["accounts"][0]["cash"] = "999"
    document["accounts"][3]["positions"][0]["quantity"] = "not a number"

    # when
    _refusal(_write_json(tmp_path, document))

    # then
    assert _book_snapshot() == before


def test_a_database_error_while_writing_rolls_back_everything_written_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: groups, clients, instruments and accounts are written before the loans
    def fail(*args: object, **kwargs: object) -> EntityCounts:
        raise IntegrityError("simulated failure")

    monkeypatch.setattr(book_import_writes, "_write_loans", fail)

    # when
    with pytest.raises(IntegrityError):
        book_import(path=_write_json(tmp_path, _small_book()))

    # then
    assert _row_counts() == dict.fromkeys(_row_counts(), 0)


def test_changing_an_account_currency_under_kept_positions_is_refused(tmp_path: Path) -> None:
    # given
    book_import(path=BOOK_EXAMPLE)
    document = {"accounts": [{"code": "ACC-1001-EUR", "client": "C-1001", "base_currency": "USD"}]}
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines()[1:] == [
        f"{path}: row accounts[0]: field 'base_currency': the book keeps the position of account ACC-1001-EUR in "
        "SAP.DE: SAP.DE is in EUR but account ACC-1001-EUR is in USD; a position must be in the account's base "
        "currency (no FX in this version); list the account's positions in this file to replace them"
    ]


def test_changing_an_account_currency_with_its_positions_listed_is_allowed(tmp_path: Path) -> None:
    # given
    book_import(path=BOOK_EXAMPLE)
    document = {"accounts": [{"code": "ACC-1001-EUR", "client": "C-1001", "base_currency": "USD", "positions": []}]}

    # when
    result = book_import(path=_write_json(tmp_path, document))

    # then
    assert result.positions == EntityCounts(deleted=1)
    assert MarginAccount.objects.get(code="ACC-1001-EUR").base_currency == "USD"


def test_changing_an_instrument_under_kept_positions_is_refused(tmp_path: Path) -> None:
    # given: an isolated perpetual position, whose instrument the file turns into a spot asset in EUR
    position = PositionFactory.create(
        account__code="A-ISO",
        account__mode="isolated",
        instrument=PerpetualFactory.create(symbol="P1"),
        isolated_margin=Decimal("10"),
    )
    document = {
        "instruments": [
            {
                "symbol": "P1",
                "kind": "spot",
                "currency": "EUR",
                "initial_rate": "0.5",
                "maintenance_rate": "0.25",
                "daily_volatility": "0.02",
            }
        ]
    }
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines()[1:] == [
        f"{path}: row instruments[0]: field 'currency': the book keeps the position of account A-ISO in P1: "
        "P1 is in EUR but account A-ISO is in USD; a position must be in the account's base currency "
        "(no FX in this version); list the account's positions in this file to replace them",
        f"{path}: row instruments[0]: field 'kind': the book keeps the position of account A-ISO in P1: "
        "P1 is a spot; isolated margin is for perpetuals and futures only; "
        "list the account's positions in this file to replace them",
    ]
    position.refresh_from_db()
    assert position.instrument.kind == "perpetual"


def test_switching_an_account_to_cross_under_isolated_positions_is_refused(tmp_path: Path) -> None:
    # given
    book_import(path=BOOK_EXAMPLE)
    document = {"accounts": [{"code": "ACC-1002-ISO", "client": "C-1002", "mode": "cross"}]}
    path = _write_json(tmp_path, document)

    # when
    refusal = _refusal(path)

    # then
    assert {(error.row, error.field) for error in refusal.errors} == {("accounts[0]", "mode")}
    assert len(refusal.errors) == 2  # BTC-PERP and BTC-260626 carry isolated margin
    assert MarginAccount.objects.get(code="ACC-1002-ISO").mode == "isolated"


# --- Refusals of whole files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        pytest.param("book.json", '{"groups": [', "not valid JSON: Expecting value at line 1 column 13", id="json"),
        pytest.param(
            "book.json",
            '{"group": []}',
            "unknown section 'group'; a book has the sections groups, clients, instruments, accounts",
            id="section",
        ),
        pytest.param(
            "book.json", '{"groups": {}}', "section 'groups' must be a list, got an object", id="section-type"
        ),
        pytest.param(
            "book.json",
            "[]",
            "a book is a JSON object with the sections groups, clients, instruments, accounts; got a list",
            id="not-an-object",
        ),
        pytest.param(
            "positions.csv",
            "account,symbol,qty\nA1,XYZ,1\n",
            "line 1 must be the header 'account,instrument,quantity,entry_price,isolated_margin', "
            "got 'account,symbol,qty'",
            id="csv-header",
        ),
        pytest.param(
            "positions.csv",
            "",
            "line 1 must be the header 'account,instrument,quantity,entry_price,isolated_margin', got ''",
            id="csv-empty",
        ),
        pytest.param(
            "book.yaml",
            "groups: []",
            "unsupported file type '.yaml': give a .json book or a .csv of positions",
            id="type",
        ),
    ],
)
def test_an_unusable_file_is_refused_as_a_whole(tmp_path: Path, name: str, content: str, expected: str) -> None:
    # given
    path = tmp_path / name
    path.write_text(content)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal) == f"{path}: {expected}"
    assert refusal.errors == ()


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.json"

    assert str(_refusal(path)) == f"{path}: cannot read the file: No such file or directory"


# --- Positions CSV ------------------------------------------------------------------------------------


CSV_HEADER = "account,instrument,quantity,entry_price,isolated_margin\n"


@pytest.fixture
def csv_book() -> None:
    """A cross USD account A1 and an isolated one A2, a spot asset XYZ, its perpetual XYZ-PERP and a call
    OPT on it, and a spot asset in EUR."""
    spot = InstrumentFactory.create(symbol="XYZ")
    PerpetualFactory.create(symbol="XYZ-PERP", underlying=spot)
    OptionFactory.create(symbol="OPT", underlying=spot)
    InstrumentFactory.create(symbol="EURO", currency="EUR")
    client = ClientFactory.create(code="C1")
    MarginAccountFactory.create(code="A1", client=client)
    MarginAccountFactory.create(code="A2", client=client, mode="isolated")


@pytest.mark.usefixtures("csv_book")
@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param(
            "A404,XYZ,1,,",
            "row 3: field 'account': unknown account 'A404': neither in this file nor in the book",
            id="unknown-account",
        ),
        pytest.param(
            "A1,NOPE,1,,",
            "row 3: field 'instrument': unknown instrument 'NOPE': neither in this file nor in the book",
            id="unknown-instrument",
        ),
        pytest.param("A1,XYZ,,,", "row 3: field 'quantity': required", id="quantity-empty"),
        pytest.param(
            'A1,XYZ,"12,5",,',
            "row 3: field 'quantity': '12,5' is not a number; use a point for decimals and no thousands separator",
            id="decimal-comma",
        ),
        pytest.param(
            "A1,XYZ,12,5,,",
            "row 3: field 'column 6': unexpected: the row has 6 values, the header 5",
            id="unquoted-comma",
        ),
        pytest.param(
            "A1,XYZ,10", "row 3: field 'entry_price': missing: the row has 3 values, the header 5", id="short-row"
        ),
        pytest.param(
            "A1,XYZ,10000000000000000,,",
            "row 3: field 'quantity': 10000000000000000 is out of range: at most 10^15 either way",
            id="quantity-range",
        ),
        pytest.param("A1,XYZ,1,-2,", "row 3: field 'entry_price': -2 must not be negative", id="negative-entry-price"),
        pytest.param(
            "A1,XYZ-PERP,1,2,3",
            "row 3: field 'isolated_margin': account A1 is in cross mode; isolated margin needs an isolated account",
            id="isolated-on-cross",
        ),
        pytest.param(
            "A2,XYZ,1,2,3",
            "row 3: field 'isolated_margin': XYZ is a spot; isolated margin is for perpetuals and futures only",
            id="isolated-on-spot",
        ),
        pytest.param(
            "A2,OPT,1,2,3",
            "row 3: field 'isolated_margin': OPT is an option; isolated margin is for perpetuals and futures only",
            id="isolated-on-option",
        ),
        pytest.param(
            "A1,EURO,1,2,",
            "row 3: field 'instrument': EURO is in EUR but account A1 is in USD; "
            "a position must be in the account's base currency (no FX in this version)",
            id="currency",
        ),
        pytest.param(
            "A2,XYZ-PERP,5,,",
            "row 3: field 'instrument': position A2/XYZ-PERP is given twice; first in row 2",
            id="duplicate",
        ),
    ],
)
def test_a_bad_positions_csv_row_is_refused_with_its_line_number(tmp_path: Path, row: str, expected: str) -> None:
    # given: line 2 is fine, line 3 is bad
    path = _write_csv(tmp_path, f"{CSV_HEADER}A2,XYZ-PERP,1,10,5\n{row}\n")

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines()[1:] == [f"{path}: {expected}"]
    assert Position.objects.count() == 0


@pytest.mark.usefixtures("csv_book")
def test_positions_csv_counts_lines_from_the_header_and_skips_blank_lines(tmp_path: Path) -> None:
    # given
    path = _write_csv(tmp_path, f"{CSV_HEADER}A1,XYZ,1,,\n\nA1,NOPE,1,,\n")

    # when
    refusal = _refusal(path)

    # then
    assert [error.row for error in refusal.errors] == [4]


@pytest.mark.usefixtures("csv_book")
def test_positions_csv_quantity_zero_deletes_and_other_positions_stay(tmp_path: Path) -> None:
    # given
    PositionFactory.create(
        account=MarginAccount.objects.get(code="A1"), instrument=Instrument.objects.get(symbol="XYZ")
    )
    PositionFactory.create(
        account=MarginAccount.objects.get(code="A2"),
        instrument=Instrument.objects.get(symbol="XYZ-PERP"),
        quantity=Decimal("-2"),
        isolated_margin=Decimal("40"),
    )
    path = _write_csv(tmp_path, f"{CSV_HEADER}A1,XYZ,0,,\nA1,EURO,0,,\n A2 , XYZ , 3.25 , 99.5 ,\n")

    # when
    result = book_import(path=path)

    # then: deleting what the account does not hold is no error and counts nothing
    assert result.positions == EntityCounts(created=1, updated=0, deleted=1)
    assert _positions() == {
        ("A2", "XYZ-PERP", Decimal("-2"), Decimal("50.00"), Decimal("40")),
        ("A2", "XYZ", Decimal("3.25"), Decimal("99.5"), None),
    }


# --- Queries ------------------------------------------------------------------------------------------


def _book_of(accounts: int) -> dict[str, Any]:
    rates = {"initial_rate": "0.5", "maintenance_rate": "0.25", "daily_volatility": "0.02"}
    return {
        "groups": [{"code": "G", "name": "Group"}],
        "clients": [{"code": f"C{n}", "name": f"Client {n}", "group": "G"} for n in range(accounts)],
        "instruments": [
            {"symbol": "S", "kind": "spot", **rates},
            {"symbol": "P", "kind": "perpetual", "underlying": "S", **rates},
        ],
        "accounts": [
            {
                "code": f"A{n}",
                "client": f"C{n}",
                "mode": "isolated",
                "cash": "100",
                "loan": {"principal": "1000", "rate_annual": "0.1"},
                "positions": [
                    {"instrument": "S", "quantity": "1"},
                    {"instrument": "P", "quantity": "-1", "isolated_margin": "5"},
                ],
            }
            for n in range(accounts)
        ],
    }


@pytest.mark.parametrize("accounts", [30, 300])
def test_import_queries_do_not_grow_with_the_number_of_rows(
    tmp_path: Path, accounts: int, django_assert_max_num_queries: Any
) -> None:
    # given
    path = _write_json(tmp_path, _book_of(accounts))

    # when / then: the same bound for 30 and 300 accounts, first import and re-import (updates)
    with django_assert_max_num_queries(MAX_IMPORT_QUERIES):
        first = book_import(path=path)
    with django_assert_max_num_queries(MAX_IMPORT_QUERIES):
        again = book_import(path=path)
    assert first.positions == EntityCounts(created=2 * accounts)
    assert again.positions == EntityCounts(updated=2 * accounts)
    assert again.loans == EntityCounts(updated=accounts)


def test_refusing_a_big_bad_file_needs_few_queries(tmp_path: Path, django_assert_max_num_queries: Any) -> None:
    # given
    document = _book_of(300)
    for account in document["accounts"]:
        account["client"] = "C404"
    path = _write_json(tmp_path, document)

    # when / then
    with django_assert_max_num_queries(10):
        refusal = _refusal(path)
    assert (len(refusal.errors), refusal.not_shown) == (50, 250)


@pytest.mark.usefixtures("csv_book")
def test_positions_csv_queries_do_not_grow_with_the_number_of_rows(
    tmp_path: Path, django_assert_max_num_queries: Any
) -> None:
    # given
    client = Client.objects.get(code="C1")
    MarginAccount.objects.bulk_create([MarginAccount(code=f"B{n}", client=client) for n in range(300)])
    path = _write_csv(tmp_path, CSV_HEADER + "".join(f"B{n},XYZ,{n + 1},10,\n" for n in range(300)))

    # when / then
    with django_assert_max_num_queries(MAX_IMPORT_QUERIES):
        result = book_import(path=path)
    assert result.positions == EntityCounts(created=300)


# --- Command ------------------------------------------------------------------------------------------


def test_import_book_command_prints_the_counts() -> None:
    # given
    out = StringIO()

    # when
    call_command("import_book", str(BOOK_EXAMPLE), stdout=out)

    # then
    assert out.getvalue().splitlines() == [
        f"Imported {BOOK_EXAMPLE}",
        "  groups: 1 created, 0 updated, 0 deleted",
        "  clients: 3 created, 0 updated, 0 deleted",
        "  instruments: 7 created, 0 updated, 0 deleted",
        "  accounts: 4 created, 0 updated, 0 deleted",
        "  loans: 2 created, 0 updated, 0 deleted",
        "  positions: 9 created, 0 updated, 0 deleted",
    ]


def test_import_book_command_fails_on_a_bad_file_with_every_problem(tmp_path: Path) -> None:
    # given
    document = _small_book()
    document["accounts"][0]["client"] = "C404"
    document["accounts"][0]["positions"][0]["quantity"] = "abc"
    path = _write_json(tmp_path, document)

    # when
    with pytest.raises(CommandError) as failed:
        call_command("import_book", str(path), stdout=StringIO())

    # then
    assert str(failed.value).splitlines() == [
        f"{path}: 2 problems found; nothing was imported",
        f"{path}: row accounts[0]: field 'client': unknown client 'C404': neither in this file nor in the book",
        f"{path}: row accounts[0].positions[0]: field 'quantity': 'abc' is not a number",
    ]
    assert _row_counts() == dict.fromkeys(_row_counts(), 0)


def test_import_book_command_fails_on_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="cannot read the file"):
        call_command("import_book", str(tmp_path / "missing.csv"), stdout=StringIO())
