"""Money helpers: Decimal in, Decimal out, explicit rounding, never float at a boundary."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from django.conf import settings

from core.errors import MoneyTypeError, ValidationError

DEFAULT_DECIMALS = 2


def currency_decimals(currency: str) -> int:
    return int(settings.WORKOUT_CURRENCY_DECIMALS.get(currency, DEFAULT_DECIMALS))


def currency_quantum(currency: str) -> Decimal:
    return Decimal(1).scaleb(-currency_decimals(currency))


def to_decimal(value: object, *, field: str = "amount") -> Decimal:
    """Parse an amount given as a string, int or Decimal. Floats are refused; NaN and infinities too."""
    if isinstance(value, bool | float):
        raise MoneyTypeError(f"{field}: {value!r} is a float; give amounts as strings or Decimals", field=field)
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | str):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValidationError(f"{field}: {value!r} is not a number", field=field) from None
    else:
        raise ValidationError(f"{field}: {type(value).__name__} is not an amount", field=field)
    if not result.is_finite():
        raise ValidationError(f"{field}: {value!r} is not a finite number", field=field)
    return result


def quantize_money(value: Decimal, currency: str, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round to the currency's quantum, with an explicit rounding mode (banker's rounding by default)."""
    return value.quantize(currency_quantum(currency), rounding=rounding)
