"""Tracking promises to pay (restructuring.models.PromiseToPay), by the beat (restructuring.tasks.promises_track_task).

A promise is KEPT when what arrived on the case's account since it was made, repayments recorded on the
restructured loan (Repayment.received_at) and collateral top-ups confirmed by operations
(CollateralTopUp.decided_at), reaches its amount less the tolerance, by the end of its due date plus the grace
(in the project's time zone):
    received >= amount x (1 - WORKOUT_PROMISE_TOLERANCE)       by the end of due + WORKOUT_PROMISE_GRACE_DAYS
A promise is kept as soon as that holds, before its date too. It is BROKEN once that end has passed without it.

A broken promise reopens the case for action. The state machine does not move: the promise was never a state
(a case in margin call stays in margin call, a restructured one stays restructured, and its missed installments
default it as they always did, restructuring/services/negotiation/deadlines.py). What changes is whom the case
waits for: `Case.follow_up_since` is set to the moment the promise broke, so the case waits for staff again
(the queue's "waiting on" and the follow-up target time count from it), until an officer logs a contact or takes
a new promise (restructuring/services/conversation.py clears it, audited as case.followed_up). The broken
promise stays on the client's record: the rules read the client's promises made, kept and broken
(rules/schema.py's promises_* facts).

The run is bulk and idempotent: it reads the open promises and the money that arrived in a fixed number of
queries, moves only promises still open (a second run finds nothing to do), and skips cases another transaction
holds (they are tracked at the next run). Events: promise.kept, promise.broken, case.follow_up (system actor
"promises"); the client is told of each promise kept or broken (promise_kept, promise_broken).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import AuditEntry, audit_record_many
from core.bulk import bulk_update_fields
from core.money import currency_quantum
from restructuring.audit_events import CASE_FOLLOW_UP, PROMISE_BROKEN, PROMISE_KEPT
from restructuring.models import (
    Case,
    CollateralTopUp,
    NotificationKind,
    PromiseStatus,
    PromiseToPay,
    Repayment,
    TopUpStatus,
)
from restructuring.services.notifications import Notice, notifications_enqueue_many

PROMISES_ACTOR = "promises"


@dataclass(frozen=True)
class PromisesTracked:
    kept: int
    broken: int
    open: int

    def as_dict(self) -> dict[str, int]:
        return {"kept": self.kept, "broken": self.broken, "open": self.open}


def promise_deadline(promise: PromiseToPay) -> datetime:
    """The end of the promise's due date plus the grace, in the project's time zone: money must arrive before."""
    last_day = promise.due + timedelta(days=settings.WORKOUT_PROMISE_GRACE_DAYS + 1)
    return datetime.combine(last_day, time.min, tzinfo=timezone.get_current_timezone())


def promise_required(promise: PromiseToPay) -> Decimal:
    """What must arrive for the promise to be kept: its amount less the tolerance."""
    return promise.amount * (1 - Decimal(settings.WORKOUT_PROMISE_TOLERANCE))


def promises_track(now: datetime | None = None) -> PromisesTracked:
    now = now or timezone.now()
    with transaction.atomic():
        # The cases first (the services lock a case before its promises), skipping any another transaction holds.
        cases = {
            c.pk: c
            for c in Case.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("account")
            .filter(promises__status=PromiseStatus.OPEN)
            .order_by("pk")
        }
        promises = list(
            PromiseToPay.objects.select_for_update()
            .filter(status=PromiseStatus.OPEN, case_id__in=list(cases))
            .order_by("pk")
        )
        received = _received(promises, cases, now)
        kept: list[PromiseToPay] = []
        broken: list[PromiseToPay] = []
        followed: list[Case] = []
        events: list[AuditEntry] = []
        for promise in promises:
            case = cases[promise.case_id]
            # Amounts are multiples of the currency's quantum: this drops the columns' trailing zeros only.
            arrived = received[promise.pk].quantize(currency_quantum(case.account.base_currency))
            if arrived >= promise_required(promise):
                promise.status = PromiseStatus.KEPT
                kept.append(promise)
            elif now >= promise_deadline(promise):
                promise.status = PromiseStatus.BROKEN
                broken.append(promise)
            else:
                continue
            promise.resolved_at, promise.received = now, arrived
            events.append(_event(promise, case, arrived))
            if promise.status == PromiseStatus.BROKEN and case.follow_up_since is None:
                case.follow_up_since, case.updated_at = now, now
                followed.append(case)
                events.append(
                    CASE_FOLLOW_UP.entry(
                        case,
                        account_id=case.account_id,
                        system_actor=PROMISES_ACTOR,
                        reason=f"promise {promise.pk} broken",
                        payload={"promise_id": promise.pk},
                    )
                )
        bulk_update_fields(PromiseToPay, kept + broken, ["status", "resolved_at", "received"])
        bulk_update_fields(Case, followed, ["follow_up_since", "updated_at"])
        audit_record_many(events)
        notifications_enqueue_many(
            notices=[
                Notice(
                    cases[p.case_id],
                    NotificationKind.PROMISE_KEPT
                    if p.status == PromiseStatus.KEPT
                    else NotificationKind.PROMISE_BROKEN,
                    {"promise_id": p.pk, "amount": p.amount, "due": p.due, "received": p.received},
                    f"promise:{p.pk}",
                )
                for p in kept + broken
            ],
            now=now,
        )
    return PromisesTracked(kept=len(kept), broken=len(broken), open=len(promises) - len(kept) - len(broken))


def _event(promise: PromiseToPay, case: Case, arrived: Decimal) -> AuditEntry:
    action = PROMISE_KEPT if promise.status == PromiseStatus.KEPT else PROMISE_BROKEN
    return action.entry(
        promise,
        account_id=case.account_id,
        system_actor=PROMISES_ACTOR,
        from_state=PromiseStatus.OPEN,
        to_state=str(promise.status),
        payload={
            "case_id": case.pk,
            "amount": promise.amount,
            "due": promise.due,
            "received": arrived,
            "required": promise_required(promise).quantize(currency_quantum(case.account.base_currency)),
        },
    )


def _received(promises: list[PromiseToPay], cases: dict[int, Case], now: datetime) -> dict[int, Decimal]:
    """What arrived on each promise's account between its making and its deadline (or now): two queries."""
    if not promises:
        return {}
    account_ids = {cases[p.case_id].account_id for p in promises}
    since = min(p.created_at for p in promises)
    arrivals: dict[int, list[tuple[datetime, Decimal]]] = defaultdict(list)
    for account_id, at, amount in Repayment.objects.filter(
        case__account_id__in=account_ids, received_at__gte=since
    ).values_list("case__account_id", "received_at", "amount"):
        arrivals[account_id].append((at, amount))
    for account_id, decided_at, amount in CollateralTopUp.objects.filter(
        account_id__in=account_ids, status=TopUpStatus.CONFIRMED, decided_at__gte=since
    ).values_list("account_id", "decided_at", "amount"):
        if decided_at is not None:  # always set once confirmed
            arrivals[account_id].append((decided_at, amount))
    out = {}
    for promise in promises:
        end = min(promise_deadline(promise), now)
        out[promise.pk] = sum(
            (a for at, a in arrivals[cases[promise.case_id].account_id] if promise.created_at <= at <= end),
            Decimal(0),
        )
    return out
