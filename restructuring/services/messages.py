"""Client messages by email, SMS and letter: written from the templates in use, routed by the client's preferences,
held for its quiet hours, sent through their channel, and on the record.

Writing (in the enqueuing transaction: restructuring/services/notifications.py calls `message_rows`)
----------------------------------------------------------------------------------------------------
For each event, each channel the client takes (accounts.MessagePreferences; without preferences: email, when
Client.email is set) gets one Notification row whose text is rendered there and then from the version in use of
the (kind, channel, client's locale) template, English when the client's locale has none. The row keeps the
subject and body as rendered and the version they came from, so the log shows exactly what the client was sent,
and a template changed later changes no message already written. Each template is compiled once per process and
version (restructuring/services/message_templates.py), and every row of a batch is one bulk insert.

A legally required notice (restructuring/message_catalogue.py LEGALLY_REQUIRED: margin call, liquidation, missed
payment) goes on every channel the client has an address for, at once. Any other message goes only on the channels
the client chose, and email and SMS wait out its quiet hours: the row's `next_attempt_at` (and `deferred_until`) is
the end of the quiet window in the client's time zone, which the outbox's claim respects.

Sending (by the outbox's sender, one row at a time)
---------------------------------------------------
- email: the row's subject and body, through Django's email backend (notifications.py);
- SMS: the body through the SMS backend (core/sms.py); the provider's id of the message is kept, so its delivery
  report finds the row;
- letter: the body (an HTML fragment, autoescaped when rendered) in the letter's layout
  (templates/messages/letter.html), drawn as a PDF (core/pdf.py), stored through Django's storage API under
  letters/<case>/ with its SHA-256 on the row. The PDF is what the print-and-post service (or a person) sends; staff
  download it from the case page.

Every message sent, failed for good, or bounced (a delivery report: `message_bounce`) writes its audit event
(message.sent, message.failed, message.bounced) with the SHA-256 of what was sent, so the trail binds the log.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone, translation

from core.audit import AuditEntry, audit_record
from core.errors import Conflict, NotFound
from core.pdf import pdf_render
from core.sms import SmsMessage, sms_backend
from restructuring.audit_events import MESSAGE_BOUNCED, MESSAGE_FAILED, MESSAGE_SENT
from restructuring.message_catalogue import LEGALLY_REQUIRED, QUIET_HOURS_CHANNELS, message_context
from restructuring.message_defaults import default_text
from restructuring.models import (
    MessageTemplate,
    Notification,
    NotificationStatus,
)
from restructuring.selectors.contacts import FALLBACK_LOCALE, Contact
from restructuring.services.message_templates import (
    content_sha256,
    message_template_compile,
    message_template_compiled,
    published_templates,
)

logger = logging.getLogger(__name__)

MESSAGES_ACTOR = "messages"


class MessageBounceConflictError(Conflict):
    code = "message_not_sent"


# ------------------------------------------------------------------------------------------------ who and how


def quiet_until(contact: Contact, now: datetime) -> datetime | None:
    """When the client's quiet hours in force at `now` end (aware, UTC), or None if `now` is not in them. The window
    is in the client's time zone and may span midnight (21:00 to 08:00)."""
    start, end = contact.quiet_hours_start, contact.quiet_hours_end
    if start is None or end is None or start == end:
        return None
    zone = contact.zone
    local = now.astimezone(zone)
    moment = local.time().replace(tzinfo=None)
    if start < end:
        quiet, day = start <= moment < end, local.date()
    else:
        quiet = moment >= start or moment < end
        day = local.date() + timedelta(days=1) if moment >= start else local.date()
    if not quiet:
        return None
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


# ------------------------------------------------------------------------------------------------ writing


@dataclass(frozen=True)
class Event:
    """One event to write the client's messages of (notifications.Notice, with its payload made plain)."""

    kind: str
    case_id: int
    account_id: int
    payload: Mapping[str, Any]  # JSON-native, with what every message carries (case_id, account, currency, state)
    dedupe_key: str


