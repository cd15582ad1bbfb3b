"""The one grammar of a decimal number given from outside: API fields, the officers' forms and the import files
all parse amounts, prices, rates and quantities here. Pure Python (no Django).

A number is written in plain decimal notation, ASCII only: an optional minus sign, the digits 0-9, and optionally
a point followed by at least one digit (`1234.50`, `-3`, `0.0725`). Refused: other Unicode digits (full-width
"\uff11\uff12\uff13", which Python's Decimal reads as 123), underscores (`"1_000"`, read as 1000), surrounding or
inner spaces, a plus sign, exponents (`1e3`), `NaN` and infinities, a decimal comma or thousands separators.
Nothing is rounded: a number with more decimal places than allowed, or more digits before the point, is refused.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Money columns are numeric(28, 8): at most 20 digits before the point, 8 after. An amount of money is further
# held to its currency's places (core.money.currency_places) where the currency is known.
MAX_WHOLE_DIGITS = 20
MAX_PLACES = 8

_PLAIN = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)
_SHOWN = 40  # a refused value is quoted in the message up to this many characters


class AmountError(ValueError):
    """A number that is not acceptable; `code` says why (invalid, max_whole_digits, max_decimal_places)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def shown(text: str) -> str:
    """The value as quoted in a message, cut short: a 5,000-digit number is not echoed back whole."""
    return repr(text) if len(text) <= _SHOWN else f"{text[:_SHOWN]!r}... ({len(text)} characters)"


def parse_decimal(
    text: str, *, places: int | None = MAX_PLACES, whole_digits: int | None = MAX_WHOLE_DIGITS
) -> Decimal:
    """The exact Decimal written in `text`, or AmountError. `places` is the most decimal places allowed (a
    currency's, or a column's); `whole_digits` the most significant digits before the point; None: the caller
    checks that bound itself."""
    match = _PLAIN.fullmatch(text)
    if match is None:
        hint = "; use a point for decimals and no thousands separator" if "," in text else ""
        raise AmountError(
            "invalid",
            f"{shown(text)} is not a plain decimal number (ASCII digits, optionally a point and more digits; "
            f"no spaces, underscores, exponent or other digits){hint}",
        )
    whole, fraction = match.group(2), match.group(3) or ""
    if whole_digits is not None and len(whole.lstrip("0")) > whole_digits:
        raise AmountError(
            "max_whole_digits", f"{shown(text)} is too large: at most {whole_digits} digits before the decimal point"
        )
    if places is not None and len(fraction) > places:
        raise AmountError(
            "max_decimal_places",
            f"{shown(text)} has more than {places} decimal place{'s' if places != 1 else ''}"
            if places
            else f"{shown(text)} must be a whole number: no decimal places",
        )
    return Decimal(text)


def check_places(number: Decimal, places: int) -> str | None:
    """None when `number` is exact at `places` decimal places (trailing zeros do not count), else why not."""
    try:
        exact = number == number.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:  # more digits than the context's precision: far beyond any column
        return f"{number} is too large"
    if not exact:
        return f"{number} has more than {places} decimal place{'s' if places != 1 else ''}"
    return None
