"""Money conventions shared by the apps.

Amounts are Decimal in the database and at every boundary. Each currency is stored and shown to a number
of decimal places (settings.WORKOUT_CURRENCY_DECIMALS); the risk sweep rounds its float64 results to that
quantum, half to even (accounts/services/sweep.py `figures_round`). An amount given from outside is written in
the grammar of core.amounts and has at most its currency's places (`amount_check`).
"""

from __future__ import annotations

from decimal import Decimal

from core.amounts import check_places
from core.errors import ValidationError

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
