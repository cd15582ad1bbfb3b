"""The queue's assignee filter (me, a username, none, team) and the workload counts per officer and team (open,
waiting on staff, breaching SLA), each in one query whatever the number of cases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import QuerySet
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.roles import CREDIT_OFFICER
from restructuring.models import OPEN_STATES, Case
from restructuring.selectors.desk import case_desk, cases_by_assignee, default_assignee, queue_sla, workloads
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.sla import sla_breaches_escalate
from tests.api.conftest import staff_user
from tests.restructuring.helpers import accounts, btc, sweep_only
from tests.restructuring.test_assignment import _desk

pytestmark = pytest.mark.django_db


def _open() -> QuerySet[Case]:
    return Case.objects.filter(state__in=OPEN_STATES)


def test_the_assignee_filter_me_a_username_none_and_team() -> None:
    _desk("alice", "bob")
    instrument = btc()
    accounts(instrument, "margin_call", 4)
    cases_apply_risk(sweep_id=sweep_only().pk)
    with override_settings(WORKOUT_ASSIGN_CAPACITY=0):
        accounts(instrument, "warning", 1, prefix="U")
        cases_apply_risk(sweep_id=sweep_only().pk)
    alice, sam = User.objects.get(username="alice"), User.objects.get(username="sam")
    cases = Case.objects.all()
    assert set(cases_by_assignee(cases, "me", alice).values_list("assignee__username", flat=True)) == {"alice"}
    assert cases_by_assignee(cases, "me", alice).count() == 2
    assert cases_by_assignee(cases, "bob", alice).count() == 2
    assert cases_by_assignee(cases, "none", sam).get().account.code == "UWARNING00"
    assert cases_by_assignee(cases, "team", sam).count() == 4  # the team sam leads
    assert cases_by_assignee(cases, "nobody", sam).count() == 0
    assert cases_by_assignee(cases, "", sam).count() == 5
    newcomer = staff_user("x", CREDIT_OFFICER)  # on no team: their default queue is every case
    assert (default_assignee(alice), default_assignee(sam)) == ("mine-if-on-team", "")
    assert cases_by_assignee(cases, default_assignee(alice), alice).count() == 2
    assert cases_by_assignee(cases, default_assignee(newcomer), newcomer).count() == 5


def test_workload_counts_per_officer_and_team_in_one_query() -> None:
    team = _desk("alice", "bob")
    instrument = btc()
    accounts(instrument, "margin_call", 4)
    accounts(instrument, "warning", 2)
    cases_apply_risk(sweep_id=sweep_only().pk)
    late = Case.objects.filter(assignee__username="alice", state="margin_call").values("pk")[:1]
    Case.objects.filter(pk__in=late).update(state_changed_at=timezone.now() - timedelta(hours=30))
    with CaptureQueriesContext(connection) as queries:
        loads = workloads(timezone.now())
    assert len(queries) == 1
    assert loads.by_officer["alice"].as_dict() == {"open": 3, "waiting": 2, "breaching": 1}
    assert loads.by_officer["bob"].as_dict() == {"open": 3, "waiting": 2, "breaching": 0}
    assert loads.by_team[team.name].as_dict() == {"open": 6, "waiting": 4, "breaching": 1}
    breaching = queue_sla(_open(), timezone.now(), breached_only=True)
    assert breaching.values_list("assignee__username", flat=True).get() == "alice"
    by_due = queue_sla(_open(), timezone.now()).order_by("sla_due_at", "pk").values_list("sla_breached", flat=True)
    assert next(iter(by_due)) is True


def test_the_case_shows_its_owner_its_clock_against_target_and_escalations() -> None:
    _desk("alice")
    accounts(btc(), "margin_call", 1)
    cases_apply_risk(sweep_id=sweep_only().pk)
    Case.objects.update(state_changed_at=timezone.now() - timedelta(hours=30))
    sla_breaches_escalate()
    shown = case_desk(Case.objects.get(), timezone.now())
    assert (shown["assignee__username"], shown["team__name"], shown["sla_clock"]) == (
        "alice",
        "Desk A",
        "margin_call_no_proposal",
    )
    assert (shown["sla_target_hours"], shown["sla_breached"]) == (24.0, True)
    assert [e["escalated_to__username"] for e in shown["escalations"]] == ["sam"]
