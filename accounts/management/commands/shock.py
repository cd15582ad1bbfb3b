"""`manage.py shock SYMBOL PCT [SYMBOL PCT ...] [--at ISO] [--only-listed]`: move prices by a percentage.

    manage.py shock BTC -25%
    manage.py shock BTC -25% ETH -30% --at 2026-03-02T21:00:00+00:00
    manage.py shock INJ -40%

Each symbol gets a new Price row at now (or --at) equal to its latest price x (1 + pct), rounded half-even
to the price field's 8 places, carrying over the latest implied volatility. A spot asset takes its linear
derivatives (perpetuals, futures) with it by the same percentage, since they track it; name one of them
yourself to move it differently, or pass --only-listed to move exactly the symbols given. Options are
refused: they have no price of their own, the risk engine prices them from their underlying.
"""

from __future__ import annotations

import re
from argparse import ArgumentParser
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from accounts.models import Instrument, InstrumentKind, Price
from core.errors import ConflictError, ValidationError, WorkoutError

PRICE_QUANTUM = Decimal("1e-8")  # Price.price has 8 decimal places
_PERCENT = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)%$")
# argparse before Python 3.13 reads "-25%" as an unknown option, because its test for "this is a negative
# number, hence a positional" does not allow the "%"; the command widens that test (see create_parser).
_NEGATIVE_NUMBER_OR_PERCENT = re.compile(r"^-\d+(?:\.\d+)?%?$|^-\.\d+%?$")


class ShockError(ValidationError):
    code = "shock_invalid"


@dataclass(frozen=True)
class PriceMove:
    symbol: str
    time: datetime
    old_price: Decimal
    new_price: Decimal
    fraction: Decimal
    implied_volatility: Decimal | None
    follows: str | None  # the underlying whose move this derivative follows


def move_parse(text: str) -> Decimal:
    """'-25%' -> Decimal('-0.25'). A bare number is refused: '-0.25' could mean -25% or -0.25%."""
    match = _PERCENT.match(text.strip())
    if match is None:
        raise ShockError(f"{text!r} is not a move: write it as a percentage such as -25% or +10%", move=text)
    sign, digits = match.groups()
    try:
        return Decimal(f"{sign}{digits}") / 100
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        raise ShockError(f"{text!r} is not a number", move=text) from None


def moves_parse(tokens: list[str]) -> dict[str, Decimal]:
    if len(tokens) % 2:
        raise ShockError("give SYMBOL PCT pairs, e.g. BTC -25% ETH -30%", tokens=tokens)
    moves: dict[str, Decimal] = {}
    for symbol, move in zip(tokens[::2], tokens[1::2], strict=True):
        if symbol in moves:
            raise ShockError(f"{symbol} is given twice", symbol=symbol)
        moves[symbol] = move_parse(move)
    return moves


