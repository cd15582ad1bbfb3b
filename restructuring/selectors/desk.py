"""Reads of the desk: the queue's assignee filter and the workload counts per officer and team, each one query
whatever the number of cases, and what the case page shows of its owner and SLA.

The queue takes `?assignee=me` (the signed-in officer's cases: "My cases", an officer's default queue),
`?assignee=<username>`, `?assignee=none` (the senior's "Unassigned") and `?assignee=team` (the cases of the teams
the user leads or belongs to: the senior's "Team").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db.models import BooleanField, Count, Exists, ExpressionWrapper, OuterRef, Q, QuerySet, Value

from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import OPEN_STATES, Case, Team, TeamMembership
from restructuring.sla import sla_annotate

ME, NONE, TEAM = "me", "none", "team"
# An officer's queue when they name no assignee: their own cases if they are on a team (decided in the queue's
# query, so it costs no query of its own), else every case.
MINE_IF_ON_TEAM = "mine-if-on-team"


def cases_by_assignee(cases: QuerySet[Case], value: str, user: User | int | None) -> QuerySet[Case]:
    """Narrow a queryset of cases by the queue's `assignee` parameter ("" leaves it as it is). A username that
    is nobody's gives no case, not every case."""
    value = value.strip()
    user_id = user.pk if isinstance(user, User) else user
    if not value:
        return cases
    if value == ME:
        return cases.filter(assignee_id=user_id)
    if value == NONE:
        return cases.filter(assignee__isnull=True)
    if value == MINE_IF_ON_TEAM:
        on_team = TeamMembership.objects.filter(user_id__in=[user_id])
        return cases.filter(Q(assignee_id=user_id) | ~Exists(on_team))
    if value == TEAM:
        teams = Team.objects.filter(Q(senior_id=user_id) | Q(memberships__user_id=user_id)).values("pk")
        return cases.filter(team_id__in=teams)
    return cases.filter(assignee__username=value)


def default_assignee(user: User) -> str:
    """An officer's queue opens on their own cases ("My cases", when they are on a team); a senior's and
    compliance's on all of them. No query: the permissions are read already, the team in the queue's query."""
    if user.has_perm("restructuring.assign_case") or not user.has_perm("restructuring.draft_proposal"):
        return ""
    return MINE_IF_ON_TEAM


@dataclass(frozen=True)
class Workload:
    open: int
    waiting: int  # a clock runs: the case waits for staff
    breaching: int  # past its SLA target

    def as_dict(self) -> dict[str, int]:
        return {"open": self.open, "waiting": self.waiting, "breaching": self.breaching}


NO_LOAD = Workload(0, 0, 0)


@dataclass(frozen=True)
class Workloads:
    by_officer: dict[str, Workload]  # username -> counts; "" for the unassigned
    by_team: dict[str, Workload]  # team name -> counts; "" for cases without a team
    # The cases of the teams the user named to `workloads` leads or belongs to (the queue's "Team" tab).
    my_team: Workload = NO_LOAD

    def officer(self, username: str) -> Workload:
        return self.by_officer.get(username, NO_LOAD)

    @property
    def unassigned(self) -> Workload:
        return self.by_officer.get("", NO_LOAD)

    @property
    def total(self) -> Workload:
        loads = self.by_officer.values()
        return Workload(*(sum(getattr(w, f) for w in loads) for f in ("open", "waiting", "breaching")))

    def officer_rows(self) -> list[tuple[str, Workload]]:
        """The officers with open cases, by name (the unassigned apart: `unassigned`)."""
        return [(name, load) for name, load in self.by_officer.items() if name]

    def team_rows(self) -> list[tuple[str, Workload]]:
        return [(name, load) for name, load in self.by_team.items() if name]


def _of_users_team(user_id: int) -> ExpressionWrapper:
    """True on a case of a team `user_id` leads or belongs to (what ?assignee=team shows them)."""
    member = TeamMembership.objects.filter(team_id=OuterRef("team_id"), user_id=user_id)
    return ExpressionWrapper(Q(team__senior_id=user_id) | Exists(member), output_field=BooleanField())


