"""The facts a case offers to the rules: one documented schema. Rule conditions and parameter expressions are
type-checked against it when they are saved, and evaluation gives the rules these facts and nothing else.

Money is in the account's currency; fractions are plain numbers (0.1 is 10%). A fact that is not known for a
case (no feasibility report yet, no loan) is null: any comparison with it is false, arithmetic with it is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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
    Fact("shortfall", FactType.NUMBER, "the margin call: shortfall to the call basis requirement, in money"),
    Fact("shortfall_pct", FactType.NUMBER, "shortfall over the debt (0.1: the call is 10% of what is owed)"),
    Fact("margin_ratio", FactType.NUMBER, "equity over the maintenance requirement (below 1: under maintenance)"),
    Fact("equity", FactType.NUMBER, "cash + positions - debt, at the latest sweep"),
    Fact("debt", FactType.NUMBER, "loan principal + accrued interest"),
    Fact("account_value", FactType.NUMBER, "cash + positions at market (no haircut, no impact)"),
    Fact("recovery_expected", FactType.NUMBER, "feasibility: expected recovery if liquidated now"),
    Fact("recovery_p5", FactType.NUMBER, "feasibility: 5% quantile of that recovery"),
    Fact("expected_loss", FactType.NUMBER, "feasibility: expected loss to the lender if liquidated now"),
    Fact("loss_given_default", FactType.NUMBER, "feasibility: expected loss over debt"),
    Fact("loss_capacity_pct", FactType.NUMBER, "feasibility: further uniform adverse move to zero equity (0.2: 20%)"),
    Fact("liquidation_days", FactType.NUMBER, "feasibility: trading days a liquidation takes under the cap"),
    Fact("portfolio_volatility", FactType.NUMBER, "feasibility: daily volatility of the positions (0.03: 3%)"),
    Fact("concentration_top1", FactType.NUMBER, "largest position's share of the gross position value"),
    Fact("position_count", FactType.NUMBER, "open positions"),
    Fact("credit_tier", FactType.STRING, "the client's credit tier: 'A' (best) to 'D'"),
    Fact("external_capacity", FactType.NUMBER, "liquid resources the client declares outside the book"),
    Fact("days_in_margin_call", FactType.NUMBER, "days since the margin call (0 when not in margin call)"),
    Fact("prior_restructurings", FactType.NUMBER, "restructurings this account went through before"),
    Fact("group_exposure", FactType.NUMBER, "debt of every account of the client's group (the account's own if none)"),
    Fact("is_isolated", FactType.BOOLEAN, "the account margins positions in isolated mode"),
    Fact("loan_rate", FactType.NUMBER, "the loan's annual rate (0.08: 8%)"),
    Fact("promises_made", FactType.NUMBER, "promises to pay the client made, on any of its accounts, ever"),
    Fact("promises_kept", FactType.NUMBER, "of those, promises kept (the money arrived by the date, within tolerance)"),
    Fact("promises_broken", FactType.NUMBER, "of those, promises broken (the date and its grace passed unpaid)"),
)

FACT_TYPES: dict[str, FactType] = {fact.name: fact.type for fact in FACTS}
