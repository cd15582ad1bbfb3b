"""Money conventions shared by the apps.

Amounts are Decimal in the database and at every boundary. Each currency is stored and shown to a number
of decimal places (settings.WORKOUT_CURRENCY_DECIMALS); the risk sweep rounds its float64 results to that
quantum, half to even (accounts/services/sweep.py `figures_round`).
"""

from __future__ import annotations

# Decimal places of a currency the settings do not list.
DEFAULT_DECIMALS = 2
