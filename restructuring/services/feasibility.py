"""Feasibility reports: the Monte Carlo figures of restructuring.feasibility for a case, stored with everything
needed to reproduce them.

- Market. Figures are on the market of the latest finished sweep: its prices, and a market seed derived from
  it, so every case computed on one sweep draws from the same scenarios (MarketPaths, kept per process and
  reused by every case of the worker until the market moves on).
- Candidates. Each case is valued under the configured standard terms (WORKOUT_FEASIBILITY_CANDIDATES) until
  the rules propose their own; `terms_preview` values any terms on demand without storing anything.
- Idempotency. A report has a key, unique per case: "margin_call:<called_at>" for the report of a margin call,
  so a task delivered twice stores one report and one audit event. Figures are computed before the cases are
  locked; the locked re-check drops what a concurrent run stored meanwhile.
- Reproduction. `results` holds the figures as rounded strings; `feasibility_recompute` reruns the model from
  the stored inputs, seeds and parameters and compares.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from accounts.models import Sweep, SweepStatus
from core.audit import audit_record_many
from core.bulk import bulk_copy
from core.dispatch import dispatch_on_commit
from core.errors import NotFoundError, ValidationError
from restructuring import feasibility
from restructuring.audit_events import FEASIBILITY_REPORT
from restructuring.models import Case, CaseState, FeasibilityReport, FeasibilityTrigger
from restructuring.schedules import Schedule, ScheduleError, ScheduleTerms, schedule_build
from restructuring.selectors.feasibility import (
    CaseFacts,
    cases_with_report,
    feasibility_facts_load,
    report_facts,
    report_inputs,
    report_params,
)
from restructuring.terms import Terms, TermsError

logger = logging.getLogger(__name__)

ACTOR = "feasibility"
_RATIO = Decimal("0.000001")
_HISTOGRAM_BINS = 30
_MARKETS_KEPT = 2


class FeasibilityError(ValidationError):
    code = "feasibility_not_computable"


# ------------------------------------------------------------------------------------------------ market


def feasibility_params() -> feasibility.Params:
    return feasibility.Params(
        paths=settings.WORKOUT_FEASIBILITY_PATHS,
        horizon_days=settings.WORKOUT_FEASIBILITY_HORIZON_DAYS,
        participation=settings.WORKOUT_LIQUIDATION_PARTICIPATION,
        impact_coefficient=settings.WORKOUT_IMPACT_COEFFICIENT,
        drift_annual=settings.WORKOUT_FEASIBILITY_DRIFT_ANNUAL,
        jumps=feasibility.Jumps(
            intensity_per_year=settings.WORKOUT_FEASIBILITY_JUMP_INTENSITY,
            mean=settings.WORKOUT_FEASIBILITY_JUMP_MEAN,
            volatility=settings.WORKOUT_FEASIBILITY_JUMP_VOLATILITY,
        ),
        discount_rate=settings.WORKOUT_FEASIBILITY_DISCOUNT_RATE,
        risk_free_rate=settings.WORKOUT_RISK_FREE_RATE,
        stressed_drift_sigmas=settings.WORKOUT_FEASIBILITY_STRESSED_DRIFT_SIGMAS,
        max_term_months=settings.WORKOUT_FEASIBILITY_MAX_TERM_MONTHS,
        collection_rate=settings.WORKOUT_FEASIBILITY_COLLECTION_RATE,
        collection_lag_months=settings.WORKOUT_FEASIBILITY_COLLECTION_LAG_MONTHS,
        redefault_cost_fixed=settings.WORKOUT_FEASIBILITY_REDEFAULT_COST_FIXED,
        redefault_cost_rate=settings.WORKOUT_FEASIBILITY_REDEFAULT_COST_RATE,
        affordability_share=settings.WORKOUT_FEASIBILITY_AFFORDABILITY_SHARE,
        max_funding_miss_probability=settings.WORKOUT_FEASIBILITY_MAX_FUNDING_MISS_PROBABILITY,
    )


@dataclass(frozen=True)
class Market:
    as_of: datetime
    sweep_id: int | None
    seed: int


def market_current(now: datetime | None = None) -> Market:
    """The market of the latest finished sweep (or now, before any sweep), and its seed."""
    sweep = Sweep.objects.filter(status=SweepStatus.DONE).order_by("-as_of", "-pk").only("pk", "as_of").first()
    as_of = sweep.as_of if sweep else (now or timezone.now())
    label = f"sweep:{sweep.pk}:{as_of.isoformat()}" if sweep else f"time:{as_of.isoformat()}"
    seed = int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big") >> 1  # fits a signed bigint
    return Market(as_of=as_of, sweep_id=sweep.pk if sweep else None, seed=seed)


_paths_kept: OrderedDict[tuple[int, feasibility.Params], feasibility.MarketPaths] = OrderedDict()


def market_paths(seed: int, params: feasibility.Params) -> feasibility.MarketPaths:
    """The process's draws for a market, drawn once and reused by every case computed on it."""
    key = (seed, params)
    if key in _paths_kept:
        _paths_kept.move_to_end(key)
        return _paths_kept[key]
    paths = feasibility.MarketPaths(seed, params)
    _paths_kept[key] = paths
    while len(_paths_kept) > _MARKETS_KEPT:
        _paths_kept.popitem(last=False)
    return paths


