"""Read paths of the case workflow (and of the staff page). Each loads what it needs for many cases in a fixed
number of queries."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import (
    Count,
    Exists,
    ExpressionWrapper,
    F,
    FloatField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import (
    Instrument,
    InstrumentKind,
    LoanStatus,
    MarginLoan,
    Position,
    Price,
    RiskState,
    ScenarioClass,
)
from accounts.selectors import SECONDS_PER_YEAR, latest_prices_load
from core.models import StaffEnrolment
from core.money import DEFAULT_DECIMALS
from core.roles import CLIENT
from restructuring import feasibility
from restructuring.models import (
    ApprovalLimit,
    Case,
    CaseState,
    FeasibilityReport,
    PromiseStatus,
    PromiseToPay,
    Proposal,
    ProposalSource,
)
from rules.actions import CaseHoldings

# Cases whose accounts would be liquidating at the same time as this one: they share the market's liquidity.
DISTRESSED_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.LIQUIDATING)
_LINEAR = (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)
# Cases that went through a restructuring (closed after it, or defaulted on it).
RESTRUCTURED_STATES = (CaseState.RESTRUCTURED, CaseState.CLOSED, CaseState.DEFAULTED)


@dataclass(frozen=True)
class CaseFacts:
    """A case as the feasibility engine sees it, and what the service needs around it."""

    case: Case
    inputs: feasibility.AccountInputs
    position_ids: tuple[int, ...]  # in the order of inputs.exposures
    principal: Decimal
    accrued_interest: Decimal
    rate_annual: Decimal
    quantum: Decimal
    credit_tier: str


def feasibility_facts_load(cases: Sequence[Case], as_of: datetime) -> dict[int, CaseFacts]:
    """The feasibility inputs of each case at `as_of`, by case id: the account's positions on their price
    drivers, cash, debt, the client's external capacity and hazard, the drivers' correlation from history, and
    what other distressed accounts would sell of the same instruments. Seven queries, whatever the count."""
    account_ids = [c.account_id for c in cases]
    positions = list(
        Position.objects.filter(account_id__in=account_ids)
        .exclude(quantity=0)
        .select_related("instrument", "instrument__underlying", "account__client")
        .order_by("account_id", "pk")
    )
    loans = {
        loan.account_id: loan
        for loan in MarginLoan.objects.filter(account_id__in=account_ids, status=LoanStatus.ACTIVE)
    }
    by_account: dict[int, list[Position]] = defaultdict(list)
    for position in positions:
        by_account[position.account_id].append(position)
    drivers = sorted({_driver(p).pk for p in positions} | {p.instrument_id for p in positions})
    prices, implied = latest_prices_load(instrument_ids=np.array(drivers, dtype=np.int64), as_of=as_of)
    price_of = dict(zip(drivers, prices.tolist(), strict=True))
    implied_of = dict(zip(drivers, implied.tolist(), strict=True))
    correlation = _correlation(sorted({_driver(p).pk for p in positions}), as_of)
    co_sold = _co_sellers(cases, positions)
    out = {}
    for case in cases:
        held = by_account.get(case.account_id, [])
        out[case.pk] = _facts(case, held, loans.get(case.account_id), price_of, implied_of, correlation, co_sold, as_of)
    return out


def _driver(position: Position) -> Instrument:
    instrument = position.instrument
    return instrument.underlying or instrument


def _days_per_year(instrument: Instrument) -> float:
    return 365.0 if instrument.scenario_class == ScenarioClass.CRYPTO else 252.0


def _facts(
    case: Case,
    held: list[Position],
    loan: MarginLoan | None,
    price_of: dict[int, float],
    implied_of: dict[int, float],
    correlation: dict[tuple[int, int], float],
    co_sold: dict[tuple[int, int], float],
    as_of: datetime,
) -> CaseFacts:
    account = case.account
    client = account.client
    driver_ids = sorted({_driver(p).pk for p in held})
    index = {d: k for k, d in enumerate(driver_ids)}
    driver_rows = {_driver(p).pk: _driver(p) for p in held}
    drivers = tuple(
        feasibility.Driver(
            instrument_id=d,
            symbol=driver_rows[d].symbol,
            price=_price(price_of, d, driver_rows[d]),
            daily_volatility=float(driver_rows[d].daily_volatility),
            days_per_year=_days_per_year(driver_rows[d]),
        )
        for d in driver_ids
    )
    exposures = tuple(_exposure(p, index, implied_of, co_sold, as_of) for p in held)
    matrix = tuple(
        tuple(1.0 if a == b else correlation.get((min(a, b), max(a, b)), _default_correlation()) for b in driver_ids)
        for a in driver_ids
    )
    places = settings.WORKOUT_CURRENCY_DECIMALS.get(account.base_currency, DEFAULT_DECIMALS)
    principal = loan.principal if loan else Decimal(0)
    accrued = loan.accrued_interest if loan else Decimal(0)
    return CaseFacts(
        case=case,
        inputs=feasibility.AccountInputs(
            drivers=drivers,
            exposures=exposures,
            correlation=matrix,
            cash=float(account.cash),
            debt=float(principal + accrued),
            external_capacity=float(client.external_capacity),
            monthly_miss_probability=float(settings.WORKOUT_FEASIBILITY_MONTHLY_MISS.get(client.credit_tier, 0.01)),
            contract_rate=float(loan.rate_annual) if loan else None,
        ),
        position_ids=tuple(p.pk for p in held),
        principal=principal,
        accrued_interest=accrued,
        rate_annual=loan.rate_annual if loan else Decimal(0),
        quantum=Decimal(1).scaleb(-int(places)),
        credit_tier=client.credit_tier,
    )


def _default_correlation() -> float:
    return float(settings.WORKOUT_FEASIBILITY_DEFAULT_CORRELATION)


def _price(price_of: dict[int, float], instrument_id: int, instrument: Instrument) -> float:
    price = price_of.get(instrument_id, math.nan)
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"no price for {instrument.symbol} (instrument {instrument_id})")
    return price


def _exposure(
    position: Position,
    index: dict[int, int],
    implied_of: dict[int, float],
    co_sold: dict[tuple[int, int], float],
    as_of: datetime,
) -> feasibility.Exposure:
    instrument = position.instrument
    driver = _driver(position)
    size = float(instrument.contract_size)
    quantity = float(position.quantity) * size
    common: dict[str, Any] = {
        "position_id": position.pk,
        "symbol": instrument.symbol,
        "driver": index[driver.pk],
        "quantity": quantity,
        "daily_volume": float(instrument.average_daily_volume) * size,
        "daily_volatility": float(instrument.daily_volatility),
        "isolated_margin": None if position.isolated_margin is None else float(position.isolated_margin),
        "co_sold": co_sold.get((position.account_id, instrument.pk), 0.0),
    }
    if instrument.kind in _LINEAR:
        # Closing a perpetual or future realises its PnL in cash: no haircut on it (docs/domain.md, collateral value).
        return feasibility.Exposure(
            kind=feasibility.Kind.LINEAR, entry_price=float(position.entry_price), haircut=0.0, **common
        )
    if instrument.kind == InstrumentKind.OPTION:
        implied = implied_of.get(driver.pk, math.nan)
        if not math.isfinite(implied):
            implied = float(driver.daily_volatility) * math.sqrt(_days_per_year(driver))
        return feasibility.Exposure(
            kind=feasibility.Kind.CALL if instrument.option_type == "call" else feasibility.Kind.PUT,
            haircut=float(instrument.haircut),
            strike=float(instrument.strike),  # type: ignore[arg-type]
            expiry_years=(instrument.expiry - as_of).total_seconds() / SECONDS_PER_YEAR,  # type: ignore[operator]
            implied_volatility=implied,
            carry=float(driver.carry_yield),
            **common,
        )
    return feasibility.Exposure(kind=feasibility.Kind.SPOT, haircut=float(instrument.haircut), **common)


def _correlation(driver_ids: list[int], as_of: datetime) -> dict[tuple[int, int], float]:
    """Pairwise correlation of daily log returns over the configured window, for pairs with enough history."""
    if len(driver_ids) < 2 or not settings.WORKOUT_FEASIBILITY_CORRELATION_FROM_HISTORY:
        return {}  # every pair takes the configured correlation
    since = as_of - timedelta(days=settings.WORKOUT_FEASIBILITY_CORRELATION_DAYS)
    rows = (
        Price.objects.filter(instrument_id__in=driver_ids, time__gt=since, time__lte=as_of)
        .order_by("time")
        .values_list("instrument_id", "time", "price")
    )
    cells = [(instrument_id, time.date(), float(price)) for instrument_id, time, price in rows]
    if not cells:
        return {}
    column = {day: k for k, day in enumerate(sorted({day for _, day, _ in cells}))}
    row = {i: k for k, i in enumerate(driver_ids)}
    matrix = np.full((len(driver_ids), len(column)), np.nan)
    for instrument_id, day, price in cells:  # in time order: a day's last price is its close
        matrix[row[instrument_id], column[day]] = math.log(price)
    estimate = feasibility.correlation_estimate(matrix)
    has_history = np.isfinite(np.diff(matrix, axis=1)).sum(axis=1) >= 20
    out = {}
    for a, i in enumerate(driver_ids):
        for b in range(a + 1, len(driver_ids)):
            if has_history[a] and has_history[b] and estimate[a, b] != 0.0:
                out[(i, driver_ids[b])] = float(estimate[a, b])
    return out


def _co_sellers(cases: Sequence[Case], positions: list[Position]) -> dict[tuple[int, int], float]:
    """By (account, instrument): the units of that instrument, on the same side, that other accounts would sell
    at the same time: those with a distressed open case, and the same beneficial owner's other accounts.

    The distressed side is summed by PostgreSQL per instrument and side (a batch of 25 cases on a book with
    10,000 in distress read 29,000 position rows into Python for it, 0.15 s a batch); only the groups' own
    positions come back row by row."""
    instrument_ids = sorted({p.instrument_id for p in positions})
    group_of = {c.account_id: c.account.client.group_id for c in cases}
    groups = sorted({g for g in group_of.values() if g is not None})
    distressed = Exists(Case.objects.filter(account_id=OuterRef("account_id"), state__in=DISTRESSED_STATES))
    held = Position.objects.filter(instrument_id__any=instrument_ids).exclude(quantity=0)
    units = ExpressionWrapper(F("quantity_float") * F("instrument__contract_size"), output_field=FloatField())
    long_total: dict[int, float] = {}
    short_total: dict[int, float] = {}
    for instrument_id, long, short in (
        held.filter(distressed)
        .values("instrument_id")
        .annotate(long=Sum(units, filter=Q(quantity__gt=0)), short=Sum(units, filter=Q(quantity__lt=0)))
        .values_list("instrument_id", "long", "short")
    ):
        long_total[instrument_id], short_total[instrument_id] = long or 0.0, short or 0.0
    distressed_accounts = set(
        Case.objects.filter(account_id__any=list(group_of), state__in=DISTRESSED_STATES).values_list(
            "account_id", flat=True
        )
    )
    by_group: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    if groups:
        for account_id, instrument_id, quantity, size, group_id in (
            held.filter(account__client__group_id__any=groups)
            .exclude(distressed)
            .values_list(
                "account_id",
                "instrument_id",
                "quantity_float",
                "instrument__contract_size",
                "account__client__group_id",
            )
        ):
            by_group[(group_id, instrument_id)].append((account_id, quantity * float(size)))
    out = {}
    for p in positions:
        units_held = float(p.quantity) * float(p.instrument.contract_size)
        same_side = long_total if units_held > 0 else short_total
        others = same_side.get(p.instrument_id, 0.0) - (units_held if p.account_id in distressed_accounts else 0.0)
        group = group_of.get(p.account_id)
        if group is not None:
            others += sum(
                u
                for a, u in by_group.get((group, p.instrument_id), [])
                if a != p.account_id and (u > 0) == (units_held > 0)
            )
        out[(p.account_id, p.instrument_id)] = abs(others)
    return out


# ------------------------------------------------------------------------------------------ rule facts


@dataclass(frozen=True)
class RuleFacts:
    """What the rules see of each case (rules/schema.py), with what turns their actions into terms."""

    cases: list[Case]
    rows: list[dict[str, Any]]  # one fact row per case, in the order of `cases`
    holdings: list[CaseHoldings]
    report_ids: list[int | None]  # the latest feasibility report of each case (reports_load reads them whole)


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


def reports_load(report_ids: Sequence[int | None]) -> dict[int, FeasibilityReport]:
    """Reports whole, by id, with their cases."""
    ids = [i for i in report_ids if i is not None]
    return {r.pk: r for r in FeasibilityReport.objects.filter(pk__in=ids).select_related("case")}


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


# ---------------------------------------------------------------------------------------------- staff


@dataclass(frozen=True)
class StaffRow:
    """A member of staff as the staff page shows them."""

    user: User
    roles: tuple[str, ...]
    limits: tuple[ApprovalLimit, ...]  # their own, by currency (without one, their roles' apply)
    enrolled: bool  # a confirmed authenticator and a usable password: they can sign in (when active)
    link_expires_at: datetime | None  # their newest enrolment link still good, if any


def staff_members_load(now: datetime) -> list[StaffRow]:
    """Every user but the clients' users, by username, in a fixed number of queries."""
    confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
    pending = StaffEnrolment.objects.filter(
        user=OuterRef("pk"), used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).order_by("-expires_at")
    users = (
        User.objects.exclude(groups__name=CLIENT)
        .annotate(has_device=Exists(confirmed), link_expires_at=Subquery(pending.values("expires_at")[:1]))
        .prefetch_related("groups", Prefetch("approval_limits", queryset=ApprovalLimit.objects.order_by("currency")))
        .order_by("username")
    )
    return [
        StaffRow(
            user=user,
            roles=tuple(sorted(group.name for group in user.groups.all())),
            limits=tuple(user.approval_limits.all()),
            enrolled=bool(user.has_device) and user.has_usable_password(),
            link_expires_at=user.link_expires_at,
        )
        for user in users
    ]


def client_proposals(client_id: int) -> QuerySet[Proposal]:
    """The proposals a client may see: those offered to it and its own counter-offers, never the officers' drafts
    nor proposals that were never offered. Any other proposal, its own case's or another client's, does not exist
    for the client (404 on every route, never a conflict naming its state)."""
    return Proposal.objects.filter(case__account__client_id=client_id).filter(
        Q(offered_at__isnull=False) | Q(source=ProposalSource.CLIENT)
    )
