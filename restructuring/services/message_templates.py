"""Message templates: the text of every client message, one per (kind, channel, locale), as data staff change.

The text a client receives is policy, so it changes with four eyes, on the record:

    draft --submit--> in review --publish (a second person)--> published --(a later version published)--> retired
      ^                   |
      +----- reject ------+  (the reviewer's reason; the draft is edited again)

- `message_template_save`: a credit officer (restructuring.change_messagetemplate) writes a draft: the first save
  starts one from the version in use (the next version number), later saves change it; saving a draft in review
  takes it out of review. Each save is checked (core/message_templates.py: it parses in the sandbox, names only
  its kind's variables, renders on the kind's sample values within the channel's length) and audited with its
  text. Whoever saves it is one of its authors.
- `message_template_submit`: an author sends it for review.
- `message_template_publish`: a reviewer (restructuring.publish_messagetemplate: a senior credit officer) who is
  not one of its authors publishes it; the version in use is retired in the same transaction. From then on every
  message of its (kind, channel, locale) is rendered from it, and records it (Notification.template).
- `message_template_reject`: the same reviewer sends it back, with a reason.

Published and retired versions never change. One draft at most per (kind, channel, locale), and one published
(database constraints).

The versions shipped with the code (restructuring/message_defaults.py) are installed after every migrate where a
(kind, channel, locale) has no template at all (`message_templates_ensure`, like the roles): they are the code's
text, reviewed with it, and carry no author nor publisher; installing them writes no audit event (the release
is their record). Every later version has its authors, its reviewer and its events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.template import Template
from django.utils import timezone

from core.audit import audit_record
from core.audit_catalogue import AuditAction
from core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.message_templates import TemplateProblem, render, template_check
from restructuring.audit_events import (
    MESSAGE_TEMPLATE_EDIT,
    MESSAGE_TEMPLATE_PUBLISH,
    MESSAGE_TEMPLATE_REJECT,
    MESSAGE_TEMPLATE_SUBMIT,
)
from restructuring.message_catalogue import RENDERED_MAX_CHARS, SUBJECT_MAX_CHARS, sample_context, variables_of
from restructuring.message_defaults import default_text
from restructuring.models import (
    CLIENT_NOTIFICATION_KINDS,
    TEMPLATED_CHANNELS,
    MessageTemplate,
    MessageTemplateStatus,
    NotificationChannel,
)

OPEN_STATUSES = (MessageTemplateStatus.DRAFT, MessageTemplateStatus.IN_REVIEW)


class MessageTemplateInvalidError(ValidationError):
    code = "message_template_invalid"


class MessageTemplateConflictError(Conflict):
    code = "message_template_conflict"


class MessageTemplateReviewError(PermissionDenied):
    """Reviewing needs the permission and a second person: nobody reviews a template they wrote or edited."""

    code = "message_template_four_eyes"


# ------------------------------------------------------------------------------------------------ checking


@dataclass(frozen=True)
class CompiledTemplate:
    """A template's subject and body, parsed by the sandbox once; `html` for a letter (autoescaped)."""

    subject: Template | None
    body: Template
    html: bool

    def render(self, context: Mapping[str, Any], *, locale: str, time_zone: Any = None) -> tuple[str, str]:
        subject = ""
        if self.subject is not None:
            # One line: an email's subject is a header (a line break in it would start another).
            rendered = render(self.subject, context, html=False, locale=locale, time_zone=time_zone)
            subject = " ".join(line.strip() for line in rendered.splitlines() if line.strip())
        body = render(self.body, context, html=self.html, locale=locale, time_zone=time_zone)
        return subject[:SUBJECT_MAX_CHARS], body


def message_template_compile(*, kind: str, channel: str, subject: str, body: str) -> CompiledTemplate:
    """Check a template's text against the sandbox's rules and its kind's variables, and render it on the kind's
    sample values within the channel's length: MessageTemplateInvalidError names the field and the problem."""
    known = frozenset(variables_of(kind))
    compiled_subject = None
    if channel == NotificationChannel.SMS:
        if subject.strip():
            raise MessageTemplateInvalidError("an SMS has no subject: leave it empty", field="subject")
    else:
        if not subject.strip():
            raise MessageTemplateInvalidError(f"a {channel} needs a subject", field="subject")
        if len(subject) > SUBJECT_MAX_CHARS:
            raise MessageTemplateInvalidError(
                f"the subject is longer than {SUBJECT_MAX_CHARS} characters", field="subject"
            )
        compiled_subject = _checked(subject, known, "subject")
    if not body.strip():
        raise MessageTemplateInvalidError("the message has no text", field="body")
    compiled = CompiledTemplate(
        subject=compiled_subject, body=_checked(body, known, "body"), html=channel == NotificationChannel.LETTER
    )
    _, rendered = compiled.render(sample_context(kind), locale="en")
    limit = RENDERED_MAX_CHARS[NotificationChannel(channel)]
    if len(rendered) > limit:
        raise MessageTemplateInvalidError(
            f"rendered on the sample values, the {channel} is {len(rendered)} characters long: at most {limit}",
            field="body",
        )
    return compiled