# -------------------------------------------------------------------------------------------- candidates


@dataclass(frozen=True)
class Priced:
    """Terms turned into the engine's candidate, with the schedule they give."""

    name: str
    terms: Terms
    candidate: feasibility.Candidate
    schedule: Schedule


def standard_terms(facts: CaseFacts) -> list[tuple[str, Terms]]:
    """The configured standard terms for this case: "call_amount" is the case's call, "reduce_all_fraction" a
    fraction of every long position."""
    out = []
    configured: dict[str, Any] = settings.WORKOUT_FEASIBILITY_CANDIDATES
    for name, spec in configured.items():
        data = dict(spec)
        if data.get("collateral_to_add") == "call_amount":
            data["collateral_to_add"] = str(facts.case.call_amount or 0)
        if "reduce_all_fraction" in data:
            fraction = data.pop("reduce_all_fraction")
            data["reduce"] = [
                [position_id, fraction]
                for position_id, e in zip(facts.position_ids, facts.inputs.exposures, strict=True)
                if e.quantity > 0
            ]
            if not data["reduce"]:
                continue
        out.append((name, Terms.from_json(data)))
    return out


def terms_price(facts: CaseFacts, name: str, terms: Terms, params: feasibility.Params, start: date) -> Priced:
    """The schedule and the engine's candidate of `terms` for this case. Reduction proceeds pay the accrued
    interest first, then principal; a haircut comes off the principal; the rest is scheduled."""
    q = facts.quantum
    index = {position_id: k for k, position_id in enumerate(facts.position_ids)}
    for position_id, _ in terms.reduce:
        if position_id not in index:
            raise TermsError("reduce", f"position {position_id} is not an open position of this account")
    reduce = tuple((index[p], float(f)) for p, f in terms.reduce)
    proceeds = _money(feasibility.reduction_proceeds(facts.inputs, reduce, params), q) if reduce else Decimal(0)
    proceeds = max(proceeds, Decimal(0))
    arrears = max(facts.accrued_interest - proceeds, Decimal(0))
    principal = facts.principal - max(proceeds - facts.accrued_interest, Decimal(0)) - terms.principal_haircut
    if principal < 0:
        principal = Decimal(0)
    schedule_terms = ScheduleTerms(
        principal=principal.quantize(q, rounding=ROUND_HALF_EVEN),
        rate_annual=terms.rate_annual if terms.rate_annual is not None else facts.rate_annual,
        term_months=terms.term_months,
        kind=terms.kind,
        moratorium_months=terms.moratorium_months,
        grace_interest_months=terms.grace_interest_months,
        grace_principal_months=terms.grace_principal_months,
        arrears=arrears.quantize(q, rounding=ROUND_HALF_EVEN),
        arrears_treatment=terms.arrears_treatment,
        start=start,
        quantum=q,
    )
    if terms.term_months > params.max_term_months:
        raise TermsError("term_months", f"{terms.term_months} is longer than the {params.max_term_months} valued")
    schedule = schedule_build(schedule_terms)
    candidate = feasibility.Candidate(
        name=name,
        installments=tuple(float(i.total) for i in schedule.installments),
        owed=_owed(schedule, schedule_terms),
        collateral_added=float(terms.collateral_to_add),
        reduce=reduce,
        principal_haircut=float(terms.principal_haircut),
        rate_annual=float(schedule_terms.rate_annual),
    )
    return Priced(name=name, terms=terms, candidate=candidate, schedule=schedule)


