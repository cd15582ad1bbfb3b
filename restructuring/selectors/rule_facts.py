"""What the rules read of each case (rules/schema.py): one fact row per case, with the holdings that turn their
actions into terms, in a fixed number of queries whatever the number of cases."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, Sum

from accounts.models import LoanStatus, MarginLoan, RiskState
from restructuring.models import Case, CaseState, FeasibilityReport, PromiseStatus, PromiseToPay
from rules.actions import CaseHoldings

# Cases that went through a restructuring (closed after it, or defaulted on it).
RESTRUCTURED_STATES = (CaseState.RESTRUCTURED, CaseState.CLOSED, CaseState.DEFAULTED)


@dataclass(frozen=True)
class RuleFacts:
    """What the rules see of each case (rules/schema.py), with what turns their actions into terms."""

    cases: list[Case]
    rows: list[dict[str, Any]]  # one fact row per case, in the order of `cases`
    holdings: list[CaseHoldings]
    report_ids: list[int | None]  # the latest feasibility report of each case (selectors.feasibility.reports_load)


@dataclass(frozen=True)
class _ReportFigures:
    """The few figures of a report the rules read (columns: its inputs and results are never decoded here)."""

    pk: int
    recovery_expected: Decimal
    recovery_p5: Decimal
    expected_loss: Decimal
    loss_given_default: Decimal
    loss_capacity_pct: Decimal | None
    liquidation_days: int | None
    portfolio_volatility: float | None
    concentration_top1: float | None
    position_count: int
    holdings: list[list[Any]]


def rule_facts_load(cases: Sequence[Case], now: datetime) -> RuleFacts:
    """The fact rows of the cases (rules/schema.py), in a fixed number of queries reading only the columns they
    need: risk state, loan, the latest feasibility report's figures, prior restructurings, the group's debt (the
    cases come with their account and client)."""
    account_ids = [c.account_id for c in cases]
    risk = {
        row[0]: row[1:]
        for row in RiskState.objects.filter(account_id__any=account_ids).values_list(
            "account_id", "equity", "margin_ratio", "shortfall_initial"
        )
    }
    loans = {
        row[0]: row[1:]
        for row in MarginLoan.objects.filter(account_id__any=account_ids, status=LoanStatus.ACTIVE).values_list(
            "account_id", "principal", "accrued_interest", "rate_annual"
        )
    }
    latest = _latest_report_figures([c.pk for c in cases])
    prior = dict(
        Case.objects.filter(account_id__any=account_ids, state__in=RESTRUCTURED_STATES)
        .values("account_id")
        .annotate(n=Count("pk"))
        .values_list("account_id", "n")
    )
    promises = client_promise_record({c.account.client_id for c in cases})
    groups = {c.account.client.group_id for c in cases} - {None}
    group_debt = dict(
        MarginLoan.objects.filter(status=LoanStatus.ACTIVE, account__client__group_id__in=groups)
        .values("account__client__group_id")
        .annotate(total=Sum(F("principal") + F("accrued_interest")))
        .values_list("account__client__group_id", "total")
    )
    rows: list[dict[str, Any]] = []
    holdings: list[CaseHoldings] = []
    report_ids: list[int | None] = []
    for case in cases:
        figures = latest.get(case.pk)
        row = _fact_row(case, risk.get(case.account_id), loans.get(case.account_id), now)
        row.update(_report_facts(figures))
        row["prior_restructurings"] = float(prior.get(case.account_id, 0) - (case.state in RESTRUCTURED_STATES))
        group = case.account.client.group_id
        row["group_exposure"] = float(group_debt[group]) if group in group_debt else row["debt"]
        row.update(promises.get(case.account.client_id, _NO_PROMISES))
        rows.append(row)
        holdings.append(_holdings(figures))
        report_ids.append(figures.pk if figures else None)
    return RuleFacts(cases=list(cases), rows=rows, holdings=holdings, report_ids=report_ids)


def _latest_report_figures(case_ids: list[int]) -> dict[int, _ReportFigures]:
    rows = (
        FeasibilityReport.objects.filter(case_id__any=case_ids)
        .order_by("case_id", "-created_at", "-pk")
        .values_list("case_id", "pk", *(f.name for f in fields(_ReportFigures) if f.name != "pk"))
    )
    out: dict[int, _ReportFigures] = {}
    for case_id, *figures in rows:
        if case_id not in out:  # the first of each case is its latest
            out[case_id] = _ReportFigures(*figures)
    return out


def _fact_row(case: Case, risk: tuple[Any, ...] | None, loan: tuple[Any, ...] | None, now: datetime) -> dict[str, Any]:
    client = case.account.client
    equity, margin_ratio, shortfall_initial = risk if risk is not None else (None, None, None)
    debt = float(loan[0] + loan[1]) if loan else 0.0
    shortfall = float(case.call_amount) if case.call_amount is not None else _float(shortfall_initial)
    equity_value = _float(equity)
    return {
        "shortfall": shortfall,
        "shortfall_pct": shortfall / debt if debt > 0 and math.isfinite(shortfall) else math.nan,
        "margin_ratio": _float(margin_ratio),
        "equity": equity_value,
        "debt": debt,
        "account_value": equity_value + debt,
        "credit_tier": client.credit_tier,
        "external_capacity": float(client.external_capacity),
        "days_in_margin_call": (now - case.called_at).total_seconds() / 86400.0 if case.called_at else 0.0,
        "is_isolated": case.account.mode == "isolated",
        "loan_rate": float(loan[2]) if loan else math.nan,
    }


def _float(value: Any) -> float:
    return float(value) if value is not None else math.nan


_REPORT_FACTS = (
    "recovery_expected",
    "recovery_p5",
    "expected_loss",
    "loss_given_default",
    "loss_capacity_pct",
    "liquidation_days",
    "portfolio_volatility",
    "concentration_top1",
    "position_count",
)


def _report_facts(figures: _ReportFigures | None) -> dict[str, float]:
    if figures is None:
        return dict.fromkeys(_REPORT_FACTS, math.nan)
    return {
        "recovery_expected": float(figures.recovery_expected),
        "recovery_p5": float(figures.recovery_p5),
        "expected_loss": float(figures.expected_loss),
        "loss_given_default": float(figures.loss_given_default),
        "loss_capacity_pct": _float(figures.loss_capacity_pct),
        "liquidation_days": _float(figures.liquidation_days),
        "portfolio_volatility": _float(figures.portfolio_volatility),
        "concentration_top1": _float(figures.concentration_top1),
        "position_count": float(figures.position_count),
    }


def _holdings(figures: _ReportFigures | None) -> CaseHoldings:
    if figures is None:
        return CaseHoldings(position_ids=(), long=())
    return CaseHoldings(
        position_ids=tuple(int(p) for p, _ in figures.holdings), long=tuple(bool(long) for _, long in figures.holdings)
    )


_NO_PROMISES = {"promises_made": 0.0, "promises_kept": 0.0, "promises_broken": 0.0}


def client_promise_record(client_ids: set[int]) -> dict[int, dict[str, float]]:
    """The clients' promises to pay, made (every status), kept and broken, over all their accounts: one query."""
    rows = (
        PromiseToPay.objects.filter(case__account__client_id__in=client_ids)
        .values("case__account__client_id")
        .annotate(
            made=Count("pk"),
            kept=Count("pk", filter=Q(status=PromiseStatus.KEPT)),
            broken=Count("pk", filter=Q(status=PromiseStatus.BROKEN)),
        )
        .values_list("case__account__client_id", "made", "kept", "broken")
    )
    return {
        client: {"promises_made": float(made), "promises_kept": float(kept), "promises_broken": float(broken)}
        for client, made, kept, broken in rows
    }
