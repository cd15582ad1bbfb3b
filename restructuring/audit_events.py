"""The audit actions of the case workflow (core/audit_catalogue.py): every action, the object it is about, who
reads it, and the builders the services use.

Audiences. Compliance reads everything. Officers read every event of a case (restructuring.selectors.events: the
case's, its proposals', reports', installments', and its account's while it was open), so every action here that
can be such an event is theirs too. A client reads, on its own case's timeline, the transitions of the case, of the
offers made to it and of its own counter-offers, its installments paid and its top-ups: never the officers'
drafts, edits, approvals, notes, nor the feasibility reports.

Two names drifted from the scheme `<object>.<verb>` before this catalogue: they are still written as they were
(the chain covers every stored name) and carry the scheme's name as `canonical`:
- `case.offer_expired` is the case's side of `proposal.expire` (the scheme's name: `case.expire`, as the case's side
  of `proposal.decline` is `case.decline`);
- `proposal.approval` is an approval that leaves others needed, `proposal.approve` the one that completes the
  approval: both are filed under `proposal.approve`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import User

from accounts.models import WebhookEndpoint
from core.audit import AuditEntry
from core.audit_catalogue import COMPLIANCE_ONLY, EVERYONE, STAFF, AuditAction, audit_object_type, declare
from restructuring.models import (
    Case,
    CollateralTopUp,
    Contact,
    Document,
    FeasibilityReport,
    Installment,
    LiquidationPlan,
    MessageTemplate,
    Note,
    Notification,
    PromiseToPay,
    Proposal,
    Repayment,
)

# The trail's names of the workflow's objects (AuditEvent.object_type), for the reads that select by them.
CASE_OBJECT = audit_object_type(Case)
PROPOSAL_OBJECT = audit_object_type(Proposal)
REPORT_OBJECT = audit_object_type(FeasibilityReport)
INSTALLMENT_OBJECT = audit_object_type(Installment)
TOP_UP_OBJECT = audit_object_type(CollateralTopUp)
REPAYMENT_OBJECT = audit_object_type(Repayment)
NOTE_OBJECT = audit_object_type(Note)
CONTACT_OBJECT = audit_object_type(Contact)
PROMISE_OBJECT = audit_object_type(PromiseToPay)
DOCUMENT_OBJECT = audit_object_type(Document)
NOTIFICATION_OBJECT = audit_object_type(Notification)
MESSAGE_TEMPLATE_OBJECT = audit_object_type(MessageTemplate)

# ---------------------------------------------------------------------------------------------------- cases

CASE_OPEN = declare("case.open", Case, audience=EVERYONE, summary="the sweep opened a case: the account in warning")
CASE_MARGIN_CALL = declare(
    "case.margin_call", Case, audience=EVERYONE, summary="a margin call issued: amount, basis and deadline"
)
CASE_REMINDER = declare(
    "case.reminder",
    Case,
    audience=STAFF,
    summary="an officer sent the client the reminder of what the case waits for (a bulk action on the queue)",
)
CASE_CURE = declare("case.cure", Case, audience=EVERYONE, summary="the account recovered: the case is cured")
CASE_PROPOSE = declare(
    "case.propose", Case, audience=EVERYONE, summary="the case has proposals (from the rules or an officer)"
)
CASE_RULES_PROPOSALS = declare(
    "case.rules_proposals",
    Case,
    audience=STAFF,
    summary="the rules proposed again on a case already among its proposals (a later round)",
)
CASE_REJECT = declare("case.reject", Case, audience=EVERYONE, summary="no proposal left: the case back in margin call")
CASE_OFFER = declare("case.offer", Case, audience=EVERYONE, summary="an offer sent to the client")
CASE_ACCEPT = declare("case.accept", Case, audience=EVERYONE, summary="the client accepted the offer")
CASE_DECLINE = declare("case.decline", Case, audience=EVERYONE, summary="the client declined the offer")
CASE_COUNTER = declare("case.counter", Case, audience=EVERYONE, summary="the client countered the offer")
CASE_OFFER_EXPIRED = declare(
    "case.offer_expired",
    Case,
    audience=EVERYONE,
    summary="the offer expired unanswered: the case back in margin call or among its proposals",
    canonical="case.expire",
)
CASE_EXECUTE = declare("case.execute", Case, audience=EVERYONE, summary="the accepted offer executed: restructured")
CASE_CLOSE = declare("case.close", Case, audience=EVERYONE, summary="the restructured loan repaid in full: closed")
CASE_DEFAULT = declare("case.default", Case, audience=EVERYONE, summary="installments missed past the grace: defaulted")
CASE_LIQUIDATE = declare("case.liquidate", Case, audience=EVERYONE, summary="sent to liquidation, with its plan")
CASE_LIQUIDATED = declare("case.liquidated", Case, audience=EVERYONE, summary="the liquidation booked: the debt repaid")
CASE_WRITE_OFF = declare(
    "case.write_off", Case, audience=EVERYONE, summary="the liquidation fell short of the debt: the rest written off"
)
LIQUIDATION_FILL = declare(
    "liquidation.fill",
    LiquidationPlan,
    audience=STAFF,
    summary="fills booked on a liquidation plan's orders (partial or settling), with the cash they realised",
)

# ------------------------------------------------------------------------------------------------ proposals

PROPOSAL_DRAFT = declare("proposal.draft", Proposal, audience=STAFF, summary="a proposal drafted by an officer")
PROPOSAL_EDIT = declare(
    "proposal.edit", Proposal, audience=STAFF, summary="new terms: a draft again, the approvals given void"
)
PROPOSAL_SUBMIT = declare("proposal.submit", Proposal, audience=STAFF, summary="submitted for approval")
PROPOSAL_APPROVAL = declare(
    "proposal.approval",
    Proposal,
    audience=STAFF,
    summary="an approval given that leaves others needed (payload.needs says which)",
    canonical="proposal.approve",
)
PROPOSAL_APPROVE = declare("proposal.approve", Proposal, audience=STAFF, summary="the approval that completes it")
PROPOSAL_REJECT = declare("proposal.reject", Proposal, audience=STAFF, summary="rejected by an officer")
PROPOSAL_OFFER = declare(
    "proposal.offer", Proposal, audience=EVERYONE, summary="offered to the client, until it expires"
)
PROPOSAL_ACCEPT = declare("proposal.accept", Proposal, audience=EVERYONE, summary="the client accepted it")
PROPOSAL_DECLINE = declare("proposal.decline", Proposal, audience=EVERYONE, summary="the client declined it")
PROPOSAL_COUNTER = declare(
    "proposal.counter", Proposal, audience=EVERYONE, summary="the client countered it (payload: the counter-offer)"
)
PROPOSAL_COUNTER_OFFER = declare(
    "proposal.counter_offer", Proposal, audience=EVERYONE, summary="the client's counter-offer, a proposal of its own"
)
PROPOSAL_EXPIRE = declare("proposal.expire", Proposal, audience=EVERYONE, summary="the offer expired unanswered")
PROPOSAL_EXECUTE = declare(
    "proposal.execute", Proposal, audience=EVERYONE, summary="executed: the loan restructured, installments scheduled"
)
PROPOSAL_WITHDRAW = declare(
    "proposal.withdraw", Proposal, audience=STAFF, summary="withdrawn: its case ended or moved past it"
)
PROPOSAL_LIQUIDATE = declare(
    "proposal.liquidate", Proposal, audience=STAFF, summary="an approved liquidation proposal carried out"
)

# ------------------------------------------------------------------------------- reports, installments, top-ups

FEASIBILITY_REPORT = declare(
    "feasibility.report", FeasibilityReport, audience=STAFF, summary="a feasibility report computed and stored"
)
INSTALLMENT_PAID = declare("installment.paid", Installment, audience=EVERYONE, summary="a repayment recorded")
TOPUP_DECLARE = declare("topup.declare", CollateralTopUp, audience=EVERYONE, summary="the client declared a top-up")
TOPUP_CONFIRM = declare(
    "topup.confirm", CollateralTopUp, audience=EVERYONE, summary="operations confirmed a top-up: the cash credited"
)

# ------------------------------------------------------------ the conversation and payments (issue 17)
# A client reads its payments, the contacts made with it and its promises; never the officers' notes, nor the
# case's follow-up marks (the desk's own bookkeeping).

REPAYMENT_RECORD = declare(
    "repayment.record",
    Repayment,
    audience=EVERYONE,
    summary="a payment recorded on a restructured loan, with its allocation (fees, interest, principal)",
)
NOTE_ADD = declare("note.add", Note, audience=STAFF, summary="an officer's note on a case (internal)")
CONTACT_LOG = declare(
    "contact.log", Contact, audience=EVERYONE, summary="a contact with the client: channel, direction, outcome"
)
PROMISE_MAKE = declare(
    "promise.make",
    PromiseToPay,
    audience=EVERYONE,
    summary="a promise to pay taken by an officer or sent by the client",
)
PROMISE_KEPT = declare(
    "promise.kept", PromiseToPay, audience=EVERYONE, summary="a promise to pay kept: the money arrived in time"
)
PROMISE_BROKEN = declare(
    "promise.broken", PromiseToPay, audience=EVERYONE, summary="a promise to pay broken: its date and grace passed"
)
CASE_FOLLOW_UP = declare(
    "case.follow_up", Case, audience=STAFF, summary="a broken promise: the case waits for an officer's follow-up"
)
CASE_FOLLOWED_UP = declare(
    "case.followed_up", Case, audience=STAFF, summary="a contact or a new promise followed up a broken promise"
)


# ------------------------------------------------------------------------ documents (services/documents.py)
# A client sees its own uploads and the documents an officer added to its cases (kind, when; never who). The
# restructuring agreement has no event of its own: its hash is in the offer's (proposal.offer), the accept's and the
# execution's payloads.

DOCUMENT_UPLOAD = declare(
    "document.upload",
    Document,
    audience=EVERYONE,
    summary="a document uploaded by the client or an officer: kind, case, name, type, size, SHA-256",
)


# -------------------------------------------------------------------------------- staff (services/staff.py)

STAFF_ROLE_GRANT = declare("staff.role_grant", User, audience=COMPLIANCE_ONLY, summary="a role granted")
STAFF_ROLE_REVOKE = declare("staff.role_revoke", User, audience=COMPLIANCE_ONLY, summary="a role revoked")
STAFF_APPROVAL_LIMIT_SET = declare(
    "staff.approval_limit_set", User, audience=COMPLIANCE_ONLY, summary="an approver's own limit set in a currency"
)
STAFF_APPROVAL_LIMIT_CLEAR = declare(
    "staff.approval_limit_clear", User, audience=COMPLIANCE_ONLY, summary="an approver's own limit cleared"
)


# ------------------------------------------------------------------------------------------------- builders

W = TypeVar("W", Case, Proposal)


def transition_event(
    action: AuditAction[W],
    obj: W,
    before: str,
    *,
    actor: AbstractBaseUser | None = None,
    system_actor: str = "",
    reason: str = "",
    account_id: int | None = None,
    **payload: Any,
) -> AuditEntry:
    """The event of a transition of a case or a proposal: from `before` to the state it is in now, on its account
    (a proposal's is its case's: give `account_id` when the case is not loaded). The system actor names who acted
    only when no user did."""
    if account_id is None and isinstance(obj, Proposal):
        account_id = obj.case.account_id
    elif account_id is None and isinstance(obj, Case):
        account_id = obj.account_id
    return action.entry(
        obj,
        actor=actor,
        system_actor="" if actor is not None else system_actor,
        account_id=account_id,
        from_state=before,
        to_state=str(obj.state),
        reason=reason,
        payload=payload,
    )


# ------------------------------------------------------------ the desk (services/assignment.py, services/sla.py)

# Officers' names are staff matters: these are not on the client's timeline.
CASE_ASSIGN = declare(
    "case.assign", Case, audience=STAFF, summary="a case given an officer by the balancing (a sweep, the command)"
)
CASE_REASSIGN = declare(
    "case.reassign",
    Case,
    audience=STAFF,
    summary="a case moved to another officer: by a senior, with one officer's cases, or for an officer's leave",
)
CASE_SLA_BREACH = declare(
    "case.sla_breach",
    Case,
    audience=STAFF,
    summary="a case waited past its SLA target: escalated to its team's senior (clock, start, target, due)",
)
STAFF_LEAVE_START = declare(
    "staff.leave_start", User, audience=COMPLIANCE_ONLY, summary="an officer on leave: their open cases balanced away"
)
STAFF_LEAVE_END = declare("staff.leave_end", User, audience=COMPLIANCE_ONLY, summary="an officer back from leave")


# ------------------------------------------------------------------ webhooks (services/webhooks.py, issue 18)

# A client's endpoints are the client's matters, not a case's: compliance reads them (never with the secret). A
# notification delivered again is an event of its case's account: the officers see it on the case.
WEBHOOK_ENDPOINT_CREATE = declare(
    "webhook_endpoint.create",
    WebhookEndpoint,
    audience=COMPLIANCE_ONLY,
    summary="a client created a webhook endpoint (its URL and the event types it subscribes to)",
)
WEBHOOK_ENDPOINT_ROTATE = declare(
    "webhook_endpoint.rotate",
    WebhookEndpoint,
    audience=COMPLIANCE_ONLY,
    summary="a client rotated a webhook endpoint's secret (and until when the previous one still signs)",
)
WEBHOOK_ENDPOINT_DISABLE = declare(
    "webhook_endpoint.disable",
    WebhookEndpoint,
    audience=COMPLIANCE_ONLY,
    summary="a webhook endpoint disabled: by its client, or after its consecutive failed deliveries",
)
WEBHOOK_ENDPOINT_ENABLE = declare(
    "webhook_endpoint.enable", WebhookEndpoint, audience=COMPLIANCE_ONLY, summary="a client enabled a webhook endpoint"
)
NOTIFICATION_REDELIVER = declare(
    "notification.redeliver",
    Notification,
    audience=STAFF,
    summary="an officer had a webhook notification delivered again (same id) to its endpoint",
)

# ------------------------------------------------- talking to the client (services/message_templates.py, messages.py)

# The text of client messages is policy: four eyes, every change on the trail with its text (staff's, not clients').
MESSAGE_TEMPLATE_EDIT = declare(
    "message_template.edit",
    MessageTemplate,
    audience=STAFF,
    summary="a draft message template written or changed (its text, the version it was drafted from)",
)
MESSAGE_TEMPLATE_SUBMIT = declare(
    "message_template.submit", MessageTemplate, audience=STAFF, summary="a draft message template sent for review"
)
MESSAGE_TEMPLATE_PUBLISH = declare(
    "message_template.publish",
    MessageTemplate,
    audience=STAFF,
    summary="a message template reviewed and published by a second person: in use, the previous version retired",
)
MESSAGE_TEMPLATE_REJECT = declare(
    "message_template.reject",
    MessageTemplate,
    audience=STAFF,
    summary="a message template sent back to its authors by the reviewer, with the reason",
)
# Every message to a client (or to staff) that went, failed for good, or came back: on the case's timeline for
# officers and compliance; the client reads its own messages through /api/v1/cases/{id}/messages/.
MESSAGE_SENT = declare(
    "message.sent",
    Notification,
    audience=STAFF,
    summary="a message sent (channel, recipient, template version, SHA-256 of what was sent, attempts)",
)
MESSAGE_FAILED = declare(
    "message.failed",
    Notification,
    audience=STAFF,
    summary="a message given up on after its last attempt, or refused for good (the error)",
)
MESSAGE_BOUNCED = declare(
    "message.bounced",
    Notification,
    audience=STAFF,
    summary="a message sent, then reported undelivered by the mail system or the SMS provider (the report)",
)
