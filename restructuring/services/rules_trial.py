"""Trying a rule set before it is published: the dry run (every open case, on its live facts) and the backtest
(closed cases, on the facts the rules last saw for them), each against the published set.

For every case both sets are evaluated; their packages are compared by name (added, removed, changed terms) and
each candidate is valued on the case's latest feasibility report, so "before" and "after" are on one market with
one set of seeds. A case's expected recovery under a set is the best expected present value among its
affordable proposals, or what liquidating now brings when it proposes nothing better; the totals add them up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from restructuring.models import CLOSED_STATES, OPEN_STATES, Case, FeasibilityReport, ProposalKind
from restructuring.selectors.feasibility import reports_load
from restructuring.selectors.rule_facts import RuleFacts, rule_facts_load
from restructuring.services.feasibility import liquidation_value, terms_value
from restructuring.services.proposals import package_candidates
from restructuring.terms import Terms, TermsError
from rules.engine import CompiledRule, evaluate, ruleset_compile
from rules.expressions import columns_from_rows
from rules.models import RuleSet, RuleSetStatus
from rules.schema import FACT_TYPES
from rules.services import spec_of


@dataclass
class CaseDiff:
    case_id: int
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    before: Decimal = Decimal(0)
    after: Decimal = Decimal(0)


@dataclass
class Trial:
    rule_set_version: int
    against_version: int | None
    cases: int = 0
    added: int = 0
    removed: int = 0
    changed: int = 0
    recovery_before: Decimal = Decimal(0)
    recovery_after: Decimal = Decimal(0)
    differences: list[CaseDiff] = field(default_factory=list)  # cases where anything changed

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_set_version": self.rule_set_version,
            "against_version": self.against_version,
            "cases": self.cases,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "recovery_before": str(self.recovery_before),
            "recovery_after": str(self.recovery_after),
        }


def ruleset_dry_run(*, rule_set_id: int, now: datetime | None = None) -> Trial:
    """The draft (or any set) against the published one, over every open case that has a feasibility report."""
    now = now or timezone.now()
    cases = list(
        Case.objects.filter(state__in=OPEN_STATES, feasibility_reports__isnull=False)
        .distinct()
        .select_related("account__client")
        .order_by("pk")
    )
    return _trial(rule_set_id, rule_facts_load(cases, now), now)


def ruleset_backtest(*, rule_set_id: int, now: datetime | None = None) -> Trial:
    """The same over closed cases, from the facts the rules last saw for them (Case.facts)."""
    now = now or timezone.now()
    cases = list(
        Case.objects.filter(state__in=CLOSED_STATES, facts_at__isnull=False, feasibility_reports__isnull=False)
        .distinct()
        .select_related("account__client")
        .order_by("pk")
    )
    live = rule_facts_load(cases, now)  # for the holdings and reports; the facts are the stored ones
    stored = [
        {**row, **{k: _number(v) for k, v in case.facts.items()}} for case, row in zip(cases, live.rows, strict=True)
    ]
    return _trial(
        rule_set_id, RuleFacts(cases=cases, rows=stored, holdings=live.holdings, report_ids=live.report_ids), now
    )


def _terms(candidate: Any) -> tuple[str, dict[str, Any]]:
    return candidate.kind, candidate.terms


def _number(value: Any) -> Any:
    return float("nan") if value is None else value


def _compiled(rule_set: RuleSet | None) -> list[CompiledRule]:
    return ruleset_compile([spec_of(r) for r in rule_set.rules.all()]) if rule_set is not None else []


def _trial(rule_set_id: int, facts: RuleFacts, now: datetime) -> Trial:
    trying = RuleSet.objects.get(pk=rule_set_id)
    published = RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).first()
    columns = columns_from_rows(facts.rows, FACT_TYPES)
    size = len(facts.cases)
    after_firings = evaluate(_compiled(trying), columns, size)
    before_firings = evaluate(_compiled(published), columns, size)
    trial = Trial(rule_set_version=trying.version, against_version=published.version if published else None)
    reports = reports_load(facts.report_ids)
    for case, holdings, report_id, before, after in zip(
        facts.cases, facts.holdings, facts.report_ids, before_firings, after_firings, strict=True
    ):
        report = reports.get(report_id) if report_id is not None else None
        if report is None:
            continue
        trial.cases += 1
        quantum = Decimal(report.inputs["quantum"])
        old = {c.package: c for c in package_candidates(before, holdings, quantum)[0]}
        new = {c.package: c for c in package_candidates(after, holdings, quantum)[0]}
        diff = CaseDiff(
            case_id=case.pk,
            added=sorted(set(new) - set(old)),
            removed=sorted(set(old) - set(new)),
            changed=sorted(
                p for p in set(old) & set(new) if (old[p].kind, old[p].terms) != (new[p].kind, new[p].terms)
            ),
        )
        diff.before = _best(report, list(old.values()), now)
        diff.after = _best(report, list(new.values()), now)
        trial.added += len(diff.added)
        trial.removed += len(diff.removed)
        trial.changed += len(diff.changed)
        trial.recovery_before += diff.before
        trial.recovery_after += diff.after
        if diff.added or diff.removed or diff.changed or diff.before != diff.after:
            trial.differences.append(diff)
    return trial


def _best(report: FeasibilityReport, candidates: Sequence[Any], now: datetime) -> Decimal:
    """The best expected PV among the affordable candidates, or liquidating now when nothing beats it."""
    best = Decimal(liquidation_value(report.results)["value"])
    named = []
    for c in candidates:
        if c.kind == ProposalKind.RESTRUCTURE:
            try:
                named.append((c.package, Terms.from_json(c.terms)))
            except TermsError:
                continue
    for valued in terms_value(report, named, start=now.date()) if named else []:
        if valued.priced is not None and valued.valuation["affordable"]:
            best = max(best, Decimal(valued.valuation["expected_pv"]["value"]))
    return best
