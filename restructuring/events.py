"""The event catalogue: every kind of notification (`NotificationKind`), what it tells, whether webhooks carry it,
and the JSON Schema of its payload, declared here and nowhere else.

The catalogue is published three ways, all generated from this module: `GET /api/v1/events/`
(restructuring/webhooks_api.py), the OpenAPI document (`openapi_events`, a drf-spectacular postprocessing hook: a
component per event and the `x-workout-webhooks` extension) and docs/events.md (`manage.py events_reference
--write`; tests/restructuring/test_event_catalogue.py fails when it is not current, and when a kind has no entry
here).

A payload is what a message says besides the envelope of the webhook body (`id`, `type`, `timestamp`; see
restructuring/services/notifications.py): `data`. Every client event's data holds the case it is about
(`case_id`, `account`, `currency`, `state`) and the properties of its kind. Amounts are decimal strings in the
account currency's quantum, moments ISO 8601 in UTC. The schemas are exact (no property undeclared), and the
tests validate the payloads the services write against them; a receiver should still ignore a property it does
not know, as new ones are added without a new version.

Schemas are written in the part of JSON Schema that OpenAPI 3.0 shares, with one OpenAPI word, `nullable`;
`json_schema()` turns that into JSON Schema's own form (a type list with "null") for the catalogue endpoint,
the documentation and validation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from restructuring.models import CallBasis, CaseState, NotificationKind

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
WEBHOOK_EXTENSION = "x-workout-webhooks"

_MONEY = {
    "type": "string",
    "pattern": r"^-?[0-9]+(\.[0-9]+)?$",
    "description": "An amount in the account's currency, as a decimal string with the currency's places.",
}
_MOMENT = {"type": "string", "format": "date-time", "description": "ISO 8601, in UTC."}
_DECIMAL_TERM = {
    "oneOf": [{"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"}, {"type": "integer", "minimum": 0}],
}


def _moment(description: str, *, nullable: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {**_MOMENT, "description": f"{description} (ISO 8601, in UTC)."}
    if nullable:
        schema["nullable"] = True
    return schema


def _money(description: str) -> dict[str, Any]:
    return {**_MONEY, "description": f"{description}, in the account's currency (a decimal string)."}


# What every client event's data holds: the case it is about.
_CASE = {
    "case_id": {"type": "integer", "description": "The case (GET /api/v1/cases/{id}/)."},
    "account": {"type": "string", "description": "The code of the account the case is about."},
    "currency": {"type": "string", "description": "The account's currency: every amount is in it."},
    "state": {"type": "string", "enum": list(CaseState.values), "description": "The case's state when it was told."},
}

_CALL = {
    "call_amount": _money("What to add to restore the margin"),
    "call_basis": {
        "type": "string",
        "enum": list(CallBasis.values),
        "description": "The requirement the call restores: initial or maintenance margin.",
    },
    "called_at": _moment("When the margin call was made"),
    "deadline": _moment("When the call must be met; after it the positions may be liquidated"),
}

_TERMS = {
    "type": "object",
    "description": "The terms offered; a term left out is as in the loan now (see GET /api/v1/offers/{id}/).",
    "properties": {
        "term_months": {"type": "integer", "minimum": 0},
        "rate_annual": {**_DECIMAL_TERM, "nullable": True, "description": "The new annual rate (0.08 is 8%)."},
        "kind": {"type": "string", "enum": ["level", "interest_only"]},
        "moratorium_months": {"type": "integer", "minimum": 0},
        "grace_interest_months": {"type": "integer", "minimum": 0},
        "grace_principal_months": {"type": "integer", "minimum": 0},
        "arrears_treatment": {"type": "string", "enum": ["capitalise", "carry_forward", "first_installment"]},
        "collateral_to_add": {**_DECIMAL_TERM, "description": "Collateral the client adds."},
        "reduce": {
            "type": "array",
            "description": "Positions reduced: [position id, fraction sold].",
            "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {}},
        },
        "principal_haircut": {**_DECIMAL_TERM, "description": "Principal forgiven."},
    },
    "required": ["term_months"],
    "additionalProperties": False,
}

_OUTCOME = {
    "cash_realised": _money("What selling the positions brought"),
    "debt_repaid": _money("The debt the proceeds repaid"),
    "shortfall": _money("The debt the proceeds did not cover (0 when none)"),
    "plan_id": {"type": "integer", "description": "The liquidation plan carried out."},
}

# A promise to pay, kept or broken (restructuring/services/promises.py).
_PROMISE = {
    "promise_id": {"type": "integer", "description": "The promise."},
    "amount": _money("The amount promised"),
    "due": {"type": "string", "format": "date", "description": "The date promised."},
    "received": _money("What had arrived by the date"),
}


@dataclass(frozen=True)
class EventType:
    """One kind of notification as the catalogue publishes it."""

    kind: NotificationKind
    summary: str  # when it is sent, for the reader of the catalogue
    properties: Mapping[str, Any]  # the kind's own payload properties (besides the case's, for client events)
    required: tuple[str, ...] = ()  # of `properties`
    webhook: bool = True  # delivered to webhook endpoints (subscribable); else by email only
    audience: str = "client"  # "client", or "staff" (never sent to a client)

    @property
    def name(self) -> str:
        return str(self.kind.value)

    @property
    def component(self) -> str:
        """The OpenAPI component of its webhook body ("MarginCallEvent"); its data's is this and "Data"."""
        return "".join(part.capitalize() for part in self.name.split("_")) + "Event"

    def data_schema(self) -> dict[str, Any]:
        """The payload's schema, in the OpenAPI 3.0 dialect (`nullable`)."""
        properties = {**(_CASE if self.audience == "client" else {}), **self.properties}
        required = [*(_CASE if self.audience == "client" else ()), *self.required]
        return {
            "type": "object",
            "description": f"The data of a {self.name} event: {self.summary}",
            "properties": copy.deepcopy(properties),
            "required": sorted(required),
            "additionalProperties": False,
        }