def _owed(schedule: Schedule, terms: ScheduleTerms) -> tuple[float, ...]:
    """What the client owes just before each installment: principal outstanding, the period's interest,
    interest deferred by a grace and not yet paid, and arrears not yet paid or capitalised."""
    rate = float(terms.rate_annual) / 12.0
    capitalised = terms.arrears_treatment == "capitalise"
    balance = float(terms.principal) + (float(terms.arrears) if capitalised else 0.0)
    arrears_left = 0.0 if capitalised else float(terms.arrears)
    deferred = 0.0
    out = []
    for installment in schedule.installments:
        accrual = balance * rate
        out.append(balance + accrual + deferred + arrears_left)
        paid_interest = float(installment.interest)
        after = float(installment.balance)
        if installment.total == 0 and after <= balance:  # an interest grace: the interest waits, uncapitalised
            deferred += accrual
        elif paid_interest > accrual:
            deferred = 0.0
        arrears_left -= float(installment.arrears)
        balance = after
    return tuple(out)


# ------------------------------------------------------------------------------------------- evaluation


def _money(value: float, quantum: Decimal) -> Decimal:
    return Decimal(repr(float(value))).quantize(quantum, rounding=ROUND_HALF_EVEN)


def _ratio(value: float | None) -> str | None:
    return None if value is None else str(Decimal(repr(float(value))).quantize(_RATIO, rounding=ROUND_HALF_EVEN))


def _estimate(estimate: feasibility.Estimate, quantum: Decimal) -> dict[str, str]:
    return {
        "value": str(_money(estimate.value, quantum)),
        "standard_error": str(_money(estimate.standard_error, quantum)),
    }


def _ratio_estimate(estimate: feasibility.Estimate) -> dict[str, str | None]:
    return {"value": _ratio(estimate.value), "standard_error": _ratio(estimate.standard_error)}


def evaluate(
    inputs: feasibility.AccountInputs,
    candidates: Sequence[feasibility.Candidate],
    market: feasibility.MarketPaths,
    case_seed: int,
    quantum: Decimal,
) -> dict[str, Any]:
    """Run the model and round its figures: the `results` of a report (what a recomputation must reproduce)."""
    params = market.params
    recovery = feasibility.recovery(inputs, market)
    capacity = feasibility.loss_capacity(inputs, params)
    valuations = feasibility.valuations(inputs, candidates, market, case_seed, recovery)
    counts, edges = np.histogram(recovery.samples, bins=_HISTOGRAM_BINS)
    moves = np.round(np.linspace(-0.5, 0.5, 21), 2)
    equity = feasibility.value_curve(inputs, params, moves) - inputs.debt
    return {
        "recovery": {
            "expected": _estimate(recovery.expected, quantum),
            "p5": _estimate(recovery.p5, quantum),
            "expected_loss": _estimate(recovery.expected_loss, quantum),
            "loss_given_default": _ratio_estimate(recovery.loss_given_default),
            "lender_receipt": _estimate(recovery.lender_receipt, quantum),
            "lender_value": _estimate(recovery.lender_value, quantum),
            "impact_cost": str(_money(recovery.impact_cost, quantum)),
            "market_value": str(_money(recovery.market_value, quantum)),
            "value_after_haircut": str(_money(recovery.value_after_haircut, quantum)),
            "days": recovery.days,
            "histogram": {
                "edges": [str(_money(e, quantum)) for e in edges.tolist()],
                "counts": counts.tolist(),
            },
        },
        "loss_capacity": {
            "equity": str(_money(capacity.equity, quantum)),
            "move": _ratio(capacity.move),
            "move_with_external": _ratio(capacity.move_with_external),
            "portfolio_volatility": _ratio(capacity.portfolio_volatility),
            "pnl_volatility": str(_money(capacity.pnl_volatility, quantum)),
            "sigmas": _ratio(capacity.sigmas),
            "sigmas_with_external": _ratio(capacity.sigmas_with_external),
            "days_to_default": _ratio(capacity.days_to_default),
            "curve": {
                "moves": [_ratio(m) for m in moves.tolist()],
                "equity": [str(_money(e, quantum)) for e in equity.tolist()],
            },
        },
        "valuations": [valuation_json(v, quantum) for v in feasibility.ranked(valuations)],
        "recommended": feasibility.recommendation(valuations) or "",
    }


