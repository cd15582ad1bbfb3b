"""The communication log and the message templates, as staff and clients read them.

- `case_messages`: every message of a case (the case page's log, its timeline's message events), newest first.
- `client_case_messages`: a client's own messages on one of its cases (the API), never the staff's escalations.
- `messages_search`: compliance's search over every message (by case, account, kind, channel, status, time, text),
  and `messages_export_rows` for its CSV, each message with the audit event of its last state (its sequence and
  hash: the message's record in the chain).
- `message_templates_overview`, `message_template_versions`: the templates pages.
- `message_preview_context`: what a template is previewed on for a real case.

Each makes a fixed number of queries whatever the number of rows it returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404

from accounts.models import MarginAccount
from core.models import AuditEvent
from restructuring.audit_events import NOTIFICATION_OBJECT
from restructuring.message_catalogue import message_context, variables_of
from restructuring.models import (
    CLIENT_NOTIFICATION_KINDS,
    TEMPLATED_CHANNELS,
    Case,
    MessageTemplate,
    MessageTemplateStatus,
    Notification,
)
from restructuring.selectors.contacts import Contact, contacts_load

PAGE_SIZE = 50


def case_messages(case_id: int) -> list[Notification]:
    """Every message of the case, newest first, with its template (one query)."""
    return list(Notification.objects.filter(case_id=case_id).select_related("template").order_by("-created_at", "-pk"))


def client_case_messages(client_id: int, case_id: int) -> QuerySet[Notification]:
    """The client's messages on its case `case_id`, oldest first; none for a case that is not the client's (the
    view answers 404 before asking)."""
    return (
        Notification.objects.filter(
            case_id=case_id, case__account__client_id=client_id, kind__in=CLIENT_NOTIFICATION_KINDS
        )
        .select_related("template")
        .order_by("created_at", "pk")
    )


# ------------------------------------------------------------------------------------------------ compliance


@dataclass(frozen=True)
class MessageFilters:
    case: int | None = None
    account: str = ""  # an account's code, or an id
    kind: str = ""
    channel: str = ""
    status: str = ""
    text: str = ""  # in the subject, the body or the recipient
    since: datetime | None = None
    until: datetime | None = None  # excluded


def messages_search(filters: MessageFilters) -> QuerySet[Notification]:
    """The messages matching the filters, with their case's account (at most one query here, for an account code)."""
    rows = Notification.objects.select_related("case__account", "template")
    if filters.case:
        rows = rows.filter(case_id=filters.case)
    if account := filters.account.strip():
        ids = list(MarginAccount.objects.filter(code=account).values_list("pk", flat=True))
        if account.isdigit():
            ids.append(int(account))
        rows = rows.filter(case__account_id__in=ids)
    for name in ("kind", "channel", "status"):
        if value := getattr(filters, name):
            rows = rows.filter(**{name: value})
    if text := filters.text.strip():
        rows = rows.filter(Q(subject__icontains=text) | Q(body__icontains=text) | Q(recipient__icontains=text))
    if filters.since:
        rows = rows.filter(created_at__gte=filters.since)
    if filters.until:
        rows = rows.filter(created_at__lt=filters.until)
    return rows


@dataclass(frozen=True)
class MessagePage:
    rows: list[Notification]
    older: int | None  # the `before` of the next older page


def messages_page(rows: QuerySet[Notification], *, before: int | None) -> MessagePage:
    """Keyset paging by id, newest first."""
    if before is not None:
        rows = rows.filter(pk__lt=before)
    chunk = list(rows.order_by("-pk")[: PAGE_SIZE + 1])
    shown = chunk[:PAGE_SIZE]
    return MessagePage(rows=shown, older=shown[-1].pk if len(chunk) > PAGE_SIZE else None)


