"""The queue's desk filters over HTTP: an officer's queue opens on "My cases"; ?assignee=me, <username>, none and
team; ?sla=breached; the page's queries do not grow with its rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Case, Team, TeamMembership
from restructuring.services.case_sweep import cases_apply_risk
from tests.restructuring.helpers import accounts, btc, sweep_only
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import queue_case_ids, text

pytestmark = pytest.mark.django_db


def _desk() -> None:
    team = Team.objects.create(name="Desk A", senior=staff_user("sam", SENIOR_CREDIT_OFFICER))
    for name in ("alice", "bob"):
        TeamMembership.objects.create(team=team, user=staff_user(name, CREDIT_OFFICER))
    instrument = btc()
    accounts(instrument, "margin_call", 4)
    cases_apply_risk(sweep_id=sweep_only().pk)
    with override_settings(WORKOUT_ASSIGN_CAPACITY=0):
        accounts(instrument, "warning", 1, prefix="U")
        cases_apply_risk(sweep_id=sweep_only().pk)


def _ids(**filters: object) -> list[int]:
    return sorted(Case.objects.filter(**filters).values_list("pk", flat=True))


def test_an_officer_s_queue_is_my_cases_and_the_assignee_filter_takes_me_a_name_none_and_team() -> None:
    _desk()
    alice, sam = signed_in(User.objects.get(username="alice")), signed_in(User.objects.get(username="sam"))
    assert sorted(queue_case_ids(alice.get("/queue/"))) == _ids(assignee__username="alice")
    assert sorted(queue_case_ids(alice.get("/queue/?assignee=bob"))) == _ids(assignee__username="bob")
    assert sorted(queue_case_ids(sam.get("/queue/"))) == _ids()  # a senior's queue: every open case
    assert sorted(queue_case_ids(sam.get("/queue/?assignee=none"))) == _ids(assignee__isnull=True)
    assert sorted(queue_case_ids(sam.get("/queue/?assignee=team"))) == _ids(team__name="Desk A")
    assert sorted(queue_case_ids(sam.get("/queue/?assignee=me"))) == []


def test_the_queue_filters_the_cases_past_their_sla_in_the_same_number_of_queries() -> None:
    _desk()
    late = _ids(assignee__username="bob")[:1]
    Case.objects.filter(pk__in=late).update(state_changed_at=timezone.now() - timedelta(hours=30))
    sam = signed_in(User.objects.get(username="sam"))
    with CaptureQueriesContext(connection) as few:
        assert queue_case_ids(sam.get("/queue/?sla=breached")) == late
    with CaptureQueriesContext(connection) as many:
        assert len(queue_case_ids(sam.get("/queue/"))) == 5
    assert len(few) == len(many)


def test_the_case_page_says_who_owns_the_case_and_the_clock_it_waits_on() -> None:
    """Issue 17: the case shows its assignee (and team) and time in state against its SLA target."""
    _desk()
    owned = Case.objects.filter(assignee__username="bob").order_by("pk").first()
    unowned = Case.objects.filter(assignee__isnull=True).get()
    assert owned is not None
    Case.objects.filter(pk=owned.pk).update(state_changed_at=timezone.now() - timedelta(hours=30))
    sam = signed_in(User.objects.get(username="sam"))

    page = text(sam.get(f"/cases/{owned.pk}/"))
    assert "assigned to bob (Desk A)" in page
    # and the timeline's opening says who it went to as it opened (case.open carries the assignment)
    opened = page.split("Case opened", 1)[1].split("raw case.open", 1)[0]
    assert "assignee bob" in opened
    assert "team Desk A" in opened
    assert "Margin call without a proposal: waiting 1 day, 6 hours of" in page
    assert "(target missed)" in page
    assert "unassigned" in text(sam.get(f"/cases/{unowned.pk}/"))
