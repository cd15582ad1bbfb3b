from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Instrument, Price
from accounts.services.book_import import EntityCounts, ImportResult, book_import, prices_import
from core.errors import ImportFileError
from tests.factories.accounts import InstrumentFactory, PriceFactory

pytestmark = pytest.mark.django_db

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
PRICES_CSV_EXAMPLE = EXAMPLES / "prices.csv"
PRICES_JSON_EXAMPLE = EXAMPLES / "prices.json"
HEADER = "instrument,time,price,implied_volatility\n"


@pytest.fixture
def example_book() -> None:
    book_import(path=EXAMPLES / "book.json")


def _prices() -> set[tuple[str, datetime, Decimal, Decimal | None]]:
    return set(Price.objects.values_list("instrument__symbol", "time", "price", "implied_volatility"))


def _ids(*symbols: str) -> frozenset[int]:
    return frozenset(Instrument.objects.filter(symbol__in=symbols).values_list("pk", flat=True))


def _refusal(path: Path) -> ImportFileError:
    with pytest.raises(ImportFileError) as refused:
        prices_import(path=path)
    return refused.value


def _write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


@pytest.mark.usefixtures("example_book")
def test_example_prices_csv_imports_exact_values() -> None:
    # when
    result = prices_import(path=PRICES_CSV_EXAMPLE)

    # then
    assert result == ImportResult(
        file=str(PRICES_CSV_EXAMPLE),
        prices=EntityCounts(created=7),
        priced_instrument_ids=_ids("AAPL", "AAPL-260618-C200", "SPY", "BTC", "BTC-PERP", "BTC-260626", "SAP.DE"),
    )
    close = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
    assert _prices() == {
        ("AAPL", close, Decimal("189.84"), Decimal("0.2650")),
        ("AAPL-260618-C200", close, Decimal("4.55"), None),
        ("SPY", close, Decimal("514.07"), Decimal("0.1580")),
        ("BTC", close, Decimal("62418.50"), Decimal("0.5400")),
        ("BTC-PERP", close, Decimal("62455.00"), None),
        ("BTC-260626", close, Decimal("63390.00"), None),
        # 17:30 in Frankfurt (+01:00) is 16:30 UTC
        ("SAP.DE", datetime(2026, 3, 2, 16, 30, tzinfo=UTC), Decimal("173.12"), Decimal("0.2200")),
    }


@pytest.mark.usefixtures("example_book")
def test_example_prices_json_imports_exact_values() -> None:
    # when
    result = prices_import(path=PRICES_JSON_EXAMPLE)

    # then
    assert result.prices == EntityCounts(created=3)
    assert result.priced_instrument_ids == _ids("AAPL", "BTC", "BTC-PERP")
    close = datetime(2026, 3, 3, 21, 0, tzinfo=UTC)
    assert _prices() == {
        ("AAPL", close, Decimal("187.02"), Decimal("0.2710")),
        # JSON numbers arrive as exact decimals
        ("BTC", close, Decimal("60977.25"), Decimal("0.5725")),
        ("BTC-PERP", close, Decimal("61012.5"), None),
    }


@pytest.mark.usefixtures("example_book")
def test_importing_the_same_prices_twice_leaves_the_same_prices() -> None:
    # given
    prices_import(path=PRICES_CSV_EXAMPLE)
    before = list(Price.objects.order_by("pk").values_list())

    # when
    again = prices_import(path=PRICES_CSV_EXAMPLE)

    # then
    assert again.prices == EntityCounts(created=0, updated=7)
    assert list(Price.objects.order_by("pk").values_list()) == before


