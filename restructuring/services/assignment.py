"""Who works a case: auto-assignment, balancing, reassignment by a senior, and leave.

Eligible officers are the active members of a team (TeamMembership) in a credit role and not on leave. A case goes
to the least-loaded eligible officer whose authority (negotiation.proposals.approval_limit: their own limit in the
account's currency, else their roles') covers the case's debt (its active loan's principal and accrued interest),
and whose load stays within their capacity (TeamMembership.capacity, else WORKOUT_ASSIGN_CAPACITY). Loads are in
urgency points: each open case weighs its band's WORKOUT_ASSIGN_WEIGHTS. The most urgent cases are placed first,
the largest debts first among them, so that the few officers who can take them are not already full. A case
nobody can take stays unassigned (the senior's "Unassigned" queue) and is counted as such. The case's team is
its assignee's team.

Set-based: a fixed number of queries whatever the number of cases (the officers, their limits and roles, their
loads, the cases with their debts, one bulk update, one batch of audit events; for a sweep's new cases neither of
the last two: they are inserted with their officers), so a sweep that opens 5,000 cases assigns them in well
under a second (bench/assignment.py). Runs are serialised by an advisory lock, and the cases are locked: a case
assigned meanwhile is left as it is.

Every assignment is on the audit trail of its case. A case the sweep opens is assigned in the transaction that
opens it (`cases_assign_new`), and its "case.open" event names the assignee and team: one event per new case,
not two (writing 5,000 "case.assign" events was most of the time of assigning a sweep's 5,000 new cases). Any
later assignment is an event of its own: "case.assign" (by the balancing, naming its system actor or the
command's actor) or "case.reassign" (by a senior, or a move of one officer's cases), with the assignee before and
after; leave is "staff.leave_start" / "staff.leave_end" on the officer.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import cast

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.models import Count, F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop

from accounts.models import LoanStatus, MarginLoan
from core.audit import audit_record_many
from core.audit_catalogue import AuditAction
from core.errors import ConflictError, NotFoundError, PermissionRefusedError, ValidationError
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.audit_events import CASE_ASSIGN, CASE_REASSIGN, STAFF_LEAVE_END, STAFF_LEAVE_START
from restructuring.models import OPEN_STATES, ApprovalLimit, Case, TeamMembership

ASSIGN = "restructuring.assign_case"
SYSTEM_ACTOR = "assignment"
_LOCK_KEY = 0x5752_4B41_5353_4947  # "WRKASSIG": one balancing run at a time
_CREDIT_ROLES = (CREDIT_OFFICER, SENIOR_CREDIT_OFFICER)


@dataclass(frozen=True)
class Placement:
    """Who a new case goes to: what the sweep writes with it and its opening event records."""

    user_id: int
    username: str
    team_id: int
    team: str


@dataclass(frozen=True)
class AssignResult:
    assigned: int
    unplaced: int  # no eligible officer's authority and capacity could take them: left unassigned
    by_officer: dict[str, int] = field(default_factory=dict)
    placements: dict[int, Placement] = field(default_factory=dict)  # new cases' officers, by account (cases_assign_new)

    def as_dict(self) -> dict[str, object]:
        return {"assigned": self.assigned, "unplaced": self.unplaced, "by_officer": self.by_officer}


@dataclass
class _Officer:
    user_id: int
    username: str
    team_id: int
    team: str
    capacity: int
    limits: dict[str, Decimal]  # currency -> authority
    load: float = 0.0
    given: int = 0


@dataclass(frozen=True)
class _Open:
    pk: int
    account_id: int
    band: str
    currency: str
    assignee_id: int | None


@dataclass(frozen=True)
class NewCase:
    """A case its caller is opening (not written yet: keyed by its account, one new case per account)."""

    account_id: int
    band: str
    currency: str


def _weight(band: str) -> float:
    weights: dict[str, int] = settings.WORKOUT_ASSIGN_WEIGHTS
    return float(weights.get(band, 1))


def _actor_check(actor: User | None, system_actor: str, what: str) -> None:
    if (actor is None) == (not system_actor.strip()):
        raise ValidationError(gettext("name one actor: a user or a system actor"), field="actor")
    if actor is not None and not (actor.is_active and actor.has_perm(ASSIGN)):
        raise PermissionRefusedError(
            gettext("%(actor)s may not %(what)s") % {"actor": actor.get_username(), "what": gettext(what)},
            permission=ASSIGN,
        )


def _lock() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])


def _officers(*, exclude: Iterable[int] = (), only: Iterable[int] | None = None) -> dict[int, _Officer]:
    """The eligible officers with their authority and current load: four queries."""
    members = TeamMembership.objects.filter(
        on_leave=False, user__is_active=True, user__groups__name__in=_CREDIT_ROLES
    ).exclude(user_id__in=list(exclude))
    if only is not None:
        members = members.filter(user_id__in=list(only))
    rows = members.values_list("user_id", "user__username", "team_id", "team__name", "capacity").distinct()
    default_capacity = int(settings.WORKOUT_ASSIGN_CAPACITY)
    officers = {
        uid: _Officer(uid, name, team, team_name, default_capacity if cap is None else cap, {})
        for uid, name, team, team_name, cap in rows
    }
    if not officers:
        return officers
    ids = list(officers)
    by_role: dict[str, dict[str, str]] = settings.WORKOUT_APPROVAL_LIMITS
    for uid, role in User.groups.through.objects.filter(user_id__in=ids).values_list("user_id", "group__name"):
        for currency, amount in by_role.get(role, {}).items():
            limits = officers[uid].limits
            limits[currency] = max(limits.get(currency, Decimal(0)), Decimal(amount))
    own: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for uid, currency, amount in ApprovalLimit.objects.filter(user_id__in=ids).values_list(
        "user_id", "currency", "amount"
    ):
        own[uid][currency] = Decimal(amount)
    for uid, limits in own.items():  # a user's own limit replaces their roles' in that currency
        officers[uid].limits.update(limits)
    loads = (
        Case.objects.filter(state__in=OPEN_STATES, assignee_id__in=ids)
        .order_by()
        .values_list("assignee_id", "band")
        .annotate(n=Count("pk"))
    )
    for uid, band, n in loads:
        officers[uid].load += _weight(band) * n
    return officers


def _debts(account_ids: Sequence[int]) -> dict[int, Decimal]:
    rows = (
        MarginLoan.objects.filter(account_id__any=list(account_ids), status=LoanStatus.ACTIVE)
        .annotate(owed=F("principal") + F("accrued_interest"))
        .values_list("account_id", "owed")
    )
    debts: dict[int, Decimal] = defaultdict(Decimal)
    for account_id, owed in rows:
        debts[account_id] += Decimal(owed)
    return debts


def _place(cases: Sequence[_Open], officers: dict[int, _Officer]) -> dict[int, _Officer | None]:
    """Each case to the least-loaded officer who may take it, most urgent and largest debt first.

    Officers are grouped in tiers of equal authority (per currency), each tier a heap by load: a case looks only
    at the tiers whose authority covers its debt, and takes the least-loaded officer among their tops. An officer
    whose capacity the case would exceed is set aside for that case only (a lighter case may still fit)."""
    debts = _debts(sorted({c.account_id for c in cases}))
    order = sorted(cases, key=lambda c: (-_weight(c.band), -debts.get(c.account_id, Decimal(0)), c.pk))
    tiers: dict[str, dict[Decimal, list[tuple[float, int]]]] = defaultdict(lambda: defaultdict(list))
    for officer in officers.values():
        for currency, limit in officer.limits.items():
            heapq.heappush(tiers[currency][limit], (officer.load, officer.user_id))
    ranked = {currency: sorted(by_limit.items(), key=lambda t: -t[0]) for currency, by_limit in tiers.items()}
    placed: dict[int, _Officer | None] = {}
    for case in order:
        debt, weight = debts.get(case.account_id, Decimal(0)), _weight(case.band)
        best: tuple[float, int, list[tuple[float, int]]] | None = None
        set_aside: list[tuple[list[tuple[float, int]], tuple[float, int]]] = []
        for limit, heap in ranked.get(case.currency, ()):
            if limit < debt:
                break  # the tiers are by authority, largest first: none further covers the debt
            while heap:
                load, uid = heap[0]
                officer = officers[uid]
                if load != officer.load:  # a stale entry: the officer took a case through another currency's tier
                    heapq.heapreplace(heap, (officer.load, uid))
                    continue
                if load + weight <= officer.capacity:
                    if best is None or (load, uid) < best[:2]:
                        best = (load, uid, heap)
                    break
                set_aside.append((heap, heapq.heappop(heap)))
        chosen = None
        if best is not None:
            chosen = officers[best[1]]
            chosen.load += weight
            chosen.given += 1
            heapq.heapreplace(best[2], (chosen.load, chosen.user_id))
        for heap, item in set_aside:
            heapq.heappush(heap, item)
        placed[case.pk] = chosen
    return placed


def _open_cases(queryset: QuerySet[Case]) -> list[_Open]:
    rows = (
        queryset.select_for_update(of=("self",))
        .order_by("pk")
        .values_list("pk", "account_id", "band", "account__base_currency", "assignee_id")
    )
    return [_Open(*row) for row in rows]


def _write(
    moves: Sequence[tuple[_Open, _Officer | None]],
    *,
    action: AuditAction[Case],
    now: datetime,
    actor: User | None,
    system_actor: str,
    reason: str,
    usernames: dict[int, str],
) -> None:
    """One bulk update of the cases and one batch of events, one per case."""
    if not moves:
        return
    # One UPDATE ... FROM unnest (as core.bulk.bulk_update_fields, without building a model per row: a Case's
    # __init__ with its state machine costs more than the statement for thousands of cases).
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE restructuring_case AS c SET assignee_id = v.assignee, team_id = v.team, "
            "assigned_at = CASE WHEN v.assignee IS NULL THEN NULL ELSE %s END "
            "FROM unnest(CAST(%s AS bigint[]), CAST(%s AS integer[]), CAST(%s AS bigint[])) AS v(id, assignee, team) "
            "WHERE c.id = v.id",
            [
                now,
                [case.pk for case, _ in moves],
                [None if officer is None else officer.user_id for _, officer in moves],
                [None if officer is None else officer.team_id for _, officer in moves],
            ],
        )
    audit_record_many(
        [
            action.entry(
                cast(Case, case),  # the builder reads the pk only: no model is built per row
                account_id=case.account_id,
                actor=actor,
                system_actor="" if actor is not None else system_actor,
                reason=reason,
                payload={
                    "from": usernames.get(case.assignee_id, "") if case.assignee_id else "",
                    "to": "" if officer is None else officer.username,
                    "team_id": None if officer is None else officer.team_id,
                },
            )
            for case, officer in moves
        ]
    )


def _result(moves: Sequence[tuple[_Open, _Officer | None]]) -> AssignResult:
    counts: dict[str, int] = defaultdict(int)
    for _case, officer in moves:
        if officer is not None:
            counts[officer.username] += 1
    return AssignResult(
        assigned=sum(counts.values()),
        unplaced=sum(1 for _c, o in moves if o is None),
        by_officer=dict(sorted(counts.items())),
    )


def cases_balance(
    *,
    case_ids: Sequence[int] | None = None,
    actor: User | None = None,
    system_actor: str = "",
    now: datetime | None = None,
) -> AssignResult:
    """Assign the unassigned open cases (all of them, or those of `case_ids`), in the caller's transaction or its
    own. A case nobody may take stays unassigned and writes nothing."""
    _actor_check(actor, system_actor, gettext_noop("assign cases"))
    now = now or timezone.now()
    with transaction.atomic():
        _lock()
        cases = Case.objects.filter(state__in=OPEN_STATES, assignee__isnull=True)
        if case_ids is not None:
            cases = cases.filter(pk__any=list(case_ids))
        found = _open_cases(cases)
        if not found:
            return AssignResult(0, 0)
        officers = _officers()
        if not officers:  # nobody to give them to (a book without teams yet): they wait in "Unassigned"
            return AssignResult(0, len(found))
        placed = _place(found, officers)
        moves = [(case, placed[case.pk]) for case in found]
        done = [(case, officer) for case, officer in moves if officer is not None]
        _write(done, action=CASE_ASSIGN, now=now, actor=actor, system_actor=system_actor, reason="", usernames={})
        return _result(moves)


def cases_assign_new(*, cases: Sequence[NewCase]) -> AssignResult:
    """The officers of the cases the sweep is opening, placed as `cases_balance` places them: `placements` says
    who takes each, by account. The caller writes them with the cases it inserts (born assigned: no UPDATE of the
    new rows, no window in which they belong to nobody) and records them in each case's "case.open" event; nothing
    is written here. Within the caller's transaction: the balancing's lock, taken here, is held until it commits,
    so the loads read here stay true until the new cases count in them."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("cases_assign_new runs inside the transaction that opens the cases (and records them)")
    if not cases:
        return AssignResult(0, 0)
    _lock()
    found = [_Open(c.account_id, c.account_id, c.band, c.currency, None) for c in cases]  # keyed by account
    officers = _officers()
    if not officers:  # nobody to give them to (a book without teams yet): they wait in "Unassigned"
        return AssignResult(0, len(found))
    placed = _place(found, officers)
    moves = [(case, placed[case.pk]) for case in found]
    result = _result(moves)
    placements = {
        case.account_id: Placement(officer.user_id, officer.username, officer.team_id, officer.team)
        for case, officer in moves
        if officer is not None
    }
    return AssignResult(result.assigned, result.unplaced, result.by_officer, placements)


