"""The negotiation's deadlines, in bulk: offers past their expiry, installments missed past the grace."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record_many
from core.bulk import bulk_update_fields
from restructuring.audit_events import (
    CASE_DEFAULT,
    CASE_OFFER_EXPIRED,
    PROPOSAL_EXPIRE,
)
from restructuring.models import (
    LIVE_PROPOSAL_STATES,
    Case,
    CaseState,
    Installment,
    InstallmentStatus,
    NotificationKind,
    Proposal,
    ProposalState,
)
from restructuring.services.case_end import proposals_withdraw_for_cases
from restructuring.services.negotiation.common import _event, _move
from restructuring.services.notifications import Notice, notifications_enqueue_many

NEGOTIATION_ACTOR = "negotiation-deadlines"


def negotiation_deadlines_run(now: datetime | None = None) -> dict[str, list[int]]:
    """Offers past their expiry go back to margin call; installments unpaid past the grace are missed and their
    restructured cases default. In bulk, a fixed number of queries whatever the count: what is due is locked
    (rows another action holds are left for the next run), moved, written back and audited in one transaction;
    a second run finds nothing to do."""
    now = now or timezone.now()
    return {"offers_expired": _offers_expire(now), "cases_defaulted": _missed_payments_default(now)}


def _offers_expire(now: datetime) -> list[int]:
    with transaction.atomic():
        due = list(
            Proposal.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(state=ProposalState.OFFERED, expires_at__lte=now)
            .order_by("pk")
        )
        cases = {
            c.pk: c for c in Case.objects.select_for_update(skip_locked=True).filter(pk__in=[p.case_id for p in due])
        }
        # Cases with other live proposals go back among them (as after a decline: _after_offer).
        with_alternatives = set(
            Proposal.objects.filter(case_id__any=list(cases), state__in=LIVE_PROPOSAL_STATES)
            .exclude(pk__any=[p.pk for p in due])
            .values_list("case_id", flat=True)
        )
        moved, events = [], []
        for proposal in due:
            case = cases.get(proposal.case_id)
            if case is None or case.state != CaseState.OFFERED:  # held by an action now, or moved: not ours
                continue
            proposal.case = case
            case_transition = "return_to_proposals" if case.pk in with_alternatives else "expire_offer"
            before, case_before = _move(proposal, "expire", "offer"), _move(case, case_transition, "case")
            proposal.updated_at = case.updated_at = now  # auto_now is not applied by bulk writes
            proposal.state_changed_at = case.state_changed_at = now
            moved.append(proposal)
            events += [
                _event(proposal, PROPOSAL_EXPIRE, before, system_actor=NEGOTIATION_ACTOR),
                _event(case, CASE_OFFER_EXPIRED, case_before, system_actor=NEGOTIATION_ACTOR, proposal_id=proposal.pk),
            ]
        bulk_update_fields(Proposal, moved, ["state", "updated_at", "state_changed_at"])
        bulk_update_fields(Case, [p.case for p in moved], ["state", "updated_at", "state_changed_at"])
        audit_record_many(events)
    return [p.pk for p in moved]


def _missed_payments_default(now: datetime) -> list[int]:
    cutoff = (now - timedelta(days=settings.WORKOUT_PAYMENT_GRACE_DAYS)).date()
    with transaction.atomic():
        late = list(
            Installment.objects.select_for_update(skip_locked=True)
            .filter(status=InstallmentStatus.DUE, due__lt=cutoff, proposal__case__state=CaseState.RESTRUCTURED)
            .order_by("pk")
            .values_list("pk", "proposal__case_id", "number", "total", "paid_amount")
        )
        cases = list(
            Case.objects.select_for_update(skip_locked=True)
            .filter(pk__in={row[1] for row in late}, state=CaseState.RESTRUCTURED)
            .order_by("pk")
        )
        numbers: dict[int, list[int]] = {}
        overdue: dict[int, Decimal] = {}
        first_missed: dict[int, int] = {}
        for pk, case_id, number, total, paid in late:
            numbers.setdefault(case_id, []).append(number)
            overdue[case_id] = overdue.get(case_id, Decimal(0)) + total - paid
            first_missed.setdefault(case_id, pk)
        events = []
        for case in cases:
            before = _move(case, "default", "case")
            case.updated_at = case.state_changed_at = now
            events.append(
                _event(case, CASE_DEFAULT, before, system_actor=NEGOTIATION_ACTOR, missed_installments=numbers[case.pk])
            )
        defaulted = {c.pk for c in cases}
        Installment.objects.filter(pk__in=[row[0] for row in late if row[1] in defaulted]).update(
            status=InstallmentStatus.MISSED
        )
        bulk_update_fields(Case, cases, ["state", "updated_at", "state_changed_at"])
        audit_record_many(events)
        # The notice of default: legally required (restructuring/message_catalogue.py), keyed by the first missed
        # installment, so a second run tells nothing twice.
        notifications_enqueue_many(
            notices=[
                Notice(
                    case,
                    NotificationKind.MISSED_PAYMENT,
                    {"missed_installments": sorted(numbers[case.pk]), "amount_overdue": overdue[case.pk]},
                    f"installment:{first_missed[case.pk]}",
                )
                for case in cases
            ],
            now=now,
        )
        proposals_withdraw_for_cases(
            case_ids=[c.pk for c in cases], reason="the case defaulted", now=now, system_actor=NEGOTIATION_ACTOR
        )
    return [c.pk for c in cases]
