"""Notifications to clients: every event a client is told of (NotificationKind: the margin call and its reminder,
offers, a counter received, acceptance, execution, installments due and missed, promises kept and broken,
liquidation, outcomes), by email, SMS and letter, each written from the message template in use in the client's
language (restructuring/services/messages.py, message_templates.py), and by a signed webhook carrying the event's
data to each of the client's endpoints that subscribes to the event (restructuring/events.py is the catalogue of
the types and their payloads).

A transactional outbox
----------------------
A service that moves a case calls `notification_enqueue` (or the bulk `notifications_enqueue_many`) inside
its own transaction, next to the audit record: one `Notification` row per channel the message goes on (email, SMS
and letter as the client's preferences and the legally required notices say: messages.py; a webhook row per active
`WebhookEndpoint` of the client subscribed to the kind, for the kinds webhooks carry), recipient and message fixed
there, rendered. The rows commit or roll back with the transition, so a rollback sends nothing. A message held for
the client's quiet hours waits in its row (`deferred_until`, `next_attempt_at`) for the drain. After commit a
Celery task is asked to send them (`core.dispatch.dispatch_on_commit`, fire and forget); if the broker is down
then, the rows are still pending and the drain beat (`notifications_drain_task`, every minute) sends them.
Enqueueing the same event twice is a no-op: (case, kind, channel, dedupe_key) is unique (for webhooks, (case,
kind, dedupe_key, endpoint)) and the insert ignores a row that exists.

Sending never blocks or rolls back a transition: it runs after the case's transaction, in transactions of its
own that touch only notification rows, and holds no lock while it talks to the network:

1. claim: in a short transaction, lock due pending rows (`select_for_update(skip_locked=True)`, so two
   senders never take one row), count the attempt and push `next_attempt_at` forward by a lease;
2. send each claimed row (SMTP through Django's email backend; SMS through core/sms.py's backend; a letter drawn
   as a PDF and stored; webhook through core/outbound_http.py, within a total deadline of
   WORKOUT_WEBHOOK_TIMEOUT_SECONDS whatever the server does);
3. record: `sent` with `sent_at`, or the error and the next attempt after an exponential backoff, or `failed`
   after the last attempt (`WORKOUT_NOTIFICATION_MAX_ATTEMPTS`). A row marked sent is never sent again, unless an
   officer has it delivered again (restructuring/services/webhooks.py: same row, same id). Sent and failed are
   each recorded with the message's audit event (message.sent, message.failed) in one transaction. A webhook
   attempt is also logged on its endpoint (`WebhookDelivery`: when, how long, the status code or the error), and
   counts towards the endpoint's failures in a row, after which it is disabled (services/webhooks.py).

The lease (WORKOUT_NOTIFICATION_LEASE_SECONDS) must outlast a whole claimed batch, `CLAIM_BATCH` sends one
after another, each within its deadline: a system check (restructuring/checks.py, restructuring.E001) refuses
settings where it would not, since a second sender would then claim rows still being sent.

Delivery is at least once, not exactly once: a sender that dies between the send and the record leaves the row
to be sent again once the lease runs out. Receivers deduplicate on the notification id, which every message
carries (webhook: body "id" and header X-Workout-Notification-Id; email: the Message-ID
`<notification-{id}@workout>`).

Webhooks
--------
POST of a JSON body, UTF-8, keys sorted, no spaces::

    {"data": {...the payload...}, "id": 17, "timestamp": 1767225600, "type": "margin_call"}

with headers `Content-Type: application/json`, `X-Workout-Notification-Id`, `X-Workout-Event` (the type),
`X-Workout-Timestamp` (Unix seconds, also in the body) and `X-Workout-Signature: sha256=<hex>`, the
HMAC-SHA256 of the exact body bytes keyed with the endpoint's secret (UTF-8); during a rotation's overlap, the
previous secret's signature follows, comma-separated (`sha256=<new>,sha256=<old>`). The timestamp is inside
the signed body, so a receiver can refuse old replays. Any 2xx is success; redirects are not followed.

Only public addresses are called (core/addresses.py), unless WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS: a URL whose
host is a non-public address is refused when the endpoint is made (services/webhooks.py), and at each send the
address every connection is about to be opened to is checked, so a name that resolves inside, or that a DNS
server answers differently between two lookups (rebinding), is refused before anything is sent. A refused
destination fails the row for good.

The secret is stored encrypted (core/encryption.py) and decrypted here only, to sign. One that no configured key
decrypts (a key dropped from WORKOUT_WEBHOOK_SECRET_KEYS too soon, an altered value) is never replaced by a
guess: the send fails with an error naming the client, logged at ERROR and kept in `last_error`, and is retried
like any failure (not counted against the endpoint: the fault is ours), so restoring the key lets the pending
notifications go.

Payloads hold JSON-native values only: every Decimal in a payload is a money amount, written as a string in
the account currency's quantum ("250.00"), datetimes as ISO 8601 in UTC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import CharField, Exists, F, OuterRef, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from accounts.models import ALL_EVENTS, WebhookEndpoint, WebhookEndpointState
from core.audit import audit_record
from core.bulk import bulk_copy_new
from core.dispatch import dispatch_on_commit
from core.encryption import EncryptedSecret, SecretDecryptionError
from core.money import currency_quantum
from core.outbound_http import DestinationRefused, PostFailed, http_post
from core.sms import SmsFailed, SmsRejected
from restructuring.events import webhook_event_names
from restructuring.models import (
    Case,
    CaseState,
    Installment,
    InstallmentStatus,
    Notification,
    NotificationChannel,
    NotificationKind,
    NotificationStatus,
    WebhookDelivery,
)
from restructuring.selectors.contacts import contacts_load
from restructuring.services.messages import (
    Event,
    letter_produce,
    message_event,
    message_rows,
    sms_send,
)
from restructuring.services.webhooks import webhook_attempt_record

logger = logging.getLogger(__name__)

# Rows claimed per transaction; the lease covers sending all of them one after another (restructuring/checks.py).
CLAIM_BATCH = 10
# Notification ids per send task message.
_DISPATCH_CHUNK = 500
_ERROR_MAX_LENGTH = 2000


class NotificationTransactionError(RuntimeError):
    """Notifications were enqueued outside `transaction.atomic()`: they could be sent for a change that then
    rolls back. A programming error, not a domain one."""


class WebhookSecretUnreadableError(RuntimeError):
    """The client's stored webhook secret decrypts with no configured key: nothing is signed nor sent. An
    operator's problem (the keys), not a domain one; the send is retried, so restoring the key heals it."""

    def __init__(self, *, client_code: str, problem: str) -> None:
        super().__init__(f"the webhook secret of client {client_code} cannot be decrypted: {problem}; not sent")
        self.client_code = client_code


