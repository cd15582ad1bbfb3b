"""SLA breach escalation: the beat (restructuring.tasks.sla_escalate_task) finds every open case whose SLA clock
(restructuring/sla.py) is past its due time and escalates each breach once, to the senior of the case's team:
an SlaEscalation row, a "case.sla_breach" audit event, and an email to the senior through the notifications
outbox. A breach is one clock of one case from one start, so running the beat twice escalates it once (the
rows already escalated are skipped, and the unique constraint backs it; runs are serialised by an advisory
lock), while a case that waits again later (a new start) is a new breach. A case without a team, or a team
without a senior, is still escalated on the record (escalated to nobody) and shows so on the case.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.audit import audit_record_many
from restructuring.audit_events import CASE_SLA_BREACH
from restructuring.models import (
    OPEN_STATES,
    Case,
    Notification,
    NotificationChannel,
    NotificationKind,
    SlaEscalation,
)
from restructuring.services.notifications import staff_notifications_enqueue
from restructuring.sla import LABELS, sla_annotate

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "sla"
_LOCK_KEY = 0x5752_4B53_4C41_4553  # "WRKSLAES"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def sla_breaches_escalate(*, now: datetime | None = None) -> int:
    """Escalate every breach not yet escalated; returns how many. A fixed number of queries whatever the count."""
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        done = SlaEscalation.objects.filter(
            case_id=OuterRef("pk"), clock=OuterRef("sla_clock"), started_at=OuterRef("sla_started_at")
        )
        rows = list(
            sla_annotate(Case.objects.filter(state__in=OPEN_STATES), now)
            .filter(sla_due_at__lte=now)
            .exclude(Exists(done))
            .order_by("pk")
            .values_list(
                "pk",
                "account_id",
                "account__code",
                "state",
                "sla_clock",
                "sla_started_at",
                "sla_due_at",
                "sla_target_hours",
                "team__senior_id",
                "team__senior__username",
                "team__senior__email",
                "assignee__username",
            )
        )
        escalations, entries, notices = [], [], []
        for pk, account_id, code, state, clock, started, due, hours, senior_id, senior, email, assignee in rows:
            escalations.append(
                SlaEscalation(
                    case_id=pk, clock=clock, started_at=started, due_at=due, escalated_to_id=senior_id, created_at=now
                )
            )
            details = {
                "clock": clock,
                "started_at": started,
                "due_at": due,
                "target_hours": Decimal(str(hours)),  # the trail records no floats
                "escalated_to": senior or "",
                "assignee": assignee or "",
            }
            entries.append(
                CASE_SLA_BREACH.entry(
                    Case(pk=pk),  # a handle for the builder, which reads the pk
                    account_id=account_id,
                    system_actor=SYSTEM_ACTOR,
                    payload=details,
                )
            )
            if email:
                notices.append(
                    Notification(
                        case_id=pk,
                        kind=NotificationKind.SLA_BREACH,
                        channel=NotificationChannel.EMAIL,
                        recipient=email,
                        dedupe_key=f"{clock}:{started:%Y%m%dT%H%M%S.%f}"[:64],
                        payload={
                            **details,
                            "started_at": _iso(started),
                            "due_at": _iso(due),
                            "target_hours": str(hours),
                            "clock_label": str(LABELS.get(clock, clock)),  # the beat's language: English
                            "case_id": pk,
                            "account": code,
                            "state": state,
                        },
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        SlaEscalation.objects.bulk_create(escalations)
        audit_record_many(entries)
        staff_notifications_enqueue(rows=notices)
    if rows:
        logger.info("SLA: %d breaches escalated", len(rows))
    return len(rows)


__all__ = ["sla_breaches_escalate"]