def valuation_json(valuation: feasibility.Valuation, quantum: Decimal) -> dict[str, Any]:
    """A candidate's figures as a report (and a proposal) stores them."""
    return {
        "name": valuation.name,
        "affordable": valuation.affordable,
        "why_not_affordable": list(valuation.why_not_affordable),
        "expected_pv": _estimate(valuation.expected_pv, quantum),
        "default_probability": _ratio_estimate(valuation.default_probability),
        "funding_miss_probability": _ratio_estimate(valuation.funding_miss_probability),
        "advantage": _estimate(valuation.advantage, quantum),
        "reduction_proceeds": str(_money(valuation.reduction_proceeds, quantum)),
        "months": valuation.months,
    }


def liquidation_value(results: Mapping[str, Any]) -> Mapping[str, str]:
    """What liquidating now is worth to the lender, as a report's results say (a report of the first model, which
    did not discount it nor count recourse, says its receipt)."""
    recovery = results["recovery"]
    return recovery.get("lender_value") or recovery["lender_receipt"]


def _inputs_json(inputs: feasibility.AccountInputs) -> dict[str, Any]:
    return asdict(inputs)


def _candidates_from(data: Sequence[Mapping[str, Any]]) -> list[feasibility.Candidate]:
    return [
        feasibility.Candidate(
            **{
                **c,
                "installments": tuple(c["installments"]),
                "owed": tuple(c["owed"]),
                "reduce": tuple((int(i), float(f)) for i, f in c["reduce"]),
            }
        )
        for c in data
    ]


def _schedule_json(schedule: Schedule) -> list[dict[str, str | int]]:
    return [
        {
            "number": i.number,
            "due": i.due.isoformat(),
            "principal": str(i.principal),
            "interest": str(i.interest),
            "arrears": str(i.arrears),
            "total": str(i.total),
            "balance": str(i.balance),
        }
        for i in schedule.installments
    ]


# --------------------------------------------------------------------------------------------- services


def feasibility_compute(
    *,
    case_ids: Sequence[int],
    trigger: str = FeasibilityTrigger.ON_DEMAND,
    key: str | None = None,
    now: datetime | None = None,
) -> list[int]:
    """Compute and store a report for each case; returns the ids of the reports stored by this call.

    Margin-call reports are keyed by the call, so a case gets one per margin call however often this runs,
    and only cases still in MARGIN_CALL get one. On demand, `key` (default: the time) names the request."""
    now = now or timezone.now()
    cases = list(Case.objects.filter(pk__in=case_ids).select_related("account__client").order_by("pk"))
    if trigger == FeasibilityTrigger.MARGIN_CALL:
        cases = [c for c in cases if c.state == CaseState.MARGIN_CALL and c.called_at is not None]
    keys = {c.pk: _key(c, trigger, key, now) for c in cases}
    done = cases_with_report(keys)
    cases = [c for c in cases if c.pk not in done]
    if not cases:
        return []
    market = market_current(now)
    params = feasibility_params()
    paths = market_paths(market.seed, params)
    facts = feasibility_facts_load(cases, market.as_of)
    reports = []
    for case in cases:
        started = time.perf_counter()
        report = _report(facts[case.pk], market, paths, params, trigger, keys[case.pk], now)
        report.duration_ms = (time.perf_counter() - started) * 1e3
        reports.append(report)
    stored = _store(reports, keys)
    if stored and trigger == FeasibilityTrigger.MARGIN_CALL:
        called = sorted({r.case_id for r in reports if r.pk in set(stored)})
        _propose(called)
    return stored