def test_a_price_at_the_same_instant_updates_the_stored_one_and_clears_an_omitted_volatility(tmp_path: Path) -> None:
    # given
    stored = PriceFactory.create(
        instrument=InstrumentFactory.create(symbol="XYZ"),
        time=datetime(2026, 3, 2, 21, 0, tzinfo=UTC),
        price=Decimal("10"),
        implied_volatility=Decimal("0.3"),
    )
    # 22:00 at +01:00 is the stored 21:00 UTC
    path = _write(tmp_path, "prices.csv", f"{HEADER}XYZ,2026-03-02T22:00:00+01:00,10.50,\n")

    # when
    result = prices_import(path=path)

    # then
    assert result.prices == EntityCounts(updated=1)
    assert list(Price.objects.values_list("pk", "price", "implied_volatility")) == [(stored.pk, Decimal("10.50"), None)]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        pytest.param(
            "NOPE,2026-03-02T21:00:00Z,1,",
            "row 3: field 'instrument': unknown instrument 'NOPE': neither in this file nor in the book",
            id="unknown-instrument",
        ),
        pytest.param("XYZ,2026-03-02T21:00:00Z,NaN,", "row 3: field 'price': 'NaN' is not a finite number", id="nan"),
        pytest.param("XYZ,2026-03-02T21:00:00Z,inf,", "row 3: field 'price': 'inf' is not a finite number", id="inf"),
        pytest.param(
            "XYZ,2026-03-02T21:00:00Z,-Infinity,", "row 3: field 'price': '-Infinity' is not a finite number", id="-inf"
        ),
        pytest.param("XYZ,2026-03-02T21:00:00Z,-5,", "row 3: field 'price': -5 must be greater than 0", id="negative"),
        pytest.param("XYZ,2026-03-02T21:00:00Z,0,", "row 3: field 'price': 0 must be greater than 0", id="zero"),
        pytest.param("XYZ,2026-03-02T21:00:00Z,,", "row 3: field 'price': required", id="missing"),
        pytest.param(
            'XYZ,2026-03-02T21:00:00Z,"1,234.50",',
            "row 3: field 'price': '1,234.50' is not a number; use a point for decimals and no thousands separator",
            id="thousands-separator",
        ),
        pytest.param(
            "XYZ,2026-03-02T21:00:00Z,1.123456789,",
            "row 3: field 'price': 1.123456789 has more than 8 decimal places",
            id="too-precise",
        ),
        pytest.param(
            "XYZ,2026-03-02T21:00:00Z,10,-0.2",
            "row 3: field 'implied_volatility': -0.2 must be greater than 0",
            id="negative-implied-volatility",
        ),
        pytest.param(
            "XYZ,2026-03-02T21:00:00,10,",
            "row 3: field 'time': '2026-03-02T21:00:00' has no timezone; add an offset such as Z or +00:00",
            id="naive-time",
        ),
        pytest.param(
            "XYZ,2026-03-02,10,",
            "row 3: field 'time': '2026-03-02' has no timezone; add an offset such as Z or +00:00",
            id="date-only",
        ),
        pytest.param(
            "XYZ,02/03/2026 21:00,10,",
            "row 3: field 'time': '02/03/2026 21:00' is not an ISO 8601 date and time",
            id="not-iso",
        ),
        pytest.param(
            "XYZ,2026-03-01T22:00:00-01:00,10,",
            "row 3: field 'time': price of XYZ at 2026-03-01T22:00:00-01:00 is given twice; first in row 2",
            id="duplicate-instant",
        ),
    ],
)
def test_a_bad_price_row_is_refused_with_its_line_number(tmp_path: Path, row: str, expected: str) -> None:
    # given: line 2 is fine, line 3 is bad; a price stored before must survive
    instrument = InstrumentFactory.create(symbol="XYZ")
    PriceFactory.create(instrument=instrument, time=datetime(2026, 1, 1, tzinfo=UTC), price=Decimal("9"))
    path = _write(tmp_path, "prices.csv", f"{HEADER}XYZ,2026-03-01T23:00:00Z,10,0.25\n{row}\n")

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines() == [f"{path}: 1 problem found; nothing was imported", f"{path}: {expected}"]
    assert list(Price.objects.values_list("price", flat=True)) == [Decimal("9")]


