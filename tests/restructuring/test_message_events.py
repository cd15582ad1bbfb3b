"""Issue 18: every client message has its template, and every template renders for every event in both locales.

Two clients, one reading German and one English, each with an email address, a phone number and a postal address,
taking messages on all three: their accounts go through every event a client is told of, driven by the services
themselves (the sweep, the negotiation, the schedule, the promises tracker, the deadlines, the liquidation). Each
event leaves one email, one SMS and one letter per client, rendered in the client's language from the template in
use, with every value filled in; the outbox then sends them all (the letters drawn as PDFs and stored, the SMS
through the console backend). Each event is told once: run again, the services add nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.mail import EmailMessage
from django.test import TestCase, override_settings
from django.utils import timezone

from accounts.models import Client, Instrument, MarginAccount, MessagePreferences, Price
from restructuring.message_catalogue import variables_of
from restructuring.models import (
    CLIENT_NOTIFICATION_KINDS,
    TEMPLATED_CHANNELS,
    Case,
    CaseState,
    Installment,
    Notification,
    NotificationStatus,
    Proposal,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.conversation import promise_make
from restructuring.services.liquidation import case_liquidate, liquidation_book
from restructuring.services.negotiation.deadlines import negotiation_deadlines_run
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_counter, offer_send
from restructuring.services.negotiation.proposals import proposal_approve, proposal_draft, proposal_submit
from restructuring.services.negotiation.repayments import repayment_record
from restructuring.services.notifications import (
    notifications_drain,
    notifications_remind_deadlines,
    notifications_remind_installments,
    webhook_attempt_log,
)
from restructuring.services.promises import promises_track
from restructuring.services.webhooks import webhook_endpoint_create
from tests.restructuring.helpers import account, btc, sweep_only
from tests.restructuring.restructured import OVERRIDE
from tests.web.helpers import staff_user

pytestmark = [pytest.mark.django_db]

# Words each locale's shipped templates always write, and that the other's never do.
SIGNATURE = {"de": "Vorgang", "en": "Case"}


@pytest.fixture(autouse=True)
def _small_monte_carlo_and_media(tmp_path: Any) -> Iterator[None]:
    with override_settings(WORKOUT_FEASIBILITY_PATHS=300, MEDIA_ROOT=str(tmp_path / "media")):
        yield


def _sweep() -> None:
    """The cases moved, their messages sent and the margin calls' feasibility computed."""
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)


