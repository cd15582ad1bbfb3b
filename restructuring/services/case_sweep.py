"""After a sweep: open, escalate and cure cases for every account whose health moved, in bulk.

An account in the warning band without an open case gets one in WARNING; below maintenance (margin call or
critical band) it gets a margin call: the amount (the shortfall to the initial requirement by default, so a
met call restores a buffer) and a deadline. A case whose account is back in the healthy band is CURED while
the client has not committed to anything (warning, margin call, proposed, offered).

Set-based: three queries find the moves, the changed cases are locked and moved through their transition
methods in memory (so the state machine's rules hold), then written with bulk operations and one batch of
audit events. New cases are assigned their officers in the same transaction (services/assignment.py), and
each one's "case.open" event names its assignee and team. Runs are serialised by a transaction-level advisory
lock, and the partial unique constraint (one open case per account) backs it: two sweeps at once give one case
per account and episode. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from accounts.models import HealthBand, RiskState
from core.audit import AuditEntry, audit_record_many
from core.audit_catalogue import AuditAction
from core.bulk import bulk_insert, bulk_update_fields
from core.dispatch import dispatch_on_commit
from core.money import currency_quantum
from restructuring.audit_events import CASE_CURE, CASE_MARGIN_CALL, CASE_OPEN
from restructuring.models import CURABLE_STATES, OPEN_STATES, CallBasis, Case, CaseState, FeasibilityTrigger
from restructuring.services.assignment import NewCase, Placement, cases_assign_new
from restructuring.services.case_end import proposals_withdraw_for_cases
from restructuring.services.feasibility import feasibility_batches
from restructuring.services.notifications import notifications_enqueue_for_cases

logger = logging.getLogger(__name__)

SYSTEM_ACTOR = "sweep"
_LOCK_KEY = 0x5752_4B43_4153_4553  # "WRKCASES": one case run at a time
_BELOW_MAINTENANCE = (HealthBand.MARGIN_CALL, HealthBand.CRITICAL)
_DISTRESSED = (HealthBand.WARNING, *_BELOW_MAINTENANCE)


@dataclass(frozen=True)
class CaseMoves:
    opened: int
    margin_calls: int
    cured: int

    def as_dict(self) -> dict[str, int]:
        return {"opened": self.opened, "margin_calls": self.margin_calls, "cured": self.cured}


@dataclass(frozen=True)
class _Risk:
    account_id: int
    band: str
    margin_ratio: Decimal | None
    shortfall_initial: Decimal
    shortfall_maintenance: Decimal
    sweep_id: int
    currency: str

    def amount(self, value: Decimal) -> Decimal:
        """An amount in the account currency's quantum (the column holds eight places for every currency)."""
        return value.quantize(currency_quantum(self.currency))


def cases_apply_risk(*, sweep_id: int | None = None, now: datetime | None = None) -> CaseMoves:
    """Move every case the latest risk state calls for. `sweep_id` is recorded in the audit payload."""
    now = now or timezone.now()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        # A risk state acts only on what it has seen: not on an account whose last case closed after it was
        # computed (a liquidation settled since), nor on a case changed since (below).
        to_open = _risks(
            RiskState.objects.filter(band__in=_DISTRESSED)
            .exclude(account__cases__state__in=OPEN_STATES)
            .exclude(account__cases__closed_at__gte=F("computed_at"))
        )
        escalating = _open_cases(CaseState.WARNING, _BELOW_MAINTENANCE)
        curing = _open_cases(CURABLE_STATES, (HealthBand.HEALTHY,))
        entries: list[AuditEntry] = []
        new_cases = [_case_open(risk, now) for risk in to_open.values()]
        # Every new case is born with its officer (no window in which it belongs to nobody, no update after the
        # insert), and its opening event says who: one event per new case, not a second "case.assign" each.
        owners = cases_assign_new(
            cases=[NewCase(c.account_id, c.band, to_open[c.account_id].currency) for c in new_cases]
        ).placements
        for case in new_cases:
            owner = owners.get(case.account_id)
            if owner is not None:
                case.assignee_id, case.team_id, case.assigned_at = owner.user_id, owner.team_id, now
        bulk_insert(Case, new_cases, key="account")  # one new case per account; ids set from RETURNING
        for case in new_cases:  # the events name the case, so they are built once it has an id
            _entries_for_new(case, to_open[case.account_id], entries, owners.get(case.account_id))
        changed = _escalate(escalating, now, entries) + _cure(curing, now, entries)
        for case in changed:
            case.updated_at = now  # auto_now is not applied by bulk writes
            case.state_changed_at = now  # the SLA clocks count from the sweep's time, not the wall clock's
        fields = ["state", "call_amount", "call_basis", "called_at", "deadline", "closed_at", "margin_ratio", "band"]
        bulk_update_fields(Case, changed, [*fields, "updated_at", "state_changed_at"])
        audit_record_many(entries)
        proposals_withdraw_for_cases(
            case_ids=[case.pk for case in changed if case.state == CaseState.CURED],
            reason="the case is cured: the account's margin is restored",
            now=now,
            system_actor=SYSTEM_ACTOR,
        )
        notifications_enqueue_for_cases(cases=[*new_cases, *changed], now=now)
        called = [case.pk for case in [*new_cases, *changed] if case.state == CaseState.MARGIN_CALL]
        if called:
            _feasibility_enqueue(called)
    moves = CaseMoves(
        opened=len(new_cases),
        margin_calls=sum(1 for e in entries if e.action == CASE_MARGIN_CALL.name),
        cured=sum(1 for e in entries if e.action == CASE_CURE.name),
    )
    logger.info("cases after sweep %s: %s", sweep_id, moves.as_dict())
    return moves