@transaction.atomic
def prices_shock(*, moves: dict[str, Decimal], at: datetime, follow_derivatives: bool = True) -> list[PriceMove]:
    """Write one Price row at `at` per moved instrument: latest price at or before `at` x (1 + fraction).

    All symbols are checked before anything is written; the instruments are locked so that two shocks
    of the same instrument cannot both start from the same latest price.
    """
    for symbol, fraction in moves.items():
        if fraction <= -1:
            raise ShockError(
                f"{symbol}: a move of {_percent(fraction)} would take the price to zero or below", symbol=symbol
            )
    instruments = (
        Instrument.objects.select_for_update(of=("self",))
        .select_related("underlying")
        .in_bulk(moves, field_name="symbol")
    )
    unknown = [symbol for symbol in moves if symbol not in instruments]
    if unknown:
        raise ShockError(f"unknown instrument(s): {', '.join(unknown)}", symbols=unknown)
    for symbol, instrument in instruments.items():
        if instrument.kind == InstrumentKind.OPTION:
            underlying = instrument.underlying.symbol if instrument.underlying else "its underlying"
            raise ShockError(
                f"{symbol} is an option: options have no price of their own, the risk engine prices them from "
                f"their underlying ({underlying}); shock {underlying} instead",
                symbol=symbol,
            )
    planned: list[tuple[Instrument, Decimal, str | None]] = [
        (instrument, moves[symbol], None) for symbol, instrument in instruments.items()
    ]
    if follow_derivatives:
        planned += _derivatives_following(instruments, moves)

    rows: list[Price] = []
    result: list[PriceMove] = []
    for instrument, fraction, follows in planned:
        latest = Price.objects.filter(instrument=instrument, time__lte=at).order_by("-time").first()
        if latest is None:
            if follows is not None:
                continue  # a derivative never priced has nothing to follow with
            raise ShockError(
                f"{instrument.symbol} has no price at or before {at.isoformat()}", symbol=instrument.symbol
            )
        if latest.time == at:
            raise ConflictError(
                f"{instrument.symbol} already has a price at {at.isoformat()}; give another --at",
                symbol=instrument.symbol,
            )
        new_price = _moved(latest.price, fraction)
        if new_price <= 0:
            raise ShockError(
                f"{instrument.symbol}: {latest.price} moved by {_percent(fraction)} rounds to zero",
                symbol=instrument.symbol,
            )
        rows.append(
            Price(instrument=instrument, time=at, price=new_price, implied_volatility=latest.implied_volatility)
        )
        result.append(
            PriceMove(
                symbol=instrument.symbol,
                time=at,
                old_price=latest.price,
                new_price=new_price,
                fraction=fraction,
                implied_volatility=latest.implied_volatility,
                follows=follows,
            )
        )
    Price.objects.bulk_create(rows)
    return result


def _derivatives_following(
    moved: dict[str, Instrument], moves: dict[str, Decimal]
) -> list[tuple[Instrument, Decimal, str | None]]:
    """Perpetuals and futures on a moved spot asset take the same move, unless they are named themselves."""
    spots = {instrument.pk: symbol for symbol, instrument in moved.items() if instrument.kind == InstrumentKind.SPOT}
    derivatives = (
        Instrument.objects.select_for_update()
        .filter(underlying_id__in=spots, kind__in=[InstrumentKind.PERPETUAL, InstrumentKind.FUTURE])
        .exclude(symbol__in=moved)
        .order_by("symbol")
    )
    return [
        (derivative, moves[spots[derivative.underlying_id]], spots[derivative.underlying_id])
        for derivative in derivatives
        if derivative.underlying_id is not None
    ]


def _moved(price: Decimal, fraction: Decimal) -> Decimal:
    # Wide enough that the product is exact before the one rounding to the field's places.
    with localcontext() as context:
        context.prec = 60
        return (price * (1 + fraction)).quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():+f}%"


def _at_parse(text: str) -> datetime:
    """ISO 8601; a time without offset is read in the project's time zone (UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--at: {text!r} is not an ISO 8601 time") from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = (
        "Move prices: a new Price row per symbol at latest x (1 + pct), implied volatility carried over. "
        "Example: shock BTC -25%  (several SYMBOL PCT pairs allowed)."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # So that "-25%" is a positional both from the shell and from call_command (which parses too).
        parser._negative_number_matcher = _NEGATIVE_NUMBER_OR_PERCENT
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("moves", nargs="+", metavar="SYMBOL PCT", help="e.g. BTC -25%% ETH +10%%")
        parser.add_argument("--at", type=_at_parse, default=None, help="time of the new prices (ISO 8601); default now")
        parser.add_argument(
            "--only-listed",
            action="store_true",
            help="move only the symbols given, not the perpetuals and futures of a moved spot asset",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        at = options["at"] or timezone.now()
        try:
            moves = moves_parse(options["moves"])
            result = prices_shock(moves=moves, at=at, follow_derivatives=not options["only_listed"])
        except WorkoutError as error:
            raise CommandError(str(error)) from error
        width = max(len(move.symbol) for move in result)
        for move in result:
            notes = [
                "no implied volatility" if move.implied_volatility is None else f"implied vol {move.implied_volatility}"
            ]
            if move.follows:
                notes.append(f"follows {move.follows}")
            change = f"{move.old_price} -> {move.new_price}  {_percent(move.fraction)}"
            self.stdout.write(f"{move.symbol:<{width}}  {change}  ({', '.join(notes)})")
        self.stdout.write(f"{len(result)} price(s) written at {at.isoformat()}")
