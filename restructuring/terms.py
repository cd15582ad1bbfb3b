"""Restructuring terms: what a proposal changes, as one validated value that a proposal stores as JSON and the
feasibility engine values. Pure Python (Decimal), no Django.

Any mix of: a new term with its repayment schedule (level or interest-only with balloon, moratorium, grace on
interest and on principal, treatment of arrears: restructuring.schedules), a new rate, collateral the client
adds, positions reduced (a fraction of each, sold under the liquidation rules, the proceeds paying the loan
down), and a principal haircut (forgiven).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from restructuring.schedules import ArrearsTreatment, ScheduleKind

_INTEGERS = ("term_months", "moratorium_months", "grace_interest_months", "grace_principal_months")


def gettext_noop(message: str) -> str:
    """Marks a text for the translation catalogue (Django's makemessages finds it by this name) and returns it as
    it is: this module stays pure; `terms_lines` takes the reader's translation as an argument."""
    return message


def terms_hash(terms: Mapping[str, Any]) -> str:
    """SHA-256 of the terms' canonical JSON: what a client names when accepting exactly the terms it read."""
    return hashlib.sha256(json.dumps(terms, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class TermsError(ValueError):
    """Terms that cannot be valued: the message names the field and what is wrong."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


@dataclass(frozen=True, kw_only=True)
class Terms:
    term_months: int
    rate_annual: Decimal | None = None  # None: the loan keeps its rate
    kind: ScheduleKind = ScheduleKind.LEVEL
    moratorium_months: int = 0
    grace_interest_months: int = 0
    grace_principal_months: int = 0
    arrears_treatment: ArrearsTreatment = ArrearsTreatment.CAPITALISE
    collateral_to_add: Decimal = Decimal(0)
    reduce: tuple[tuple[int, Decimal], ...] = field(default=())  # (position id, fraction in (0, 1])
    principal_haircut: Decimal = Decimal(0)

    def to_json(self) -> dict[str, Any]:
        return {
            "term_months": self.term_months,
            "rate_annual": None if self.rate_annual is None else str(self.rate_annual),
            "kind": str(self.kind),
            "moratorium_months": self.moratorium_months,
            "grace_interest_months": self.grace_interest_months,
            "grace_principal_months": self.grace_principal_months,
            "arrears_treatment": str(self.arrears_treatment),
            "collateral_to_add": str(self.collateral_to_add),
            "reduce": [[position_id, str(fraction)] for position_id, fraction in self.reduce],
            "principal_haircut": str(self.principal_haircut),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Terms:
        """Parse and validate; unknown fields are refused so that a typo is not silently ignored."""
        if not isinstance(data, Mapping):
            raise TermsError("terms", "must be an object")
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(data) - known):
            raise TermsError(unknown[0], f"unknown field (known: {', '.join(sorted(known))})")
        if "term_months" not in data:
            raise TermsError("term_months", "is required")
        values: dict[str, Any] = {}
        for name in _INTEGERS:
            if name in data:
                values[name] = _integer(name, data[name])
        if data.get("rate_annual") is not None:
            values["rate_annual"] = _decimal("rate_annual", data["rate_annual"], upper=Decimal(1))
        for name in ("collateral_to_add", "principal_haircut"):
            if name in data:
                values[name] = _decimal(name, data[name])
        if "kind" in data:
            values["kind"] = _choice("kind", data["kind"], ScheduleKind)
        if "arrears_treatment" in data:
            values["arrears_treatment"] = _choice("arrears_treatment", data["arrears_treatment"], ArrearsTreatment)
        if "reduce" in data:
            values["reduce"] = _reductions(data["reduce"])
        return cls(**values)


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TermsError(name, f"{value!r} must be a whole number >= 0")
    return value


def _decimal(name: str, value: object, upper: Decimal | None = None) -> Decimal:
    if isinstance(value, float):
        raise TermsError(name, f'{value!r} is a float: give amounts as strings, e.g. "{value}"')
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise TermsError(name, f"{value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise TermsError(name, f"{value} must be a finite number >= 0")
    if upper is not None and number > upper:
        raise TermsError(name, f"{value} must be at most {upper} (a rate is a fraction: 0.08 is 8%)")
    return number


def _choice(name: str, value: object, enum: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        raise TermsError(name, f"{value!r} is not one of {', '.join(e.value for e in enum)}") from None


def _reductions(value: object) -> tuple[tuple[int, Decimal], ...]:
    if not isinstance(value, list | tuple):
        raise TermsError("reduce", "must be a list of [position id, fraction]")
    out = []
    for k, item in enumerate(value):
        where = f"reduce[{k}]"
        if not (isinstance(item, list | tuple) and len(item) == 2):
            raise TermsError(where, "must be [position id, fraction]")
        position_id = _integer(where, item[0])
        fraction = _decimal(where, item[1], upper=Decimal(1))
        if fraction == 0:
            raise TermsError(where, "the fraction must be > 0")
        out.append((position_id, fraction))
    if len({p for p, _ in out}) != len(out):
        raise TermsError("reduce", "a position is named more than once")
    return tuple(out)


_TERM_LABELS = {
    "term_months": gettext_noop("term (months)"),
    "rate_annual": gettext_noop("rate (annual)"),
    "kind": gettext_noop("schedule"),
    "moratorium_months": gettext_noop("moratorium (months)"),
    "grace_interest_months": gettext_noop("interest grace (months)"),
    "grace_principal_months": gettext_noop("principal grace (months)"),
    "arrears_treatment": gettext_noop("arrears"),
    "collateral_to_add": gettext_noop("collateral to add"),
    "principal_haircut": gettext_noop("principal haircut"),
}
# The words of the schedule's choices as the terms show them.
_CHOICE_WORDS = {
    "level": gettext_noop("level"),
    "interest_only": gettext_noop("interest only"),
    "carry_forward": gettext_noop("carry forward"),
    "first_installment": gettext_noop("with the first installment"),
}


def _same(message: str) -> str:
    return message


def terms_lines(
    terms: Mapping[str, Any], symbols: Mapping[int, str], translate: Callable[[str], str] = _same
) -> list[tuple[str, str]]:
    """Terms as label and value, leaving out what is zero or the default; the words in the reader's language when
    given their `translate` (Django's gettext, from the pages)."""
    out = []
    for key, label in _TERM_LABELS.items():
        value = terms.get(key)
        if _is_nothing(value) or (key == "arrears_treatment" and value == "capitalise"):
            continue
        if key == "rate_annual":
            value = f"{Decimal(str(value)) * 100:.2f}%"
        elif isinstance(value, str) and value in _CHOICE_WORDS:
            value = translate(_CHOICE_WORDS[value])
        out.append((translate(label), str(value).replace("_", " ")))
    for position_id, fraction in terms.get("reduce") or []:
        symbol = symbols.get(int(position_id), translate(gettext_noop("position %(id)s")) % {"id": position_id})
        out.append(
            (translate(gettext_noop("reduce %(symbol)s")) % {"symbol": symbol}, f"{Decimal(str(fraction)) * 100:.0f}%")
        )
    return out


def _is_nothing(value: Any) -> bool:
    if value is None or value == "":
        return True
    try:
        return Decimal(str(value)) == 0
    except ArithmeticError:
        return False