CATALOGUE: tuple[EventType, ...] = (
    EventType(
        NotificationKind.MARGIN_CALL,
        "an account fell below its maintenance margin: the call, its amount and its deadline.",
        _CALL,
        required=tuple(_CALL),
    ),
    EventType(
        NotificationKind.DEADLINE_REMINDER,
        "a reminder before a margin call's deadline (the call's terms), or an officer's reminder of what the case "
        "waits for from the client (`awaited`, `due`).",
        {
            **_CALL,
            "awaited": {
                "type": "string",
                "description": "What the case waits for from the client (an officer's reminder).",
            },
            "due": _moment("When it is due (an officer's reminder)", nullable=True),
        },
    ),
    EventType(
        NotificationKind.OFFER,
        "restructured terms are offered: read them (GET /api/v1/offers/{id}/) and accept, decline or counter "
        "before they expire.",
        {
            "proposal_id": {"type": "integer", "description": "The offer (GET /api/v1/offers/{id}/)."},
            "terms": _TERMS,
            "expires_at": _moment("When the offer lapses"),
            "agreement_sha256": {
                "type": "string",
                "pattern": "^[0-9a-f]{64}$",
                "description": "SHA-256 of the offer's restructuring agreement (GET /api/v1/offers/{id}/agreement/); "
                "an accept may name it.",
            },
        },
        required=("proposal_id", "terms", "expires_at"),
    ),
    EventType(
        NotificationKind.COUNTER_RECEIVED,
        "your counter-proposal was received: the lender values it and answers with an offer or a refusal.",
        {
            "proposal_id": {"type": "integer", "description": "Your counter-proposal."},
            "offer_id": {"type": "integer", "description": "The offer you countered."},
            "terms": _TERMS,
        },
        required=("proposal_id", "offer_id", "terms"),
    ),
    EventType(
        NotificationKind.ACCEPTED,
        "your acceptance of an offer was recorded: the restructuring is executed next.",
        {
            "proposal_id": {"type": "integer", "description": "The offer accepted."},
            "terms": _TERMS,
        },
        required=("proposal_id", "terms"),
    ),
    EventType(
        NotificationKind.EXECUTED,
        "the restructuring was executed: the loan's new principal and rate, and its schedule's first installment.",
        {
            "proposal_id": {"type": "integer", "description": "The offer executed."},
            "principal": _money("The loan's principal after the restructuring"),
            "rate_annual": {**_DECIMAL_TERM, "description": "The annual rate (0.08 is 8%)."},
            "installments": {"type": "integer", "minimum": 0, "description": "How many installments."},
            "first_due": {"type": "string", "format": "date", "description": "The first installment's due date."},
            "first_amount": _money("The first installment's amount"),
            "maturity": {"type": "string", "format": "date", "description": "The last installment's due date."},
            "collateral_to_add": {**_MONEY, "nullable": True, "description": "Collateral to add (null: none)."},
            "collateral_due": _moment("When the collateral is due (null: none)", nullable=True),
        },
        required=("proposal_id", "principal", "rate_annual", "installments"),
    ),
    EventType(
        NotificationKind.INSTALLMENT_DUE,
        "an installment of the restructured loan falls due soon.",
        {
            "installment_id": {"type": "integer", "description": "The installment."},
            "number": {"type": "integer", "minimum": 1, "description": "Its number in the schedule."},
            "due": {"type": "string", "format": "date", "description": "Its due date."},
            "amount": _money("What is still to pay on it"),
        },
        required=("installment_id", "number", "due", "amount"),
    ),
    EventType(
        NotificationKind.MISSED_PAYMENT,
        "installments of the restructured loan were missed: the notice of default.",
        {
            "missed_installments": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "The numbers of the installments missed.",
            },
            "amount_overdue": _money("What those installments still owe"),
        },
        required=("missed_installments", "amount_overdue"),
    ),
    EventType(
        NotificationKind.PROMISE_KEPT,
        "a promise to pay was kept: the payment or top-up arrived by its date.",
        _PROMISE,
        required=tuple(_PROMISE),
    ),
    EventType(
        NotificationKind.PROMISE_BROKEN,
        "a promise to pay was broken: what was promised had not arrived by its date.",
        _PROMISE,
        required=tuple(_PROMISE),
    ),
    EventType(
        NotificationKind.LIQUIDATION,
        "the margin call was not met (or the case was sent to liquidation): the positions are being sold.",
        {
            "reason": {"type": "string", "description": "Why the account is liquidated."},
            "days": {"type": "integer", "minimum": 0, "description": "Trading days the sale is planned over."},
        },
        required=("reason", "days"),
    ),
    EventType(
        NotificationKind.CURED,
        "the account is back within its margin requirement: the case is closed.",
        {"closed_at": _moment("When the case was closed", nullable=True)},
        required=("closed_at",),
    ),
    EventType(
        NotificationKind.LIQUIDATED,
        "the liquidation is complete and its proceeds repaid the debt.",
        _OUTCOME,
        required=tuple(_OUTCOME),
    ),
    EventType(
        NotificationKind.WRITTEN_OFF,
        "the liquidation is complete and a shortfall remained, written off.",
        _OUTCOME,
        required=tuple(_OUTCOME),
    ),
    EventType(
        NotificationKind.SLA_BREACH,
        "a case waited past its service-level target: an email to the team's senior, never to a client.",
        {
            "case_id": {"type": "integer"},
            "account": {"type": "string"},
            "state": {"type": "string", "enum": list(CaseState.values)},
            "clock": {"type": "string"},
            "clock_label": {"type": "string"},
            "started_at": _moment("When the clock started"),
            "due_at": _moment("When the target fell due"),
            "target_hours": {"type": "string"},
            "escalated_to": {"type": "string"},
            "assignee": {"type": "string"},
        },
        required=("case_id", "account", "state", "clock", "started_at", "due_at", "target_hours"),
        webhook=False,
        audience="staff",
    ),
    EventType(
        NotificationKind.WEBHOOK_DISABLED,
        "one of the client's webhook endpoints was disabled after its consecutive failed deliveries: an email "
        "(the endpoint itself no longer receives anything). Enable it again with POST "
        "/api/v1/webhooks/{id}/enable/ once it answers.",
        {
            "endpoint_id": {"type": "integer", "description": "The endpoint (GET /api/v1/webhooks/{id}/)."},
            "url": {"type": "string", "description": "The endpoint's URL."},
            "consecutive_failures": {"type": "integer", "description": "The failed deliveries in a row."},
            "last_error": {"type": "string", "description": "What the last attempt got."},
            "disabled_at": _moment("When it was disabled"),
        },
        required=("endpoint_id", "url", "consecutive_failures", "last_error", "disabled_at"),
        webhook=False,
    ),
)

