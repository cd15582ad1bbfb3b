"""What each rule action takes and what it does to the proposed terms. Pure Python, no Django.

Parameters are either number expressions over the facts (`amount = shortfall * 1.2`), evaluated per case, or a
choice from a fixed list (`schedule = level`). A package (the fired actions that share a package name) becomes
one proposal's terms (restructuring.terms.Terms as JSON): the actions apply in the order their rules ran, a later
one of the same kind replacing an earlier one's value. A package that only demands collateral, changes the rate
or haircuts the principal keeps the loan over the default term (WORKOUT_RULES_DEFAULT_TERM_MONTHS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any


def gettext_noop(message: str) -> str:
    """Marks a text for the translation catalogue (Django's makemessages finds it by this name) and returns it as
    it is: this module stays pure; the pages translate it when they show it."""
    return message


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    choices: tuple[str, ...] = ()  # a choice parameter: one of these; else a number expression
    default: str | None = None  # None: required
    lower: float | None = None  # a number's bounds, checked per case when evaluated
    upper: float | None = None


ACTIONS: dict[str, tuple[Parameter, ...]] = {
    "extend_term": (
        Parameter("months", gettext_noop("new term in months, from today"), lower=1, upper=600),
        Parameter("schedule", gettext_noop("how it is repaid"), choices=("level", "interest_only"), default="level"),
    ),
    "change_rate": (Parameter("rate", gettext_noop("new annual rate (0.06: 6%)"), lower=0, upper=1),),
    "grace_period": (
        Parameter("months", gettext_noop("months of grace at the start"), lower=1, upper=120),
        Parameter(
            "on",
            gettext_noop(
                "principal: interest only; interest: nothing paid, interest deferred; moratorium: nothing paid, "
                "interest capitalised"
            ),
            choices=("principal", "interest", "moratorium"),
            default="principal",
        ),
    ),
    "demand_collateral": (Parameter("amount", gettext_noop("collateral the client adds now, in money"), lower=0),),
    "reduce_position": (
        Parameter("fraction", gettext_noop("share of each position sold (0.5: half)"), lower=0, upper=1),
        Parameter(
            "which",
            gettext_noop("the largest position, or every long one"),
            choices=("largest", "all_long"),
            default="largest",
        ),
    ),
    "haircut_principal": (Parameter("amount", gettext_noop("principal forgiven now, in money"), lower=0),),
    "liquidate": (),
    "escalate_to_senior": (),
}

# Actions that are not terms: a package with `liquidate` proposes liquidation; `escalate_to_senior` marks every
# proposal of the case as needing a senior officer's approval.
LIQUIDATE = "liquidate"
ESCALATE = "escalate_to_senior"


@dataclass(frozen=True)
class CaseHoldings:
    """What `reduce_position` needs of the case: its positions' ids and gross values, largest first."""

    position_ids: tuple[int, ...]
    long: tuple[bool, ...]


def terms_from_actions(
    actions: Sequence[tuple[str, Mapping[str, Any]]],
    holdings: CaseHoldings,
    *,
    default_term_months: int,
    quantum: Decimal,
) -> dict[str, Any]:
    """The terms (Terms JSON) of a package of (action, evaluated parameters), in firing order."""
    terms: dict[str, Any] = {"term_months": default_term_months}
    grace: dict[str, int] = {}
    for action, values in actions:
        if action == "extend_term":
            terms["term_months"] = round(values["months"])
            terms["kind"] = values.get("schedule", "level")
        elif action == "change_rate":
            terms["rate_annual"] = str(Decimal(repr(values["rate"])).quantize(Decimal("0.000001")))
        elif action == "grace_period":
            grace[values.get("on", "principal")] = round(values["months"])
        elif action == "demand_collateral":
            terms["collateral_to_add"] = str(_money(values["amount"], quantum))
        elif action == "haircut_principal":
            terms["principal_haircut"] = str(_money(values["amount"], quantum))
        elif action == "reduce_position":
            fraction = str(Decimal(repr(values["fraction"])).quantize(Decimal("0.0001")))
            chosen = _reduced(holdings, values.get("which", "largest"))
            if chosen and Decimal(fraction) > 0:
                terms["reduce"] = [[position_id, fraction] for position_id in chosen]
    if "moratorium" in grace:
        terms["moratorium_months"] = grace["moratorium"]
    if "interest" in grace:
        terms["grace_interest_months"] = grace["interest"]
    principal_grace = max(grace.get("principal", 0), grace.get("interest", 0))
    if principal_grace:
        terms["grace_principal_months"] = principal_grace
    # The grace periods come out of the term: keep at least one repayment month after them.
    needed = terms.get("moratorium_months", 0) + terms.get("grace_principal_months", 0) + 1
    terms["term_months"] = max(terms["term_months"], needed)
    return terms


def _reduced(holdings: CaseHoldings, which: str) -> list[int]:
    if which == "largest":
        return list(holdings.position_ids[:1])
    return [p for p, long in zip(holdings.position_ids, holdings.long, strict=True) if long]


def _money(value: float, quantum: Decimal) -> Decimal:
    return max(Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_EVEN), Decimal(0))
