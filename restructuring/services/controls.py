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

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from core.money import money_text
from restructuring.models import Approval, FeasibilityReport, Proposal, ProposalKind

# A thing the controls say: its words (an English message, marked for the catalogue) and its values; an amount is
# ["money", amount, currency]. Said once, read in two languages: English on the record (the audit event's payload,
# the API), the reader's on the pages (said_text). JSON as it is, so the record keeps it to be read again.
Said = tuple[str, dict[str, Any]]


def _money(amount: Decimal, currency: str) -> list[str]:
    return ["money", str(amount), currency]


def said_text(said: Sequence[Said] | Sequence[Sequence[Any]], *, english: bool = False, joiner: str = "") -> str:
    """The things said, in English for the record, else in the active language; joined by `joiner` (default: the
    language's "and")."""
    with translation.override("en") if english else _as_is():
        parts = []
        for message, values in said:
            shown = {
                k: money_text(v[1], v[2]) if isinstance(v, list | tuple) and v[:1] == ["money"] else v
                for k, v in dict(values).items()
            }
            parts.append(gettext(message) % shown if shown else gettext(message))
        return (joiner or " " + gettext("and") + " ").join(parts) if len(parts) > 1 else "".join(parts)


class _as_is:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


def proposal_makers(proposal: Proposal) -> dict[int, str]:
    """The makers of a proposal by user id, with why each is one (the first reason found)."""
    makers: dict[int, str] = {}
    editors = set(proposal.editors.values_list("pk", flat=True))
    if proposal.made_by_id is not None:
        editors.add(proposal.made_by_id)
    for user_id in sorted(editors):
        makers.setdefault(user_id, gettext("drafted or edited its terms"))
    rule_set = proposal.rule_set
    if rule_set is not None:
        authors = set(rule_set.editors.values_list("pk", flat=True))
        if rule_set.created_by_id is not None:
            authors.add(rule_set.created_by_id)
        for user_id in sorted(authors):
            makers.setdefault(
                user_id, gettext("wrote or edited rule set v%(version)s, which made it") % {"version": rule_set.version}
            )
        if rule_set.published_by_id is not None:
            makers.setdefault(
                rule_set.published_by_id,
                gettext("published rule set v%(version)s, which made it") % {"version": rule_set.version},
            )
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


def approval_flags(
    proposal: Proposal, report: FeasibilityReport | None, *, currency: str = "USD", english: bool = False
) -> list[str]:
    """What the model says against approving this proposal ([] for a liquidation: it is the benchmark), in the
    reader's language, or in English for the record; amounts in `currency` (the account's)."""
    return [said_text([s], english=english) for s in approval_flags_said(proposal, report, currency)]


def approval_flags_said(proposal: Proposal, report: FeasibilityReport | None, currency: str) -> list[Said]:
    if proposal.kind == ProposalKind.LIQUIDATE:
        return []
    valuation = proposal.valuation or {}
    flags: list[Said] = []
    if valuation.get("affordable") is False:
        flags.append(
            (
                gettext_noop(
                    "the model marks it unaffordable: the client cannot meet the payments from what they have"
                ),
                {},
            )
        )
    probability = _value(valuation.get("default_probability"))
    threshold = Decimal(str(settings.WORKOUT_GUARDRAIL_DEFAULT_PROBABILITY))
    if probability is not None and probability >= threshold:
        flags.append(
            (
                gettext_noop("default probability %(probability)s, at or above %(threshold)s"),
                {"probability": f"{probability:.3f}", "threshold": str(threshold)},
            )
        )
    if report is not None and proposal.expected_pv is not None and proposal.expected_pv < report.liquidation_value:
        flags.append(
            (
                gettext_noop("worth %(value)s to the lender, less than liquidating now (%(liquidation)s)"),
                {
                    "value": _money(proposal.expected_pv, currency),
                    "liquidation": _money(report.liquidation_value, currency),
                },
            )
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
) -> list[Said]:
    """What the approvals of the current version still lack ([] once they suffice): said_text() words them."""
    missing: list[Said] = []
    if not any(a.limit >= amount for a in approvals):
        missing.append(
            (gettext_noop("an approval by someone whose limit covers %(amount)s"), {"amount": _money(amount, currency)})
        )
    if proposal.requires_senior and not any(a.senior for a in approvals):
        missing.append((gettext_noop("a senior credit officer's approval (escalated by the rules)"), {}))
    threshold = Decimal(str(settings.WORKOUT_TWO_APPROVALS_ABOVE))
    if forgiven > threshold and len({a.approver_id for a in approvals}) < 2:
        missing.append(
            (
                gettext_noop(
                    "a second approver: it forgives %(forgiven)s, above %(threshold)s (WORKOUT_TWO_APPROVALS_ABOVE)"
                ),
                {"forgiven": _money(forgiven, currency), "threshold": _money(threshold, currency)},
            )
        )
    if len(people_on_record(proposal, approvals, makers)) < 2:
        missing.append(
            (
                gettext_noop("a second person's approval: nobody else is on its record (no other author of its terms)"),
                {},
            )
        )
    return missing