@dataclass(frozen=True)
class Notice:
    """One event to tell a case's client of. `payload` is what the message says besides what every message
    carries (case id, account code, currency, state)."""

    case: Case
    kind: NotificationKind
    payload: Mapping[str, Any] = field(default_factory=dict)
    dedupe_key: str = ""


@dataclass(frozen=True)
class SendResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    def __add__(self, other: SendResult) -> SendResult:
        return SendResult(self.sent + other.sent, self.retrying + other.retrying, self.failed + other.failed)

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed}


# ----------------------------------------------------------------------------------------- enqueueing


def notification_enqueue(
    *, case: Case, kind: NotificationKind, payload: Mapping[str, Any], dedupe_key: str = ""
) -> list[int]:
    """Enqueue one event for the case's client, in the caller's transaction. Returns the new rows' ids."""
    return notifications_enqueue_many(notices=[Notice(case=case, kind=kind, payload=payload, dedupe_key=dedupe_key)])


def notifications_enqueue_for_cases(*, cases: Iterable[Case], now: datetime | None = None) -> list[int]:
    """The notices of the sweep's moves, in bulk: a case now in MARGIN_CALL tells of its call, a CURED one
    of its cure; other states tell nothing here."""
    notices = []
    for case in cases:
        if case.state == CaseState.MARGIN_CALL:
            notices.append(Notice(case, NotificationKind.MARGIN_CALL, _call_terms(case), _key(case.called_at)))
        elif case.state == CaseState.CURED:
            notices.append(Notice(case, NotificationKind.CURED, {"closed_at": case.closed_at}))
    return notifications_enqueue_many(notices=notices, now=now)


