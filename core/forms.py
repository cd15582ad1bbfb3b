"""Form fields every app's forms may use."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

from core.amounts import MAX_PLACES, MAX_WHOLE_DIGITS, AmountError, parse_decimal


class DecimalTextField(forms.DecimalField):
    """A decimal number typed into a form, in the one grammar of core.amounts: ASCII digits, an optional point and
    decimals; no spaces, underscores, exponent or other digits, never rounded. At most `decimal_places` places
    (8 by default) and `max_digits - decimal_places` digits before the point (20). Amounts of money are further
    held to their currency's places by the service that knows the currency."""

    def __init__(self, *, max_digits: int | None = None, decimal_places: int | None = None, **kwargs: Any) -> None:
        places = MAX_PLACES if decimal_places is None else decimal_places
        digits = MAX_WHOLE_DIGITS + places if max_digits is None else max_digits
        kwargs.setdefault("widget", forms.TextInput(attrs={"inputmode": "decimal"}))
        super().__init__(max_digits=digits, decimal_places=places, **kwargs)

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        if value in self.empty_values:
            return None
        if isinstance(value, Decimal):
            return value
        try:
            return parse_decimal(
                str(value),
                places=self.decimal_places or 0,
                whole_digits=(self.max_digits or 0) - (self.decimal_places or 0),
            )
        except AmountError as error:
            raise forms.ValidationError(error.message, code=error.code) from None