def _propose(case_ids: list[int]) -> None:
    # Imported here: the tasks module imports this service.
    from restructuring.tasks import propose_from_rules

    dispatch_on_commit(
        propose_from_rules,
        {"case_ids": case_ids},
        redrive="the feasibility re-drive beat (feasibility_redrive_task, margin calls whose report the rules missed)",
    )


def _key(case: Case, trigger: str, key: str | None, now: datetime) -> str:
    if trigger == FeasibilityTrigger.MARGIN_CALL:
        return f"margin_call:{case.called_at.isoformat()}"  # type: ignore[union-attr]
    return key or f"on_demand:{now.isoformat()}"


def _report(
    facts: CaseFacts,
    market: Market,
    paths: feasibility.MarketPaths,
    params: feasibility.Params,
    trigger: str,
    key: str,
    now: datetime,
) -> FeasibilityReport:
    priced, skipped = [], []
    for name, terms in standard_terms(facts):
        try:
            priced.append(terms_price(facts, name, terms, params, now.date()))
        except (ScheduleError, TermsError) as exc:
            skipped.append({"name": name, "reason": str(exc)})
    candidates = [p.candidate for p in priced]
    case_seed = facts.case.pk
    results = evaluate(facts.inputs, candidates, paths, case_seed, facts.quantum)
    results["skipped"] = skipped
    results["schedules"] = {p.name: _schedule_json(p.schedule) for p in priced}
    results["terms"] = {p.name: p.terms.to_json() for p in priced}
    recovery = results["recovery"]
    chosen = next((v for v in results["valuations"] if v["name"] == results["recommended"]), None)
    move = results["loss_capacity"]["move"]
    return FeasibilityReport(
        case=facts.case,
        key=key,
        trigger=trigger,
        created_at=now,
        as_of=market.as_of,
        sweep_id=market.sweep_id,
        model_version=feasibility.MODEL_VERSION,
        market_seed=market.seed,
        case_seed=case_seed,
        parameters=asdict(params),
        inputs={
            "account": _inputs_json(facts.inputs),
            "candidates": [asdict(c) for c in candidates],
            "position_ids": list(facts.position_ids),
            "quantum": str(facts.quantum),
            "credit_tier": facts.credit_tier,
            "loan": {
                "principal": str(facts.principal),
                "accrued_interest": str(facts.accrued_interest),
                "rate_annual": str(facts.rate_annual),
            },
        },
        results=results,
        debt=_money(facts.inputs.debt, facts.quantum),
        recovery_expected=Decimal(recovery["expected"]["value"]),
        recovery_p5=Decimal(recovery["p5"]["value"]),
        expected_loss=Decimal(recovery["expected_loss"]["value"]),
        loss_given_default=Decimal(recovery["loss_given_default"]["value"]),
        loss_capacity_pct=None if move is None else abs(Decimal(move)),
        liquidation_value=Decimal(recovery["lender_value"]["value"]),
        recommended=results["recommended"],
        recommended_advantage=None if chosen is None else Decimal(chosen["advantage"]["value"]),
        **rule_columns(_inputs_json(facts.inputs), facts.position_ids, results),
    )


