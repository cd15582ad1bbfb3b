"""The case timeline as an officer reads it: each audit event with a label for its action, what it is about by name
(the proposal "extend_12m", installment 3, not "restructuring.proposal 41"), and its payload as labelled values
(money in the account's currency by the locale machinery, instruments by symbol, times as times), never JSON. The
raw payload stays on the row, one click away (<details>), for compliance.

Presentation only: it reads nothing from the database; the case page's read gives it the names it needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core.audit_catalogue import AuditAction
from core.models import AuditEvent
from core.money import money_text
from restructuring.audit_events import (
    CASE_ACCEPT,
    CASE_ASSIGN,
    CASE_CLOSE,
    CASE_COUNTER,
    CASE_CURE,
    CASE_DECLINE,
    CASE_DEFAULT,
    CASE_EXECUTE,
    CASE_FOLLOW_UP,
    CASE_FOLLOWED_UP,
    CASE_LIQUIDATE,
    CASE_LIQUIDATED,
    CASE_MARGIN_CALL,
    CASE_OFFER,
    CASE_OFFER_EXPIRED,
    CASE_OPEN,
    CASE_PROPOSE,
    CASE_REASSIGN,
    CASE_REJECT,
    CASE_REMINDER,
    CASE_RULES_PROPOSALS,
    CASE_SLA_BREACH,
    CASE_WRITE_OFF,
    CONTACT_LOG,
    FEASIBILITY_REPORT,
    INSTALLMENT_PAID,
    MESSAGE_BOUNCED,
    MESSAGE_FAILED,
    MESSAGE_SENT,
    MESSAGE_TEMPLATE_EDIT,
    MESSAGE_TEMPLATE_PUBLISH,
    MESSAGE_TEMPLATE_REJECT,
    MESSAGE_TEMPLATE_SUBMIT,
    NOTE_ADD,
    NOTIFICATION_OBJECT,
    PROMISE_BROKEN,
    PROMISE_KEPT,
    PROMISE_MAKE,
    PROPOSAL_ACCEPT,
    PROPOSAL_APPROVAL,
    PROPOSAL_APPROVE,
    PROPOSAL_COUNTER,
    PROPOSAL_COUNTER_OFFER,
    PROPOSAL_DECLINE,
    PROPOSAL_DRAFT,
    PROPOSAL_EDIT,
    PROPOSAL_EXECUTE,
    PROPOSAL_EXPIRE,
    PROPOSAL_LIQUIDATE,
    PROPOSAL_OFFER,
    PROPOSAL_REJECT,
    PROPOSAL_SUBMIT,
    PROPOSAL_WITHDRAW,
    REPAYMENT_RECORD,
    TOPUP_CONFIRM,
    TOPUP_DECLARE,
)
from restructuring.models import Notification
from restructuring.services.controls import said_text

# Payload keys that hold an amount of the account's currency.
MONEY_KEYS = frozenset(
    {
        "amount",
        "balance",
        "call_amount",
        "debt",
        "expected_loss",
        "expected_proceeds",
        "expected_pv",
        "forgiven",
        "impact_cost",
        "limit",
        "liquidation_value",
        "paid",
        "principal",
        "interest",
        "recovery_expected",
        "recovery_p5",
        "shortfall",
        "shortfall_initial",
        "shortfall_maintenance",
        "written_off",
        "collateral",
        "top_up",
        "received",
        "required",
        "principal_after",
    }
)
# The parts of a text kept beside its English (restructuring/services/controls.py said_text): read, not shown.
SAID = "_said"
# Keys that are internal ids an officer does not need spelled out (the sweep's run, the model's seeds, a message's
# hashes and template id: the message itself is shown beside them).
HIDDEN_KEYS = frozenset(
    {"sweep_id", "market_seed", "case_seed", "rule_set", "team_id", "sha256", "letter_sha256", "template_id"}
)

_LABELS: Mapping[AuditAction[Any], Any] = {
    CASE_OPEN: gettext_lazy("Case opened"),
    CASE_MARGIN_CALL: gettext_lazy("Margin call"),
    CASE_CURE: gettext_lazy("Cured"),
    CASE_PROPOSE: gettext_lazy("Proposals made"),
    CASE_RULES_PROPOSALS: gettext_lazy("Proposals remade by the rules"),
    CASE_OFFER: gettext_lazy("Offer sent"),
    CASE_OFFER_EXPIRED: gettext_lazy("Offer expired"),
    CASE_ACCEPT: gettext_lazy("Offer accepted"),
    CASE_DECLINE: gettext_lazy("Offer declined"),
    CASE_COUNTER: gettext_lazy("Counter-offer"),
    CASE_REJECT: gettext_lazy("Rejected"),
    CASE_EXECUTE: gettext_lazy("Restructuring executed"),
    CASE_DEFAULT: gettext_lazy("Defaulted"),
    CASE_LIQUIDATE: gettext_lazy("Sent to liquidation"),
    CASE_LIQUIDATED: gettext_lazy("Liquidated"),
    CASE_WRITE_OFF: gettext_lazy("Written off"),
    CASE_CLOSE: gettext_lazy("Case closed"),
    CASE_REMINDER: gettext_lazy("Reminder sent"),
    FEASIBILITY_REPORT: gettext_lazy("Feasibility report"),
    INSTALLMENT_PAID: gettext_lazy("Payment recorded"),
    PROPOSAL_DRAFT: gettext_lazy("Proposal drafted"),
    PROPOSAL_EDIT: gettext_lazy("Proposal edited"),
    PROPOSAL_SUBMIT: gettext_lazy("Submitted for approval"),
    PROPOSAL_APPROVAL: gettext_lazy("Approval given"),
    PROPOSAL_APPROVE: gettext_lazy("Proposal approved"),
    PROPOSAL_REJECT: gettext_lazy("Proposal rejected"),
    PROPOSAL_WITHDRAW: gettext_lazy("Proposal withdrawn"),
    PROPOSAL_OFFER: gettext_lazy("Proposal offered"),
    PROPOSAL_ACCEPT: gettext_lazy("Proposal accepted"),
    PROPOSAL_DECLINE: gettext_lazy("Proposal declined"),
    PROPOSAL_COUNTER: gettext_lazy("Client countered"),
    PROPOSAL_COUNTER_OFFER: gettext_lazy("Counter-offer made"),
    PROPOSAL_EXPIRE: gettext_lazy("Proposal expired"),
    PROPOSAL_EXECUTE: gettext_lazy("Proposal executed"),
    PROPOSAL_LIQUIDATE: gettext_lazy("Liquidation proposed"),
    TOPUP_DECLARE: gettext_lazy("Top-up declared"),
    TOPUP_CONFIRM: gettext_lazy("Top-up confirmed"),
    REPAYMENT_RECORD: gettext_lazy("Payment received"),
    # the desk and the conversation (issue 17)
    CASE_ASSIGN: gettext_lazy("Case assigned"),
    CASE_REASSIGN: gettext_lazy("Case reassigned"),
    CASE_SLA_BREACH: gettext_lazy("SLA target missed"),
    NOTE_ADD: gettext_lazy("Note added"),
    CONTACT_LOG: gettext_lazy("Contact logged"),
    PROMISE_MAKE: gettext_lazy("Promise to pay taken"),
    PROMISE_KEPT: gettext_lazy("Promise kept"),
    PROMISE_BROKEN: gettext_lazy("Promise broken"),
    CASE_FOLLOW_UP: gettext_lazy("Follow-up needed"),
    CASE_FOLLOWED_UP: gettext_lazy("Followed up"),
    MESSAGE_SENT: gettext_lazy("Message sent"),
    MESSAGE_FAILED: gettext_lazy("Message failed"),
    MESSAGE_BOUNCED: gettext_lazy("Message bounced"),
    MESSAGE_TEMPLATE_EDIT: gettext_lazy("Message template edited"),
    MESSAGE_TEMPLATE_SUBMIT: gettext_lazy("Message template submitted for review"),
    MESSAGE_TEMPLATE_PUBLISH: gettext_lazy("Message template published"),
    MESSAGE_TEMPLATE_REJECT: gettext_lazy("Message template sent back"),
}
ACTION_LABELS = {action.name: label for action, label in _LABELS.items()}

KEY_LABELS: Mapping[str, Any] = {
    "band": gettext_lazy("band"),
    "margin_ratio": gettext_lazy("margin ratio"),
    "shortfall_initial": gettext_lazy("shortfall to initial"),
    "shortfall_maintenance": gettext_lazy("shortfall to maintenance"),
    "call_amount": gettext_lazy("margin call"),
    "call_basis": gettext_lazy("basis"),
    "deadline": gettext_lazy("deadline"),
    "amount": gettext_lazy("amount"),
    "balance": gettext_lazy("balance"),
    "number": gettext_lazy("installment"),
    "proposal_id": gettext_lazy("proposal"),
    "case_id": gettext_lazy("case"),
    "proposals": gettext_lazy("proposals"),
    "expected_pv": gettext_lazy("expected PV"),
    "expected_loss": gettext_lazy("expected loss"),
    "recovery_expected": gettext_lazy("expected recovery"),
    "recommended": gettext_lazy("recommended"),
    "expires_at": gettext_lazy("expires"),
    "reference": gettext_lazy("reference"),
    "requires_senior": gettext_lazy("needs a senior"),
    "rule_set_version": gettext_lazy("rule set version"),
    "trigger": gettext_lazy("trigger"),
    "model_version": gettext_lazy("model version"),
    "as_of": gettext_lazy("as of"),
    "needs": gettext_lazy("still needs"),
    "reason": gettext_lazy("reason"),
    # who a new case went to as it opened (case.open)
    "assignee": gettext_lazy("assignee"),
    "team": gettext_lazy("team"),
    "from": gettext_lazy("from"),
    "to": gettext_lazy("to"),
    "channel": gettext_lazy("channel"),
    "direction": gettext_lazy("direction"),
    "outcome": gettext_lazy("outcome"),
    "person": gettext_lazy("person"),
    "summary": gettext_lazy("summary"),
    "text": gettext_lazy("text"),
    "remind_on": gettext_lazy("remind on"),
    "due": gettext_lazy("due"),
    "method": gettext_lazy("method"),
    "source": gettext_lazy("source"),
    "corrects": gettext_lazy("corrects"),
    "since": gettext_lazy("since"),
    "by": gettext_lazy("by"),
    "received": gettext_lazy("received"),
    "clock": gettext_lazy("clock"),
    "required": gettext_lazy("required"),
    "principal_after": gettext_lazy("principal after"),
    "allocation": gettext_lazy("allocation"),
}


@dataclass(frozen=True)
class TimelineEntry:
    event: AuditEvent
    label: str  # what happened, in words
    subject: str  # what it is about, by name ("" for the case itself)
    details: list[tuple[str, str]]  # the payload, readable
    raw: str  # the payload as stored, for compliance (indented JSON)
    message: Notification | None = None  # a message's event: the message, with its rendered content


@dataclass(frozen=True)
class Names:
    """What the timeline names objects by: proposals by name, installments by number, instruments by symbol."""

    currency: str
    proposals: Mapping[int, str]
    installments: Mapping[int, int]
    symbols: Mapping[int, str]
    messages: Mapping[int, Notification] = field(default_factory=dict)


def action_label(action: str) -> str:
    label = ACTION_LABELS.get(action)
    if label is not None:
        return str(label)
    kind, _dot, verb = action.partition(".")
    return f"{kind.capitalize()}: {verb.replace('_', ' ')}" if verb else action


def timeline(events: Sequence[AuditEvent], names: Names) -> list[TimelineEntry]:
    return [
        TimelineEntry(
            event=e,
            label=action_label(e.action),
            subject=_subject(e, names),
            details=_details(e.payload, names),
            raw=json.dumps(e.payload, indent=2, sort_keys=True, ensure_ascii=False),
            message=names.messages.get(e.object_id) if e.object_type == NOTIFICATION_OBJECT else None,
        )
        for e in events
    ]


def _subject(event: AuditEvent, names: Names) -> str:
    kind = event.object_type.rpartition(".")[2]
    if kind == "proposal":
        name = names.proposals.get(event.object_id)
        return _("proposal %(name)s") % {"name": name} if name else _("proposal #%(id)s") % {"id": event.object_id}
    if kind == "installment":
        number = names.installments.get(event.object_id)
        return _("installment %(number)s") % {"number": number} if number else ""
    if kind == "feasibilityreport":
        return _("feasibility report")
    if kind == "notification":
        payload = event.payload if isinstance(event.payload, dict) else {}
        version = payload.get("template_version")
        what = f"{payload.get('kind', '')} · {payload.get('channel', '')}"
        return f"{what} · v{version}" if version else what
    return ""


def _details(payload: Any, names: Names) -> list[tuple[str, str]]:
    if not isinstance(payload, dict):
        return [("", _text("", payload, names))]
    return [
        (str(KEY_LABELS.get(key, key.replace("_", " "))), _said(payload, key) or _text(key, value, names))
        for key, value in payload.items()
        if key not in HIDDEN_KEYS and not key.endswith(SAID) and value not in (None, "", [], {})
    ]


def _said(payload: Mapping[str, Any], key: str) -> str:
    """What a service said in English on the record and kept the parts of (`<key>_said`: the controls' needs and
    flags), in the reader's language; "" when it kept none."""
    said = payload.get(key + SAID)
    if not isinstance(said, list) or not said:
        return ""
    return said_text(said, joiner="; ") if key == "flags" else said_text(said)


def _text(key: str, value: Any, names: Names) -> str:
    if key in MONEY_KEYS and isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return money_text(value, names.currency)
        except ArithmeticError:
            return str(value)
    if key == "proposal_id" and isinstance(value, int):
        return names.proposals.get(value, f"#{value}")
    if key == "case_id" and isinstance(value, int):
        return f"#{value}"
    if key in {"instrument_id", "instrument"} and isinstance(value, int):
        return names.symbols.get(value, f"#{value}")
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, str) and len(value) >= 19 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return formats.date_format(datetime.fromisoformat(value), "DATETIME_FORMAT")
        except ValueError:
            return value
    if isinstance(value, list):
        return ", ".join(_item(v, names) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{KEY_LABELS.get(k, k.replace('_', ' '))} {_text(k, v, names)}" for k, v in value.items())
    if isinstance(value, float):
        return formats.number_format(value, 4)
    return str(value)


def _item(value: Any, names: Names) -> str:
    """One element of a list: a proposal summary by its name and value, else its readable text."""
    if isinstance(value, dict) and "name" in value:
        pv = value.get("expected_pv")
        return f"{value['name']} ({money_text(pv, names.currency)})" if pv not in (None, "") else str(value["name"])
    return _text("", value, names)