def messages_export_rows(rows: QuerySet[Notification]) -> Iterator[Notification]:
    """The messages in id order, each annotated with the sequence and hash of its last audit event (sent, failed
    or bounced; none while pending), streamed from one query."""
    last_event = AuditEvent.objects.filter(object_type=NOTIFICATION_OBJECT, object_id=OuterRef("pk")).order_by(
        "-sequence"
    )
    return (
        rows.annotate(
            audit_sequence=Subquery(last_event.values("sequence")[:1]),
            audit_hash=Subquery(last_event.values("hash")[:1]),
            audit_action=Subquery(last_event.values("action")[:1]),
        )
        .order_by("pk")
        .iterator(chunk_size=2_000)
    )


# ------------------------------------------------------------------------------------------------ templates


@dataclass
class TemplateSlot:
    """One (kind, channel, locale): the version in use and the draft, if any."""

    kind: str
    channel: str
    locale: str
    published: MessageTemplate | None = None
    draft: MessageTemplate | None = None


def message_templates_overview() -> list[TemplateSlot]:
    """Every (kind, channel, locale) of client messages, with its version in use and its open draft (one query)."""
    slots: dict[tuple[str, str, str], TemplateSlot] = {
        (str(kind), str(channel), locale): TemplateSlot(kind, channel, locale)
        for kind in CLIENT_NOTIFICATION_KINDS
        for channel in TEMPLATED_CHANNELS
        for locale, _name in settings.LANGUAGES
    }
    for template in MessageTemplate.objects.filter(
        status__in=[MessageTemplateStatus.PUBLISHED, MessageTemplateStatus.DRAFT, MessageTemplateStatus.IN_REVIEW]
    ):
        slot = slots.get((template.kind, template.channel, template.locale))
        if slot is None:
            continue
        if template.status == MessageTemplateStatus.PUBLISHED:
            slot.published = template
        else:
            slot.draft = template
    return list(slots.values())


def message_template_versions(kind: str, channel: str, locale: str) -> list[MessageTemplate]:
    """Every version of one (kind, channel, locale), newest first, with who wrote and published it (two queries)."""
    return list(
        MessageTemplate.objects.filter(kind=kind, channel=channel, locale=locale)
        .select_related("created_by", "published_by")
        .prefetch_related("editors")
        .order_by("-version")
    )


def message_template_get(template_id: int) -> MessageTemplate:
    return get_object_or_404(MessageTemplate, pk=template_id)


@dataclass(frozen=True)
class PreviewContext:
    case: Case
    contact: Contact
    context: Mapping[str, Any]
    from_case: list[str] = field(default_factory=list)  # the values read from the case
    samples: list[str] = field(default_factory=list)  # the values the case has none of: the kind's samples


def message_preview_context(case_id: int, kind: str) -> PreviewContext:
    """What a template of `kind` is previewed on for a real case: the case's own values (its account, client,
    state, margin call, and the payload of its latest message of that kind, when it had one), the kind's samples
    for the rest, each list saying which is which."""
    case = get_object_or_404(Case.objects.select_related("account"), pk=case_id)
    contact = contacts_load([case.account_id])[case.account_id]
    real: dict[str, Any] = {
        "case_id": case.pk,
        "account": contact.account_code,
        "currency": contact.currency,
        "state": str(case.state),
    }
    if case.called_at is not None:
        real |= {
            "call_amount": case.call_amount,
            "call_basis": str(case.call_basis),
            "called_at": case.called_at,
            "deadline": case.deadline,
        }
    latest = (
        Notification.objects.filter(case_id=case.pk, kind=kind).order_by("-created_at", "-pk").values("payload").first()
    )
    if latest is not None:
        real.update(latest["payload"])
    declared = variables_of(kind)
    real = {k: v for k, v in real.items() if k in declared}
    samples = {name: v.sample for name, v in declared.items() if name not in real and name not in _NAMES}
    context = message_context(
        kind, {**samples, **real}, client_name=contact.client_name, lender_name=settings.WORKOUT_LENDER_NAME
    )
    return PreviewContext(
        case=case,
        contact=contact,
        context=context,
        from_case=sorted({*real, *_NAMES}),
        samples=sorted(samples),
    )


_NAMES = ("client_name", "lender_name")
