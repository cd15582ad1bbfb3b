"""Bulk actions on the queue: one action over the cases an officer selected, case by case.

Each case is its own step, in its own savepoint: the action's service runs as it would for one case (its checks,
its one audit event), and a refusal (a core.errors.WorkoutError) is recorded against that case and changes
nothing of it, while the other cases go on. The answer is a summary: done, and refused with the reason, per case.

The actions (BULK_ACTIONS):
- `remind`: send the client the reminder notification of what the case waits for (a margin call's deadline, an
  offer's expiry), audited "case.reminder". Refused for a case that waits on nobody but staff, for one reminded
  less than WORKOUT_REMINDER_MIN_HOURS ago (a client is not spammed by two officers on one morning), and for a
  client with no channel to be reached by (no email, phone, postal address or webhook it takes messages on).
- `reassign`: give the cases to another officer (restructuring/services/assignment.py case_reassign: seniors
  only, audited "case.reassign").
- `note`: the same note on each case (restructuring/services/conversation.py note_add, audited "note.add").
- `contact`: the same contact logged on each case (conversation.contact_log, audited "contact.log"): a letter sent
  to each client, say.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from core.audit import audit_record
from core.errors import ConflictError, NotFoundError, ValidationError, WorkoutError
from restructuring.audit_events import CASE_REMINDER
from restructuring.models import Case, CaseState, Notification, NotificationKind
from restructuring.services.notifications import notification_enqueue

# What each state that waits on the client reminds them of.
REMINDABLE = {
    CaseState.MARGIN_CALL: gettext_noop("margin call deadline"),
    CaseState.OFFERED: gettext_noop("offer awaiting an answer"),
}


@dataclass(frozen=True)
class BulkOutcome:
    case_id: int
    done: bool
    message: str  # what was done, or why it was refused


@dataclass
class BulkResult:
    action: str
    outcomes: list[BulkOutcome] = field(default_factory=list)

    @property
    def done(self) -> list[BulkOutcome]:
        return [o for o in self.outcomes if o.done]

    @property
    def refused(self) -> list[BulkOutcome]:
        return [o for o in self.outcomes if not o.done]


def cases_bulk(*, action: str, case_ids: Sequence[int], actor: User, params: Mapping[str, str]) -> BulkResult:
    """Run `action` on each case of `case_ids` (module docstring). ValidationError for an unknown action, no case,
    or more than WORKOUT_BULK_MAX_CASES: then nothing is done."""
    step = BULK_ACTIONS.get(action)
    if step is None:
        raise ValidationError(
            gettext("action %(action)s: not one of %(actions)s")
            % {"action": repr(action), "actions": ", ".join(sorted(BULK_ACTIONS))},
            field="action",
        )
    ids = list(dict.fromkeys(case_ids))  # each case once, in the order given
    if not ids:
        raise ValidationError(gettext("cases: select at least one case"), field="cases")
    limit = int(settings.WORKOUT_BULK_MAX_CASES)
    if len(ids) > limit:
        raise ValidationError(
            gettext("cases: %(count)s selected, at most %(limit)s at once") % {"count": len(ids), "limit": limit},
            field="cases",
        )
    now = timezone.now()
    result = BulkResult(action=action)
    for case_id in ids:
        try:
            with transaction.atomic():
                message = step(case_id, actor, params, now)
        except WorkoutError as error:
            result.outcomes.append(BulkOutcome(case_id, False, str(error)))
        else:
            result.outcomes.append(BulkOutcome(case_id, True, message))
    return result


def case_remind(case_id: int, actor: User, params: Mapping[str, str], now: datetime) -> str:
    """Send the client the reminder of what its case waits for (module docstring), with its audit event."""
    case = Case.objects.select_for_update().filter(pk=case_id).first()
    if case is None:
        raise NotFoundError(gettext("no case #%(case_id)s") % {"case_id": case_id}, field="cases")
    awaited = REMINDABLE.get(CaseState(case.state))
    if awaited is None:
        raise ConflictError(
            gettext("case #%(case_id)s is %(state)s: it waits on nothing from the client")
            % {"case_id": case_id, "state": case.get_state_display().lower()}
        )
    hours = float(settings.WORKOUT_REMINDER_MIN_HOURS)
    recent = Notification.objects.filter(
        case_id=case_id, kind=NotificationKind.DEADLINE_REMINDER, created_at__gt=now - timedelta(hours=hours)
    )
    if recent.exists():
        raise ConflictError(
            gettext("case #%(case_id)s: reminded less than %(hours)s hours ago")
            % {"case_id": case_id, "hours": format(hours, "g")}
        )
    due = case.deadline if case.state == CaseState.MARGIN_CALL else _offer_expiry(case)
    payload: dict[str, Any] = {"awaited": awaited, "due": due.isoformat() if due else None}
    sent = notification_enqueue(
        case=case,
        kind=NotificationKind.DEADLINE_REMINDER,
        payload=payload,
        dedupe_key=f"reminder:{now:%Y%m%dT%H%M%S}",
    )
    if not sent:
        raise ConflictError(
            gettext("case #%(case_id)s: the client has no channel to remind it by") % {"case_id": case_id}
        )
    audit_record(
        CASE_REMINDER.entry(
            case, actor=actor, account_id=case.account_id, from_state=case.state, to_state=case.state, payload=payload
        )
    )
    return gettext("case #%(case_id)s: reminder of the %(awaited)s sent") % {
        "case_id": case_id,
        "awaited": gettext(awaited),
    }


def _offer_expiry(case: Case) -> datetime | None:
    offered = case.proposals.filter(state="offered").order_by("expires_at").values_list("expires_at", flat=True)
    return offered.first()


def case_bulk_reassign(case_id: int, actor: User, params: Mapping[str, str], now: datetime) -> str:
    from restructuring.services.assignment import case_reassign

    to = (params.get("to") or "").strip()
    if not to:
        raise ValidationError(gettext("to: name the officer the cases go to"), field="to")
    case_reassign(case_id=case_id, to=to, actor=actor, reason=params.get("reason", ""), now=now)
    return gettext("case #%(case_id)s: now %(officer)s's") % {"case_id": case_id, "officer": to}


def case_bulk_note(case_id: int, actor: User, params: Mapping[str, str], now: datetime) -> str:
    from restructuring.services.conversation import note_add

    note_add(case_id=case_id, text=params.get("text", ""), actor=actor)
    return gettext("case #%(case_id)s: note added") % {"case_id": case_id}


def case_bulk_contact(case_id: int, actor: User, params: Mapping[str, str], now: datetime) -> str:
    from restructuring.services.conversation import contact_log

    contact_log(
        case_id=case_id,
        channel=params.get("channel", ""),
        direction=params.get("direction", ""),
        outcome=params.get("outcome", ""),
        summary=params.get("text", ""),
        actor=actor,
    )
    return gettext("case #%(case_id)s: contact logged") % {"case_id": case_id}


BULK_ACTIONS: dict[str, Callable[[int, User, Mapping[str, str], datetime], str]] = {
    "remind": case_remind,
    "reassign": case_bulk_reassign,
    "note": case_bulk_note,
    "contact": case_bulk_contact,
}
