"""What each kind of client message may say: its variables (what a template of it can name, with their meaning for
the template editor) and sample values (what a template is checked and previewed on when no real case is given),
and which messages are legally required.

Every message's context holds what every message carries (`COMMON`) and its event's payload (what the service that
enqueued it wrote: restructuring/services/notifications.py). Values are plain: amounts and rates as decimal
strings, instants as ISO 8601 in UTC, dates as YYYY-MM-DD; the sandbox's filters format them for the reader
(core/message_templates.py: `money:currency`, `percent`, `datetime`, `date`).

Legally required notices
------------------------
Three kinds are sent on every channel the client has an address for, at once, whatever its channel preferences and
quiet hours (restructuring/services/messages.py). Each is a notice the lender must be able to show it gave before it
acts, and whose delay costs the client the time the law or the agreement gives them to act:

- margin_call: the demand for collateral and its deadline. The margin agreement (and, for consumers, the
  information duties of credit law) lets the lender sell the positions only after the client was called and the
  deadline passed; a call held back for quiet hours eats into a deadline of hours.
- liquidation: the notice that collateral is being sold (a secured party's notification of disposition, UCC 9-611
  in the United States; the pledge's sale notice, section 1234 BGB in Germany).
- missed_payment: the notice of default on a restructured loan, which precedes the enforcement that follows it
  (a default notice: section 498 BGB for consumer loans in Germany, section 87 of the Consumer Credit Act in the UK).

Every other message (reminders, offers, confirmations, outcomes) waits out the client's quiet hours and goes only
on the channels the client chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.message_templates import plain
from restructuring.models import CLIENT_NOTIFICATION_KINDS, NotificationChannel, NotificationKind

LEGALLY_REQUIRED = frozenset(
    {NotificationKind.MARGIN_CALL, NotificationKind.LIQUIDATION, NotificationKind.MISSED_PAYMENT}
)
# The channels the quiet hours hold back: those that reach a person at once. A letter is posted, a webhook is read
# by the client's systems.
QUIET_HOURS_CHANNELS = frozenset({NotificationChannel.EMAIL, NotificationChannel.SMS})
# The longest a message may be once rendered, by channel (an SMS: ten segments, the providers' usual limit).
RENDERED_MAX_CHARS = {
    NotificationChannel.EMAIL: 20_000,
    NotificationChannel.SMS: 1_600,
    NotificationChannel.LETTER: 60_000,
}
SUBJECT_MAX_CHARS = 300


@dataclass(frozen=True)
class Variable:
    meaning: str
    sample: Any


COMMON: Mapping[str, Variable] = {
    "client_name": Variable("the client's name", "Ada Lovelace Trading Ltd"),
    "account": Variable("the margin account's code", "ACC-000123"),
    "currency": Variable("the account's currency (amounts are in it)", "USD"),
    "case_id": Variable("the case's number", 4711),
    "state": Variable("the case's state when the message was written (margin_call, offered, ...)", "margin_call"),
    "lender_name": Variable("the lender's name (WORKOUT_LENDER_NAME)", "Workout Lending"),
}

_CALL = {
    "call_amount": Variable("the amount called, in the account's currency", "250.00"),
    "call_basis": Variable("initial or maintenance: the requirement the call restores", "initial"),
    "called_at": Variable("when the call was made", "2026-12-08T09:00:00+00:00"),
    "deadline": Variable("when the call must be met", "2026-12-09T09:00:00+00:00"),
}
_TERMS_SAMPLE = {
    "term_months": 12,
    "rate_annual": "0.08",
    "kind": "level",
    "moratorium_months": 0,
    "grace_interest_months": 0,
    "grace_principal_months": 0,
    "arrears_treatment": "capitalise",
    "collateral_to_add": "100.00",
    "reduce": [],
    "principal_haircut": "0.00",
}
_TERMS = Variable(
    "the terms: term_months, rate_annual (a fraction), kind, collateral_to_add, principal_haircut, "
    "moratorium_months, grace_interest_months, grace_principal_months",
    _TERMS_SAMPLE,
)
_PROMISE = {
    "promise_id": Variable("the promise's number", 31),
    "amount": Variable("the amount promised", "300.00"),
    "due": Variable("the date promised", "2026-12-15"),
    "received": Variable("what had arrived when it was kept or broken", "300.00"),
}

VARIABLES: Mapping[str, Mapping[str, Variable]] = {
    NotificationKind.MARGIN_CALL: _CALL,
    NotificationKind.DEADLINE_REMINDER: {
        **_CALL,
        "awaited": Variable("what the case waits for (a reminder sent by an officer)", "margin call deadline"),
        "due": Variable("when it is due (a reminder sent by an officer)", "2026-12-09T09:00:00+00:00"),
    },
    NotificationKind.OFFER: {
        "proposal_id": Variable("the offer's number (its id in the API)", 812),
        "terms": _TERMS,
        "expires_at": Variable("when the offer expires", "2026-12-11T09:00:00+00:00"),
    },
    NotificationKind.COUNTER_RECEIVED: {
        "proposal_id": Variable("the counter-offer's number", 813),
        "offer_id": Variable("the number of the offer countered", 812),
        "terms": _TERMS,
    },
    NotificationKind.ACCEPTED: {
        "proposal_id": Variable("the number of the offer accepted", 812),
        "terms": _TERMS,
    },
    NotificationKind.EXECUTED: {
        "proposal_id": Variable("the number of the offer executed", 812),
        "principal": Variable("the loan's principal after the restructuring", "1200.00"),
        "rate_annual": Variable("the annual rate (a fraction)", "0.08"),
        "installments": Variable("how many installments", 12),
        "first_due": Variable("the first installment's due date", "2027-01-08"),
        "first_amount": Variable("the first installment's amount", "104.39"),
        "maturity": Variable("the last installment's due date", "2027-12-08"),
        "collateral_to_add": Variable("collateral to add (empty when none)", "100.00"),
        "collateral_due": Variable("when the collateral is due (empty when none)", "2026-12-15T09:00:00+00:00"),
    },
    NotificationKind.INSTALLMENT_DUE: {
        "installment_id": Variable("the installment's id", 1401),
        "number": Variable("the installment's number in the schedule", 3),
        "due": Variable("its due date", "2027-03-08"),
        "amount": Variable("what is still to pay on it", "104.39"),
    },
    NotificationKind.MISSED_PAYMENT: {
        "missed_installments": Variable("the numbers of the installments missed", [3, 4]),
        "amount_overdue": Variable("what those installments still owe", "208.78"),
    },
    NotificationKind.PROMISE_KEPT: _PROMISE,
    NotificationKind.PROMISE_BROKEN: _PROMISE,
    NotificationKind.LIQUIDATION: {
        "reason": Variable("why (the lender's words; not meant for the client)", "the margin call was not met"),
        "days": Variable("about how many days the sale will take", 2),
    },
    NotificationKind.CURED: {
        "closed_at": Variable("when the case closed", "2026-12-08T15:00:00+00:00"),
    },
    NotificationKind.LIQUIDATED: {
        "cash_realised": Variable("what the sale raised", "997.20"),
        "debt_repaid": Variable("the debt the proceeds repaid", "750.00"),
        "shortfall": Variable("the debt left unpaid (0 here)", "0.00"),
        "plan_id": Variable("the liquidation plan's number", 17),
    },
    NotificationKind.WRITTEN_OFF: {
        "cash_realised": Variable("what the sale raised", "997.20"),
        "debt_repaid": Variable("the debt the proceeds repaid", "997.20"),
        "shortfall": Variable("the debt left unpaid, written off", "102.80"),
        "plan_id": Variable("the liquidation plan's number", 17),
    },
    # The client's systems stopped answering: the notice that one of its webhook endpoints was disabled
    # (restructuring/services/webhooks.py), by the client's other channels.
    NotificationKind.WEBHOOK_DISABLED: {
        "endpoint_id": Variable("the webhook endpoint's number (its id in the API)", 7),
        "url": Variable("the endpoint's URL", "https://hooks.client.example/workout"),
        "consecutive_failures": Variable("how many deliveries failed in a row", 20),
        "last_error": Variable("what the last attempt got", "HTTP 503"),
    },
}


def variables_of(kind: str) -> dict[str, Variable]:
    """Every variable a template of `kind` may name: the common ones and its event's."""
    return {**COMMON, **VARIABLES[kind]}


def sample_context(kind: str) -> dict[str, Any]:
    return {name: variable.sample for name, variable in variables_of(kind).items()}


assert set(VARIABLES) == set(CLIENT_NOTIFICATION_KINDS), "every client message kind has its variables"


def message_context(kind: str, payload: Mapping[str, Any], *, client_name: str, lender_name: str) -> Mapping[str, Any]:
    """What a template of `kind` reads: every variable its kind declares (None when the event has no value for it:
    a filter's argument must resolve), the event's payload, the client's and the lender's names; plain values."""
    return plain(
        {
            **dict.fromkeys(variables_of(kind)),
            **payload,
            "client_name": client_name,
            "lender_name": lender_name,
        }
    )
