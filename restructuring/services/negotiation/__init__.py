"""The negotiation: officers draft, edit, approve (four eyes, authority limits) and offer proposals; clients accept,
decline or counter-propose; an accepted restructuring is executed; repayments are recorded; deadlines expire
offers and default missed payments.

Rules every action keeps:
- One transaction per action, the proposal and its case locked (`SELECT ... FOR UPDATE`) first: two people
  acting on one proposal or case at once get one outcome; the other a NegotiationError (a conflict).
- Every transition writes exactly one audit event, in that transaction, on the object it moves (a proposal's
  and its case's transitions each have theirs); clients act as the system actor "client:<code>".
- What you saw is what you act on: approving, offering, executing and carrying out a liquidation name the
  version of the proposal the officer was shown (every edit starts a new version); another version is refused
  (StaleTermsError, a conflict that shows the new terms) and nothing is recorded. An approval counts only for
  its version, even when later terms hash the same. A client's accept may name the offer's terms hash, and the
  SHA-256 of the restructuring agreement the offer was sent with (drawn and kept by offer_send; another agreement,
  such as an earlier offer's, is refused: AgreementMismatchError); the execution names the agreement accepted.
- Maker-checker and the other approval controls (restructuring/services/controls.py): no maker of a proposal
  (its editors; the authors, editors and publisher of the rule set that made it) approves it; two people at
  least on every approved proposal's record; two approvers for forgiveness above WORKOUT_TWO_APPROVALS_ABOVE;
  authority limits (ApprovalLimit, else WORKOUT_APPROVAL_LIMITS by role) and a senior for escalated proposals;
  an override reason for a proposal the model flags.
- A liquidation proposal is never offered: approved, it is carried out (`proposal_liquidate`).
- A case that leaves negotiation withdraws its other live proposals (services/case_end.py); a declined or expired
  offer returns the case to PROPOSED while other proposals are live (they stay offerable), else to MARGIN_CALL.
- Objects a client does not own are "not found" to it (NotFoundError), never "forbidden".
"""

from __future__ import annotations

from restructuring.selectors.feasibility import counter_followups_due  # a read; its home is the selectors
from restructuring.services.negotiation.common import (
    AgreementMismatchError,
    ApprovalRefusedError,
    NegotiationError,
    OverrideRequiredError,
    StaleTermsError,
    terms_summary,
)
from restructuring.services.negotiation.deadlines import NEGOTIATION_ACTOR, negotiation_deadlines_run
from restructuring.services.negotiation.execution import execution_schedule, proposal_execute, proposal_liquidate
from restructuring.services.negotiation.offers import (
    COUNTER_MAY_CHANGE,
    counter_followup,
    offer_accept,
    offer_counter,
    offer_decline,
    offer_hours_check,
    offer_send,
)
from restructuring.services.negotiation.proposals import (
    ApprovalOutcome,
    approval_limit,
    proposal_approve,
    proposal_draft,
    proposal_edit,
    proposal_liquidation_draft,
    proposal_reject,
    proposal_submit,
)
from restructuring.services.negotiation.repayments import repayment_record
from restructuring.services.negotiation.topups import topup_confirm, topup_declare

__all__ = [
    "COUNTER_MAY_CHANGE",
    "NEGOTIATION_ACTOR",
    "AgreementMismatchError",
    "ApprovalOutcome",
    "ApprovalRefusedError",
    "NegotiationError",
    "OverrideRequiredError",
    "StaleTermsError",
    "approval_limit",
    "counter_followup",
    "counter_followups_due",
    "execution_schedule",
    "negotiation_deadlines_run",
    "offer_accept",
    "offer_counter",
    "offer_decline",
    "offer_hours_check",
    "offer_send",
    "proposal_approve",
    "proposal_draft",
    "proposal_edit",
    "proposal_execute",
    "proposal_liquidate",
    "proposal_liquidation_draft",
    "proposal_reject",
    "proposal_submit",
    "repayment_record",
    "terms_summary",
    "topup_confirm",
    "topup_declare",
]
