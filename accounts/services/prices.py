"""Price writes other than the file import (accounts/services/book_import/): the price shock.

A shock gives each instrument named a new Price row at `at` equal to its latest price at or before `at`
x (1 + fraction), rounded half-even to the price field's 8 places, carrying over the latest implied
volatility. A spot asset takes its linear derivatives (perpetuals, futures) with it by the same fraction,
since they track it, unless they are named themselves or `only_listed` is given. Options are refused: they
have no price of their own, the risk engine prices them from their underlying.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

from django.db import transaction
from django.utils import timezone

from accounts.models import Instrument, InstrumentKind, Price
from accounts.tasks import instrument_volatility_refresh_task
from core.dispatch import dispatch_on_commit
from core.errors import ConflictError, ValidationError

PRICE_QUANTUM = Decimal("1e-8")  # Price.price has 8 decimal places


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


@dataclass(frozen=True)
class PriceShock:
    at: datetime
    moves: list[PriceMove]


@transaction.atomic
def prices_shock(*, moves: Mapping[str, Decimal], at: datetime | None = None, only_listed: bool = False) -> PriceShock:
    """Write one Price row at `at` (default now) per moved instrument: latest price at or before `at`
    x (1 + fraction), `moves` mapping symbols to fractions (-0.25 for -25%).

    All symbols are checked before anything is written; the instruments are locked so that two shocks
    of the same instrument cannot both start from the same latest price. On commit, the moved instruments'
    EWMA volatility is refreshed, as after a price import: dynamic margin reads it.
    """
    if at is None:
        at = timezone.now()
    elif timezone.is_naive(at):
        raise ShockError("at: give an aware datetime", field="at")
    if not moves:
        raise ShockError("give at least one move, e.g. BTC -25%", field="moves")
    for symbol, fraction in moves.items():
        if fraction <= -1:
            raise ShockError(
                f"{symbol}: a move of {percent_text(fraction)} would take the price to zero or below", symbol=symbol
            )
    # FOR NO KEY UPDATE: concurrent shocks of one instrument queue up, while rows that merely reference it
    # (prices, positions, orders: their foreign-key checks take KEY SHARE) are not held up.
    instruments = (
        Instrument.objects.select_for_update(of=("self",), no_key=True)
        .select_related("underlying")
        .in_bulk(list(moves), field_name="symbol")
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
    if not only_listed:
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
                f"{instrument.symbol}: {latest.price} moved by {percent_text(fraction)} rounds to zero",
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
    # Dynamic margin reads each instrument's EWMA volatility: recompute it with the new prices.
    moved_ids = {row.instrument_id for row in rows}
    dispatch_on_commit(
        instrument_volatility_refresh_task,
        {"instrument_ids": sorted(moved_ids)},
        redrive="the volatility re-drive beat (volatility_redrive_task)",
    )
    return PriceShock(at=at, moves=result)


def percent_text(fraction: Decimal) -> str:
    """Decimal('-0.25') -> '-25%'."""
    return f"{(fraction * 100).normalize():+f}%"


def _derivatives_following(
    moved: dict[str, Instrument], moves: Mapping[str, Decimal]
) -> list[tuple[Instrument, Decimal, str | None]]:
    """Perpetuals and futures on a moved spot asset take the same move, unless they are named themselves."""
    spots = {instrument.pk: symbol for symbol, instrument in moved.items() if instrument.kind == InstrumentKind.SPOT}
    derivatives = (
        Instrument.objects.select_for_update(no_key=True)
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