def _user(username_or_id: str | int, what: str) -> User:
    lookup = {"pk": username_or_id} if isinstance(username_or_id, int) else {"username": username_or_id}
    user = User.objects.filter(**lookup).first()
    if user is None:
        raise NotFoundError(
            gettext("no user %(user)s (%(what)s)") % {"user": repr(username_or_id), "what": gettext(what)},
            field=what,
        )
    return user


def _target(user: User) -> _Officer:
    """The officer cases are given to by hand: on a team, active, in a credit role, not on leave. Authority and
    capacity are the senior's judgement here, not checked."""
    officer = _officers(only=[user.pk]).get(user.pk)
    if officer is None:
        raise ConflictError(
            gettext("%(user)s cannot take cases: not an active credit officer on a team, or on leave")
            % {"user": user.get_username()},
            field="to",
        )
    return officer


def case_reassign(*, case_id: int, to: str | int, actor: User, reason: str = "", now: datetime | None = None) -> Case:
    """A senior gives one open case to another officer (audited "case.reassign", with the reason)."""
    _actor_check(actor, "", gettext_noop("reassign cases"))
    now = now or timezone.now()
    target = _user(to, "to")
    with transaction.atomic():
        found = _open_cases(Case.objects.filter(pk=case_id))
        if not found:
            if Case.objects.filter(pk=case_id).exists():
                raise ConflictError(
                    gettext("case %(case_id)s is closed: it is not reassigned") % {"case_id": case_id}, case_id=case_id
                )
            raise NotFoundError(gettext("no case %(case_id)s") % {"case_id": case_id}, field="case")
        case = found[0]
        if case.assignee_id == target.pk:
            raise ConflictError(
                gettext("case %(case_id)s is already %(target)s's")
                % {"case_id": case_id, "target": target.get_username()},
                case_id=case_id,
            )
        officer = _target(target)
        usernames = dict(User.objects.filter(pk__in=[case.assignee_id]).values_list("pk", "username"))
        _write(
            [(case, officer)],
            action=CASE_REASSIGN,
            now=now,
            actor=actor,
            system_actor="",
            reason=reason.strip(),
            usernames=usernames,
        )
    return Case.objects.get(pk=case_id)