def _feasibility_enqueue(case_ids: list[int]) -> None:
    # Imported here: the tasks module imports this service.
    from restructuring.tasks import compute_feasibility

    dispatch_on_commit(
        compute_feasibility,
        *({"case_ids": batch, "trigger": FeasibilityTrigger.MARGIN_CALL} for batch in feasibility_batches(case_ids)),
        redrive="the feasibility re-drive beat (feasibility_redrive_task, margin calls without their report)",
    )


def _risks(queryset: object) -> dict[int, _Risk]:
    rows = queryset.values_list(  # type: ignore[attr-defined]
        "account_id",
        "band",
        "margin_ratio",
        "shortfall_initial",
        "shortfall_maintenance",
        "sweep_id",
        "account__base_currency",
    )
    return {row[0]: _Risk(*row) for row in rows}


def _open_cases(states: object, bands: tuple[str, ...]) -> list[tuple[Case, _Risk]]:
    states = [states] if isinstance(states, str) else list(states)  # type: ignore[call-overload]
    cases = list(
        Case.objects.select_for_update(of=("self",))
        .filter(state__in=states, account__risk__band__in=bands, account__risk__computed_at__gt=F("updated_at"))
        .order_by("pk")
    )
    risks = _risks(RiskState.objects.filter(account_id__any=[c.account_id for c in cases]))
    return [(case, risks[case.account_id]) for case in cases]


def _call_terms(risk: _Risk, now: datetime) -> dict[str, object]:
    basis = CallBasis(settings.WORKOUT_CALL_BASIS)
    amount = risk.shortfall_initial if basis == CallBasis.INITIAL else risk.shortfall_maintenance
    return {
        "amount": risk.amount(amount),
        "basis": basis,
        "at": now,
        "deadline": now + timedelta(hours=settings.WORKOUT_MARGIN_CALL_DEADLINE_HOURS),
    }


def _case_open(risk: _Risk, now: datetime) -> Case:
    case = Case(account_id=risk.account_id, opened_at=now, margin_ratio=risk.margin_ratio, band=risk.band)
    if risk.band in _BELOW_MAINTENANCE:
        case.issue_margin_call(**_call_terms(risk, now))
    case.state_changed_at = now
    return case


def _payload(risk: _Risk) -> dict[str, object]:
    return {
        "band": risk.band,
        "margin_ratio": risk.margin_ratio,
        "shortfall_initial": risk.amount(risk.shortfall_initial),
        "shortfall_maintenance": risk.amount(risk.shortfall_maintenance),
        "sweep_id": risk.sweep_id,
    }


def _entry(case: Case, action: AuditAction[Case], from_state: str, risk: _Risk, **extra: object) -> AuditEntry:
    return action.entry(
        case,
        account_id=case.account_id,
        system_actor=SYSTEM_ACTOR,
        from_state=from_state,
        to_state=case.state,
        payload={**_payload(risk), **extra},
    )


def _margin_call_details(case: Case) -> dict[str, object]:
    return {"call_amount": case.call_amount, "call_basis": case.call_basis, "deadline": case.deadline}


def _entries_for_new(case: Case, risk: _Risk, entries: list[AuditEntry], placement: Placement | None) -> None:
    # the officer the case went to as it opened ("" when nobody could take it: the senior's "Unassigned")
    owner = {"assignee": placement.username if placement else "", "team": placement.team if placement else ""}
    entries.append(
        CASE_OPEN.entry(
            case,
            account_id=case.account_id,
            system_actor=SYSTEM_ACTOR,
            from_state="",
            to_state=CaseState.WARNING,
            payload={**_payload(risk), **owner},
        )
    )
    if case.state == CaseState.MARGIN_CALL:
        entries.append(_entry(case, CASE_MARGIN_CALL, CaseState.WARNING, risk, **_margin_call_details(case)))


def _escalate(pairs: list[tuple[Case, _Risk]], now: datetime, entries: list[AuditEntry]) -> list[Case]:
    moved = []
    for case, risk in pairs:
        before = case.state
        try:
            case.issue_margin_call(**_call_terms(risk, now))
        except TransitionNotAllowed:  # moved by someone else since it was read: leave it
            continue
        case.margin_ratio, case.band = risk.margin_ratio, risk.band
        entries.append(_entry(case, CASE_MARGIN_CALL, before, risk, **_margin_call_details(case)))
        moved.append(case)
    return moved


def _cure(pairs: list[tuple[Case, _Risk]], now: datetime, entries: list[AuditEntry]) -> list[Case]:
    moved = []
    for case, risk in pairs:
        before = case.state
        try:
            case.cure(at=now)
        except TransitionNotAllowed:
            continue
        case.margin_ratio, case.band = risk.margin_ratio, risk.band
        entries.append(_entry(case, CASE_CURE, before, risk))
        moved.append(case)
    return moved
