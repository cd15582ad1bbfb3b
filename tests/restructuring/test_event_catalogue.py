"""The event catalogue (restructuring/events.py): every kind of notification is declared with the schema of its
payload, the payloads the services write conform to it, and the three publications of it (GET /api/v1/events/,
the OpenAPI document, docs/events.md) say the same and are current."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.test import TestCase
from django.utils import timezone
from drf_spectacular.validation import validate_schema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

from accounts.models import Instrument, MarginAccount, Price, WebhookEndpoint
from accounts.services.api_tokens import api_token_create
from accounts.services.sweep import sweep_run
from restructuring.events import (
    CATALOGUE,
    WEBHOOK_EXTENSION,
    catalogue_json,
    event_type,
    events_reference,
    json_schema,
    undeclared_kinds,
    webhook_event_names,
)
from restructuring.models import Case, Notification, NotificationKind, Proposal
from restructuring.services.bulk import case_remind
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.liquidation import case_liquidate, liquidation_book
from restructuring.services.negotiation.offers import offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from restructuring.services.notifications import notifications_remind_deadlines
from tests.accounts.test_sweep import _account, _btc
from tests.api.conftest import Api
from tests.restructuring.helpers import account, btc, sweep_only
from tests.restructuring.test_notifications import _called
from tests.web.helpers import policy_in_force, staff_user

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _validator(kind: str) -> Draft202012Validator:
    schema = json_schema(event_type(kind).data_schema())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


# ----------------------------------------------------------------------------------------- declared


def test_every_kind_of_notification_has_its_entry_and_schema() -> None:
    # if this fails: a NotificationKind was added without its entry in restructuring/events.py's CATALOGUE
    assert undeclared_kinds() == []
    assert [event.kind for event in CATALOGUE] == list(NotificationKind)
    for event in CATALOGUE:
        schema = event.data_schema()
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) <= set(schema["properties"]), event.name
        Draft202012Validator.check_schema(json_schema(schema))


def test_a_payload_with_an_undeclared_property_or_a_wrong_type_is_refused() -> None:
    valid = {
        "case_id": 1,
        "account": "A-1",
        "currency": "USD",
        "state": "cured",
        "closed_at": "2026-12-08T00:00:00+00:00",
    }
    _validator("cured").validate(valid)
    with pytest.raises(SchemaError):
        _validator("cured").validate({**valid, "surprise": 1})
    with pytest.raises(SchemaError):
        _validator("cured").validate({**valid, "case_id": "1"})
    with pytest.raises(SchemaError):
        _validator("margin_call").validate({**valid, "state": "margin_call", "call_amount": 250})


def test_webhooks_carry_the_clients_events_but_not_the_staffs_nor_the_disabling_notice() -> None:
    assert webhook_event_names() == [
        "margin_call",
        "deadline_reminder",
        "offer",
        "counter_received",
        "accepted",
        "executed",
        "installment_due",
        "missed_payment",
        "promise_kept",
        "promise_broken",
        "liquidation",
        "cured",
        "liquidated",
        "written_off",
    ]
    assert [entry["type"] for entry in catalogue_json()] == [*webhook_event_names(), "webhook_disabled"]


# ----------------------------------------------------------------------------------------- the payloads written


def _all_conform() -> set[str]:
    """Every payload written, whatever its channel, is what the catalogue says of its kind: the kinds seen."""
    kinds = set()
    for notification in Notification.objects.all():
        _validator(notification.kind).validate(notification.payload)
        kinds.add(notification.kind)
    return kinds


@pytest.mark.django_db
def test_the_payloads_of_the_calls_reminders_cures_and_liquidations_conform_to_the_catalogue() -> None:
    # given clients with an email and an endpoint for every event: two margin calls, one reminded by an officer
    # and the other by the beat before its deadline, then cured; a call liquidated with a shortfall written off
    instrument = _btc()
    _called("CALL", instrument, email="call@client.example", webhook_url="https://hooks.example.com/call")
    cured = _called("CURE", instrument, email="cure@client.example", webhook_url="https://hooks.example.com/cure")
    cases_apply_risk(sweep_id=sweep_run().pk)
    with transaction.atomic():
        case_remind(Case.objects.get(account__code="CALL").pk, staff_user("olga", "credit_officer"), {}, timezone.now())
    assert notifications_remind_deadlines(now=timezone.now() + timedelta(hours=23, minutes=30)) == 1
    MarginAccount.objects.filter(pk=cured.pk).update(cash=Decimal("1000"))
    cases_apply_risk(sweep_id=sweep_run().pk)
    _liquidated_with_a_shortfall()

    # then
    kinds = _all_conform()
    assert kinds == {"margin_call", "deadline_reminder", "cured", "liquidation", "written_off"}
    reminders = Notification.objects.filter(kind="deadline_reminder", channel="webhook")
    assert sorted("call_amount" in r.payload for r in reminders) == [False, True]  # the officer's, the beat's


@pytest.mark.django_db
def test_the_payload_of_an_offer_conforms_to_the_catalogue(settings: Any) -> None:
    # given the rules' proposal for a margin call (tests/api/conftest.py's offered_case, with an endpoint)
    settings.WORKOUT_FEASIBILITY_PATHS = 300
    policy_in_force()
    margin_account = account("OFFER", btc(), band="margin_call")
    _endpoint(margin_account, "https://hooks.example.com/offer")
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    proposal = Proposal.objects.filter(case__account=margin_account).order_by("rank").first()
    assert proposal is not None
    approver = staff_user("alice", "credit_officer")
    assert proposal_approve(proposal_id=proposal.pk, actor=approver, version=1, override_reason="test book").approved

    # when it is offered
    offer_send(proposal_id=proposal.pk, actor=approver, version=1, hours=24)

    # then
    assert _all_conform() == {"margin_call", "offer"}
    offer = Notification.objects.get(kind="offer")
    assert (offer.payload["proposal_id"], offer.payload["terms"]) == (proposal.pk, proposal.terms)


def _liquidated_with_a_shortfall() -> None:
    """10 of an instrument at 100 (1,000 a day traded) against a 1,100 loan: liquidated, 102.80 written off."""
    short = Instrument.objects.create(
        symbol="SHRT",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
        average_daily_volume=Decimal("1000"),
    )
    Price.objects.create(instrument=short, time=timezone.now() - timedelta(minutes=1), price=Decimal(100))
    margin_account = _account("SHORT", short, cash="0", btc_quantity="10", loan="1100")
    _endpoint(margin_account, "https://hooks.example.com/short")
    cases_apply_risk(sweep_id=sweep_run().pk)
    case = Case.objects.get(account=margin_account)
    liquidation_book(plan_id=case_liquidate(case_id=case.pk, reason="margin call deadline passed").pk)


def _endpoint(margin_account: MarginAccount, url: str) -> None:
    now = timezone.now()
    WebhookEndpoint.objects.create(
        client_id=margin_account.client_id, url=url, event_types=["*"], secret="s", created_at=now, updated_at=now
    )


# ----------------------------------------------------------------------------------------- published


@pytest.mark.django_db
def test_the_catalogue_endpoint_lists_each_type_with_its_json_schema() -> None:
    # given any token holder: a client, or a member of staff
    client_token = api_token_create(client_id=_account("CAT", _btc(), cash="0", btc_quantity="1", loan="0").client_id)
    staff_token = api_token_create(user_id=staff_user("carol", "compliance").pk)

    answers = [Api(token.secret).get("/api/v1/events/") for token in (client_token, staff_token)]

    for answer in answers:
        assert answer.status_code == 200
        assert answer.json()["results"] == catalogue_json()
    for entry in answers[0].json()["results"]:
        Draft202012Validator.check_schema(entry["payload_schema"])
        assert entry["payload_schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert Api(None).get("/api/v1/events/").status_code == 401


@pytest.mark.django_db
def test_the_openapi_document_holds_each_webhook_event_and_stays_valid() -> None:
    document = json.loads(Api(None).get("/api/schema/?format=json").content)

    validate_schema(document)  # the OpenAPI 3.0 specification's own schema
    schemas = document["components"]["schemas"]
    webhooks = document[WEBHOOK_EXTENSION]
    assert list(webhooks) == webhook_event_names()
    for name, reference in webhooks.items():
        component = reference["$ref"].removeprefix("#/components/schemas/")
        body = schemas[component]
        assert body["properties"]["type"]["enum"] == [name]
        assert body["properties"]["data"] == {"$ref": f"#/components/schemas/{component}Data"}
        data = schemas[f"{component}Data"]
        assert data == event_type(name).data_schema()
        assert body["description"]
        assert data["description"]
    assert schemas["MarginCallEventData"]["properties"]["call_amount"]["type"] == "string"
    assert "x-workout-webhooks" in document["info"]["description"]


def test_the_events_document_is_generated_from_the_catalogue() -> None:
    # if this fails: `manage.py events_reference --write` and commit docs/events.md
    text = DOC.read_text()
    assert text == events_reference()
    for event in CATALOGUE:
        assert (f"### `{event.name}`" in text) == (event.audience == "client"), event.name
