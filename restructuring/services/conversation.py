"""The conversation with the client: officers' notes, the contact log and promises to pay.

Notes and contacts are written once and never changed (the tables refuse UPDATE and DELETE): a correction is a
new entry that names the one it corrects, on the same case, and says what was wrong in its own text. Each entry
is audited (note.add, contact.log, promise.make) with its whole content, so compliance finds it in the audit
search and the case's history. A note is internal; a contact is shown to the client (its API timeline), without
its summary or the officer's name.

A promise to pay is taken by an officer (from the case page, often with the contact it was made in) or sent by
the client through the API. It is tracked by restructuring/services/promises.py. A case has at most one open
promise: a second is refused until the first is kept or broken.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from core.audit import AuditEntry, audit_record_many
from core.errors import Conflict, NotFoundError, PermissionDenied, ValidationError
from core.money import amount_check, money_text
from restructuring.audit_events import CASE_FOLLOWED_UP, CONTACT_LOG, NOTE_ADD, PROMISE_MAKE
from restructuring.models import (
    CLOSED_STATES,
    Case,
    Contact,
    ContactChannel,
    ContactDirection,
    ContactOutcome,
    Note,
    PromiseMethod,
    PromiseSource,
    PromiseStatus,
    PromiseToPay,
)

# A reminder or a promise further out than this is a typing error, not a plan.
MAX_DAYS_AHEAD = 366
TEXT_MAX = 10_000


class PromiseConflict(Conflict):
    """The case already has an open promise, or is closed."""

    code = "promise_conflict"


def _require(actor: User, permission: str, what: str) -> None:
    if not actor.has_perm(permission):
        raise PermissionDenied(
            gettext("%(actor)s may not %(what)s") % {"actor": actor.get_username(), "what": gettext(what)},
            permission=permission,
        )


def _case(case_id: int) -> Case:
    """The case, locked (entries on one case are written one after another)."""
    case = Case.objects.select_for_update(of=("self",)).select_related("account__client").filter(pk=case_id).first()
    if case is None:
        raise NotFoundError(gettext("case %(case_id)s does not exist") % {"case_id": case_id}, case_id=case_id)
    return case


def _text(value: str, field: str, *, required: bool) -> str:
    text = value.strip()
    if required and not text:
        raise ValidationError(gettext("%(field)s: cannot be empty") % {"field": field}, field=field)
    if len(text) > TEXT_MAX:
        raise ValidationError(
            gettext("%(field)s: at most %(limit)s characters, not %(length)s")
            % {"field": field, "limit": TEXT_MAX, "length": len(text)},
            field=field,
        )
    if "\x00" in text:
        raise ValidationError(gettext("%(field)s: contains a NUL character") % {"field": field}, field=field)
    return text


def _future_date(value: date, field: str, today: date, *, allow_past: bool = False) -> None:
    if not allow_past and value < today:
        raise ValidationError(
            gettext("%(field)s: %(date)s is in the past") % {"field": field, "date": value.isoformat()},
            field=field,
        )
    if (value - today).days > MAX_DAYS_AHEAD:
        raise ValidationError(
            gettext("%(field)s: %(date)s is more than %(days)s days ahead")
            % {"field": field, "date": value.isoformat(), "days": MAX_DAYS_AHEAD},
            field=field,
        )


def _corrected(model: type[Note] | type[Contact], corrects_id: int | None, case: Case) -> int | None:
    if corrects_id is None:
        return None
    if not model.objects.filter(pk=corrects_id, case=case).exists():
        name = model._meta.model_name
        raise ValidationError(
            gettext("corrects: %(name)s %(corrects_id)s is not on case %(case_pk)s")
            % {"name": name, "corrects_id": corrects_id, "case_pk": case.pk},
            field="corrects",
        )
    return corrects_id


def note_add(
    *, case_id: int, text: str, actor: User, remind_on: date | None = None, corrects_id: int | None = None
) -> Note:
    """An officer's note on a case, with an optional reminder date (today or later); `corrects_id` names the note
    this one corrects."""
    _require(actor, "restructuring.add_note", gettext_noop("add notes"))
    body = _text(text, "text", required=True)
    now = timezone.now()
    if remind_on is not None:
        _future_date(remind_on, "remind_on", timezone.localdate(now))
    with transaction.atomic():
        case = _case(case_id)
        note = Note.objects.create(
            case=case,
            author=actor,
            text=body,
            remind_on=remind_on,
            corrects_id=_corrected(Note, corrects_id, case),
            created_at=now,
        )
        audit_record_many(
            [
                NOTE_ADD.entry(
                    note,
                    account_id=case.account_id,
                    actor=actor,
                    payload={"case_id": case.pk, "text": body, "remind_on": remind_on, "corrects": corrects_id},
                )
            ]
        )
    return note


def contact_log(
    *,
    case_id: int,
    channel: str,
    direction: str,
    outcome: str,
    actor: User,
    person: str = "",
    summary: str = "",
    corrects_id: int | None = None,
) -> Contact:
    """A contact with the client, logged by the officer who made or took it. Logging one follows up a broken
    promise: the case no longer waits for staff on its account."""
    _require(actor, "restructuring.add_contact", gettext_noop("log contacts"))
    for field, value, choices in (
        ("channel", channel, ContactChannel),
        ("direction", direction, ContactDirection),
        ("outcome", outcome, ContactOutcome),
    ):
        if value not in choices.values:
            raise ValidationError(
                gettext("%(field)s: %(value)s is not one of %(choices)s")
                % {"field": field, "value": repr(value), "choices": ", ".join(choices.values)},
                field=field,
            )
    who = _text(person, "person", required=False)
    if len(who) > 200:
        raise ValidationError(
            gettext("person: at most 200 characters, not %(length)s") % {"length": len(who)}, field="person"
        )
    body = _text(summary, "summary", required=False)
    now = timezone.now()
    with transaction.atomic():
        case = _case(case_id)
        contact = Contact.objects.create(
            case=case,
            officer=actor,
            channel=channel,
            direction=direction,
            outcome=outcome,
            person=who,
            summary=body,
            corrects_id=_corrected(Contact, corrects_id, case),
            created_at=now,
        )
        events = [
            CONTACT_LOG.entry(
                contact,
                account_id=case.account_id,
                actor=actor,
                payload={
                    "case_id": case.pk,
                    "channel": channel,
                    "direction": direction,
                    "outcome": outcome,
                    "person": who,
                    "summary": body,
                    "corrects": corrects_id,
                },
            )
        ]
        events += _followed_up(case, now, actor, f"contact {contact.pk}")
        audit_record_many(events)
    return contact


def _followed_up(case: Case, now: datetime, actor: User | None, by: str) -> list[AuditEntry]:
    """A contact or a new promise follows up a broken one: the case no longer waits for staff (case.follow_up)."""
    if case.follow_up_since is None:
        return []
    since = case.follow_up_since
    case.follow_up_since = None
    case.save(update_fields=["follow_up_since", "updated_at"])
    return [
        CASE_FOLLOWED_UP.entry(
            case,
            account_id=case.account_id,
            actor=actor,
            system_actor="" if actor is not None else f"client:{case.account.client.code}"[:64],
            payload={"since": since, "by": by},
        )
    ]


def promise_make(
    *,
    case_id: int,
    amount: Decimal,
    due: date,
    method: str,
    actor: User | None = None,
    client_id: int | None = None,
    contact_id: int | None = None,
) -> PromiseToPay:
    """A promise to pay `amount` (in the account's currency, with at most its places) by `due` (today or later),
    by `method`: taken by the officer `actor`, or sent by the client `client_id` (whose case it must be: another
    client's case is not found). Refused while the case has an open promise, or once it is closed."""
    if (actor is None) == (client_id is None):
        raise ValueError("a promise is taken by an officer or sent by the client: exactly one of actor, client_id")
    if actor is not None:
        _require(actor, "restructuring.add_promisetopay", gettext_noop("take promises to pay"))
    if not (isinstance(amount, Decimal) and amount.is_finite() and amount > 0):
        raise ValidationError(
            gettext("amount %(amount)s: a promise is a positive amount") % {"amount": amount}, field="amount"
        )
    if method not in PromiseMethod.values:
        raise ValidationError(
            gettext("method: %(method)s is not one of %(choices)s")
            % {"method": repr(method), "choices": ", ".join(PromiseMethod.values)},
            field="method",
        )
    now = timezone.now()
    _future_date(due, "due", timezone.localdate(now))
    with transaction.atomic():
        if client_id is not None and not Case.objects.filter(pk=case_id, account__client_id=client_id).exists():
            raise NotFoundError(gettext("case %(case_id)s does not exist") % {"case_id": case_id}, case_id=case_id)
        case = _case(case_id)
        if case.state in CLOSED_STATES:
            raise PromiseConflict(
                gettext("case %(case_pk)s is %(case_state)s: a closed case takes no promise")
                % {"case_pk": case.pk, "case_state": case.state},
                case_id=case.pk,
            )
        amount_check(amount, case.account.base_currency, field="amount")
        if contact_id is not None and not Contact.objects.filter(pk=contact_id, case=case).exists():
            raise ValidationError(
                gettext("contact: contact %(contact_id)s is not on case %(case_pk)s")
                % {"contact_id": contact_id, "case_pk": case.pk},
                field="contact",
            )
        open_one = PromiseToPay.objects.filter(case=case, status=PromiseStatus.OPEN).first()
        if open_one is not None:
            raise PromiseConflict(
                gettext(
                    "case %(case_pk)s has an open promise (%(amount)s by "
                    "%(due)s): it is kept or broken before another is taken"
                )
                % {
                    "case_pk": case.pk,
                    "amount": money_text(open_one.amount, case.account.base_currency),
                    "due": open_one.due.isoformat(),
                },
                case_id=case.pk,
                promise_id=open_one.pk,
            )
        try:
            with transaction.atomic():
                promise = PromiseToPay.objects.create(
                    case=case,
                    amount=amount,
                    due=due,
                    method=method,
                    source=PromiseSource.OFFICER if actor is not None else PromiseSource.CLIENT,
                    made_by=actor,
                    contact_id=contact_id,
                    created_at=now,
                )
        except IntegrityError:  # another open promise committed since the check (the case lock makes this rare)
            raise PromiseConflict(
                gettext("case %(case_pk)s has an open promise") % {"case_pk": case.pk}, case_id=case.pk
            ) from None
        client_actor = f"client:{case.account.client.code}"[:64]
        events = [
            PROMISE_MAKE.entry(
                promise,
                account_id=case.account_id,
                actor=actor,
                system_actor="" if actor is not None else client_actor,
                to_state=PromiseStatus.OPEN,
                payload={
                    "case_id": case.pk,
                    "amount": amount,
                    "due": due,
                    "method": method,
                    "source": promise.source,
                    "contact_id": contact_id,
                },
            )
        ]
        events += _followed_up(case, now, actor, f"promise {promise.pk}")
        audit_record_many(events)
    return promise


def contact_log_with_promise(
    *,
    case_id: int,
    channel: str,
    direction: str,
    outcome: str,
    actor: User,
    person: str = "",
    summary: str = "",
    corrects_id: int | None = None,
    promise: dict[str, Any] | None = None,
) -> tuple[Contact, PromiseToPay | None]:
    """A contact and the promise to pay the client made in it (`promise`: amount, due, method), together or not at
    all: a promise refused (a second open one, a date past) leaves no contact either."""
    with transaction.atomic():
        contact = contact_log(
            case_id=case_id,
            channel=channel,
            direction=direction,
            outcome=outcome,
            actor=actor,
            person=person,
            summary=summary,
            corrects_id=corrects_id,
        )
        if promise is None:
            return contact, None
        for field in ("amount", "due"):
            if promise.get(field) is None:
                raise ValidationError(
                    gettext("promise_%(field)s: a promise needs its amount and its date") % {"field": field},
                    field=field,
                )
        made = promise_make(
            case_id=case_id,
            amount=promise["amount"],
            due=promise["due"],
            method=promise["method"],
            actor=actor,
            contact_id=contact.pk,
        )
    return contact, made