def officer_cases_move(
    *,
    officer: str | int,
    to: str | int,
    actor: User | None = None,
    system_actor: str = "",
    reason: str = "",
    now: datetime | None = None,
) -> AssignResult:
    """Every open case of one officer to another (`manage.py cases_assign --officer A --to B`)."""
    _actor_check(actor, system_actor, gettext_noop("reassign cases"))
    now = now or timezone.now()
    source, target = _user(officer, "officer"), _user(to, "to")
    if source.pk == target.pk:
        raise ValidationError(gettext("the cases would move to the officer who has them"), field="to")
    with transaction.atomic():
        _lock()
        found = _open_cases(Case.objects.filter(state__in=OPEN_STATES, assignee=source))
        receiver = _target(target)
        moves = [(case, receiver) for case in found]
        _write(
            moves,
            action=CASE_REASSIGN,
            now=now,
            actor=actor,
            system_actor=system_actor,
            reason=reason.strip(),
            usernames={source.pk: source.get_username()},
        )
        return _result(moves)


def _membership(user: User) -> TeamMembership:
    membership = TeamMembership.objects.select_for_update().filter(user=user).first()
    if membership is None:
        raise ConflictError(gettext("%(user)s is on no team") % {"user": user.get_username()}, field="officer")
    return membership


