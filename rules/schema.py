"""The facts a case offers to the rules: one documented schema. Rule conditions and parameter expressions are
type-checked against it when they are saved, and evaluation gives the rules these facts and nothing else.

Money is in the account's currency; fractions are plain numbers (0.1 is 10%). A fact that is not known for a
case (no feasibility report yet, no loan) is null: any comparison with it is false, arithmetic with it is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


def gettext_noop(message: str) -> str:
    """Marks a text for the translation catalogue (Django's makemessages finds it by this name) and returns it as
    it is: this module stays pure; the pages translate it when they show it."""
    return message


class FactType(StrEnum):
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Fact:
    name: str
    type: FactType
    description: str


FACTS: tuple[Fact, ...] = (
    Fact(
        "shortfall", FactType.NUMBER, gettext_noop("the margin call: shortfall to the call basis requirement, in money")
    ),
    Fact(
        "shortfall_pct", FactType.NUMBER, gettext_noop("shortfall over the debt (0.1: the call is 10% of what is owed)")
    ),
    Fact(
        "margin_ratio",
        FactType.NUMBER,
        gettext_noop("equity over the maintenance requirement (below 1: under maintenance)"),
    ),
    Fact("equity", FactType.NUMBER, gettext_noop("cash + positions - debt, at the latest sweep")),
    Fact("debt", FactType.NUMBER, gettext_noop("loan principal + accrued interest")),
    Fact("account_value", FactType.NUMBER, gettext_noop("cash + positions at market (no haircut, no impact)")),
    Fact("recovery_expected", FactType.NUMBER, gettext_noop("feasibility: expected recovery if liquidated now")),
    Fact("recovery_p5", FactType.NUMBER, gettext_noop("feasibility: 5% quantile of that recovery")),
    Fact("expected_loss", FactType.NUMBER, gettext_noop("feasibility: expected loss to the lender if liquidated now")),
    Fact("loss_given_default", FactType.NUMBER, gettext_noop("feasibility: expected loss over debt")),
    Fact(
        "loss_capacity_pct",
        FactType.NUMBER,
        gettext_noop("feasibility: further uniform adverse move to zero equity (0.2: 20%)"),
    ),
    Fact(
        "liquidation_days", FactType.NUMBER, gettext_noop("feasibility: trading days a liquidation takes under the cap")
    ),
    Fact(
        "portfolio_volatility",
        FactType.NUMBER,
        gettext_noop("feasibility: daily volatility of the positions (0.03: 3%)"),
    ),
    Fact("concentration_top1", FactType.NUMBER, gettext_noop("largest position's share of the gross position value")),
    Fact("position_count", FactType.NUMBER, gettext_noop("open positions")),
    Fact("credit_tier", FactType.STRING, gettext_noop("the client's credit tier: 'A' (best) to 'D'")),
    Fact("external_capacity", FactType.NUMBER, gettext_noop("liquid resources the client declares outside the book")),
    Fact(
        "days_in_margin_call", FactType.NUMBER, gettext_noop("days since the margin call (0 when not in margin call)")
    ),
    Fact("prior_restructurings", FactType.NUMBER, gettext_noop("restructurings this account went through before")),
    Fact(
        "group_exposure",
        FactType.NUMBER,
        gettext_noop("debt of every account of the client's group (the account's own if none)"),
    ),
    Fact("is_isolated", FactType.BOOLEAN, gettext_noop("the account margins positions in isolated mode")),
    Fact("loan_rate", FactType.NUMBER, gettext_noop("the loan's annual rate (0.08: 8%)")),
    Fact(
        "promises_made", FactType.NUMBER, gettext_noop("promises to pay the client made, on any of its accounts, ever")
    ),
    Fact(
        "promises_kept",
        FactType.NUMBER,
        gettext_noop("of those, promises kept (the money arrived by the date, within tolerance)"),
    ),
    Fact(
        "promises_broken",
        FactType.NUMBER,
        gettext_noop("of those, promises broken (the date and its grace passed unpaid)"),
    ),
)

FACT_TYPES: dict[str, FactType] = {fact.name: fact.type for fact in FACTS}
