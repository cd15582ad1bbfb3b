"""Serializer building blocks of the API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone
from rest_framework import serializers
from rest_framework.fields import empty

from core.amounts import MAX_PLACES, MAX_WHOLE_DIGITS, AmountError, parse_decimal
from core.money import currency_quantum


class DecimalString(serializers.DecimalField):
    """A decimal number, in and out as a JSON string, in the one grammar of core.amounts (ASCII digits, an optional
    point and decimals; no spaces, underscores, exponent or other digits). A JSON number is refused: a float can
    lose digits. In: at most `decimal_places` places (8 by default) and `max_digits - decimal_places` digits
    before the point (20), never rounded. Out: quantized to `decimal_places`."""

    default_error_messages = {
        **serializers.DecimalField.default_error_messages,
        "not_a_string": 'give amounts as strings, e.g. "100.50": a JSON number is not exact',
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", MAX_WHOLE_DIGITS + MAX_PLACES)
        kwargs.setdefault("decimal_places", MAX_PLACES)
        kwargs["coerce_to_string"] = True
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("not_a_string")
        try:
            return parse_decimal(data, places=self.decimal_places or 0, whole_digits=self.max_whole_digits or 0)
        except AmountError as error:
            raise serializers.ValidationError(error.message, code=error.code) from None


class WholeNumber(serializers.IntegerField):
    """A whole number, as a JSON integer. REST framework's IntegerField also takes "12", full-width digits,
    "1_000", " 12" and 12.0 (Python's int() reads them all): here a string, a float or a boolean is refused."""

    default_error_messages = {
        **serializers.IntegerField.default_error_messages,
        "not_an_integer": "give a whole number as a JSON integer, e.g. 12",
    }

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer")
        return data


class _Money:
    """A value with the currency it is in, from MoneyString.get_attribute to its to_representation."""

    __slots__ = ("currency", "value")

    def __init__(self, value: Any, currency: str) -> None:
        self.value = value
        self.currency = currency


class MoneyString(DecimalString):
    """An amount of money, shown with its currency's decimal places (core.money: "19500.00" in USD,
    "0.12500000" in BTC), the currency read from the object rendered at `currency` (a dotted path: for example
    "account.base_currency"; a key of a dict row). In, the grammar of DecimalString; the service that knows the
    currency holds the amount to its places."""

    def __init__(self, *, currency: str = "currency", **kwargs: Any) -> None:
        self.currency_path = currency.split(".")
        super().__init__(**kwargs)

    def currency_of(self, instance: Any) -> str:
        value = instance
        for attr in self.currency_path:
            value = value[attr] if isinstance(value, Mapping) else getattr(value, attr)
        return str(value)

    def get_attribute(self, instance: Any) -> Any:
        value = super().get_attribute(instance)
        return None if value is None else _Money(value, self.currency_of(instance))

    def to_representation(self, value: Any) -> Any:
        if isinstance(value, _Money):
            return money_text(value.value, value.currency)
        return super().to_representation(value)


def money_text(value: Any, currency: str) -> str:
    number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    return format(number.quantize(currency_quantum(currency)), "f")


# Why no docstring on StrictSerializer and FastRepresentation: drf-spectacular describes a serializer's component
# with the first docstring among its classes up to REST framework's, so theirs would stand in the API document
# for every serializer that has none of its own (it did: "Mix into a serializer..."). Each client-facing
# serializer says what it is itself; tests/api/test_api_docs.py checks the document's descriptions.


class StrictSerializer(serializers.Serializer):
    # Input with a field the serializer does not name is refused (a typo, or an attempt to set what the caller
    # may not: mass assignment), instead of being silently ignored.

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(str(name) for name in data if name not in writable)
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: [serializers.ErrorDetail(f"unknown field {unknown[0]!r}", code="unknown_field")]}
                )
        return super().to_internal_value(data)