def rule_columns(account: Mapping[str, Any], position_ids: Sequence[int], results: Mapping[str, Any]) -> dict[str, Any]:
    """The report's columns the rules read besides its headline figures: days to liquidate, portfolio volatility,
    the largest position's share of the gross notional, the count, and the positions largest first."""
    prices = [d["price"] for d in account["drivers"]]
    exposures = account["exposures"]
    gross = [abs(e["quantity"]) * prices[e["driver"]] for e in exposures]
    total = sum(gross)
    order = sorted(range(len(gross)), key=lambda k: (-gross[k], position_ids[k]))
    volatility = results["loss_capacity"]["portfolio_volatility"]
    return {
        "liquidation_days": results["recovery"]["days"],
        "portfolio_volatility": float(volatility) if volatility is not None else None,
        "concentration_top1": max(gross) / total if total > 0 else None,
        "position_count": len(gross),
        "holdings": [[position_ids[k], exposures[k]["quantity"] > 0] for k in order],
    }


def _store(reports: list[FeasibilityReport], keys: Mapping[int, str]) -> list[int]:
    """Store the reports not stored meanwhile, with one audit event each, in one transaction."""
    with transaction.atomic():
        locked = list(Case.objects.select_for_update().filter(pk__in=[r.case_id for r in reports]).values_list("pk"))
        del locked  # the lock is the point: a concurrent run waits here, then sees what this one stored
        done = cases_with_report({r.case_id: keys[r.case_id] for r in reports})
        fresh = [r for r in reports if r.case_id not in done]
        bulk_copy(FeasibilityReport, fresh, key=["case", "key"])  # large JSON: COPY, not bulk_create's arrays
        audit_record_many(
            [
                FEASIBILITY_REPORT.entry(
                    r,
                    account_id=r.case.account_id,
                    system_actor=ACTOR,
                    payload={
                        "case_id": r.case_id,
                        "trigger": r.trigger,
                        "model_version": r.model_version,
                        "market_seed": r.market_seed,
                        "case_seed": r.case_seed,
                        "as_of": r.as_of.isoformat(),
                        "recovery_expected": r.recovery_expected,
                        "expected_loss": r.expected_loss,
                        "recommended": r.recommended,
                    },
                )
                for r in fresh
            ]
        )
        cases_report_figures_update(case_ids=sorted({r.case_id for r in fresh}))
    logger.info("feasibility: %d reports stored, %d already there", len(fresh), len(reports) - len(fresh))
    return [r.pk for r in fresh]


def cases_report_figures_update(*, case_ids: Sequence[int]) -> int:
    """Keep on each case the figures of its latest report (the latest by `created_at`, then id, as every reader
    of "the latest report" orders them) that the queue sorts and filters on: one UPDATE for every case, in the
    caller's transaction (the one that stored the reports, with the cases locked). Returns the cases updated.

    Derived data, not a decision: the report's own `feasibility.report` event records the figures."""
    if not case_ids:
        return 0
    latest = FeasibilityReport.objects.filter(case_id=OuterRef("pk")).order_by("-created_at", "-pk")
    return Case.objects.filter(pk__any=list(case_ids)).update(
        report_at=Subquery(latest.values("created_at")[:1]),
        report_expected_loss=Subquery(latest.values("expected_loss")[:1]),
        report_recovery_expected=Subquery(latest.values("recovery_expected")[:1]),
        report_recommended=Subquery(latest.values("recommended")[:1]),
    )


@dataclass(frozen=True)
class Recomputation:
    report: FeasibilityReport
    results: dict[str, Any]
    differences: list[str]

    @property
    def reproduced(self) -> bool:
        return not self.differences