def message_rows(events: Sequence[Event], contacts: Mapping[int, Contact], now: datetime) -> list[Notification]:
    """The templated messages (email, SMS, letter) of these events, rendered, not yet saved. One query (the
    templates in use) whatever the number of events; each template compiled once per process and version."""
    if not events:
        return []
    templates = published_templates()
    lender = settings.WORKOUT_LENDER_NAME
    rows: list[Notification] = []
    # By the client's language, each group under its language once (the sandbox then leaves it be per message).
    ordered = sorted(events, key=lambda e: contacts[e.account_id].locale)
    for locale, group in itertools.groupby(ordered, key=lambda e: contacts[e.account_id].locale):
        with translation.override(locale):
            rows.extend(_rows(list(group), contacts, templates, lender, now))
    return rows


def _rows(
    events: Sequence[Event],
    contacts: Mapping[int, Contact],
    templates: Mapping[tuple[str, str, str], MessageTemplate],
    lender: str,
    now: datetime,
) -> list[Notification]:
    rows: list[Notification] = []
    for event in events:
        contact = contacts[event.account_id]
        addresses = contact.addresses(event.kind)
        if not addresses:
            continue
        context = message_context(event.kind, event.payload, client_name=contact.client_name, lender_name=lender)
        legal = event.kind in LEGALLY_REQUIRED
        quiet = None if legal else quiet_until(contact, now)
        for channel, recipient in addresses:
            template = templates.get((event.kind, channel, contact.locale)) or templates.get(
                (event.kind, channel, FALLBACK_LOCALE)
            )
            if template is None:  # never after migrate (message_templates_ensure)
                continue
            subject, body, used = _render(template, context, contact)
            held = quiet if channel in QUIET_HOURS_CHANNELS else None
            rows.append(
                Notification(
                    case_id=event.case_id,
                    kind=event.kind,
                    channel=channel,
                    recipient=recipient,
                    dedupe_key=event.dedupe_key,
                    payload=event.payload,
                    next_attempt_at=held or now,
                    deferred_until=held,
                    created_at=now,
                    template=used,
                    locale=template.locale,
                    subject=subject,
                    body=body,
                )
            )
    return rows


def _render(
    template: MessageTemplate, context: Mapping[str, Any], contact: Contact
) -> tuple[str, str, MessageTemplate | None]:
    """The message from the version in use. Should it fail on these values (it rendered on the samples when it was
    checked), the shipped text says it instead, the row names no version, and the error is logged: a template never
    stops the transition that enqueues the message."""
    try:
        subject, body = message_template_compiled(template).render(
            context, locale=template.locale, time_zone=contact.zone
        )
        return subject, body, template
    except Exception:
        logger.exception("message template %s failed to render: the shipped text is sent instead", template)
    shipped_subject, shipped_body = default_text(template.kind, template.channel, template.locale)
    compiled = message_template_compile(
        kind=template.kind, channel=template.channel, subject=shipped_subject, body=shipped_body
    )
    subject, body = compiled.render(context, locale=template.locale, time_zone=contact.zone)
    return subject, body, None


# ------------------------------------------------------------------------------------------------ sending


def sms_send(notification: Notification) -> None:
    """Send the row's text through the SMS backend; the provider's id goes on the row (saved by the sender)."""
    notification.provider_id = sms_backend().send(
        SmsMessage(to=notification.recipient, body=notification.body, reference=str(notification.pk))
    )[:64]


def letter_produce(notification: Notification) -> None:
    """Draw the letter as a PDF and store it (module docstring); its name and SHA-256 go on the row."""
    rendered = pdf_render(
        "messages/letter.html",
        {
            "notification": notification,
            "recipient_lines": [line for line in notification.recipient.splitlines() if line.strip()],
            "subject": notification.subject,
            "body": _trusted_html(notification.body),
            "lender_name": settings.WORKOUT_LENDER_NAME,
            "lender_address": [line for line in settings.WORKOUT_LENDER_ADDRESS.splitlines() if line.strip()],
            "date": timezone.now().date(),
        },
        language=notification.locale or FALLBACK_LOCALE,
    )
    stored = default_storage.save(
        f"letters/{notification.case_id}/notification-{notification.pk}-{rendered.sha256[:12]}.pdf",
        ContentFile(rendered.pdf),
    )
    notification.letter_pdf.name = stored
    notification.letter_sha256 = rendered.sha256


