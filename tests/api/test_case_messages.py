"""The client's communication log: GET /api/v1/cases/{id}/messages/ lists the messages sent about one of its own
cases, as they were written (template version, status, attempts); another client's case is not found, and the
staff's own messages (an SLA escalation about the case) are never shown."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest
from babel.dates import format_datetime
from django.db import transaction
from django.test import TestCase
from django.utils import timezone

from accounts.models import Client
from restructuring.models import Notification, NotificationChannel, NotificationKind, NotificationStatus
from restructuring.services.notifications import notification_enqueue, staff_notifications_enqueue
from tests.api.conftest import World

pytestmark = pytest.mark.django_db


def _path(world: World, whose: str = "a") -> str:
    return f"/api/v1/cases/{(world.a_case if whose == 'a' else world.b_case).pk}/messages/"


def _told(world: World) -> None:
    """Client A takes email: it is told of its offer's reminder and its acceptance (sent), and of B's case nothing
    reaches A; an SLA escalation about A's case goes to a senior."""
    Client.objects.filter(pk=world.a.pk).update(email="a@client.example")
    Client.objects.filter(pk=world.b.pk).update(email="b@client.example")
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        expiry = {"due": world.a_offer.expires_at}
        notification_enqueue(case=world.a_case, kind=NotificationKind.DEADLINE_REMINDER, payload=expiry, dedupe_key="1")
        notification_enqueue(case=world.b_case, kind=NotificationKind.DEADLINE_REMINDER, payload={}, dedupe_key="1")
    with transaction.atomic():
        now = timezone.now()
        staff_notifications_enqueue(
            rows=[
                Notification(
                    case=world.a_case,
                    kind=NotificationKind.SLA_BREACH,
                    channel=NotificationChannel.EMAIL,
                    recipient="senior@lender.example",
                    payload={"case_id": world.a_case.pk},
                    next_attempt_at=now,
                    created_at=now,
                )
            ]
        )


def test_a_client_reads_the_messages_of_its_case_as_they_were_written(world: World) -> None:
    _told(world)
    response = world.api("client_a").get(_path(world))
    assert response.status_code == 200
    (message,) = response.json()["results"]
    row = Notification.objects.get(case=world.a_case, kind="deadline_reminder")
    assert message == {
        "id": row.pk,
        "case": world.a_case.pk,
        "kind": "deadline_reminder",
        "channel": "email",
        "recipient": "a@client.example",
        "locale": "en",
        "template": {"id": row.template_id, "version": 1, "locale": "en"},
        "subject": row.subject,
        "body": row.body,
        "payload": row.payload,
        "status": "sent",
        "attempts": 1,
        "created_at": message["created_at"],
        "deferred_until": None,
        "sent_at": message["sent_at"],
        "bounced_at": None,
        "letter_sha256": "",
    }
    assert row.status == NotificationStatus.SENT
    assert world.a_offer.expires_at is not None
    expiry = format_datetime(world.a_offer.expires_at, "long", tzinfo=UTC, locale="en")
    assert message["subject"] == f"Reminder: the offer for account CALL awaits your answer by {expiry}"


def test_another_clients_case_is_not_found_and_the_staffs_escalation_is_never_shown(world: World) -> None:
    _told(world)
    api = world.api("client_a")
    assert api.get(_path(world, "b")).status_code == 404
    assert api.get("/api/v1/cases/999999/messages/").status_code == 404
    assert world.api("client_b").get(_path(world)).status_code == 404
    kinds = [m["kind"] for m in api.get(_path(world)).json()["results"]]
    assert "sla_breach" not in kinds
    assert Notification.objects.filter(case=world.a_case, kind="sla_breach").exists()


def test_the_list_reads_the_same_queries_whatever_the_number_of_messages(
    world: World, django_assert_max_num_queries: Any
) -> None:
    _told(world)
    api = world.api("client_a")
    with django_assert_max_num_queries(12) as few:
        api.get(_path(world))
    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        for k in range(6):
            notification_enqueue(case=world.a_case, kind=NotificationKind.ACCEPTED, payload={}, dedupe_key=f"more-{k}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(_path(world)).json()["results"]) == 7
