"""The message pages: the templates (list, a template's page with its editor and versions, a preview on a real
case), the case page's communication log and timeline, and compliance's search and export of the messages sent with
their audit events."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import TestCase

from accounts.models import Client, MessagePreferences
from core.models import AuditEvent
from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Case, MessageTemplate, Notification, NotificationKind
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.messages import message_bounce
from restructuring.services.notifications import notification_enqueue
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import text

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def officer() -> User:
    return staff_user("alice", CREDIT_OFFICER)


def _told_case() -> Case:
    """A German client (email and SMS) in margin call, told by both, both sent."""
    margin_account = account("TOLD", btc(), band="margin_call")
    Client.objects.filter(pk=margin_account.client_id).update(email="told@client.example", name="Grete Schmidt")
    MessagePreferences.objects.create(client=margin_account.client, phone="+4915112345678", locale="de")
    with TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)
    return Case.objects.get(account=margin_account)


def test_the_templates_list_every_message_with_its_version_and_links_its_page(officer: User) -> None:
    page = signed_in(officer).get("/messages/templates/")
    assert page.status_code == 200
    body = page.content.decode()
    assert (
        body.count('<tr data-kind="') == 15 * 3 * 2
    )  # 15 client kinds (webhook_disabled among them), 3 channels, 2 locales
    assert 'href="/messages/templates/margin_call/sms/de/"' in body
    assert "legally required" in text(page)
    assert signed_in(staff_user("cora", COMPLIANCE)).get("/messages/templates/").status_code == 200
    assert signed_in(staff_user("cliff", "client")).get("/messages/templates/").status_code == 403


def test_a_templates_page_shows_the_version_in_use_its_variables_and_the_editor(officer: User) -> None:
    web = signed_in(officer)
    page = web.get("/messages/templates/missed_payment/email/en/")
    assert page.status_code == 200
    shown = text(page)
    assert "Notice of default: account {{ account }}" in shown
    assert "missed_installments the numbers of the installments missed" in shown
    assert "Legally required" in shown
    assert 'name="body"' in page.content.decode()
    assert web.get("/messages/templates/sla_breach/email/en/").status_code == 404  # staff's, not a client message
    assert web.get("/messages/templates/margin_call/fax/en/").status_code == 404
    assert web.get("/messages/templates/margin_call/email/fr/").status_code == 404


def test_saving_a_draft_from_the_page_and_a_refusal_shown_at_the_field(officer: User) -> None:
    web = signed_in(officer)
    saved = web.post(
        "/messages/templates/cured/sms/en/save/",
        {"subject": "", "body": "{{ lender_name }}: all clear, {{ account }}."},
    )
    assert saved.status_code == 302
    draft = MessageTemplate.objects.get(kind="cured", channel="sms", locale="en", status="draft")
    assert (draft.version, draft.created_by) == (2, officer)
    refused = web.post("/messages/templates/cured/sms/en/save/", {"subject": "", "body": "{{ secret }}"})
    assert refused.status_code == 400
    assert "unknown variable secret" in text(refused)
    assert MessageTemplate.objects.get(pk=draft.pk).body == "{{ lender_name }}: all clear, {{ account }}."


def test_the_preview_renders_the_editors_text_on_a_real_case_in_the_templates_language(officer: User) -> None:
    case = _told_case()
    events = AuditEvent.objects.count()
    web = signed_in(officer)
    preview = web.post(
        "/messages/templates/margin_call/email/de/preview/",
        {
            "subject": "Konto {{ account }}: {{ call_amount|money:currency }}",
            "body": "Guten Tag {{ client_name }}, bis {{ deadline|datetime }}.",
            "case": case.pk,
        },
    )
    assert preview.status_code == 200
    shown = text(preview)
    assert "Konto TOLD: 250,00 $" in shown
    assert "Guten Tag Grete Schmidt, bis " in shown
    assert f"On case {case.pk} for Grete Schmidt (UTC)." in shown
    problem = web.post(
        "/messages/templates/margin_call/email/de/preview/", {"subject": "x", "body": "{{ nope }}", "case": case.pk}
    )
    assert "unknown variable nope" in text(problem)
    assert (
        web.post(
            "/messages/templates/margin_call/email/de/preview/", {"subject": "x", "body": "y", "case": 999999}
        ).status_code
        == 404
    )
    assert AuditEvent.objects.count() == events


def test_the_case_page_shows_each_message_as_rendered_with_its_version_status_and_attempts(officer: User) -> None:
    case = _told_case()
    email = Notification.objects.get(case=case, channel="email")
    page = signed_in(officer).get(f"/cases/{case.pk}/")
    body = page.content.decode()
    assert f'<tr data-message="{email.pk}" data-kind="margin_call" data-channel="email" data-status="sent">' in body
    shown = text(page)
    assert " ".join(email.subject.split()) in shown
    assert "de v1" in shown
    # the timeline has the messages' events, each with the message it sent
    assert shown.count("Message sent") == 2
    assert 'data-action="message.sent"' in body


def test_compliance_searches_the_messages_and_exports_them_with_their_audit_events() -> None:
    case = _told_case()
    sms = Notification.objects.get(case=case, channel="sms")
    message_bounce(notification_id=sms.pk, reason="550 unknown", source="operations")
    with transaction.atomic():  # one more, not sent yet: no event
        notification_enqueue(case=case, kind=NotificationKind.CURED, payload={}, dedupe_key="later")
    web = signed_in(staff_user("cora", COMPLIANCE))

    found = web.get("/audit/messages/", {"account": "TOLD", "channel": "sms"})
    assert found.status_code == 200
    assert found.content.decode().count("<tr data-message=") == 2  # the call and the cure by SMS
    assert web.get("/audit/messages/", {"status": "bounced"}).content.decode().count("<tr data-message=") == 1
    # the margin call and the cure say "Nachschussforderung", by email and by SMS
    assert web.get("/audit/messages/", {"text": "Nachschussforderung"}).content.decode().count("<tr data-message=") == 4
    assert (
        web.get("/audit/messages/", {"text": "erledigt", "channel": "email"})
        .content.decode()
        .count("<tr data-message=")
        == 1
    )

    export = web.get("/audit/messages/export.csv", {"case": case.pk})
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode())))  # type: ignore[attr-defined]
    assert len(rows) == 4
    by_id = {int(r["id"]): r for r in rows}
    bounced = by_id[sms.pk]
    assert json.loads(bounced["status"]) == "bounced"
    assert json.loads(bounced["body"]) == Notification.objects.get(pk=sms.pk).body
    event = AuditEvent.objects.filter(object_type="restructuring.notification", object_id=sms.pk).latest("sequence")
    assert (bounced["audit_action"], int(bounced["audit_sequence"]), bounced["audit_hash"]) == (
        "message.bounced",
        event.sequence,
        event.hash,
    )
    # the body's hash in the file is the one the trail recorded when it was sent
    sent = AuditEvent.objects.get(action="message.sent", object_id=sms.pk)
    body = json.loads(bounced["subject"]) + "\x00" + json.loads(bounced["body"])
    assert bounced["body_sha256"] == hashlib.sha256(body.encode()).hexdigest() == sent.payload["sha256"]
    pending = next(r for r in rows if json.loads(r["status"]) == "pending")
    assert (pending["audit_sequence"], pending["audit_hash"]) == ("", "")
    assert signed_in(staff_user("olaf", SENIOR_CREDIT_OFFICER)).get("/audit/messages/").status_code == 403


def test_the_messages_search_makes_the_same_queries_whatever_it_finds(django_assert_max_num_queries: Any) -> None:
    case = _told_case()
    web = signed_in(staff_user("cora", COMPLIANCE))
    with django_assert_max_num_queries(20) as few:
        web.get("/audit/messages/")
    with transaction.atomic():
        for k in range(5):
            notification_enqueue(case=case, kind=NotificationKind.ACCEPTED, payload={}, dedupe_key=f"k{k}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert web.get("/audit/messages/").content.decode().count("<tr data-message=") == 12
