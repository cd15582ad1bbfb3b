"""`{% load money %}{{ amount|money:account.base_currency }}`: an amount in its currency, by the locale machinery
(core.money.money_text: Babel's CLDR patterns, the currency's places from the settings), in the reader's language.
Templates never format money by hand (floatformat, string formatting): tests/web/test_money_display.py."""

from __future__ import annotations

from typing import Any

from django import template

from core.money import money_text

register = template.Library()


@register.filter
def money(amount: Any, currency: str) -> str:
    return money_text(amount, currency or "USD")