def notifications_enqueue_many(*, notices: Sequence[Notice], now: datetime | None = None) -> list[int]:
    """Write the rows of many notices in the caller's transaction with a fixed number of queries (the
    clients' contacts, their active webhook endpoints, the templates in use, one bulk insert, the new ids), and ask
    for them to be sent once it commits. Returns the ids of the rows written (none for an event already enqueued)."""
    if not transaction.get_connection().in_atomic_block:
        raise NotificationTransactionError(
            "notifications must be enqueued inside transaction.atomic(), with the change they tell of"
        )
    if not notices:
        return []
    now = now or timezone.now()
    contacts = contacts_load(n.case.account_id for n in notices)
    endpoints = _webhook_endpoints({contact.client_id for contact in contacts.values()})
    webhook_kinds = set(webhook_event_names())
    rows: list[Notification] = []
    events: list[Event] = []
    for notice in notices:
        contact = contacts[notice.case.account_id]
        payload = _plain(
            {
                **notice.payload,
                "case_id": notice.case.pk,
                "account": contact.account_code,
                "currency": contact.currency,
                "state": str(notice.case.state),
            },
            currency_quantum(contact.currency),
        )
        # Email, SMS and letter: rendered from the templates in use, as the client's preferences say (messages.py).
        events.append(Event(notice.kind, notice.case.pk, contact.account_id, payload, notice.dedupe_key))
        if notice.kind in webhook_kinds:
            rows.extend(
                Notification(
                    case_id=notice.case.pk,
                    kind=notice.kind,
                    channel=NotificationChannel.WEBHOOK,
                    recipient=url,
                    webhook_endpoint_id=endpoint_id,
                    dedupe_key=notice.dedupe_key,
                    payload=payload,
                    next_attempt_at=now,
                    created_at=now,
                )
                for endpoint_id, url, event_types in endpoints.get(contact.client_id, ())
                if _subscribed(event_types, notice.kind)
            )
    rows.extend(message_rows(events, contacts, now))
    if not rows:
        return []
    # COPY, then an insert that skips the events already enqueued (their unique key): the rendered messages of a
    # sweep's thousands of margin calls are too much text for Django's bulk_create (core/bulk.py).
    ids = sorted(bulk_copy_new(Notification, rows))
    if not ids and connection.vendor != "postgresql":  # SQLite: bulk_create returned no ids; read them back
        ids = list(
            Notification.objects.filter(
                case_id__any={row.case_id for row in rows},
                kind__in={row.kind for row in rows},
                created_at=now,
                status=NotificationStatus.PENDING,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    if ids:
        _dispatch(ids)
    return ids


def _webhook_endpoints(client_ids: set[int]) -> dict[int, list[tuple[int, str, list[str]]]]:
    """The active endpoints of these clients (one query): client -> [(endpoint, URL, event types)]."""
    by_client: dict[int, list[tuple[int, str, list[str]]]] = {}
    rows = WebhookEndpoint.objects.filter(client_id__any=client_ids, state=WebhookEndpointState.ACTIVE)
    for client_id, endpoint_id, url, event_types in rows.order_by("pk").values_list(
        "client_id", "pk", "url", "event_types"
    ):
        by_client.setdefault(client_id, []).append((endpoint_id, url, event_types))
    return by_client


def _subscribed(event_types: list[str], kind: str) -> bool:
    return ALL_EVENTS in event_types or kind in event_types


def staff_notifications_enqueue(*, rows: Sequence[Notification]) -> list[int]:
    """Messages to staff about a case (an SLA escalation to a senior), in the caller's transaction: the rows are
    built by the caller (recipient: the member of staff's email), written once per (case, kind, channel,
    dedupe_key) and sent like the clients' (after commit, or by the drain)."""
    if not transaction.get_connection().in_atomic_block:
        raise NotificationTransactionError("notifications must be enqueued inside transaction.atomic()")
    if not rows:
        return []
    Notification.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
    created = {row.created_at for row in rows}
    ids = list(
        Notification.objects.filter(
            case_id__any={row.case_id for row in rows},
            kind__in={row.kind for row in rows},
            created_at__in=created,
            status=NotificationStatus.PENDING,
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if ids:
        _dispatch(ids)
    return ids


def _dispatch(notification_ids: list[int]) -> None:
    """After commit: hand the rows to the workers (core.dispatch: one attempt at the broker, without hanging on
    it). Whatever is not queued stays pending, and the drain sends it."""
    from restructuring.tasks import notifications_send_task  # here: the tasks module imports the services

    dispatch_on_commit(
        notifications_send_task,
        *(
            {"notification_ids": notification_ids[start : start + _DISPATCH_CHUNK]}
            for start in range(0, len(notification_ids), _DISPATCH_CHUNK)
        ),
        redrive="the notifications drain beat (notifications_drain_task, pending rows)",
    )


def notifications_remind_deadlines(*, now: datetime | None = None) -> int:
    """Enqueue a reminder for each margin call whose deadline falls within WORKOUT_REMINDER_BEFORE_HOURS and
    that has had none since it was issued (the rows are keyed by the deadline). Returns how many calls were due
    one (a client with no channel gets no row, and is looked at again on the next run)."""
    now = now or timezone.now()
    horizon = now + timedelta(hours=settings.WORKOUT_REMINDER_BEFORE_HOURS)
    reminded = Notification.objects.filter(
        case=OuterRef("pk"), kind=NotificationKind.DEADLINE_REMINDER, created_at__gte=OuterRef("called_at")
    )
    with transaction.atomic():
        # A case being moved right now is skipped (its lock is held) and looked at again on the next run.
        cases = list(
            Case.objects.select_for_update(of=("self",), skip_locked=True)
            .filter(state=CaseState.MARGIN_CALL, deadline__gt=now, deadline__lte=horizon)
            .exclude(Exists(reminded))
            .order_by("pk")
        )
        notices = [
            Notice(case, NotificationKind.DEADLINE_REMINDER, _call_terms(case), _key(case.deadline)) for case in cases
        ]
        notifications_enqueue_many(notices=notices, now=now)
    return len(cases)


def notifications_remind_installments(*, now: datetime | None = None) -> int:
    """Enqueue a reminder for each installment of a restructured case that is due within
    WORKOUT_INSTALLMENT_REMINDER_DAYS and still owes something, once per installment (keyed by it). Returns how many
    installments were reminded of."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    horizon = today + timedelta(days=settings.WORKOUT_INSTALLMENT_REMINDER_DAYS)
    reminded = Notification.objects.filter(
        case=OuterRef("proposal__case"),
        kind=NotificationKind.INSTALLMENT_DUE,
        dedupe_key=Concat(Value("installment:"), Cast(OuterRef("pk"), CharField())),
    )
    with transaction.atomic():
        due = list(
            Installment.objects.filter(
                status=InstallmentStatus.DUE,
                due__gte=today,
                due__lte=horizon,
                proposal__case__state=CaseState.RESTRUCTURED,
                total__gt=F("paid_amount"),
            )
            .exclude(Exists(reminded))
            .select_related("proposal__case")
            .order_by("pk")
        )
        notices = [
            Notice(
                installment.proposal.case,
                NotificationKind.INSTALLMENT_DUE,
                {
                    "installment_id": installment.pk,
                    "number": installment.number,
                    "due": installment.due,
                    "amount": installment.outstanding,
                },
                f"installment:{installment.pk}",
            )
            for installment in due
        ]
        notifications_enqueue_many(notices=notices, now=now)
    return len(due)


def _call_terms(case: Case) -> dict[str, Any]:
    return {
        "call_amount": case.call_amount,
        "call_basis": str(case.call_basis),
        "called_at": case.called_at,
        "deadline": case.deadline,
    }


def _key(moment: datetime | None) -> str:
    return _iso(moment) if moment is not None else ""


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _plain(value: Any, quantum: Decimal) -> Any:
    """The JSON-native form of a payload: Decimal amounts as strings in the currency's quantum, datetimes in
    UTC ISO 8601. Floats are refused (money never travels as a float)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, Decimal):
        return format(value.quantize(quantum), "f")
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _plain(item, quantum) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item, quantum) for item in value]
    raise TypeError(f"a {type(value).__name__} cannot go into a notification payload")


# ----------------------------------------------------------------------------------------- sending


def notifications_send(*, notification_ids: Sequence[int] | None = None, now: datetime | None = None) -> SendResult:
    """Send the due pending notifications (only those of `notification_ids` when given), a batch at a time,
    until none is due. Safe to run twice or concurrently: a row is claimed by one sender at a time and a sent
    row is never sent again."""
    now = now or timezone.now()
    result = SendResult()
    while batch := _claim(notification_ids, now):
        mail = get_connection()  # opened by each send: an SMTP failure belongs to one message
        for notification in batch:
            attempted_at, started = timezone.now(), time.monotonic()
            outcome = _deliver(notification, mail)
            result += _record(notification, outcome.error, permanent=outcome.permanent, now=now)
            if outcome.attempted and notification.webhook_endpoint_id is not None:
                webhook_attempt_log(
                    notification=notification,
                    attempted_at=attempted_at,
                    duration_ms=round((time.monotonic() - started) * 1000),
                    status_code=outcome.status,
                    error=outcome.error,
                    counts=outcome.endpoints_fault,
                )
    return result


def webhook_attempt_log(
    *,
    notification: Notification,
    attempted_at: datetime,
    duration_ms: int,
    status_code: int | None,
    error: str,
    counts: bool,
) -> WebhookDelivery:
    """Log one webhook attempt on its endpoint (services/webhooks.py); when the failure disables the endpoint, its
    client is told in the same transaction, as every client message is: rendered from its template in the
    client's language, on the channels the client chose (messages.py), sent after commit. No channel: the client
    reads it on the endpoint (state, reason), compliance in the trail."""
    with transaction.atomic():
        logged = webhook_attempt_record(
            notification=notification,
            attempted_at=attempted_at,
            duration_ms=duration_ms,
            status_code=status_code,
            error=error,
            counts=counts,
        )
        endpoint = logged.disabled
        if endpoint is not None:
            assert endpoint.disabled_at is not None
            notification_enqueue(
                case=notification.case,
                kind=NotificationKind.WEBHOOK_DISABLED,
                payload={
                    "endpoint_id": endpoint.pk,
                    "url": endpoint.url,
                    "consecutive_failures": endpoint.consecutive_failures,
                    "last_error": error[:500],
                    "disabled_at": endpoint.disabled_at.isoformat(),
                },
                dedupe_key=f"webhook:{endpoint.pk}:{endpoint.disabled_at:%Y%m%dT%H%M%S.%f}"[:64],
            )
    return logged.delivery


def notifications_drain(*, now: datetime | None = None) -> SendResult:
    """The beat's pass over the outbox: whatever the on-commit task did not send (broker down, worker lost,
    a retry whose time has come)."""
    return notifications_send(now=now)


def _lease() -> timedelta:
    return timedelta(seconds=settings.WORKOUT_NOTIFICATION_LEASE_SECONDS)


def _claim(notification_ids: Sequence[int] | None, now: datetime) -> list[Notification]:
    with transaction.atomic():
        when = Q(next_attempt_at__lte=now)
        if notification_ids is not None:
            # The task queued on commit sends its never-tried rows even if this host's clock is behind the
            # enqueuer's; a row tried before (failed, or claimed under a lease) waits for its time, as does a row
            # held for the client's quiet hours (messages.py).
            when = Q(pk__in=list(notification_ids)) & (when | Q(attempts=0, deferred_until__isnull=True))
        due = (
            Notification.objects.select_for_update(of=("self",), skip_locked=True)
            .filter(when, status=NotificationStatus.PENDING)
            .annotate(
                signing_secret=F("webhook_endpoint__secret"),
                previous_secret=F("webhook_endpoint__previous_secret"),
                previous_secret_until=F("webhook_endpoint__previous_secret_expires_at"),
                endpoint_state=F("webhook_endpoint__state"),
                client_code=F("case__account__client__code"),
                account_ref=F("case__account_id"),
                template_version=F("template__version"),
            )
        )
        batch: list[Notification] = list(due.order_by("next_attempt_at", "pk")[:CLAIM_BATCH])
        if batch:
            lease_until = now + _lease()
            Notification.objects.filter(pk__in=[n.pk for n in batch]).update(
                attempts=F("attempts") + 1, next_attempt_at=lease_until
            )
            for notification in batch:
                notification.attempts += 1
                notification.next_attempt_at = lease_until
    return batch


def _record(notification: Notification, error: str, *, permanent: bool, now: datetime) -> SendResult:
    # Guarded by the status: a slow sender whose lease ran out never turns a row another sent back to pending.
    row = Notification.objects.filter(pk=notification.pk, status=NotificationStatus.PENDING)
    if not error:
        with transaction.atomic():  # the message's state and its event together (messages.py)
            sent_at = timezone.now()
            done = row.update(
                status=NotificationStatus.SENT,
                sent_at=sent_at,
                last_error="",
                provider_id=notification.provider_id,
                letter_pdf=notification.letter_pdf.name or "",
                letter_sha256=notification.letter_sha256,
            )
            if done:
                audit_record(message_event(notification, NotificationStatus.SENT))
        return SendResult(sent=1)
    error = error[:_ERROR_MAX_LENGTH]
    if permanent or notification.attempts >= settings.WORKOUT_NOTIFICATION_MAX_ATTEMPTS:
        with transaction.atomic():
            if row.update(status=NotificationStatus.FAILED, last_error=error):
                audit_record(message_event(notification, NotificationStatus.FAILED, error=error))
        logger.warning("notification %s failed for good: %s", notification.pk, error)
        return SendResult(failed=1)
    row.update(next_attempt_at=now + notification_backoff(notification.attempts), last_error=error)
    return SendResult(retrying=1)


def notification_backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: 1, 2, 4, ... times the first, up to the cap."""
    first = settings.WORKOUT_NOTIFICATION_RETRY_SECONDS
    return timedelta(seconds=min(first * 2 ** (attempts - 1), settings.WORKOUT_NOTIFICATION_RETRY_MAX_SECONDS))


@dataclass(frozen=True)
class _Outcome:
    error: str = ""  # "" when delivered
    permanent: bool = False  # retrying is pointless
    attempted: bool = True  # a webhook was posted, or its connection tried (so it is logged on the endpoint)
    status: int | None = None  # the webhook's HTTP status, when one came back
    endpoints_fault: bool = True  # a failure that counts against the endpoint (not ours, as a lost key is)


def _deliver(notification: Notification, mail: Any) -> _Outcome:
    """Send one message, and say how it went."""
    try:
        if notification.channel == NotificationChannel.EMAIL:
            _email_send(notification, mail)
            return _Outcome(attempted=False)
        if notification.channel == NotificationChannel.SMS:
            sms_send(notification)
            return _Outcome(attempted=False)
        if notification.channel == NotificationChannel.LETTER:
            letter_produce(notification)
            return _Outcome(attempted=False)
        return _Outcome(status=_webhook_post(notification, getattr(notification, "signing_secret", "")))
    except WebhookEndpointDisabledError as error:  # disabled since it was enqueued: nothing was sent
        return _Outcome(str(error), permanent=True, attempted=False)
    except (_PermanentError, DestinationRefused) as error:
        return _Outcome(str(error), permanent=True)
    except SmsRejected as error:
        return _Outcome(str(error), permanent=True, attempted=False)
    except WebhookSecretUnreadableError as error:  # retried: the key may be put back
        logger.error("notification %s: %s", notification.pk, error)
        return _Outcome(str(error), attempted=False, endpoints_fault=False)
    except WebhookAnswerError as error:
        return _Outcome(str(error), status=error.status)
    except SmsFailed as error:
        return _Outcome(str(error), attempted=False)
    except PostFailed as error:
        return _Outcome(str(error))
    except Exception as error:  # any failure to deliver is recorded and retried, never raised into the drain
        logger.info("notification %s not delivered", notification.pk, exc_info=True)
        return _Outcome(f"{type(error).__name__}: {error}", endpoints_fault=False)


class _PermanentError(Exception):
    pass


class WebhookEndpointDisabledError(Exception):
    """The row's endpoint was disabled after the row was enqueued (its disabling fails the pending rows, but a row
    being sent then escapes that): it is not sent."""


class WebhookAnswerError(PostFailed):
    """The endpoint answered, with a status other than 2xx: retried."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- email


