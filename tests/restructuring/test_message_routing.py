"""Which channels a message goes on and when (restructuring/services/messages.py): the client's channel preferences
and quiet hours are respected, except by the legally required notices (margin call, liquidation, missed payment),
which go on every channel the client has an address for, at once."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from accounts.models import Client, MarginAccount, MessagePreferences
from restructuring.message_catalogue import LEGALLY_REQUIRED
from restructuring.models import Case, Notification, NotificationKind, NotificationStatus
from restructuring.selectors.contacts import contacts_load
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.messages import quiet_until
from restructuring.services.notifications import notifications_drain, notifications_send
from tests.restructuring.helpers import account, btc, sweep_only

pytestmark = [pytest.mark.django_db]

BERLIN_NIGHT = datetime(2026, 12, 8, 22, 30, tzinfo=UTC)  # 23:30 in Berlin (CET, UTC+1)
BERLIN_MORNING = datetime(2026, 12, 9, 7, 0, tzinfo=UTC)  # 08:00 in Berlin: the quiet hours' end


def _client_of(margin_account: MarginAccount, **preferences: Any) -> Client:
    client = margin_account.client
    Client.objects.filter(pk=client.pk).update(email="night@client.example")
    MessagePreferences.objects.create(
        client=client,
        phone="+4915112345678",
        postal_address="Hauptstraße 1\n10115 Berlin",
        locale="de",
        time_zone="Europe/Berlin",
        quiet_hours_start=time(21),
        quiet_hours_end=time(8),
        **preferences,
    )
    return client


def _called(code: str = "NIGHT", **preferences: Any) -> Case:
    margin_account = account(code, btc(), band="margin_call")
    _client_of(margin_account, **preferences)
    cases_apply_risk(sweep_id=sweep_only().pk, now=BERLIN_NIGHT)
    return Case.objects.get(account=margin_account)


def _enqueue(case: Case, kind: NotificationKind, now: datetime) -> list[Notification]:
    with transaction.atomic():
        from restructuring.services.notifications import Notice, notifications_enqueue_many

        ids = notifications_enqueue_many(notices=[Notice(case, kind, {}, f"test:{kind}")], now=now)
    return list(Notification.objects.filter(pk__in=ids).order_by("channel"))


def test_quiet_hours_span_midnight_in_the_clients_time_zone() -> None:
    margin_account = account("Q", btc(), band="margin_call")
    _client_of(margin_account)
    contact = contacts_load([margin_account.pk])[margin_account.pk]
    assert quiet_until(contact, BERLIN_NIGHT) == BERLIN_MORNING  # 23:30 -> 08:00 the next day
    assert quiet_until(contact, datetime(2026, 12, 9, 5, 0, tzinfo=UTC)) == BERLIN_MORNING  # 06:00 -> 08:00
    assert quiet_until(contact, datetime(2026, 12, 9, 12, 0, tzinfo=UTC)) is None  # 13:00: not quiet
    assert quiet_until(contact, BERLIN_MORNING) is None  # 08:00 sharp: the window is over
    # in summer Berlin is UTC+2: the window's end follows the clock, not a fixed offset
    assert quiet_until(contact, datetime(2026, 7, 1, 20, 0, tzinfo=UTC)) == datetime(2026, 7, 2, 6, 0, tzinfo=UTC)


def test_quiet_hours_hold_a_reminder_until_morning_and_not_the_legally_required_margin_call(
    mailoutbox: list[EmailMessage], django_capture_on_commit_callbacks: Any
) -> None:
    # given a client in Berlin, quiet from 21:00 to 08:00, called at 23:30 its time
    case = _called()

    # then the margin call (legally required) went out at once on every channel: not held
    calls = Notification.objects.filter(case=case, kind="margin_call").order_by("channel")
    assert [(n.channel, n.deferred_until, n.next_attempt_at) for n in calls] == [
        ("email", None, BERLIN_NIGHT),
        ("letter", None, BERLIN_NIGHT),
        ("sms", None, BERLIN_NIGHT),
    ]
    assert notifications_drain(now=BERLIN_NIGHT).sent == 3

    # when a reminder is written at the same hour
    with django_capture_on_commit_callbacks(execute=True):
        reminders = _enqueue(case, NotificationKind.DEADLINE_REMINDER, BERLIN_NIGHT)

    # then it goes on the channels the client chose (email and SMS; not letters), both held until 08:00 Berlin time
    assert [(n.channel, n.deferred_until, n.next_attempt_at) for n in reminders] == [
        ("email", BERLIN_MORNING, BERLIN_MORNING),
        ("sms", BERLIN_MORNING, BERLIN_MORNING),
    ]
    # the task queued on commit does not send them, the drain at 07:59 neither; at 08:00 it does
    assert {n.status for n in Notification.objects.filter(kind="deadline_reminder")} == {NotificationStatus.PENDING}
    assert notifications_send(notification_ids=[n.pk for n in reminders], now=BERLIN_NIGHT).sent == 0
    assert notifications_drain(now=BERLIN_MORNING - timedelta(minutes=1)).sent == 0
    assert notifications_drain(now=BERLIN_MORNING).sent == 2
    assert set(Notification.objects.filter(kind="deadline_reminder").values_list("status", flat=True)) == {"sent"}


def test_a_client_that_took_no_sms_gets_no_sms_but_for_the_legally_required_notices() -> None:
    # given a client that takes email only (no SMS, no letters), with a phone and an address on file
    case = _called(by_sms=False, by_letter=False)
    noon = datetime(2026, 12, 9, 11, 0, tzinfo=UTC)

    # when it is told of a reminder, a liquidation and a missed payment, and of its cure
    told = {kind: _enqueue(case, kind, noon) for kind in NotificationKind if kind != NotificationKind.SLA_BREACH}

    # then the legally required notices went everywhere, every other message by email only
    for kind, rows in told.items():
        expected = ["email", "letter", "sms"] if kind in LEGALLY_REQUIRED else ["email"]
        assert [n.channel for n in rows] == expected, kind
    assert {"margin_call", "liquidation", "missed_payment"} == LEGALLY_REQUIRED


def test_a_client_without_preferences_is_told_by_email_in_english() -> None:
    margin_account = account("PLAIN", btc(), band="margin_call")
    Client.objects.filter(pk=margin_account.client_id).update(email="plain@client.example")
    cases_apply_risk(sweep_id=sweep_only().pk)
    (call,) = Notification.objects.filter(case__account=margin_account)
    assert (call.channel, call.locale, call.recipient, call.deferred_until) == (
        "email",
        "en",
        "plain@client.example",
        None,
    )


def test_a_locale_without_its_own_template_falls_back_to_english() -> None:
    # given a German client whose German SMS template of the reminder is gone (an installation that never had it)
    case = _called("FALL")
    from restructuring.models import MessageTemplate

    MessageTemplate.objects.filter(kind="cured", channel="email", locale="de").delete()

    # when it is told of its cure
    rows = _enqueue(case, NotificationKind.CURED, datetime(2026, 12, 9, 11, 0, tzinfo=UTC))

    # then the email is written from the English template; the SMS from the German one
    by_channel = {n.channel: n for n in rows}
    assert (by_channel["email"].locale, by_channel["email"].template.locale) == ("en", "en")  # type: ignore[union-attr]
    assert by_channel["sms"].locale == "de"
    assert timezone.is_aware(by_channel["email"].created_at)
