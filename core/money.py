"""Money conventions shared by the apps.

Amounts are Decimal in the database and at every boundary. Each currency is stored and shown to a number
of decimal places (settings.WORKOUT_CURRENCY_DECIMALS); the risk sweep rounds its float64 results to that
quantum, half to even (accounts/services/sweep.py `figures_round`). An amount given from outside is written in
the grammar of core.amounts and has at most its currency's places (`amount_check`).
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from core.amounts import check_places
from core.errors import ValidationError

# What an absent amount is shown as (an en dash).
NO_AMOUNT = "\u2013"
# Decimal places of a currency the settings do not list.
DEFAULT_DECIMALS = 2


def currency_places(currency: str) -> int:
    from django.conf import settings

    return int(settings.WORKOUT_CURRENCY_DECIMALS.get(currency, DEFAULT_DECIMALS))


def currency_quantum(currency: str) -> Decimal:
    """The smallest amount of a currency as stored and shown: 0.01 for USD, 1E-8 for a currency of 8 places."""
    return Decimal(1).scaleb(-currency_places(currency))


def amount_check(amount: Decimal, currency: str, *, field: str) -> None:
    """Refuse (ValidationError on `field`) an amount with more decimal places than its currency has: 10.005 USD is
    not an amount (it would be rounded somewhere, silently)."""
    problem = check_places(amount, currency_places(currency))
    if problem:
        raise ValidationError(f"{field}: {problem}, the places of {currency}", field=field)


def money_text(
    amount: Decimal | int | float | str | None, currency: str, *, locale: str | None = None, places: int | None = None
) -> str:
    """`amount` of `currency` as a reader of `locale` writes it (the active language when not given): the
    locale's currency pattern, symbol and separators from CLDR (Babel), with the currency's places from the
    settings (currency_places), not CLDR's: BTC has 8 here, and USDT, which CLDR does not know, has 2 (`places`
    overrides them: a chart's axis in whole units).
    "700000.00000000" USD is "$700,000.00" in English and "700.000,00 $" in German. None is NO_AMOUNT."""
    if amount is None or amount == "":
        return NO_AMOUNT
    places = currency_places(currency) if places is None else places
    language, pattern = _pattern(locale or _active_locale(), places)
    value = Decimal(str(amount)).quantize(Decimal(1).scaleb(-places))
    return str(pattern.apply(value, language, currency=currency, currency_digits=False))


@functools.lru_cache(maxsize=64)
def _pattern(locale: str, places: int) -> tuple[Any, Any]:
    """The locale and its currency pattern with `places` decimals ("¤#,##0.00" for en, 2 places), parsed once."""
    from babel import Locale
    from babel.numbers import parse_pattern

    language = Locale.parse(locale)
    pattern = language.currency_formats["standard"].pattern
    number, _, _rest = pattern.partition(";")
    integer, _, fraction = number.partition(".")
    suffix = fraction.lstrip("0#")  # the symbol's place after the number, in the patterns that put it there
    return language, parse_pattern(f"{integer}.{'0' * places}{suffix}" if places else integer + suffix)


def _active_locale() -> str:
    from django.utils import translation

    return translation.to_locale(translation.get_language() or "en-us")