_BY_KIND = {event.kind: event for event in CATALOGUE}


def event_type(kind: str) -> EventType:
    return _BY_KIND[NotificationKind(kind)]


def webhook_event_types() -> list[EventType]:
    """The types an endpoint may subscribe to, in the catalogue's order."""
    return [event for event in CATALOGUE if event.webhook]


def webhook_event_names() -> list[str]:
    return [event.name for event in webhook_event_types()]


def undeclared_kinds() -> list[str]:
    """Kinds of notification the catalogue does not declare (a test holds this empty)."""
    return [kind.value for kind in NotificationKind if kind not in _BY_KIND]


# ----------------------------------------------------------------------------------------------- the forms


def json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 schema as JSON Schema 2020-12: `nullable: true` becomes a type list with "null" (or a
    "null" branch of a `oneOf`)."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        out = {key: convert(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable"):
            if "type" in out:
                out["type"] = [out["type"], "null"]
                if "enum" in out:
                    out["enum"] = [*out["enum"], None]
            elif "oneOf" in out:
                out["oneOf"] = [*out["oneOf"], {"type": "null"}]
        return out

    return dict(convert(schema))


def envelope_schema(event: EventType) -> dict[str, Any]:
    """The webhook body of an event, in the OpenAPI 3.0 dialect, its data inline."""
    return {
        "type": "object",
        "description": f"The webhook body of a {event.name} event, signed (X-Workout-Signature): {event.summary}",
        "properties": {
            "id": {
                "type": "integer",
                "description": "The notification's id: the same on every retry and redelivery (deduplicate on it).",
            },
            "type": {"type": "string", "enum": [event.name], "description": "The event type."},
            "timestamp": {
                "type": "integer",
                "description": "Unix seconds when this attempt was signed (refuse old ones).",
            },
            "data": event.data_schema(),
        },
        "required": ["data", "id", "timestamp", "type"],
        "additionalProperties": False,
    }