# To staff (restructuring/services/sla.py): written here, not from the clients' templates.
_STAFF_SUBJECTS = {
    NotificationKind.SLA_BREACH: "Escalation: case {case_id} ({account}) breached its SLA: {clock_label}",
}
_STAFF_BODIES = {
    NotificationKind.SLA_BREACH: (
        "Case {case_id} on account {account} has waited since {started_at} ({clock_label}); its target was "
        "{target_hours} hours, due {due_at}. Assigned to: {assignee}. It is escalated to you as the team's senior."
    ),
}


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "-"


def _email_send(notification: Notification, mail: Any) -> None:
    """A client's email as it was rendered from its template when enqueued; a staff message from the text above."""
    subject, body = notification.subject, notification.body
    if notification.template_id is None:
        fields = _Fields(notification.payload)
        kind = NotificationKind(notification.kind)
        details = "\n".join(f"  {key}: {value}" for key, value in sorted(notification.payload.items()))
        subject = _STAFF_SUBJECTS[kind].format_map(fields)
        body = f"{_STAFF_BODIES[kind].format_map(fields)}\n\nCase {fields['case_id']}.\n\n{details}\n"
    EmailMessage(
        subject=subject,
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[notification.recipient],
        headers={
            # Mail systems deduplicate on the Message-ID: the at-least-once resend is one message to them.
            "Message-ID": f"<notification-{notification.pk}@workout>",
            "X-Workout-Notification-Id": str(notification.pk),
        },
        connection=mail,
    ).send()