def feasibility_recompute(*, report_id: int) -> Recomputation:
    """Rerun the model from a stored report's inputs, seeds and parameters, and name every figure that differs."""
    try:
        report = FeasibilityReport.objects.get(pk=report_id)
    except FeasibilityReport.DoesNotExist:
        raise NotFoundError(f"feasibility report {report_id} does not exist", report_id=report_id) from None
    # A report of another model version is recomputed all the same: the differences are what the model changed.
    params = report_params(report.parameters)
    market = feasibility.MarketPaths(report.market_seed, params)
    results = evaluate(
        report_inputs(report.inputs["account"]),
        _candidates_from(report.inputs["candidates"]),
        market,
        report.case_seed,
        Decimal(report.inputs["quantum"]),
    )
    stored = {k: report.results.get(k) for k in results}
    differences = _differences(stored, results)
    if report.model_version != feasibility.MODEL_VERSION:
        differences.insert(0, f"model_version: stored {report.model_version!r}, now {feasibility.MODEL_VERSION!r}")
    return Recomputation(report=report, results=results, differences=differences)


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _differences(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for k, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{k}]")]
    return [] if a == b else [f"{where.lstrip('.')}: stored {a!r}, now {b!r}"]


@dataclass(frozen=True)
class Preview:
    schedule: Schedule
    valuation: dict[str, Any]
    liquidation_value: dict[str, str]


def terms_preview(*, case_id: int, terms: Mapping[str, Any] | Terms, now: datetime | None = None) -> Preview:
    """The schedule and valuation of any terms for a case, on the current market, before anything is approved.
    Nothing is stored. Bad terms raise a ValidationError that names the field."""
    now = now or timezone.now()
    case = Case.objects.select_related("account__client").filter(pk=case_id).first()
    if case is None:
        raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
    try:
        parsed = terms if isinstance(terms, Terms) else Terms.from_json(terms)
        market = market_current(now)
        params = feasibility_params()
        facts = feasibility_facts_load([case], market.as_of)[case.pk]
        priced = terms_price(facts, "preview", parsed, params, now.date())
    except TermsError as exc:
        raise ValidationError(str(exc), field=exc.field) from None
    except ScheduleError as exc:
        raise ValidationError(str(exc)) from None
    paths = market_paths(market.seed, params)
    recovery = feasibility.recovery(facts.inputs, paths)
    valuation = feasibility.valuation(facts.inputs, priced.candidate, paths, case.pk, recovery)
    q = facts.quantum
    return Preview(
        schedule=priced.schedule,
        valuation=valuation_json(valuation, q),
        liquidation_value=_estimate(recovery.lender_value, q),
    )


def feasibility_batches(case_ids: Sequence[int]) -> list[list[int]]:
    """Margin-call cases in batches of WORKOUT_FEASIBILITY_BATCH, one task each (a worker reuses its market paths
    across a batch)."""
    size = max(1, settings.WORKOUT_FEASIBILITY_BATCH)
    ids = list(case_ids)
    return [ids[start : start + size] for start in range(0, len(ids), size)]


# ------------------------------------------------------------------------------- valuing proposed terms


@dataclass(frozen=True)
class Valued:
    name: str
    priced: Priced | None  # None: the terms could not be scheduled (see `problem`)
    valuation: dict[str, Any]
    problem: str = ""


def terms_value(report: FeasibilityReport, named: Sequence[tuple[str, Terms]], *, start: date) -> list[Valued]:
    """Value terms for the report's case on the report's own market and inputs (same seeds: comparable with the
    report's figures and with each other). Terms that cannot be scheduled come back with their problem."""
    facts = report_facts(report)
    params = report_params(report.parameters)
    priced: list[Priced] = []
    out: dict[str, Valued] = {}
    for name, terms in named:
        try:
            priced.append(terms_price(facts, name, terms, params, start))
        except (ScheduleError, TermsError) as exc:
            out[name] = Valued(name=name, priced=None, valuation={}, problem=str(exc))
    paths = market_paths(report.market_seed, params)
    # Against liquidating now on the same paths (the report's market and inputs: its figures, again)
    valuations = feasibility.valuations(facts.inputs, [p.candidate for p in priced], paths, report.case_seed)
    q = facts.quantum
    for p, v in zip(priced, valuations, strict=True):
        out[p.name] = Valued(name=p.name, priced=p, valuation=valuation_json(v, q))
    return [out[name] for name, _ in named]
