"""Celery tasks of the case workflow: thin wrappers that take ids and call the service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from restructuring.selectors.feasibility import counter_followups_due, feasibility_due_case_ids, proposals_due_case_ids
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.feasibility import feasibility_batches, feasibility_compute
from restructuring.services.liquidation import deadlines_run
from restructuring.services.negotiation.deadlines import negotiation_deadlines_run
from restructuring.services.negotiation.offers import counter_followup
from restructuring.services.notifications import (
    notifications_drain,
    notifications_remind_deadlines,
    notifications_remind_installments,
    notifications_send,
)
from restructuring.services.promises import promises_track
from restructuring.services.proposals import proposals_from_rules
from restructuring.services.sla import sla_breaches_escalate


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def cases_apply_risk_task(*, sweep_id: int) -> dict[str, int]:
    """Idempotent: it moves only the cases the current risk state calls for, so a second run does nothing."""
    return cases_apply_risk(sweep_id=sweep_id).as_dict()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def deadlines_run_task() -> list[int]:
    """Idempotent: a case already liquidating is left as it is."""
    return deadlines_run()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def notifications_send_task(*, notification_ids: list[int]) -> dict[str, int]:
    """Queued on commit by the service that enqueued the notifications. Delivered twice, it sends once: a row is
    claimed by one sender at a time and a sent row is never sent again."""
    return notifications_send(notification_ids=notification_ids).as_dict()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def notifications_drain_task() -> dict[str, int]:
    """The beat, every minute: enqueue the deadline and installment reminders that are due, then send whatever is
    pending and due (rows whose on-commit task was lost with the broker, retries whose time has come, messages
    held for a client's quiet hours)."""
    reminded = notifications_remind_deadlines()
    installments = notifications_remind_installments()
    return {"reminded": reminded, "installments_reminded": installments, **notifications_drain().as_dict()}


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def compute_feasibility(*, case_ids: list[int], trigger: str = "margin_call", key: str | None = None) -> list[int]:
    """Feasibility reports of these cases. Queued on commit for the cases a sweep moved to margin call (in
    batches, so one worker reuses its market paths across many cases) and on demand. Delivered twice, it stores
    once: a margin call's report is keyed by the call, and the store re-checks under the cases' locks."""
    return feasibility_compute(case_ids=case_ids, trigger=trigger, key=key)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def feasibility_redrive_task() -> int:
    """The beat: the follow-ups of a margin call whose task was lost (the broker down at commit) are queued
    again, each found still due in the database: margin calls without their report, reports the published rules
    have not read, counter-offers without their fresh report and proposals. Each task is idempotent. Returns how
    many cases were queued again."""
    case_ids = feasibility_due_case_ids()
    feasibility_enqueue(case_ids)
    proposing = proposals_due_case_ids()
    if proposing:
        propose_from_rules.delay(case_ids=proposing)
    countered = counter_followups_due()
    for case_id, offer_id in countered:
        counter_followup_task.delay(case_id=case_id, offer_id=offer_id)
    return len(case_ids) + len(proposing) + len(countered)


def feasibility_enqueue(case_ids: list[int]) -> None:
    """Queue margin-call feasibility for these cases, in batches of WORKOUT_FEASIBILITY_BATCH."""
    for batch in feasibility_batches(case_ids):
        compute_feasibility.delay(case_ids=batch, trigger="margin_call")


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def propose_from_rules(*, case_ids: list[int]) -> list[int]:
    """Queued on commit when margin-call feasibility reports are stored. Delivered twice, it proposes once: the
    proposals are keyed by report and package, and a case already proposed is left alone."""
    return proposals_from_rules(case_ids=case_ids)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def negotiation_deadlines_task() -> dict[str, list[int]]:
    """The beat: offers past their expiry back to margin call, missed installments default their cases.
    Idempotent: what was moved is no longer due."""
    return negotiation_deadlines_run()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def counter_followup_task(*, case_id: int, offer_id: int) -> list[int]:
    """Queued on commit by a counter-offer: feasibility and the rules again for the new round."""
    return counter_followup(case_id=case_id, offer_id=offer_id)


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def promises_track_task() -> dict[str, int]:
    """The beat: open promises to pay are kept or broken by what arrived (restructuring/services/promises.py).
    Idempotent: only promises still open move, so a second delivery finds nothing to do."""
    return promises_track().as_dict()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), retry_backoff=1, retry_backoff_max=60, max_retries=8)
def sla_escalate_task() -> int:
    """The beat: escalate each SLA breach not yet escalated to its team's senior. Run twice, it escalates once."""
    return sla_breaches_escalate()