def _checked(source: str, known: frozenset[str], field: str) -> Template:
    try:
        return template_check(source, known=known).template
    except TemplateProblem as problem:
        raise MessageTemplateInvalidError(f"{field}: {problem}", field=field) from None


_compiled: dict[int, CompiledTemplate] = {}


def message_template_compiled(template: MessageTemplate) -> CompiledTemplate:
    """A published or retired version, parsed once per process (those versions never change); a draft each time."""
    if template.status in OPEN_STATUSES:
        return message_template_compile(
            kind=template.kind, channel=template.channel, subject=template.subject, body=template.body
        )
    compiled = _compiled.get(template.pk)
    if compiled is None:
        compiled = _compiled[template.pk] = message_template_compile(
            kind=template.kind, channel=template.channel, subject=template.subject, body=template.body
        )
    return compiled


def content_sha256(subject: str, body: str) -> str:
    """A version's text, hashed: what exactly was published (subject, a NUL, body)."""
    return hashlib.sha256(f"{subject}\x00{body}".encode()).hexdigest()


# ------------------------------------------------------------------------------------------------ the workflow


def _require(actor: User, permission: str, what: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(f"{actor.get_username()} may not {what}")


def _key_check(kind: str, channel: str, locale: str) -> None:
    if kind not in CLIENT_NOTIFICATION_KINDS:
        raise ValidationError(f"kind {kind!r}: not a client message", field="kind")
    if channel not in TEMPLATED_CHANNELS:
        raise ValidationError(f"channel {channel!r}: messages are templated for email, sms and letter", field="channel")
    if locale not in {code for code, _name in settings.LANGUAGES}:
        raise ValidationError(f"locale {locale!r}: not one of the site's languages", field="locale")


def _event(
    template: MessageTemplate, action: AuditAction[MessageTemplate], actor: User, before: str, **payload: Any
) -> None:
    audit_record(
        action.entry(
            template,
            actor=actor,
            from_state=before,
            to_state=str(template.status),
            payload={
                "kind": template.kind,
                "channel": template.channel,
                "locale": template.locale,
                "version": template.version,
                **payload,
            },
        )
    )


def message_template_save(
    *, kind: str, channel: str, locale: str, subject: str, body: str, actor: User
) -> MessageTemplate:
    """Write the draft of (kind, channel, locale): start one from the version in use, or change the one there is."""
    _require(actor, "restructuring.change_messagetemplate", "edit message templates")
    _key_check(kind, channel, locale)
    message_template_compile(kind=kind, channel=channel, subject=subject, body=body)
    now = timezone.now()
    try:
        with transaction.atomic():
            draft = (
                MessageTemplate.objects.select_for_update()
                .filter(kind=kind, channel=channel, locale=locale, status__in=OPEN_STATUSES)
                .first()
            )
            before = ""
            if draft is None:
                in_use = MessageTemplate.objects.filter(
                    kind=kind, channel=channel, locale=locale, status=MessageTemplateStatus.PUBLISHED
                ).first()
                latest = MessageTemplate.objects.filter(kind=kind, channel=channel, locale=locale).aggregate(
                    v=Max("version")
                )["v"]
                draft = MessageTemplate(
                    kind=kind,
                    channel=channel,
                    locale=locale,
                    version=(latest or 0) + 1,
                    based_on=in_use,
                    created_by=actor,
                    created_at=now,
                )
            else:
                before = str(draft.status)
            if draft.pk is not None and draft.subject == subject and draft.body == body:
                return draft  # nothing changed: no new event
            draft.subject, draft.body, draft.updated_at = subject, body, now
            draft.status, draft.submitted_at = MessageTemplateStatus.DRAFT, None
            draft.save()
            draft.editors.add(actor)
            _event(
                draft,
                MESSAGE_TEMPLATE_EDIT,
                actor,
                before,
                based_on=draft.based_on.version if draft.based_on else None,
                subject=subject,
                body=body,
                sha256=content_sha256(subject, body),
            )
    except IntegrityError:  # another officer started the draft at the same moment: theirs stands
        raise MessageTemplateConflictError(
            f"{kind} {channel} {locale}: another draft was started at the same time; open it and edit that one"
        ) from None
    return draft


def _template(template_id: int) -> MessageTemplate:
    template = MessageTemplate.objects.select_for_update().filter(pk=template_id).first()
    if template is None:
        raise NotFound(f"message template {template_id} does not exist", template_id=template_id)
    return template


def message_template_authors(template: MessageTemplate) -> set[int]:
    authors = set(template.editors.values_list("pk", flat=True))
    if template.created_by_id is not None:
        authors.add(template.created_by_id)
    return authors


def message_template_submit(*, template_id: int, actor: User) -> MessageTemplate:
    _require(actor, "restructuring.change_messagetemplate", "submit message templates")
    with transaction.atomic():
        template = _template(template_id)
        if template.status != MessageTemplateStatus.DRAFT:
            raise MessageTemplateConflictError(f"message template {template_id} is {template.status}: not a draft")
        template.status, template.submitted_at = MessageTemplateStatus.IN_REVIEW, timezone.now()
        template.save(update_fields=["status", "submitted_at"])
        _event(template, MESSAGE_TEMPLATE_SUBMIT, actor, MessageTemplateStatus.DRAFT)
    return template


def _reviewable(template: MessageTemplate, actor: User, what: str) -> None:
    if template.status != MessageTemplateStatus.IN_REVIEW:
        raise MessageTemplateConflictError(
            f"message template {template.pk} is {template.status}: only a template in review is {what}"
        )
    if actor.pk in message_template_authors(template):
        raise MessageTemplateReviewError(
            f"{actor.get_username()} wrote or edited {template.kind} {template.channel} {template.locale} "
            f"v{template.version}: another person must review it",
            template_id=template.pk,
        )


def message_template_publish(*, template_id: int, actor: User) -> MessageTemplate:
    """Put a reviewed version in use (four eyes: not by one of its authors); the version in use is retired."""
    _require(actor, "restructuring.publish_messagetemplate", "publish message templates")
    with transaction.atomic():
        template = _template(template_id)
        _reviewable(template, actor, "published")
        message_template_compile(
            kind=template.kind, channel=template.channel, subject=template.subject, body=template.body
        )
        previous = (
            MessageTemplate.objects.select_for_update()
            .filter(
                kind=template.kind,
                channel=template.channel,
                locale=template.locale,
                status=MessageTemplateStatus.PUBLISHED,
            )
            .first()
        )
        if previous is not None:
            previous.status = MessageTemplateStatus.RETIRED
            previous.save(update_fields=["status"])
        now = timezone.now()
        template.status, template.published_by, template.published_at = MessageTemplateStatus.PUBLISHED, actor, now
        template.review_note = ""
        template.save(update_fields=["status", "published_by", "published_at", "review_note"])
        _event(
            template,
            MESSAGE_TEMPLATE_PUBLISH,
            actor,
            MessageTemplateStatus.IN_REVIEW,
            retired=previous.version if previous else None,
            subject=template.subject,
            body=template.body,
            sha256=content_sha256(template.subject, template.body),
            authors=sorted(message_template_authors(template)),
        )
    return template


def message_template_reject(*, template_id: int, actor: User, reason: str) -> MessageTemplate:
    _require(actor, "restructuring.publish_messagetemplate", "review message templates")
    if not reason.strip():
        raise ValidationError("sending a template back needs a reason", field="reason")
    with transaction.atomic():
        template = _template(template_id)
        _reviewable(template, actor, "sent back")
        template.status, template.submitted_at, template.review_note = MessageTemplateStatus.DRAFT, None, reason
        template.save(update_fields=["status", "submitted_at", "review_note"])
        _event(template, MESSAGE_TEMPLATE_REJECT, actor, MessageTemplateStatus.IN_REVIEW, reason=reason)
    return template


# ------------------------------------------------------------------------------------------------ in use


def published_templates() -> dict[tuple[str, str, str], MessageTemplate]:
    """The version in use of every (kind, channel, locale): one query."""
    return {
        (t.kind, t.channel, t.locale): t
        for t in MessageTemplate.objects.filter(status=MessageTemplateStatus.PUBLISHED).only(
            "pk", "kind", "channel", "locale", "version", "status", "subject", "body"
        )
    }


def message_templates_ensure(**_: Any) -> int:
    """Install the shipped version (restructuring/message_defaults.py) of every (kind, channel, locale) that has no
    template at all, published as version 1 (module docstring). Idempotent; a post_migrate receiver. Returns how
    many it installed."""
    have = set(MessageTemplate.objects.values_list("kind", "channel", "locale").distinct())
    now = timezone.now()
    rows = []
    for kind in CLIENT_NOTIFICATION_KINDS:
        for channel in TEMPLATED_CHANNELS:
            for locale, _name in settings.LANGUAGES:
                if (kind, channel, locale) in have:
                    continue
                subject, body = default_text(kind, channel, locale)
                rows.append(
                    MessageTemplate(
                        kind=kind,
                        channel=channel,
                        locale=locale,
                        version=1,
                        status=MessageTemplateStatus.PUBLISHED,
                        subject=subject,
                        body=body,
                        created_at=now,
                        updated_at=now,
                        published_at=now,
                    )
                )
    MessageTemplate.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