def catalogue_json() -> list[dict[str, Any]]:
    """The catalogue as GET /api/v1/events/ gives it: each type with its payload's JSON Schema."""
    return [
        {
            "type": event.name,
            "summary": event.summary,
            "webhook": event.webhook,
            "audience": event.audience,
            "payload_schema": {"$schema": SCHEMA_DIALECT, **json_schema(event.data_schema())},
        }
        for event in CATALOGUE
        if event.audience == "client"
    ]


def openapi_events(result: dict[str, Any], **_: Any) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: a component per webhook event (the body, "MarginCallEvent", and its
    data, "MarginCallEventData"), and `x-workout-webhooks`, the event types by name, each referring to its body.
    OpenAPI 3.0 has no place for webhooks (3.1's `webhooks` is that place): an extension, documented in the
    document's description."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    webhooks: dict[str, Any] = {}
    for event in webhook_event_types():
        envelope = envelope_schema(event)
        schemas[f"{event.component}Data"] = envelope["properties"]["data"]
        envelope["properties"]["data"] = {"$ref": f"#/components/schemas/{event.component}Data"}
        schemas[event.component] = envelope
        webhooks[event.name] = {"$ref": f"#/components/schemas/{event.component}"}
    result[WEBHOOK_EXTENSION] = webhooks
    return result


# ----------------------------------------------------------------------------------------------- the document


def _type_text(schema: Mapping[str, Any]) -> str:
    if "oneOf" in schema:
        text = " or ".join(_type_text(branch) for branch in schema["oneOf"])
    elif "enum" in schema:
        text = " | ".join(f"`{value}`" for value in schema["enum"])
    else:
        text = str(schema.get("type", "any"))
        if "format" in schema:
            text += f" ({schema['format']})"
    return f"{text} or null" if schema.get("nullable") else text


def _rows(event: EventType) -> Iterator[str]:
    schema = event.data_schema()
    for name, prop in schema["properties"].items():
        required = "yes" if name in schema["required"] else "no"
        description = str(prop.get("description", "")).replace("|", "\\|")
        yield f"| `{name}` | {_type_text(prop).replace('|', chr(92) + '|')} | {required} | {description} |"


def events_reference() -> str:
    """docs/events.md."""
    lines = [
        "# Events and webhooks",
        "",
        "<!-- generated by `manage.py events_reference --write` from restructuring/events.py -->",
        "",
        "Workout tells a client of what happens to its cases by email and, for the event types below, by a",
        "signed POST to each of its webhook endpoints that subscribes to the type. The same catalogue is",
        "`GET /api/v1/events/` (each type with its payload's JSON Schema) and, in the OpenAPI document",
        f"(`/api/schema/`), a component per event with the extension `{WEBHOOK_EXTENSION}` naming them.",
        "",
        "## Endpoints",
        "",
        "A client manages its endpoints through the API (`/api/v1/webhooks/`, an `Idempotency-Key` on every POST):",
        "",
        '- `POST /api/v1/webhooks/` with `url` and `event_types` (names below, or `["*"]` for every type,',
        "  those added later included) creates one and answers its `secret`, shown this once.",
        "- `POST /api/v1/webhooks/{id}/rotate/` makes a new secret, shown this once. With",
        "  `previous_valid_hours` (0 to 72, default 24) the old secret keeps signing too for that long: each body",
        "  then carries two signatures (below), so the receiver can change its secret when it likes within the",
        "  window. 0 ends the old secret at once.",
        "- `POST /api/v1/webhooks/{id}/disable/` stops deliveries (the endpoint and its log are kept; its pending",
        "  deliveries are dropped); `POST /api/v1/webhooks/{id}/enable/` starts them again.",
        "- `GET /api/v1/webhooks/{id}/deliveries/`: every attempt, newest first: when, how long, the status code",
        "  or the error.",
        "",
        "A URL must be http(s) and public: an address inside the house (loopback, private, link-local, ...) is",
        "refused when the endpoint is created (400, `url`) and at every connection.",
        "",
        "## Delivery",
        "",
        "Each event is one POST per subscribed endpoint, of a JSON body (UTF-8, keys sorted, no spaces):",
        "",
        "```json",
        '{"data": {...}, "id": 17, "timestamp": 1767225600, "type": "margin_call"}',
        "```",
        "",
        "with the headers `X-Workout-Notification-Id` (the `id`), `X-Workout-Event` (the `type`),",
        "`X-Workout-Timestamp` and `X-Workout-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body bytes",
        "keyed with the endpoint's secret (UTF-8). During a rotation's overlap the header holds both signatures,",
        "the new secret's first: `sha256=<new>,sha256=<old>`; accept the body when any one verifies:",
        "",
        "```python",
        "import hashlib",
        "import hmac",
        "",
        "",
        "def verified(body: bytes, signature_header: str, secret: str) -> bool:",
        '    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()',
        '    return any(hmac.compare_digest(expected, s.strip()) for s in signature_header.split(","))',
        "```",
        "",
        "Any 2xx answer is success; anything else (or no answer within the timeout) is retried with a growing",
        "wait, the same `id` each time: deduplicate on it. Redirects are not followed. Staff may deliver a",
        "notification again (the same `id`). After `WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES` failed attempts in a",
        "row the endpoint is disabled, its pending deliveries dropped, and the client told by email",
        "(`webhook_disabled`).",
        "",
        "## Event types",
        "",
        "Every client event's `data` holds the case it is about (`case_id`, `account`, `currency`, `state`) and",
        "the properties of its type. Amounts are decimal strings in the account currency's places, moments",
        "ISO 8601 in UTC. Ignore a property you do not know: new ones may be added.",
        "",
        "| type | webhook | when |",
        "| --- | --- | --- |",
    ]
    for event in CATALOGUE:
        if event.audience != "client":
            continue
        lines.append(f"| `{event.name}` | {'yes' if event.webhook else 'no (email)'} | {event.summary} |")
    for event in CATALOGUE:
        if event.audience != "client":
            continue
        lines += [
            "",
            f"### `{event.name}`",
            "",
            event.summary[0].upper() + event.summary[1:],
            "",
            "| property | type | required | meaning |",
            "| --- | --- | --- | --- |",
            *_rows(event),
            "",
            "<details><summary>JSON Schema</summary>",
            "",
            "```json",
            json.dumps({"$schema": SCHEMA_DIALECT, **json_schema(event.data_schema())}, indent=2),
            "```",
            "",
            "</details>",
        ]
    staff = [event.name for event in CATALOGUE if event.audience != "client"]
    lines += ["", f"Kinds of notification to staff only, never to a client: {', '.join(f'`{n}`' for n in staff)}."]
    return "\n".join(lines) + "\n"