def _trusted_html(fragment: str) -> str:
    """The letter's body: rendered by the sandbox with autoescaping (every value escaped), from a template a second
    person reviewed; the PDF is drawn with nothing fetched (core/pdf.py)."""
    from django.utils.safestring import mark_safe

    return mark_safe(fragment)  # noqa: S308 (see the docstring)


def letter_open(notification: Notification) -> bytes:
    """The stored letter's bytes, checked against the SHA-256 recorded when it was stored; LetterTamperedError if
    they differ."""
    with default_storage.open(str(notification.letter_pdf.name), "rb") as stored:
        data = stored.read()
    if hashlib.sha256(data).hexdigest() != notification.letter_sha256:
        raise LetterTamperedError(
            f"the stored letter of message {notification.pk} does not match the SHA-256 recorded when it was sent",
            notification_id=notification.pk,
        )
    return data


class LetterTamperedError(Conflict):
    code = "letter_tampered"


# ------------------------------------------------------------------------------------------------ the record


def message_event(notification: Notification, status: str, *, error: str = "") -> AuditEntry:
    """The audit event of a message that went (sent), failed for good (failed) or came back (bounced)."""
    action = {
        NotificationStatus.SENT: MESSAGE_SENT,
        NotificationStatus.FAILED: MESSAGE_FAILED,
        NotificationStatus.BOUNCED: MESSAGE_BOUNCED,
    }[NotificationStatus(status)]
    payload: dict[str, Any] = {
        "case_id": notification.case_id,
        "kind": notification.kind,
        "channel": notification.channel,
        "recipient": notification.recipient,
        "attempts": notification.attempts,
    }
    if notification.template_id is not None:
        payload |= {
            "template_id": notification.template_id,
            "template_version": _version(notification),
            "locale": notification.locale,
            "subject": notification.subject,
            "sha256": content_sha256(notification.subject, notification.body),
        }
    if notification.letter_sha256:
        payload["letter_sha256"] = notification.letter_sha256
    if notification.provider_id:
        payload["provider_id"] = notification.provider_id
    if error:
        payload["error"] = error[:500]
    account_id = getattr(notification, "account_ref", None)
    if account_id is None:
        account_id = notification.case.account_id
    return action.entry(
        notification,
        system_actor=MESSAGES_ACTOR,
        account_id=account_id,
        from_state=NotificationStatus.SENT if status == NotificationStatus.BOUNCED else NotificationStatus.PENDING,
        to_state=str(status),
        payload=payload,
    )


def _version(notification: Notification) -> int | None:
    version = getattr(notification, "template_version", None)
    if version is None and notification.template_id is not None:
        version = MessageTemplate.objects.filter(pk=notification.template_id).values_list("version", flat=True).first()
    return version


def message_bounce(
    *, reason: str, source: str, notification_id: int | None = None, provider_id: str = ""
) -> Notification:
    """A message reported undelivered after it was sent (a bounced email, an SMS the provider could not deliver):
    BOUNCED with the report, and its event. Idempotent: a message already bounced is returned as it is. Only a sent
    message bounces (MessageBounceConflictError otherwise); an unknown one is NotFound."""
    with transaction.atomic():
        rows = Notification.objects.select_for_update().select_related("case")
        if notification_id is not None:
            notification = rows.filter(pk=notification_id).first()
        else:
            notification = rows.filter(provider_id=provider_id).exclude(provider_id="").first()
        if notification is None:
            raise NotFound(f"no message {notification_id or provider_id}", field="notification")
        if notification.status == NotificationStatus.BOUNCED:
            return notification
        if notification.status != NotificationStatus.SENT:
            raise MessageBounceConflictError(
                f"message {notification.pk} is {notification.status}: only a sent message bounces"
            )
        notification.status, notification.bounced_at = NotificationStatus.BOUNCED, timezone.now()
        notification.last_error = f"{source}: {reason}"[:2000]
        notification.save(update_fields=["status", "bounced_at", "last_error"])
        audit_record(message_event(notification, NotificationStatus.BOUNCED, error=notification.last_error))
    return notification
