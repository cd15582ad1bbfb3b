"""The feasibility engine's reads: what it sees of each case (its inputs, loaded for many cases in a fixed number
of queries), stored reports read back as the facts, inputs and parameters they were computed on, and the cases whose
report or proposals a lost task still owes (the re-drive beat)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Exists, ExpressionWrapper, F, FloatField, OuterRef, Q, Subquery, Sum

from accounts.models import (
    Instrument,
    InstrumentKind,
    LoanStatus,
    MarginLoan,
    Position,
    Price,
    ScenarioClass,
)
from accounts.selectors import SECONDS_PER_YEAR, latest_prices_load
from core.money import DEFAULT_DECIMALS
from restructuring import feasibility
from restructuring.models import (
    Case,
    CaseState,
    FeasibilityReport,
    FeasibilityTrigger,
    Proposal,
    ProposalState,
)
from rules.models import RuleSet, RuleSetStatus

# Cases whose accounts would be liquidating at the same time as this one: they share the market's liquidity.
DISTRESSED_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.LIQUIDATING)
_LINEAR = (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)


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


# ------------------------------------------------------------------------------------------ stored reports


def reports_load(report_ids: Sequence[int | None]) -> dict[int, FeasibilityReport]:
    """Reports whole, by id, with their cases."""
    ids = [i for i in report_ids if i is not None]
    return {r.pk: r for r in FeasibilityReport.objects.filter(pk__in=ids).select_related("case")}


def report_inputs(data: Mapping[str, Any]) -> feasibility.AccountInputs:
    """A stored report's account inputs (`inputs["account"]`) as the engine takes them."""
    return feasibility.AccountInputs(
        **{
            **data,
            "drivers": tuple(feasibility.Driver(**d) for d in data["drivers"]),
            "exposures": tuple(
                feasibility.Exposure(**{**e, "kind": feasibility.Kind(e["kind"])}) for e in data["exposures"]
            ),
            "correlation": tuple(tuple(row) for row in data["correlation"]),
        }
    )


def report_params(data: Mapping[str, Any]) -> feasibility.Params:
    """A stored report's parameters (an older model's report lacks the newer ones: they take their defaults)."""
    return feasibility.Params(**{**data, "jumps": feasibility.Jumps(**data["jumps"])})


def report_facts(report: FeasibilityReport) -> CaseFacts:
    """The case as the report saw it: its inputs, loan and quantum, for valuing more terms on the same market."""
    loan = report.inputs["loan"]
    return CaseFacts(
        case=report.case,
        inputs=report_inputs(report.inputs["account"]),
        position_ids=tuple(report.inputs["position_ids"]),
        principal=Decimal(loan["principal"]),
        accrued_interest=Decimal(loan["accrued_interest"]),
        rate_annual=Decimal(loan["rate_annual"]),
        quantum=Decimal(report.inputs["quantum"]),
        credit_tier=report.inputs["credit_tier"],
    )


def cases_with_report(keys: Mapping[int, str]) -> set[int]:
    """Of the cases named (case id -> report key), those that already have the report of that key."""
    rows = FeasibilityReport.objects.filter(case_id__in=list(keys)).filter(key__in=set(keys.values()))
    return {case_id for case_id, key in rows.values_list("case_id", "key") if keys.get(case_id) == key}


# ----------------------------------------------------------------------------------------------- re-drives


def feasibility_due_case_ids(limit: int = 1000) -> list[int]:
    """Cases in margin call without the report of their current call: those whose task was lost (the broker
    down at commit). The beat re-drives them."""
    cases = Case.objects.filter(state=CaseState.MARGIN_CALL, called_at__isnull=False).values_list("pk", "called_at")
    calls = {pk: f"margin_call:{called_at.isoformat()}" for pk, called_at in cases[: limit * 4]}
    return sorted(set(calls) - cases_with_report(calls))[:limit]


def proposals_due_case_ids(limit: int = 1000) -> list[int]:
    """Cases in margin call whose current call's report the published rules have not yet read (the rules stamp
    `facts_at` on every case they evaluate, after the report is stored): their proposals task was lost. None
    without a published rule set, which proposes nothing. The beat re-drives them."""
    if not RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).exists():
        return []
    reports = FeasibilityReport.objects.filter(
        case=OuterRef("pk"), trigger=FeasibilityTrigger.MARGIN_CALL, created_at__gte=OuterRef("called_at")
    )
    call_report_at = Subquery(reports.order_by("-created_at").values("created_at")[:1])
    due = (
        Case.objects.filter(state=CaseState.MARGIN_CALL, called_at__isnull=False)
        .annotate(call_report_at=call_report_at)  # this call's latest report (Case.report_at: any trigger's)
        .filter(call_report_at__isnull=False)
        .filter(Q(facts_at__isnull=True) | Q(facts_at__lt=F("call_report_at")))
    )
    return list(due.order_by("pk").values_list("pk", flat=True)[:limit])


def counter_report_key(offer_id: int) -> str:
    """The key of the feasibility report a counter-offer's follow-up stores."""
    return f"counter:{offer_id}"


def counter_followups_due(limit: int = 1000) -> list[tuple[int, int]]:
    """(case id, offer id) of the counter-offers whose follow-up never ran (its task lost with the broker): the
    case's latest countered offer, the case still PROPOSED, and no report keyed by that offer yet, or the
    published rules have not read it (they stamp `facts_at` on the cases they evaluate). The beat re-drives
    them; the follow-up is idempotent."""
    latest: dict[int, int] = {}
    countered = Proposal.objects.filter(state=ProposalState.COUNTERED, case__state=CaseState.PROPOSED)
    for case_id, offer_id in countered.order_by("case_id", "-pk").values_list("case_id", "pk"):
        latest.setdefault(case_id, offer_id)
    if not latest:
        return []
    reported = {
        case_id: created_at
        for case_id, key, created_at in FeasibilityReport.objects.filter(
            case_id__in=list(latest), key__in=[counter_report_key(o) for o in latest.values()]
        ).values_list("case_id", "key", "created_at")
        if key == counter_report_key(latest[case_id])
    }
    rules_read = RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).exists()
    facts_at = dict(Case.objects.filter(pk__in=list(reported)).values_list("pk", "facts_at"))
    due = [
        (case_id, offer_id)
        for case_id, offer_id in sorted(latest.items())
        if case_id not in reported
        or (rules_read and (facts_at.get(case_id) is None or facts_at[case_id] < reported[case_id]))
    ]
    return due[:limit]