class FastRepresentation:
    # Mix into a serializer (before the REST framework class) to render it from a plan made once per class.
    #
    # REST framework builds and deep-copies every field of a serializer each time one is made (a ModelSerializer
    # inspects its model again), which costs more than the queries of a small read. The plan holds, per readable
    # field, how to read the value and how to write it, with REST framework's own rules for the types used here
    # (decimal strings quantized to the field's places, money to its currency's, ISO datetimes in the current
    # time zone with `Z` for UTC, primary keys of relations, nested and method fields); any other field type is
    # rendered by the field itself. The schema still comes from the declared fields, and the tests compare both
    # renderings.

    _plans: dict[type, list[tuple[str, str, Any, Any]]] = {}

    @classmethod
    def _plan(cls) -> list[tuple[str, str, Any, Any]]:
        plan = FastRepresentation._plans.get(cls)
        if plan is None:
            plan = [_step(name, field) for name, field in cls().fields.items() if not field.write_only]  # type: ignore[attr-defined]
            FastRepresentation._plans[cls] = plan
        return plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, kind, read, extra in type(self)._plan():
            if kind == "method":
                out[name] = getattr(self, extra)(instance)
                continue
            try:
                value = read(instance)
            except _Skip:
                continue
            if value is None:
                out[name] = None
            elif kind == "plain":
                out[name] = value
            elif kind == "str":
                out[name] = str(value)
            elif kind == "money":
                out[name] = money_text(value, extra(instance))
            elif kind == "decimal":
                out[name] = format(value.quantize(extra), "f") if isinstance(value, Decimal) else _decimal(value, extra)
            elif kind == "datetime":
                out[name] = _iso(value)
            elif kind == "date":
                out[name] = value.isoformat()
            elif kind == "one":
                out[name] = extra().to_representation(value)
            elif kind == "many":
                child = extra()
                out[name] = [child.to_representation(item) for item in value]
            else:  # "field": the field renders itself
                out[name] = extra.to_representation(value)
        return out


class _Skip(Exception):
    pass


def _reader(field: serializers.Field[Any, Any, Any, Any]) -> Any:
    attrs = list(field.source_attrs)
    if isinstance(field, serializers.RelatedField) and len(attrs) == 1:
        attrs = [f"{attrs[0]}_id"]  # the primary key, without loading the related object
    required = field.required and field.default is empty

    def read(instance: Any) -> Any:
        value = instance
        for attr in attrs:
            if value is None:
                return None
            try:
                value = value[attr] if isinstance(value, Mapping) else getattr(value, attr)
            except ObjectDoesNotExist:
                return None
            except (KeyError, AttributeError):
                if not required:
                    raise _Skip from None
                raise
        return value

    return read


def _step(name: str, field: Any) -> tuple[str, str, Any, Any]:
    if isinstance(field, serializers.SerializerMethodField):
        return name, "method", None, field.method_name
    read = _reader(field)
    if isinstance(field, serializers.ListSerializer):
        return name, "many", read, type(field.child)
    if isinstance(field, serializers.BaseSerializer):
        return name, "one", read, type(field)
    if isinstance(field, MoneyString):
        return name, "money", read, field.currency_of
    if isinstance(field, serializers.DecimalField):
        return name, "decimal", read, Decimal(1).scaleb(-(field.decimal_places or 0))
    if isinstance(field, serializers.DateTimeField):
        return name, "datetime", read, None
    if isinstance(field, serializers.DateField):
        return name, "date", read, None
    if isinstance(field, serializers.IntegerField | serializers.BooleanField | serializers.RelatedField):
        return name, "plain", read, None
    if isinstance(field, serializers.ChoiceField | serializers.CharField):
        return name, "str", read, None
    if isinstance(field, serializers.DictField) and isinstance(field.child, serializers.IntegerField):
        return name, "plain", read, None
    return name, "field", read, field


def _decimal(value: Any, quantum: Decimal) -> str:
    return format(Decimal(str(value).strip()).quantize(quantum), "f")


def _iso(value: datetime) -> str:
    text = value.astimezone(timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
