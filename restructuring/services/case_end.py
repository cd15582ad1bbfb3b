"""A case that leaves negotiation takes its proposals with it.

When a case is restructured, goes to liquidation, is cured, defaults, is closed, liquidated or written off, every
proposal of it still in play (draft, pending approval, approved, offered) is withdrawn, with the reason, one audit
event each, in the transaction that moved the case. Without this a proposal of a finished negotiation could still
be approved, offered or accepted (issue 13: a round-2 proposal approved on a restructured case).

One function for every path, in bulk: the sweep cures thousands of cases at once and the deadline task defaults
many; a fixed number of queries whatever the count.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from core.audit import audit_record_many
from core.bulk import bulk_update_fields
from restructuring.audit_events import PROPOSAL_WITHDRAW
from restructuring.models import LIVE_PROPOSAL_STATES, Proposal, ProposalState


def proposals_withdraw_for_cases(
    *,
    case_ids: Sequence[int],
    reason: str,
    now: datetime,
    actor: AbstractBaseUser | None = None,
    system_actor: str = "",
    keep: Collection[int] = (),
) -> list[int]:
    """Withdraw the live proposals of these cases (but those in `keep`), audited; returns their ids. Must run in
    the caller's transaction, after it has locked the cases."""
    if not case_ids:
        return []
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("proposals are withdrawn in the transaction that ends their case")
    live = list(
        Proposal.objects.select_for_update(of=("self",))
        .filter(case_id__any=list(case_ids), state__in=LIVE_PROPOSAL_STATES)
        .exclude(pk__in=list(keep))
        .annotate(account=F("case__account_id"))
        .order_by("pk")
    )
    events = []
    for proposal in live:
        before = str(proposal.state)
        proposal.withdraw()
        proposal.decision_reason, proposal.decided_at, proposal.updated_at = reason, now, now
        events.append(
            PROPOSAL_WITHDRAW.entry(
                proposal,
                account_id=proposal.account,
                actor=actor,
                system_actor="" if actor is not None else system_actor,
                from_state=before,
                to_state=ProposalState.WITHDRAWN,
                reason=reason,
                payload={"case_id": proposal.case_id},
            )
        )
    bulk_update_fields(Proposal, live, ["state", "decision_reason", "decided_at", "updated_at", "state_changed_at"])
    audit_record_many(events)
    return [p.pk for p in live]