def _eth() -> Instrument:
    eth = Instrument.objects.create(
        symbol="ETH",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        haircut=Decimal("0.1"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
        average_daily_volume=Decimal("1000"),
    )
    Price.objects.create(instrument=eth, time=timezone.now() - timedelta(minutes=5), price=Decimal(100))
    return eth


def _client(locale: str, accounts: list[MarginAccount]) -> Client:
    """The accounts' one client, reachable on every templated channel, reading `locale`."""
    client = accounts[0].client
    MarginAccount.objects.filter(pk__in=[a.pk for a in accounts]).update(client=client)
    Client.objects.filter(pk=client.pk).update(email=f"{locale}@client.example", name=f"Client {locale.upper()}")
    MessagePreferences.objects.create(
        client=client,
        phone="+4915112345678" if locale == "de" else "+14155550100",
        postal_address="Hauptstraße 1\n10115 Berlin" if locale == "de" else "1 Main Street\nSpringfield",
        locale=locale,
        by_letter=True,
    )
    return client


def _version(proposal: Proposal) -> int:
    return Proposal.objects.get(pk=proposal.pk).version


def _at_noon(day: Any) -> datetime:
    return datetime.combine(day, time(12), tzinfo=timezone.get_current_timezone())


def _accounts(locale: str, instrument: Instrument, eth: Instrument) -> tuple[Client, dict[str, MarginAccount]]:
    """One client's accounts: one to restructure (BTC, margin call), one past saving (BTC, critical), one to cure
    (ETH, margin call)."""
    accounts = {
        "main": account(f"MAIN-{locale}", instrument, band="margin_call"),
        "short": account(f"SHORT-{locale}", instrument, band="critical"),
        "cured": account(f"CURE-{locale}", eth, band="margin_call"),
    }
    return _client(locale, list(accounts.values())), accounts


def test_every_event_is_told_by_email_sms_and_letter_in_each_clients_language(
    mailoutbox: list[EmailMessage], capsys: Any
) -> None:
    # given two clients, German and English, each with three accounts in distress (two on BTC, one on ETH), and
    # no rules in force (the officers draft the terms)
    alice, bob = staff_user("alice", "credit_officer"), staff_user("bob", "credit_officer")
    instrument, eth = btc(), _eth()
    books = {locale: _accounts(locale, instrument, eth) for locale in ("de", "en")}
    clients = {locale: client for locale, (client, _) in books.items()}

    # each client's systems subscribe to margin calls on a webhook endpoint
    endpoints = {
        locale: webhook_endpoint_create(
            client_id=client.pk, url=f"https://hooks.{locale}.client.example/workout", event_types=["margin_call"]
        ).endpoint
        for locale, client in clients.items()
    }

    # when the sweep calls the margin (margin_call), a deadline nears (deadline_reminder)
    _sweep()
    # the endpoints fail their margin calls' deliveries and are disabled (webhook_disabled, to the clients' people)
    with override_settings(WORKOUT_WEBHOOK_DISABLE_AFTER_FAILURES=1):
        for endpoint in endpoints.values():
            hook = Notification.objects.filter(webhook_endpoint=endpoint).first()
            assert hook is not None
            webhook_attempt_log(
                notification=hook,
                attempted_at=timezone.now(),
                duration_ms=5,
                status_code=503,
                error="HTTP 503",
                counts=True,
            )
    cases = {
        locale: {role: Case.objects.get(account=acc) for role, acc in accounts.items()}
        for locale, (_, accounts) in books.items()
    }
    deadline = cases["de"]["main"].deadline
    assert deadline is not None
    assert notifications_remind_deadlines(now=deadline - timedelta(hours=1)) == 6
    for locale, mine in cases.items():
        case, client = mine["main"], clients[locale]
        # an offer (offer), countered by the client (counter_received), the counter offered and accepted (accepted)
        offer = proposal_draft(case_id=case.pk, terms={"term_months": 6}, actor=alice)
        proposal_submit(proposal_id=offer.pk, actor=alice)
        proposal_approve(proposal_id=offer.pk, actor=bob, version=_version(offer), override_reason=OVERRIDE)
        offer_send(proposal_id=offer.pk, actor=bob, version=_version(offer))
        counter = offer_counter(
            proposal_id=offer.pk,
            client_id=client.pk,
            terms={**Proposal.objects.get(pk=offer.pk).terms, "term_months": 8},
        )
        proposal_approve(proposal_id=counter.pk, actor=bob, version=_version(counter), override_reason=OVERRIDE)
        offer_send(proposal_id=counter.pk, actor=bob, version=_version(counter))
        offer_accept(proposal_id=counter.pk, client_id=client.pk)
        # executed (executed); the first installment nears (installment_due)
        proposal_execute(proposal_id=counter.pk, actor=alice, version=_version(counter))
        first, second = Installment.objects.filter(proposal=counter).order_by("number")[:2]
        notifications_remind_installments(now=_at_noon(first.due - timedelta(days=2)))
        # a promise kept (promise_kept) by a payment, another broken (promise_broken)
        today = timezone.localdate()
        promise_make(case_id=case.pk, amount=first.total, due=today, method="card", client_id=client.pk)
        repayment_record(installment_id=first.pk, amount=first.total, actor=alice)
        promises_track()
        promise_make(case_id=case.pk, amount=Decimal("10.00"), due=today, method="card", client_id=client.pk)
        promises_track(now=_at_noon(today + timedelta(days=3)))
        # the second installment missed (missed_payment), the case sent to liquidation (liquidation) and booked
        # without a shortfall (liquidated)
        negotiation_deadlines_run(now=_at_noon(second.due + timedelta(days=6)))
        assert Case.objects.get(pk=case.pk).state == CaseState.DEFAULTED
        plan = case_liquidate(case_id=case.pk, reason="defaulted")
        liquidation_book(plan_id=plan.pk)
        # the critical account liquidated with a shortfall (written_off)
        short = case_liquidate(case_id=mine["short"].pk, reason="margin call deadline passed")
        liquidation_book(plan_id=short.pk)
    # ETH recovers: the third account is cured (cured)
    Price.objects.create(instrument=eth, time=timezone.now(), price=Decimal(130))
    _sweep()

    # then every kind of client message was written on every templated channel for each client, in its language
    rows = Notification.objects.exclude(channel="webhook").select_related("template", "case__account")
    for locale in ("de", "en"):
        own = [r for r in rows if r.case.account.client_id == clients[locale].pk]
        told = {(r.kind, r.channel) for r in own}
        missing = {(k, c) for k in CLIENT_NOTIFICATION_KINDS for c in TEMPLATED_CHANNELS} - told
        assert not missing, f"{locale}: no message for {sorted(missing)}"
        for row in own:
            where = f"{locale} {row.kind} {row.channel}"
            assert row.template is not None, where
            assert row.template.locale == locale, where
            assert (row.locale, row.template.status) == (locale, "published"), where
            assert SIGNATURE[locale] in row.body, where
            assert SIGNATURE["de" if locale == "en" else "en"] + " " not in row.body, where
            # every value filled in: no empty filter output, no Python leaking into the text
            for leak in ("None", "[", "{", "()", "  "):
                assert leak not in row.body, (where, leak, row.body)
                assert leak not in row.subject, (where, leak, row.subject)
            if row.channel != "sms":
                assert row.subject, where
            assert (
                row.recipient
                == {
                    "email": f"{locale}@client.example",
                    "sms": "+4915112345678" if locale == "de" else "+14155550100",
                    "letter": f"Client {locale.upper()}\n"
                    + ("Hauptstraße 1\n10115 Berlin" if locale == "de" else "1 Main Street\nSpringfield"),
                }[row.channel]
            ), where
    de_call = rows.get(kind="margin_call", channel="email", case__account__code="MAIN-de")
    assert de_call.subject.startswith("Nachschussforderung für Konto MAIN-de: 250,00\xa0$ bis ")
    assert "Bitte zahlen Sie 250,00\xa0$ ein" in de_call.body
    en_default = rows.get(kind="missed_payment", channel="email", case__account__code="MAIN-en")
    assert "installment 2 of your repayment schedule on account MAIN-en was not paid" in en_default.body

    # and the outbox sends every one of them: the emails, the SMS to the console, the letters drawn and stored
    # (the services above were run at their events' times, days ahead: the drain runs after the last of them)
    latest = Notification.objects.order_by("-next_attempt_at").values_list("next_attempt_at", flat=True).first()
    assert latest is not None
    while notifications_drain(now=latest + timedelta(minutes=1)).sent:
        pass
    messages = Notification.objects.exclude(channel="webhook")
    assert set(messages.values_list("status", flat=True)) == {NotificationStatus.SENT}
    # the margin calls' webhook calls were to endpoints disabled since: given up, never posted again
    hooks = Notification.objects.filter(channel="webhook")
    assert set(hooks.values_list("status", flat=True)) == {NotificationStatus.FAILED}
    emails = Notification.objects.filter(channel="email")
    assert sorted(m.extra_headers["X-Workout-Notification-Id"] for m in mailoutbox) == sorted(
        str(pk) for pk in emails.values_list("pk", flat=True)
    )
    printed = capsys.readouterr().out
    for sms in Notification.objects.filter(channel="sms"):
        assert f"To: {sms.recipient}\nReference: {sms.pk}\n" in printed
        assert sms.body in printed
        assert sms.provider_id == f"console-{sms.pk}"
    for letter in Notification.objects.filter(channel="letter"):
        assert len(letter.letter_sha256) == 64
        assert default_storage.exists(str(letter.letter_pdf.name))
        with default_storage.open(str(letter.letter_pdf.name), "rb") as stored:
            assert stored.read(5) == b"%PDF-"

    # each event is told once: the periodic services run again add nothing
    before = Notification.objects.count()
    notifications_remind_deadlines(now=deadline - timedelta(hours=1))
    notifications_remind_installments(now=_at_noon(first.due - timedelta(days=2)))
    promises_track(now=_at_noon(timezone.localdate() + timedelta(days=3)))
    assert Notification.objects.count() == before


def test_every_kind_declares_its_variables_and_every_shipped_template_names_only_them() -> None:
    from restructuring.message_defaults import DEFAULTS
    from restructuring.services.message_templates import message_template_compile

    for locale, texts in DEFAULTS.items():
        assert set(texts) == set(CLIENT_NOTIFICATION_KINDS), locale
        for kind in CLIENT_NOTIFICATION_KINDS:
            assert {"client_name", "account", "currency", "case_id"} <= set(variables_of(kind))
            for channel in TEMPLATED_CHANNELS:
                from restructuring.message_defaults import default_text

                subject, body = default_text(kind, channel, locale)
                message_template_compile(kind=kind, channel=channel, subject=subject, body=body)
