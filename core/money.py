"""Money conventions shared by the apps.

Amounts are Decimal in the database and at every boundary. Each currency is stored and shown to a number
of decimal places (settings.WORKOUT_CURRENCY_DECIMALS); the risk sweep rounds its float64 results to that
quantum, half to even (accounts/services/sweep.py `figures_round`).
"""

from __future__ import annotations

from decimal import Decimal

# Decimal places of a currency the settings do not list.
DEFAULT_DECIMALS = 2


def currency_quantum(currency: str) -> Decimal:
    """The smallest amount of a currency as stored and shown: 0.01 for USD, 1E-8 for a currency of 8 places."""
    from django.conf import settings

    return Decimal(1).scaleb(-int(settings.WORKOUT_CURRENCY_DECIMALS.get(currency, DEFAULT_DECIMALS)))
