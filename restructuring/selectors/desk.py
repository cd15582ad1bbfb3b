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
from django.db.models import Count, Exists, Q, QuerySet

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


@dataclass(frozen=True)
class Workloads:
    by_officer: dict[str, Workload]  # username -> counts; "" for the unassigned
    by_team: dict[str, Workload]  # team name -> counts; "" for cases without a team


def workloads(now: datetime) -> Workloads:
    """Open cases, waiting on staff and breaching SLA, per assignee and per team: one query."""
    rows = (
        sla_annotate(Case.objects.filter(state__in=OPEN_STATES), now)
        .order_by()
        .values("assignee__username", "team__name")
        .annotate(
            n_open=Count("pk"),
            n_waiting=Count("pk", filter=~Q(sla_clock="")),
            n_breaching=Count("pk", filter=Q(sla_breached=True)),
        )
        .values_list("assignee__username", "team__name", "n_open", "n_waiting", "n_breaching")
    )
    officers: dict[str, list[int]] = {}
    teams: dict[str, list[int]] = {}
    for username, team, *counts in rows:
        for totals, key in ((officers, username or ""), (teams, team or "")):
            row = totals.setdefault(key, [0, 0, 0])
            for i, n in enumerate(counts):
                row[i] += n
    return Workloads(
        by_officer={k: Workload(*v) for k, v in sorted(officers.items())},
        by_team={k: Workload(*v) for k, v in sorted(teams.items())},
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
