"""Proposals from the published rules: each case's facts go through the rule set, the fired actions make candidate
terms (one proposal per package), feasibility values them on the case's own report, they are ranked by the
lender's expected present value, and the case moves to PROPOSED.

- Runs after a margin call's feasibility report is stored (restructuring.tasks.propose_from_rules, on commit)
  and on demand. Without a published rule set it does nothing.
- Idempotent: a proposal's source key is "rules:<report id>:<package>", unique per case, and the cases are
  locked while their proposals are stored; a second run for the same report stores nothing.
- Every case moved writes one audit event (case.propose) naming its proposals, the rule set and its version.
- Liquidation, when a package proposes it, is a proposal like the others, worth what liquidating now brings
  the lender (the report's figure); `escalate_to_senior` marks all of the case's proposals as needing a senior
  officer's approval.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from core.audit import AuditEntry, audit_record_many
from core.bulk import bulk_update_fields
from restructuring.audit_events import CASE_PROPOSE, CASE_RULES_PROPOSALS
from restructuring.models import (
    Case,
    CaseState,
    FeasibilityReport,
    Proposal,
    ProposalKind,
    ProposalSource,
)
from restructuring.selectors.feasibility import reports_load
from restructuring.selectors.rule_facts import rule_facts_load
from restructuring.services.feasibility import liquidation_value, terms_value
from restructuring.terms import Terms, TermsError, terms_hash
from rules.actions import ESCALATE, LIQUIDATE, CaseHoldings, terms_from_actions
from rules.engine import Firing, evaluate
from rules.expressions import columns_from_rows
from rules.models import RuleSet
from rules.schema import FACT_TYPES
from rules.services import published_rules

logger = logging.getLogger(__name__)

ACTOR = "rules"
# A case gets rule proposals in margin call, and again in a later round (after a counter-offer, on the report
# computed for it): each report's proposals once.
PROPOSABLE_STATES = (CaseState.MARGIN_CALL, CaseState.PROPOSED)


@dataclass(frozen=True)
class Candidate:
    package: str
    kind: str
    terms: dict[str, Any]
    firings: list[Firing]


def proposals_from_rules(*, case_ids: Sequence[int], now: datetime | None = None) -> list[int]:
    """Evaluate the published rules on these cases (those in MARGIN_CALL with a feasibility report) and store
    their ranked proposals; returns the ids of the proposals stored by this call."""
    now = now or timezone.now()
    published = published_rules()
    if published is None:
        return []
    rule_set, compiled = published
    cases = list(
        Case.objects.filter(pk__in=case_ids, state__in=PROPOSABLE_STATES)
        .select_related("account__client")
        .order_by("pk")
    )
    facts = rule_facts_load(cases, now)
    columns = columns_from_rows(facts.rows, FACT_TYPES)
    firings = evaluate(compiled, columns, len(cases))
    for case, row in zip(cases, facts.rows, strict=True):  # what a backtest replays once the case is closed
        case.facts, case.facts_at = json_row(row), now
    bulk_update_fields(Case, cases, ["facts", "facts_at"])
    reports = reports_load([r for r, fired in zip(facts.report_ids, firings, strict=True) if fired])
    rounds = dict(
        Proposal.objects.filter(case__in=cases).values("case_id").annotate(r=Max("round")).values_list("case_id", "r")
    )
    planned: list[tuple[Case, FeasibilityReport, dict[str, Any], list[Proposal]]] = []
    for case, row, holdings, report_id, fired in zip(
        cases, facts.rows, facts.holdings, facts.report_ids, firings, strict=True
    ):
        report = reports.get(report_id) if report_id is not None else None
        if report is None or not fired:
            continue
        proposals = _case_proposals(case, report, row, holdings, fired, rule_set, now, rounds.get(case.pk, 1))
        if proposals:
            planned.append((case, report, row, proposals))
    return _store(planned, rule_set, now)


def package_candidates(fired: list[Firing], holdings: CaseHoldings, quantum: Decimal) -> tuple[list[Candidate], bool]:
    """The packages that fired, as candidate terms, and whether the case is escalated."""
    packages: OrderedDict[str, list[Firing]] = OrderedDict()
    for firing in fired:
        packages.setdefault(firing.package, []).append(firing)
    escalate = any(f.action == ESCALATE and not f.problem for f in fired)
    out = []
    for package, members in packages.items():
        usable = [f for f in members if not f.problem and f.action != ESCALATE]
        if not usable or any(f.problem for f in members):
            continue  # a package with a rule whose parameters came out of bounds proposes nothing
        if any(f.action == LIQUIDATE for f in usable):
            out.append(Candidate(package, ProposalKind.LIQUIDATE, {}, members))
            continue
        terms = terms_from_actions(
            [(f.action, f.parameters) for f in usable],
            holdings,
            default_term_months=settings.WORKOUT_RULES_DEFAULT_TERM_MONTHS,
            quantum=quantum,
        )
        out.append(Candidate(package, ProposalKind.RESTRUCTURE, terms, members))
    return out, escalate


def _case_proposals(
    case: Case,
    report: FeasibilityReport,
    row: dict[str, Any],
    holdings: CaseHoldings,
    fired: list[Firing],
    rule_set: RuleSet,
    now: datetime,
    round_: int,
) -> list[Proposal]:
    quantum = Decimal(report.inputs["quantum"])
    candidates, escalate = package_candidates(fired, holdings, quantum)
    escalations = [_explained(f) for f in fired if f.action == ESCALATE and not f.problem]
    restructure = []
    for candidate in candidates:
        if candidate.kind == ProposalKind.RESTRUCTURE:
            try:
                restructure.append((candidate.package, Terms.from_json(candidate.terms)))
            except TermsError as exc:
                logger.warning("case %s, package %s: %s", case.pk, candidate.package, exc)
    valued = {v.name: v for v in terms_value(report, restructure, start=now.date())} if restructure else {}
    proposals = []
    for candidate in candidates:
        valuation: dict[str, Any]
        if candidate.kind == ProposalKind.LIQUIDATE:
            valuation = {"expected_pv": dict(liquidation_value(report.results)), "affordable": True}
        elif candidate.package in valued and valued[candidate.package].priced is not None:
            valuation = valued[candidate.package].valuation
        else:
            continue  # terms that cannot be scheduled (e.g. a term longer than valued): not a proposal
        proposals.append(
            Proposal(
                case=case,
                round=round_,
                source=ProposalSource.RULES,
                source_key=f"rules:{report.pk}:{candidate.package}",
                kind=candidate.kind,
                name=candidate.package,
                terms=candidate.terms,
                terms_hash=terms_hash(candidate.terms),
                rule_set=rule_set,
                rule_set_version=rule_set.version,
                explanation=[_explained(f) for f in candidate.firings] + escalations,
                facts=json_row(row),
                feasibility_report=report,
                valuation=valuation,
                expected_pv=Decimal(valuation["expected_pv"]["value"]),
                requires_senior=escalate,
                created_at=now,
            )
        )
    # Affordable first (an unaffordable proposal never ranks above one the client can pay), then by value.
    proposals.sort(key=lambda p: (p.valuation.get("affordable") is False, -(p.expected_pv or 0), p.name))
    for rank, proposal in enumerate(proposals, start=1):
        proposal.rank = rank
    return proposals


def _explained(firing: Firing) -> dict[str, Any]:
    return {
        "rule": firing.rule,
        "action": firing.action,
        "parameters": firing.parameters,
        "facts": firing.facts,
        "problem": firing.problem,
    }


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """A fact row as JSON holds it: null for a missing number."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def _store(
    planned: list[tuple[Case, FeasibilityReport, dict[str, Any], list[Proposal]]], rule_set: RuleSet, now: datetime
) -> list[int]:
    if not planned:
        return []
    stored: list[Proposal] = []
    entries: list[AuditEntry] = []
    with transaction.atomic():
        locked = {
            c.pk: c for c in Case.objects.select_for_update(of=("self",)).filter(pk__any=[c.pk for c, *_ in planned])
        }
        keys = {p.source_key for *_, proposals in planned for p in proposals}
        existing = set(
            Proposal.objects.filter(case_id__in=list(locked), source_key__in=keys).values_list("case_id", flat=True)
        )
        for case, _, _, proposals in planned:
            current = locked[case.pk]
            if case.pk in existing:
                continue
            before = str(current.state)
            if current.state != CaseState.PROPOSED:
                try:
                    current.propose()
                except TransitionNotAllowed:  # moved since it was read (cured, liquidating): leave it
                    continue
            for proposal in proposals:
                proposal.case = current
            stored.extend(proposals)
            entries.append(_entry(current, before, proposals, rule_set))
        Proposal.objects.bulk_create([_pending(p) for p in stored])
        moved = [e.object_id for e in entries if e.from_state != e.to_state]
        Case.objects.filter(pk__in=moved).update(state=CaseState.PROPOSED, updated_at=now, state_changed_at=now)
        audit_record_many(entries)
    logger.info("rules: %d proposals for %d cases", len(stored), len(entries))
    return [p.pk for p in stored]


def _pending(proposal: Proposal) -> Proposal:
    """Rule-made proposals wait for an officer's approval (the rules are their maker: any officer may check)."""
    proposal.submit()
    return proposal


def _entry(case: Case, before: str, proposals: list[Proposal], rule_set: RuleSet) -> AuditEntry:
    """The case's move to PROPOSED; or, already there (a later round), the decision alone."""
    action = CASE_PROPOSE if before != CaseState.PROPOSED else CASE_RULES_PROPOSALS
    return action.entry(
        case,
        account_id=case.account_id,
        system_actor=ACTOR,
        from_state=before,
        to_state=CaseState.PROPOSED,
        payload={
            "rule_set": rule_set.pk,
            "rule_set_version": rule_set.version,
            "proposals": [
                {"name": p.name, "kind": p.kind, "rank": p.rank, "expected_pv": p.expected_pv} for p in proposals
            ],
            "requires_senior": any(p.requires_senior for p in proposals),
        },
    )
