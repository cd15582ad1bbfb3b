"""Issue 17: bulk actions on the queue. The selected cases, one action: one audited event per case done, a refusal
per case where the action is not allowed (nothing of that case changes, the others go on), and a summary."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from core.models import AuditEvent
from core.roles import COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Case, CaseState, Contact, Note, Notification, NotificationKind, Team, TeamMembership
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import _queue_book, text

pytestmark = [pytest.mark.django_db]


def _messages(response: object) -> str:
    body = response.content.decode()  # type: ignore[attr-defined]
    return html.unescape(" ".join(" ".join(re.findall(r'<ul class="messages">(.*?)</ul>', body, re.S)).split()))


@pytest.fixture
def desk() -> dict[str, User]:
    sam = staff_user("sam", SENIOR_CREDIT_OFFICER)
    team = Team.objects.create(name="Desk A", senior=sam)
    people = {"sam": sam}
    for name in ("alice", "bob"):
        people[name] = staff_user(name, CREDIT_OFFICER)
        TeamMembership.objects.create(team=team, user=people[name])
    return people


def test_a_bulk_reminder_is_one_audited_notice_per_case_and_refused_where_nothing_waits_on_the_client(
    desk: dict[str, User],
) -> None:
    cases = _queue_book()  # CALL, CRIT, GRP in margin call, WARN in warning
    for code in ("CALL", "GRP", "WARN"):
        client = cases[code].account.client
        client.email = f"{code.lower()}@example.com"
        client.save(update_fields=["email"])
    web = signed_in(desk["alice"])
    chosen = [cases["CALL"].pk, cases["WARN"].pk, cases["GRP"].pk, cases["CRIT"].pk]  # CRIT: no address

    response = web.post("/queue/bulk/", {"action": "remind", "cases": chosen, "next": "/queue/"}, follow=True)

    summary = _messages(response)
    assert "2 cases done" in summary
    assert f"case #{cases['CALL'].pk}: reminder of the margin call deadline sent" in summary
    assert "2 cases refused" in summary
    assert f"case #{cases['WARN'].pk} is warning: it waits on nothing from the client" in summary
    assert f"case #{cases['CRIT'].pk}: the client has no channel to remind it by" in summary
    events = AuditEvent.objects.filter(action="case.reminder")
    assert sorted(events.values_list("object_id", flat=True)) == sorted([cases["CALL"].pk, cases["GRP"].pk])
    assert {e.actor_id for e in events} == {desk["alice"].pk}
    reminded = Notification.objects.filter(kind=NotificationKind.DEADLINE_REMINDER)
    assert set(reminded.values_list("case_id", flat=True)) == {cases["CALL"].pk, cases["GRP"].pk}

    # the same morning, again: refused per case, nothing sent twice
    again = _messages(web.post("/queue/bulk/", {"action": "remind", "cases": chosen[:1]}, follow=True))
    assert "reminded less than 24 hours ago" in again
    assert AuditEvent.objects.filter(action="case.reminder").count() == 2


def test_a_senior_bulk_reassigns_and_an_officer_is_refused_case_by_case(desk: dict[str, User]) -> None:
    cases = _queue_book()
    open_ids = [c.pk for c in cases.values()]
    Case.objects.filter(pk__in=open_ids).update(assignee=desk["alice"])

    refused = _messages(
        signed_in(desk["alice"]).post(
            "/queue/bulk/", {"action": "reassign", "cases": open_ids, "to": "bob"}, follow=True
        )
    )
    assert "4 cases refused" in refused
    assert "alice may not reassign cases" in refused
    assert not AuditEvent.objects.filter(action="case.reassign").exists()

    done = _messages(
        signed_in(desk["sam"]).post(
            "/queue/bulk/",
            {"action": "reassign", "cases": open_ids, "to": "bob", "reason": "alice on leave"},
            follow=True,
        )
    )
    assert "4 cases done" in done
    assert set(Case.objects.filter(pk__in=open_ids).values_list("assignee__username", flat=True)) == {"bob"}
    events = AuditEvent.objects.filter(action="case.reassign")
    assert sorted(events.values_list("object_id", flat=True)) == sorted(open_ids)
    assert {e.reason for e in events} == {"alice on leave"}


def test_a_bulk_action_without_cases_or_with_an_unknown_action_does_nothing(desk: dict[str, User]) -> None:
    cases = _queue_book()
    web = signed_in(desk["alice"])
    events = AuditEvent.objects.count()

    nothing = _messages(web.post("/queue/bulk/", {"action": "remind"}, follow=True))
    unknown = _messages(web.post("/queue/bulk/", {"action": "delete", "cases": [cases["CALL"].pk]}, follow=True))

    assert "cases: select at least one case" in nothing
    assert "action 'delete': not one of contact, note, reassign, remind" in unknown
    assert AuditEvent.objects.count() == events
    assert Case.objects.get(pk=cases["CALL"].pk).state == CaseState.MARGIN_CALL


def test_compliance_cannot_act_in_bulk(desk: dict[str, User]) -> None:
    cases = _queue_book()
    web: Client = signed_in(staff_user("cora", COMPLIANCE))

    assert web.post("/queue/bulk/", {"action": "remind", "cases": [cases["CALL"].pk]}).status_code == 403
    assert "Selected cases" not in text(web.get("/queue/"))


def test_a_bulk_note_and_contact_are_one_audited_entry_per_case(desk: dict[str, User]) -> None:
    cases = _queue_book()
    web = signed_in(desk["alice"])
    chosen = [cases["CALL"].pk, cases["GRP"].pk]

    noted = _messages(
        web.post("/queue/bulk/", {"action": "note", "cases": chosen, "text": "called, no answer"}, follow=True)
    )
    form = {
        "action": "contact",
        "cases": chosen,
        "text": "reminder letter",
        "channel": "letter",
        "direction": "outbound",
        "outcome": "message_left",
    }
    logged = _messages(web.post("/queue/bulk/", form, follow=True))
    empty = _messages(web.post("/queue/bulk/", {"action": "note", "cases": chosen, "text": " "}, follow=True))

    assert "2 cases done" in noted
    assert "2 cases done" in logged
    assert "2 cases refused" in empty  # an empty note, refused per case, nothing written
    assert sorted(Note.objects.values_list("case_id", flat=True)) == sorted(chosen)
    assert sorted(Contact.objects.values_list("case_id", flat=True)) == sorted(chosen)
    assert AuditEvent.objects.filter(action__in=["note.add", "contact.log"]).count() == 4
