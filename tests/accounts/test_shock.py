"""`manage.py shock`: a new price at latest x (1 + pct), implied volatility carried over, clear refusals.

The argument syntax `shock BTC -25%` is tested three ways: through the command's own parser, through
call_command (which parses its arguments too), and from the shell in a subprocess against a throwaway
SQLite database, since that is the path an operator takes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from accounts.management.commands.shock import Command, move_parse
from accounts.models import Instrument, InstrumentKind, OptionType, Price
from accounts.services.prices import PriceMove, PriceShock, ShockError, prices_shock
from accounts.tasks import instrument_volatility_refresh_task
from core.dispatch import Dispatch

AS_OF = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
SHOCK_AT = AS_OF + timedelta(hours=1)


def _instrument(symbol: str, kind: str = InstrumentKind.SPOT, **terms: object) -> Instrument:
    return Instrument.objects.create(
        symbol=symbol,
        kind=kind,
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        daily_volatility=Decimal("0.03"),
        **terms,
    )


@pytest.fixture
def market() -> dict[str, Instrument]:
    """BTC with an older and a latest close (different implied volatilities), its perpetual, an option on
    it, ETH, and a coin never priced."""
    btc = _instrument("BTC", scenario_class="crypto")
    perp = _instrument("BTC-PERP", InstrumentKind.PERPETUAL, underlying=btc)
    option = _instrument(
        "BTC-20260327-90000-C",
        InstrumentKind.OPTION,
        underlying=btc,
        strike=Decimal(90000),
        expiry=AS_OF + timedelta(days=25),
        option_type=OptionType.CALL,
    )
    eth = _instrument("ETH")
    unpriced = _instrument("NEW")
    Price.objects.create(
        instrument=btc, time=AS_OF - timedelta(days=1), price=Decimal("60000"), implied_volatility=Decimal("0.5")
    )
    Price.objects.create(
        instrument=btc, time=AS_OF, price=Decimal("64123.45678901"), implied_volatility=Decimal("0.6159")
    )
    Price.objects.create(instrument=perp, time=AS_OF, price=Decimal("64200.00000000"))
    Price.objects.create(instrument=eth, time=AS_OF, price=Decimal("3400.00"), implied_volatility=Decimal("0.72"))
    return {"BTC": btc, "BTC-PERP": perp, "option": option, "ETH": eth, "NEW": unpriced}


def _shock(*args: str) -> str:
    out = StringIO()
    call_command("shock", *args, "--at", SHOCK_AT.isoformat(), stdout=out)
    return out.getvalue()


def _price_at(instrument: Instrument, at: datetime = SHOCK_AT) -> Price:
    return Price.objects.get(instrument=instrument, time=at)


def test_the_parser_reads_negative_percentages_as_moves() -> None:
    parser = Command().create_parser("manage.py", "shock")
    options = parser.parse_args(["BTC", "-25%", "ETH", "+10%", "SOL", "-2.5%", "--at", "2026-03-02T22:00:00+00:00"])
    assert options.moves == ["BTC", "-25%", "ETH", "+10%", "SOL", "-2.5%"]
    assert options.at == SHOCK_AT


@pytest.mark.parametrize(
    ("text", "fraction"),
    [("-25%", Decimal("-0.25")), ("+10%", Decimal("0.1")), ("10%", Decimal("0.1")), ("-2.5%", Decimal("-0.025"))],
)
def test_moves_are_percentages(text: str, fraction: Decimal) -> None:
    assert move_parse(text) == fraction


@pytest.mark.django_db
def test_shock_writes_latest_price_times_one_plus_the_move(market: dict[str, Instrument]) -> None:
    # when
    out = _shock("BTC", "-25%")
    # then: 64123.45678901 x 0.75 = 48092.5925917575, half-even to 8 places
    shocked = _price_at(market["BTC"])
    assert shocked.price == Decimal("48092.59259176")
    assert shocked.price == (Decimal("64123.45678901") * Decimal("0.75")).quantize(Decimal("1e-8"))
    assert shocked.implied_volatility == Decimal("0.6159")  # the latest one, not the older 0.5
    assert "BTC" in out
    assert "64123.45678901 -> 48092.59259176  -25%" in out
    assert Price.objects.filter(instrument=market["BTC"]).count() == 3


@pytest.mark.django_db
def test_a_spot_shock_moves_its_perpetual_by_the_same_percentage(market: dict[str, Instrument]) -> None:
    out = _shock("BTC", "-25%")
    assert _price_at(market["BTC-PERP"]).price == Decimal("48150.00000000")  # 64200 x 0.75, its own basis kept
    assert _price_at(market["BTC-PERP"]).implied_volatility is None
    assert "follows BTC" in out


@pytest.mark.django_db
def test_only_listed_leaves_the_perpetual_alone(market: dict[str, Instrument]) -> None:
    _shock("BTC", "-25%", "--only-listed")
    assert _price_at(market["BTC"]).price == Decimal("48092.59259176")
    assert not Price.objects.filter(instrument=market["BTC-PERP"], time=SHOCK_AT).exists()


@pytest.mark.django_db
def test_a_named_perpetual_takes_its_own_move(market: dict[str, Instrument]) -> None:
    _shock("BTC", "-25%", "BTC-PERP", "-20%")
    assert _price_at(market["BTC-PERP"]).price == Decimal("51360.00000000")


@pytest.mark.django_db
def test_several_pairs_and_a_rise(market: dict[str, Instrument]) -> None:
    _shock("BTC", "-25%", "ETH", "+10%")
    assert _price_at(market["ETH"]).price == Decimal("3740.00000000")
    assert _price_at(market["ETH"]).implied_volatility == Decimal("0.72")
    assert _price_at(market["BTC"]).price == Decimal("48092.59259176")


@pytest.mark.django_db
def test_without_at_the_price_is_written_now(market: dict[str, Instrument]) -> None:
    before = datetime.now(UTC)
    call_command("shock", "ETH", "-10%", stdout=StringIO())
    latest = Price.objects.filter(instrument=market["ETH"]).latest("time")
    assert latest.time >= before
    assert latest.price == Decimal("3060.00000000")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["DOGE", "-25%"], "unknown instrument(s): DOGE"),
        (["BTC-20260327-90000-C", "-25%"], "is an option: options have no price of their own"),
        (["BTC", "-100%"], "a move of -100% would take the price to zero or below"),
        (["BTC", "-150%"], "a move of -150% would take the price to zero or below"),
        (["BTC", "-0.25"], "write it as a percentage such as -25% or +10%"),
        (["BTC"], "give SYMBOL PCT pairs"),
        (["BTC", "-5%", "BTC", "-6%"], "BTC is given twice"),
        (["NEW", "-5%"], "NEW has no price at or before"),
        (["ETH", "-5%", "DOGE", "-5%"], "unknown instrument(s): DOGE"),
        # the one grammar of numbers (issue 14): ASCII digits only, no spaces, underscores or exponents
        (["BTC", "-\uff12\uff15%"], "write it as a percentage such as -25% or +10%"),
        (["BTC", "+2_5%"], "write it as a percentage such as -25% or +10%"),
        (["BTC", " -25%"], "write it as a percentage such as -25% or +10%"),
        (["BTC", "+2e1%"], "write it as a percentage such as -25% or +10%"),
    ],
)
@pytest.mark.django_db
def test_refusals_are_clear_and_write_nothing(market: dict[str, Instrument], args: list[str], message: str) -> None:
    prices_before = Price.objects.count()
    with pytest.raises(CommandError) as raised:
        _shock(*args)
    assert message in str(raised.value)
    assert Price.objects.count() == prices_before


@pytest.mark.django_db
def test_an_option_refusal_names_the_underlying_to_shock(market: dict[str, Instrument]) -> None:
    with pytest.raises(CommandError, match=r"prices them from their underlying \(BTC\); shock BTC instead"):
        _shock("BTC-20260327-90000-C", "-25%")


@pytest.mark.django_db
def test_a_second_shock_at_the_same_time_is_refused(market: dict[str, Instrument]) -> None:
    _shock("ETH", "-10%")
    with pytest.raises(CommandError, match="already has a price at"):
        _shock("ETH", "-10%")
    assert _price_at(market["ETH"]).price == Decimal("3060.00000000")


def _refresh_scheduled(callbacks: list[Any]) -> list[int]:
    """The instrument ids of the one volatility refresh scheduled on commit."""
    assert len(callbacks) == 1
    callback = callbacks[0]
    assert isinstance(callback, Dispatch)
    assert callback.task is instrument_volatility_refresh_task
    assert len(callback.calls) == 1
    assert set(callback.calls[0]) == {"instrument_ids"}
    ids: list[int] = callback.calls[0]["instrument_ids"]
    return ids


@pytest.mark.django_db
def test_a_shock_refreshes_the_moved_instruments_volatility_on_commit(
    market: dict[str, Instrument], django_capture_on_commit_callbacks: Any
) -> None:
    # when
    with django_capture_on_commit_callbacks() as callbacks:
        _shock("BTC", "-25%", "ETH", "+10%")
    # then one refresh, of every instrument given a price (the perpetual following BTC included), sorted
    expected = sorted([market["BTC"].pk, market["BTC-PERP"].pk, market["ETH"].pk])
    assert _refresh_scheduled(callbacks) == expected


@pytest.mark.django_db
def test_only_listed_refreshes_only_the_listed_instruments(
    market: dict[str, Instrument], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        _shock("BTC", "-25%", "--only-listed")
    assert _refresh_scheduled(callbacks) == [market["BTC"].pk]


@pytest.mark.django_db
def test_a_refused_shock_schedules_no_refresh(
    market: dict[str, Instrument], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(CommandError):
        _shock("BTC", "-25%", "NEW", "-5%")
    assert callbacks == []
    assert not Price.objects.filter(time=SHOCK_AT).exists()


@pytest.mark.django_db
def test_the_service_returns_the_moves_it_wrote(market: dict[str, Instrument]) -> None:
    # when
    shock = prices_shock(moves={"BTC": Decimal("-0.25")}, at=SHOCK_AT)
    # then
    assert shock == PriceShock(
        at=SHOCK_AT,
        moves=[
            PriceMove(
                symbol="BTC",
                time=SHOCK_AT,
                old_price=Decimal("64123.45678901"),
                new_price=Decimal("48092.59259176"),
                fraction=Decimal("-0.25"),
                implied_volatility=Decimal("0.6159"),
                follows=None,
            ),
            PriceMove(
                symbol="BTC-PERP",
                time=SHOCK_AT,
                old_price=Decimal("64200.00000000"),
                new_price=Decimal("48150.00000000"),
                fraction=Decimal("-0.25"),
                implied_volatility=None,
                follows="BTC",
            ),
        ],
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"moves": {}, "at": SHOCK_AT}, "give at least one move"),
        ({"moves": {"BTC": Decimal("-0.25")}, "at": SHOCK_AT.replace(tzinfo=None)}, "at: give an aware datetime"),
    ],
)
@pytest.mark.django_db
def test_the_service_refuses_no_moves_and_a_naive_time(
    market: dict[str, Instrument], arguments: dict[str, Any], message: str
) -> None:
    prices_before = Price.objects.count()
    with pytest.raises(ShockError, match=message):
        prices_shock(**arguments)
    assert Price.objects.count() == prices_before


@pytest.mark.slow
def test_shock_from_the_shell(tmp_path: Path) -> None:
    """`python manage.py shock BTC -25%` exactly as typed, against a throwaway SQLite database."""
    # No broker either: the volatility refresh the shock schedules runs in the command (eager), not in a
    # worker of whatever Redis the test run was given.
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'shell.sqlite3'}",
        "CELERY_BROKER_URL": "",
        "CELERY_TASK_ALWAYS_EAGER": "true",
    }

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=settings.BASE_DIR,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert manage("migrate", "--noinput", "-v0").returncode == 0
    loaded = manage("generate_book", "--accounts", "20", "--history-days", "5", "--as-of", AS_OF.isoformat())
    assert loaded.returncode == 0, loaded.stderr

    shocked = manage("shock", "BTC", "-25%", "--at", SHOCK_AT.isoformat())
    # The generated history ends at the reference price, 95000 for BTC.
    assert shocked.returncode == 0, shocked.stderr
    assert "95000.00000000 -> 71250.00000000  -25%" in shocked.stdout
    risen = manage("shock", "ETH", "+10%", "--at", SHOCK_AT.isoformat())
    assert risen.returncode == 0, risen.stderr
    assert "3400.00000000 -> 3740.00000000  +10%" in risen.stdout

    refused = manage("shock", "BTC", "-100%")
    assert refused.returncode == 1
    assert "a move of -100% would take the price to zero or below" in refused.stderr