def officer_leave_start(
    *, officer: str | int, actor: User | None = None, system_actor: str = "", now: datetime | None = None
) -> AssignResult:
    """The officer goes on leave: they take no new cases, and their open cases are balanced over the other
    eligible officers in one action; any nobody may take become unassigned (the senior's queue)."""
    _actor_check(actor, system_actor, gettext_noop("send officers on leave"))
    now = now or timezone.now()
    user = _user(officer, "officer")
    with transaction.atomic():
        _lock()
        membership = _membership(user)
        if membership.on_leave:
            raise ConflictError(
                gettext("%(user)s is already on leave") % {"user": user.get_username()}, field="officer"
            )
        membership.on_leave = True
        membership.save(update_fields=["on_leave"])
        found = _open_cases(Case.objects.filter(state__in=OPEN_STATES, assignee=user))
        placed = _place(found, _officers(exclude=[user.pk]))
        moves = [(case, placed[case.pk]) for case in found]
        result = _result(moves)
        audit_record_many(
            [
                STAFF_LEAVE_START.entry(
                    user,
                    actor=actor,
                    system_actor="" if actor is not None else system_actor,
                    payload={"username": user.get_username(), **result.as_dict()},
                )
            ]
        )
        _write(
            moves,
            action=CASE_REASSIGN,
            now=now,
            actor=actor,
            system_actor=system_actor,
            reason=f"{user.get_username()} is on leave",
            usernames={user.pk: user.get_username()},
        )
        return result


def officer_leave_end(*, officer: str | int, actor: User | None = None, system_actor: str = "") -> bool:
    """Back from leave: eligible for new cases again (their old cases stay where they went). False if not on leave."""
    _actor_check(actor, system_actor, gettext_noop("end an officer's leave"))
    user = _user(officer, "officer")
    with transaction.atomic():
        membership = _membership(user)
        if not membership.on_leave:
            return False
        membership.on_leave = False
        membership.save(update_fields=["on_leave"])
        audit_record_many(
            [
                STAFF_LEAVE_END.entry(
                    user,
                    actor=actor,
                    system_actor="" if actor is not None else system_actor,
                    payload={"username": user.get_username()},
                )
            ]
        )
    return True
