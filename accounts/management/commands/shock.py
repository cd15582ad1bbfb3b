"""`manage.py shock SYMBOL PCT [SYMBOL PCT ...] [--at ISO] [--only-listed]`: move prices by a percentage.

    manage.py shock BTC -25%
    manage.py shock BTC -25% ETH -30% --at 2026-03-02T21:00:00+00:00
    manage.py shock INJ -40%

Each symbol gets a new Price row at now (or --at) equal to its latest price x (1 + pct), rounded half-even
to the price field's 8 places, carrying over the latest implied volatility. A spot asset takes its linear
derivatives (perpetuals, futures) with it by the same percentage, since they track it; name one of them
yourself to move it differently, or pass --only-listed to move exactly the symbols given. Options are
refused: they have no price of their own, the risk engine prices them from their underlying. The moved
instruments' EWMA volatility is refreshed once the prices are committed. The work is done by
accounts.services.prices.prices_shock; this command parses the arguments and prints the moves.
"""

from __future__ import annotations

import re
from argparse import ArgumentParser
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from accounts.services.prices import ShockError, percent_text, prices_shock
from core.commands import OperationCommand
from core.errors import WorkoutError

# ASCII digits only: Python's \d and Decimal also read full-width and other Unicode digits as numbers.
_PERCENT = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]+)?)%$")
# argparse before Python 3.13 reads "-25%" as an unknown option, because its test for "this is a negative
# number, hence a positional" does not allow the "%"; the command widens that test (see create_parser).
_NEGATIVE_NUMBER_OR_PERCENT = re.compile(r"^-\d+(?:\.\d+)?%?$|^-\.\d+%?$")


def move_parse(text: str) -> Decimal:
    """'-25%' -> Decimal('-0.25'). A bare number is refused: '-0.25' could mean -25% or -0.25%."""
    match = _PERCENT.match(text)
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


def _at_parse(text: str) -> datetime:
    """ISO 8601; a time without offset is read in the project's time zone (UTC)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--at: {text!r} is not an ISO 8601 time") from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(OperationCommand):
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
        try:
            moves = moves_parse(options["moves"])
            with self.operation() as run:
                shock = prices_shock(moves=moves, at=options["at"], only_listed=options["only_listed"])
                run.outcome = {
                    "at": shock.at,
                    "moves": [
                        {"symbol": m.symbol, "old_price": m.old_price, "new_price": m.new_price, "follows": m.follows}
                        for m in shock.moves
                    ],
                }
        except WorkoutError as error:
            raise CommandError(str(error)) from error
        width = max(len(move.symbol) for move in shock.moves)
        for move in shock.moves:
            notes = [
                "no implied volatility" if move.implied_volatility is None else f"implied vol {move.implied_volatility}"
            ]
            if move.follows:
                notes.append(f"follows {move.follows}")
            change = f"{move.old_price} -> {move.new_price}  {percent_text(move.fraction)}"
            self.stdout.write(f"{move.symbol:<{width}}  {change}  ({', '.join(notes)})")
        self.stdout.write(f"{len(shock.moves)} price(s) written at {shock.at.isoformat()}")