def workloads(now: datetime, user: User | int | None = None) -> Workloads:
    """Open cases, waiting on staff and breaching SLA, per assignee and per team, and (given a user) in the
    user's teams: one query, whatever the number of cases, officers and teams."""
    user_id = user.pk if isinstance(user, User) else user
    mine = _of_users_team(user_id) if user_id is not None else Value(False, output_field=BooleanField())
    rows = (
        sla_annotate(Case.objects.filter(state__in=OPEN_STATES), now)
        .order_by()
        .annotate(of_users_team=mine)
        .values("assignee__username", "team__name", "of_users_team")
        .annotate(
            n_open=Count("pk"),
            n_waiting=Count("pk", filter=~Q(sla_clock="")),
            n_breaching=Count("pk", filter=Q(sla_breached=True)),
        )
        .values_list("assignee__username", "team__name", "of_users_team", "n_open", "n_waiting", "n_breaching")
    )
    officers: dict[str, list[int]] = {}
    teams: dict[str, list[int]] = {}
    my_team = [0, 0, 0]
    for username, team, of_users_team, *counts in rows:
        totals = [officers.setdefault(username or "", [0, 0, 0]), teams.setdefault(team or "", [0, 0, 0])]
        if of_users_team:
            totals.append(my_team)
        for row in totals:
            for i, n in enumerate(counts):
                row[i] += n
    return Workloads(
        by_officer={k: Workload(*v) for k, v in sorted(officers.items())},
        by_team={k: Workload(*v) for k, v in sorted(teams.items())},
        my_team=Workload(*my_team),
    )


@dataclass(frozen=True)
class Member:
    """An officer on a team, as the team page shows them."""

    user_id: int
    username: str
    team: str
    senior: str
    on_leave: bool
    active: bool
    capacity: int | None
    load: Workload


def team_members(loads: Workloads) -> list[Member]:
    """Every team's members, by team and name, with their workload (from `loads`, read once): one query."""
    rows = TeamMembership.objects.order_by("team__name", "user__username").values_list(
        "user_id",
        "user__username",
        "team__name",
        "team__senior__username",
        "on_leave",
        "user__is_active",
        "capacity",
    )
    return [
        Member(uid, name, team, senior or "", on_leave, active, capacity, loads.officer(name))
        for uid, name, team, senior, on_leave, active, capacity in rows
    ]


def officers_taking_cases() -> list[tuple[str, str]]:
    """(username, team) of the officers a case may be given to by hand: on a team, active, in a credit role, not
    on leave (what restructuring/services/assignment.py accepts as a target): one query."""
    return list(
        TeamMembership.objects.filter(
            on_leave=False, user__is_active=True, user__groups__name__in=(CREDIT_OFFICER, SENIOR_CREDIT_OFFICER)
        )
        .order_by("user__username")
        .values_list("user__username", "team__name")
        .distinct()
    )


def queue_sla(cases: QuerySet[Case], now: datetime, *, breached_only: bool = False) -> QuerySet[Any]:
    """The SLA annotations on the queue's cases (sortable as `sla_due_at`), or only the breaching ones."""
    annotated = sla_annotate(cases, now)
    return annotated.filter(sla_breached=True) if breached_only else annotated


def case_desk(case: Case, now: datetime) -> dict[str, Any]:
    """What the case page shows of ownership and its SLA: assignee, team, the clock against its target, and
    the escalations so far (two queries)."""
    row = (
        sla_annotate(Case.objects.filter(pk=case.pk), now)
        .values(
            "assignee__username",
            "team__name",
            "assigned_at",
            "sla_clock",
            "sla_started_at",
            "sla_target_hours",
            "sla_due_at",
            "sla_breached",
        )
        .get()
    )
    escalations = list(
        case.sla_escalations.order_by("created_at").values(
            "clock", "started_at", "created_at", "escalated_to__username"
        )
    )
    return {**row, "escalations": escalations}
