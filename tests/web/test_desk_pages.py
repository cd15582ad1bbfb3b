"""Issue 17, the desk's pages over HTTP: the queue's owner tabs ("My cases", an officer's default; "Team" and
"Unassigned", a senior's) and its workload counts per officer and team (open, waiting on staff, breaching SLA) in a
fixed number of queries; a senior reassigns one case from its page; the team page, where a senior sends an officer
on leave (their cases redistributed in one action) and brings them back. Every action is audited by the service; an
officer who is not a senior is refused, in words the page shows."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import Instrument
from core.models import AuditEvent
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Case, Team, TeamMembership
from restructuring.selectors.desk import workloads
from restructuring.services.case_sweep import cases_apply_risk
from tests.restructuring.helpers import accounts, btc, sweep_only
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import queue_case_ids, text

pytestmark = pytest.mark.django_db


def _desk(margin_calls: int = 4, *, teams: int = 1, unassigned: int = 1) -> None:
    """sam leads "Desk A" (alice, bob); more teams of two officers if asked; `margin_calls` cases assigned by the
    sweep, `unassigned` more nobody could take."""
    sam = staff_user("sam", SENIOR_CREDIT_OFFICER)
    for t in range(teams):
        team = Team.objects.create(name="Desk A" if t == 0 else f"Desk {t}", senior=sam)
        for name in ("alice", "bob") if t == 0 else (f"o{t}a", f"o{t}b"):
            TeamMembership.objects.create(team=team, user=staff_user(name, CREDIT_OFFICER))
    instrument = btc()
    accounts(instrument, "margin_call", margin_calls)
    cases_apply_risk(sweep_id=sweep_only().pk)
    with override_settings(WORKOUT_ASSIGN_CAPACITY=0):
        accounts(instrument, "warning", unassigned, prefix="U")
        cases_apply_risk(sweep_id=sweep_only().pk)


def _web(username: str) -> Client:
    return signed_in(User.objects.get(username=username))


def _tabs(response: Any) -> dict[str, tuple[int, bool]]:
    """The owner tabs: value -> (count, active)."""
    nav = response.content.decode().split('class="tabs desk"')[1].split("</nav>")[0]
    found = re.findall(r'data-assignee="([^"]*)"( class="active")?>[^<]*<span class="count">(\d+)</span>', nav)
    return {value: (int(count), bool(active)) for value, active, count in found}


def _messages(response: Any) -> str:
    """The page's messages, as read."""
    items = re.findall(r'<ul class="messages">(.*?)</ul>', response.content.decode(), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", items[0])).split()) if items else ""


def _row(response: Any, table: str, key: str, value: str) -> list[str]:
    """The cells of the row of `table` whose data-`key` is `value`."""
    body = response.content.decode().split(f'id="{table}"')[1].split("</table>")[0]
    row = body.split(f'data-{key}="{value}"')[1].split("</tr>")[0]
    return [" ".join(re.sub(r"<[^>]+>", " ", cell).split()) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]


# ------------------------------------------------------------------------------------------------ the queue


def test_an_officer_s_queue_opens_on_my_cases_with_a_tab_for_every_case() -> None:
    _desk()
    mine = Case.objects.filter(assignee__username="alice").count()
    alice = _web("alice")
    response = alice.get("/queue/")

    assert _tabs(response) == {"me": (mine, True), "": (5, False)}  # no Team nor Unassigned tab for an officer
    assert sorted(queue_case_ids(response)) == sorted(
        Case.objects.filter(assignee__username="alice").values_list("pk", flat=True)
    )
    everything = alice.get("/queue/?assignee=")
    assert len(queue_case_ids(everything)) == 5
    assert _tabs(everything)[""] == (5, True)


def test_a_senior_has_the_team_and_unassigned_tabs_and_each_keeps_the_other_filters() -> None:
    _desk()
    sam = _web("sam")

    response = sam.get("/queue/?assignee=none&band=warning&sort=-debt")

    assert _tabs(response) == {"me": (0, False), "team": (4, False), "none": (1, True), "": (5, False)}
    assert queue_case_ids(response) == list(Case.objects.filter(assignee__isnull=True).values_list("pk", flat=True))
    links = dict(re.findall(r'<a href="\?([^"]*)" data-assignee="([^"]*)"', response.content.decode()))
    team_link = next(query for query, value in links.items() if value == "team")
    assert team_link.replace("&amp;", "&") == "band=warning&sort=-debt&assignee=team"
    assert len(queue_case_ids(sam.get("/queue/?assignee=team"))) == 4


def test_the_queue_shows_the_workload_per_officer_and_team() -> None:
    _desk()
    late = Case.objects.filter(assignee__username="bob").order_by("pk").first()
    assert late is not None
    Case.objects.filter(pk=late.pk).update(state_changed_at=timezone.now() - timedelta(hours=30))
    loads = workloads(timezone.now())

    response = _web("sam").get("/queue/")

    for name in ("alice", "bob"):
        load = loads.by_officer[name]
        assert _row(response, "workload-officers", "officer", name)[1:] == [
            str(load.open),
            str(load.waiting),
            str(load.breaching),
        ]
    assert _row(response, "workload-officers", "officer", "bob")[3] == "1"  # the late case breaches its target
    assert _row(response, "workload-officers", "officer", "")[1] == "1"  # the unassigned
    assert _row(response, "workload-teams", "team", "Desk A")[1:] == ["4", str(loads.by_team["Desk A"].waiting), "1"]
    assert "5 open" in text(response).split("Workload")[1]


def test_the_workload_counts_cost_one_query_whatever_the_officers_teams_and_cases(
    django_assert_num_queries: Any,
) -> None:
    _desk(margin_calls=2)
    sam = _web("sam")
    with django_assert_num_queries(13):  # the plain queue's (tests/web/test_officer_pages.py)
        sam.get("/queue/?assignee=team")
    _more_desks()
    assert len(workloads(timezone.now()).by_officer) == 13  # twelve officers and the unassigned
    with django_assert_num_queries(13):
        response = sam.get("/queue/?assignee=team")
    assert len(re.findall(r'<tr data-team="', response.content.decode())) == 6


def _more_desks() -> None:
    """Five teams of two officers each, and forty more cases balanced over them."""
    sam = User.objects.get(username="sam")
    for t in range(1, 6):
        team = Team.objects.create(name=f"Desk {t}", senior=sam)
        for name in (f"o{t}a", f"o{t}b"):
            TeamMembership.objects.create(team=team, user=staff_user(name, CREDIT_OFFICER))
    accounts(Instrument.objects.get(symbol="BTC"), "margin_call", 40, prefix="M")
    cases_apply_risk(sweep_id=sweep_only().pk)


# ------------------------------------------------------------------------------------ reassigning one case


def test_a_senior_reassigns_a_case_from_its_page() -> None:
    _desk()
    case = Case.objects.filter(assignee__username="alice").order_by("pk").first()
    assert case is not None
    sam = _web("sam")
    page = sam.get(f"/cases/{case.pk}/")
    form = page.content.decode().split('id="owner"')[1].split("</form>")[0]
    assert re.findall(r'<option value="(\w+)">', form) == ["bob"]  # not the one who has it

    response = sam.post(
        f"/cases/{case.pk}/reassign/", {"to": "bob", "reason": "alice is in court all week"}, follow=True
    )

    assert _messages(response) == f"Case #{case.pk} is now bob's."
    assert "assigned to bob (Desk A)" in text(response)
    event = AuditEvent.objects.get(action="case.reassign", object_id=case.pk)
    assert (event.actor_id, event.reason, event.payload["from"], event.payload["to"]) == (
        User.objects.get(username="sam").pk,
        "alice is in court all week",
        "alice",
        "bob",
    )


def test_an_officer_sees_no_reassign_form_and_is_refused_in_words() -> None:
    _desk()
    case = Case.objects.filter(assignee__username="alice").order_by("pk").first()
    assert case is not None
    alice = _web("alice")
    assert 'id="owner"' not in alice.get(f"/cases/{case.pk}/").content.decode()

    response = alice.post(f"/cases/{case.pk}/reassign/", {"to": "bob"}, follow=True)

    assert _messages(response) == "alice may not reassign cases"
    assert Case.objects.filter(pk=case.pk, assignee__username="alice").exists()
    assert not AuditEvent.objects.filter(action="case.reassign").exists()


def test_reassigning_to_nobody_or_to_an_officer_on_leave_is_refused_in_words() -> None:
    _desk()
    case = Case.objects.filter(assignee__username="alice").order_by("pk").first()
    assert case is not None
    TeamMembership.objects.filter(user__username="bob").update(on_leave=True)
    sam = _web("sam")

    empty = sam.post(f"/cases/{case.pk}/reassign/", {"to": ""}, follow=True)
    on_leave = sam.post(f"/cases/{case.pk}/reassign/", {"to": "bob"}, follow=True)
    nobody = sam.post(f"/cases/{case.pk}/reassign/", {"to": "zed"}, follow=True)

    assert _messages(empty) == "Officer: This field is required."
    assert _messages(on_leave) == "bob cannot take cases: not an active credit officer on a team, or on leave"
    assert _messages(nobody) == "no user 'zed' (to)"
    assert sam.post("/cases/999999/reassign/", {"to": "bob"}).status_code == 404
    assert not AuditEvent.objects.filter(action="case.reassign").exists()


# ------------------------------------------------------------------------------------------- the team page


def test_a_senior_sends_an_officer_on_leave_and_their_cases_go_to_the_others_in_one_action() -> None:
    _desk(margin_calls=6)
    bob = User.objects.get(username="bob")
    bobs = set(Case.objects.filter(assignee=bob).values_list("pk", flat=True))
    assert len(bobs) == 3  # the sweep balanced six cases over two officers
    sam = _web("sam")
    page = sam.get("/staff/team/")
    assert _row(page, "team-members", "officer", "bob")[2] == "3"
    assert "Send on leave (redistribute 3 cases)" in text(page)

    response = sam.post(f"/staff/{bob.pk}/leave/start/", follow=True)

    assert _messages(response) == "bob is on leave: 3 cases to alice."
    assert set(Case.objects.filter(assignee__username="alice", pk__in=bobs).values_list("pk", flat=True)) == bobs
    assert _row(response, "team-members", "officer", "bob")[2:5] == ["0", "0", "0"]
    assert "on leave" in _row(response, "team-members", "officer", "bob")[5]
    sam_id = User.objects.get(username="sam").pk
    assert AuditEvent.objects.get(action="staff.leave_start").actor_id == sam_id
    moved = AuditEvent.objects.filter(action="case.reassign", object_id__in=bobs)
    assert moved.count() == len(bobs)
    assert {(e.actor_id, e.reason) for e in moved} == {(sam_id, "bob is on leave")}

    back = sam.post(f"/staff/{bob.pk}/leave/end/", follow=True)

    assert _messages(back) == "bob is back from leave and takes new cases again."
    assert not TeamMembership.objects.get(user=bob).on_leave
    assert AuditEvent.objects.get(action="staff.leave_end").actor_id == sam_id
    again = sam.post(f"/staff/{bob.pk}/leave/end/", follow=True)
    assert _messages(again) == "bob was not on leave."


def test_an_officer_reads_the_team_page_but_is_refused_sending_anyone_on_leave() -> None:
    _desk()
    alice = _web("alice")
    bob = User.objects.get(username="bob")
    page = alice.get("/staff/team/")
    assert "Only a senior credit officer sends an officer on leave" in text(page)
    assert "/leave/start/" not in page.content.decode()

    response = alice.post(f"/staff/{bob.pk}/leave/start/", follow=True)

    assert _messages(response) == "alice may not send officers on leave"
    assert not TeamMembership.objects.get(user=bob).on_leave
    assert not AuditEvent.objects.filter(action__in=("staff.leave_start", "case.reassign")).exists()
    assert alice.post("/staff/999999/leave/start/").status_code == 404


def test_the_team_page_costs_the_same_queries_whatever_the_teams(django_assert_num_queries: Any) -> None:
    _desk(margin_calls=2)
    sam = _web("sam")
    with django_assert_num_queries(11):
        sam.get("/staff/team/")
    _more_desks()
    with django_assert_num_queries(11):
        response = sam.get("/staff/team/")
    assert len(re.findall(r'data-officer="', response.content.decode())) == 12
