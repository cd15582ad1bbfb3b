"""The controls on approving a proposal: who made it (and so may not check it), what the model flags, how much
it forgives, and which approvals it still needs. Pure reads, no writes: the negotiation service applies them under
its locks, and the case page and the queue show them.

- Makers. Everyone who drafted or edited any version of the terms; for a proposal the rules made, everyone who
  wrote, edited or published the rule set that made it (the policy is its author). None of them may approve it.
- Two people at least. An approval completes only when the people on the proposal's record (its makers, the
  approvers of its current version, and for a client's counter-offer the people on the record of the offer it
  counters) are two distinct members of staff or more. A proposal with no human maker (the rules of a set loaded
  by a command at installation) therefore needs two approvers.
- Forgiveness (a principal haircut, plus the interest a rate cut gives up: the cut times the principal over the
  whole new term, an upper bound) above WORKOUT_TWO_APPROVALS_ABOVE in the account's currency needs two distinct
  approvers, whatever their limits.
- Authority: the debt restructured must be within one approver's limit; an escalated proposal needs a senior.
- Flags: a proposal the model marks unaffordable, whose default probability is at least
  WORKOUT_GUARDRAIL_DEFAULT_PROBABILITY, or whose expected value to the lender is below what liquidating now
  brings, is approved only with an override reason typed by the approver.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings

from restructuring.models import Approval, FeasibilityReport, Proposal, ProposalKind


def proposal_makers(proposal: Proposal) -> dict[int, str]:
    """The makers of a proposal by user id, with why each is one (the first reason found)."""
    makers: dict[int, str] = {}
    editors = set(proposal.editors.values_list("pk", flat=True))
    if proposal.made_by_id is not None:
        editors.add(proposal.made_by_id)
    for user_id in sorted(editors):
        makers.setdefault(user_id, "drafted or edited its terms")
    rule_set = proposal.rule_set
    if rule_set is not None:
        authors = set(rule_set.editors.values_list("pk", flat=True))
        if rule_set.created_by_id is not None:
            authors.add(rule_set.created_by_id)
        for user_id in sorted(authors):
            makers.setdefault(user_id, f"wrote or edited rule set v{rule_set.version}, which made it")
        if rule_set.published_by_id is not None:
            makers.setdefault(rule_set.published_by_id, f"published rule set v{rule_set.version}, which made it")
    return makers


def current_approvals(proposal: Proposal) -> list[Approval]:
    """The approvals of the proposal's current version (the only ones that count)."""
    return list(Approval.objects.filter(proposal=proposal, version=proposal.version).order_by("pk"))


def people_on_record(proposal: Proposal, approvals: Iterable[Approval], makers: Mapping[int, str]) -> set[int]:
    """The members of staff on the proposal's record: its makers and current approvers, and for a counter-offer
    those of the offer it counters (whose approvers set the bounds the client moved within)."""
    people = set(makers) | {a.approver_id for a in approvals}
    offer = proposal.countered_from
    while offer is not None:
        people |= set(proposal_makers(offer))
        approvers = Approval.objects.filter(proposal=offer, version=offer.version).values_list("approver_id", flat=True)
        people |= set(approvers)
        offer = offer.countered_from
    return people


def forgiveness(terms: Mapping[str, Any], *, principal: Decimal, rate_annual: Decimal) -> Decimal:
    """What the terms forgive: the haircut, plus the rate cut times the principal left over the whole term."""
    haircut = Decimal(str(terms.get("principal_haircut") or "0"))
    new_rate = terms.get("rate_annual")
    cut = max(rate_annual - Decimal(str(new_rate)), Decimal(0)) if new_rate is not None else Decimal(0)
    months = Decimal(int(terms.get("term_months") or 0))
    return haircut + max(principal - haircut, Decimal(0)) * cut * months / 12


def approval_flags(proposal: Proposal, report: FeasibilityReport | None) -> list[str]:
    """What the model says against approving this proposal ([] for a liquidation: it is the benchmark)."""
    if proposal.kind == ProposalKind.LIQUIDATE:
        return []
    valuation = proposal.valuation or {}
    flags = []
    if valuation.get("affordable") is False:
        flags.append("the model marks it unaffordable: the client cannot meet the payments from what they have")
    probability = _value(valuation.get("default_probability"))
    threshold = Decimal(str(settings.WORKOUT_GUARDRAIL_DEFAULT_PROBABILITY))
    if probability is not None and probability >= threshold:
        flags.append(f"default probability {probability:.3f}, at or above {threshold}")
    if report is not None and proposal.expected_pv is not None and proposal.expected_pv < report.liquidation_value:
        flags.append(
            f"worth {proposal.expected_pv:,.2f} to the lender, less than liquidating now "
            f"({report.liquidation_value:,.2f})"
        )
    return flags


def _value(estimate: object) -> Decimal | None:
    if isinstance(estimate, Mapping) and estimate.get("value") not in (None, ""):
        return Decimal(str(estimate["value"]))
    return None


def approvals_needed(
    *,
    proposal: Proposal,
    approvals: list[Approval],
    makers: Mapping[int, str],
    amount: Decimal,
    forgiven: Decimal,
    currency: str,
) -> list[str]:
    """What the approvals of the current version still lack ([] once they suffice)."""
    missing = []
    if not any(a.limit >= amount for a in approvals):
        missing.append(f"an approval by someone whose limit covers {amount:,.2f} {currency}")
    if proposal.requires_senior and not any(a.senior for a in approvals):
        missing.append("a senior credit officer's approval (escalated by the rules)")
    threshold = Decimal(str(settings.WORKOUT_TWO_APPROVALS_ABOVE))
    if forgiven > threshold and len({a.approver_id for a in approvals}) < 2:
        missing.append(
            f"a second approver: it forgives {forgiven:,.2f} {currency}, above {threshold:,.2f} "
            "(WORKOUT_TWO_APPROVALS_ABOVE)"
        )
    if len(people_on_record(proposal, approvals, makers)) < 2:
        missing.append("a second person's approval: nobody else is on its record (no other author of its terms)")
    return missing