# --- webhook


def webhook_body(*, notification: Notification, timestamp: int) -> bytes:
    """The exact bytes that are signed and posted."""
    document = {"id": notification.pk, "type": notification.kind, "timestamp": timestamp, "data": notification.payload}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def webhook_signature(*, secret: str, body: bytes) -> str:
    """The X-Workout-Signature header value: "sha256=" and the hex HMAC-SHA256 of the body keyed with the secret."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_signatures(*, secrets: Sequence[str], body: bytes) -> str:
    """The X-Workout-Signature header value for one or more secrets (a rotation's overlap): comma-separated,
    the current secret's first."""
    return ",".join(webhook_signature(secret=secret, body=body) for secret in secrets)


def _signing_key(notification: Notification, stored_secret: EncryptedSecret | str) -> str:
    """The clear secret, decrypted for this signature only and never kept."""
    if not isinstance(stored_secret, EncryptedSecret):  # the field always reads a token: this is a bug
        raise TypeError("a webhook secret read from the database must be an EncryptedSecret")
    try:
        return stored_secret.reveal()
    except SecretDecryptionError as error:
        client_code = getattr(notification, "client_code", "(unknown)")  # annotated by `_claim`
        raise WebhookSecretUnreadableError(client_code=client_code, problem=str(error)) from None


def _signing_keys(notification: Notification, stored_secret: EncryptedSecret | str) -> list[str]:
    """The endpoint's secret, and its previous one while a rotation's overlap lasts (annotated by `_claim`)."""
    keys = [_signing_key(notification, stored_secret)]
    previous = getattr(notification, "previous_secret", "")
    until = getattr(notification, "previous_secret_until", None)
    if previous and until is not None and until > timezone.now():
        try:
            keys.append(_signing_key(notification, previous))
        except WebhookSecretUnreadableError as error:  # a courtesy signature: the current one is what counts
            logger.warning("notification %s: the previous secret is left out: %s", notification.pk, error)
    return keys


def _webhook_post(notification: Notification, stored_secret: EncryptedSecret | str) -> int:
    """Post the notification to its endpoint, signed; the status of the 2xx answer, else an exception."""
    if notification.webhook_endpoint_id is None:
        raise _PermanentError("the webhook has no endpoint to go to (removed before endpoints existed)")
    if getattr(notification, "endpoint_state", WebhookEndpointState.ACTIVE) != WebhookEndpointState.ACTIVE:
        raise WebhookEndpointDisabledError(f"not sent: webhook endpoint {notification.webhook_endpoint_id} is disabled")
    if not stored_secret:
        raise _PermanentError("the endpoint has no webhook secret to sign with")
    keys = _signing_keys(notification, stored_secret)
    timestamp = int(time.time())
    body = webhook_body(notification=notification, timestamp=timestamp)
    answer = http_post(
        notification.recipient,
        body=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Workout-Webhooks/1",
            "X-Workout-Notification-Id": str(notification.pk),
            "X-Workout-Event": notification.kind,
            "X-Workout-Timestamp": str(timestamp),
            "X-Workout-Signature": webhook_signatures(secrets=keys, body=body),
        },
        deadline_seconds=settings.WORKOUT_WEBHOOK_TIMEOUT_SECONDS,
        allow_private=settings.WORKOUT_WEBHOOK_ALLOW_PRIVATE_NETWORKS,
        ca_bundle=settings.WORKOUT_WEBHOOK_CA_BUNDLE or None,
    )
    if not answer.ok:
        raise WebhookAnswerError(f"HTTP {answer.status} {answer.reason}: {answer.excerpt}", status=answer.status)
    return answer.status