def test_bad_json_prices_are_refused_with_their_index(tmp_path: Path) -> None:
    # given
    InstrumentFactory.create(symbol="XYZ")
    path = tmp_path / "prices.json"
    path.write_text(
        "["
        '{"instrument": "XYZ", "time": "2026-03-02T21:00:00Z", "price": NaN},'
        '{"instrument": "XYZ", "time": "2026-03-03T21:00:00Z", "price": 12.5, "implied_volatility": -0.1},'
        '{"instrument": "XYZ", "time": "2026-03-04T21:00:00Z", "price": 12.5, "volatility": 0.1},'
        '"XYZ,2026-03-05T21:00:00Z,12"'
        "]"
    )

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal).splitlines() == [
        f"{path}: 4 problems found; nothing was imported",
        f"{path}: row [0]: field 'price': NaN is not a finite number",
        f"{path}: row [1]: field 'implied_volatility': -0.1 must be greater than 0",
        f"{path}: row [2]: field 'volatility': unknown field; "
        "expected one of: instrument, time, price, implied_volatility",
        f"{path}: row [3]: field '(row)': expected an object, got 'XYZ,2026-03-05T21:00:00Z,12'",
    ]
    assert Price.objects.count() == 0


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        pytest.param(
            "prices.csv",
            "symbol,time,close\nXYZ,2026-03-02T21:00:00Z,1\n",
            "line 1 must be the header 'instrument,time,price,implied_volatility', got 'symbol,time,close'",
            id="csv-header",
        ),
        pytest.param(
            "prices.json",
            '{"prices": []}',
            "expected a JSON list of objects, got an object",
            id="json-not-a-list",
        ),
        pytest.param(
            "prices.json",
            "[{]",
            "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 3",
            id="json-syntax",
        ),
        pytest.param("prices.xlsx", "", "unsupported file type '.xlsx': give a .csv or .json file", id="type"),
    ],
)
def test_an_unusable_prices_file_is_refused_as_a_whole(tmp_path: Path, name: str, content: str, expected: str) -> None:
    # given
    path = _write(tmp_path, name, content)

    # when
    refusal = _refusal(path)

    # then
    assert str(refusal) == f"{path}: {expected}"


def test_prices_import_queries_do_not_grow_with_the_number_of_rows(
    tmp_path: Path, django_assert_max_num_queries: Any
) -> None:
    # given: 10 instruments x 100 days, half of them already stored
    instruments = [InstrumentFactory.create(symbol=f"I{n}").symbol for n in range(10)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    days = [start + timedelta(days=day) for day in range(100)]
    rows = [
        {"instrument": symbol, "time": day.isoformat(), "price": f"{100 + index}.25"}
        for symbol in instruments
        for index, day in enumerate(days)
    ]
    prices_import(path=_write(tmp_path, "first.json", json.dumps(rows[::2])))
    path = _write(tmp_path, "prices.json", json.dumps(rows))

    # when / then
    with django_assert_max_num_queries(20):
        result = prices_import(path=path)
    assert result.prices == EntityCounts(created=500, updated=500)
    assert Price.objects.count() == 1000


# --- Command ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("example_book")
def test_import_prices_command_prints_the_counts() -> None:
    # given
    out = StringIO()

    # when
    call_command("import_prices", str(PRICES_JSON_EXAMPLE), stdout=out)

    # then
    assert out.getvalue().splitlines() == [
        f"Imported {PRICES_JSON_EXAMPLE}",
        "  prices: 3 created, 0 updated",
        "  instruments priced: 3",
    ]


def test_import_prices_command_fails_on_a_bad_file_naming_file_row_and_field(tmp_path: Path) -> None:
    # given
    InstrumentFactory.create(symbol="XYZ")
    path = _write(tmp_path, "prices.csv", f"{HEADER}XYZ,2026-03-02T21:00:00Z,-1,\n")

    # when
    with pytest.raises(CommandError) as failed:
        call_command("import_prices", str(path), stdout=StringIO())

    # then
    assert str(failed.value) == (
        f"{path}: 1 problem found; nothing was imported\n{path}: row 2: field 'price': -1 must be greater than 0"
    )
    assert Price.objects.count() == 0


@pytest.mark.django_db
def test_imported_prices_refresh_the_instruments_volatility(
    tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    # given a spot instrument and 25 daily closes moving +/-2% (log)
    instrument = InstrumentFactory.create(symbol="VOL")
    lines = ["instrument,time,price,implied_volatility"]
    level = 100.0
    for day in range(25):
        lines.append(f"VOL,2026-01-{day + 1:02d}T16:00:00Z,{level:.8f},")
        level *= math.exp(0.02 if day % 2 == 0 else -0.02)
    path = tmp_path / "prices.csv"
    path.write_text("\n".join(lines) + "\n")

    # when the file is imported and its transaction commits
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        prices_import(path=path)

    # then one refresh ran for the priced instrument and stored the EWMA of the returns (all |r| = 0.02)
    assert len(callbacks) == 1
    instrument.refresh_from_db()
    assert instrument.ewma_volatility == pytest.approx(0.02, rel=1e-6)
