"""Issue 17, the demo's living desk: `make demo` assigns the demo's open cases to alice and bob through the assignment
service, and has each of them talk on their own cases (calls, emails, promises to pay, notes) and a few clients send
promises, through the conversation services: everything on the audit trail, each event naming who did it."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.test import TestCase, override_settings

from core.models import AuditEvent
from core.operations import command_system_actor
from restructuring.models import OPEN_STATES, Case, Contact, Note, PromiseSource, PromiseStatus, PromiseToPay
from tests.web.test_officer_pages import queue_case_ids, text

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    out = StringIO()
    with override_settings(DEBUG=True):
        call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture(autouse=True)
def _small(settings: Any) -> None:
    settings.WORKOUT_FEASIBILITY_PATHS = 300  # the figures are not what is tested here
    settings.SECURE_SSL_REDIRECT = False  # the test client signs in over plain HTTP (as tests/web/conftest.py)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def demo() -> None:
    """What `make demo` runs, in its order (test_make_demo_runs_the_desk reads the Makefile), on a small book; the
    sweep's work after its commits (cases, feasibility, proposals) run as they would."""
    _run("rules_load", "--publish", "--if-none-published")
    with TestCase.captureOnCommitCallbacks(execute=True):
        _run("demo_setup", "--accounts", "120")
    _run("demo_users")


def test_make_demo_runs_the_desk() -> None:
    makefile = (ROOT / "Makefile").read_text()
    target = makefile.split("\ndemo:")[1].split("\n\n")[0]
    commands = re.findall(r"manage\.py (\w+(?: --actor \w+)?)", target)
    assert commands[commands.index("demo_users") :] == [
        "demo_users",
        "demo_conversation --actor alice",
        "demo_conversation --actor bob",
        "demo_conversation",
        "runserver",
    ]


def test_the_demo_s_open_cases_are_assigned_through_the_assignment_service(demo: None) -> None:
    open_cases = Case.objects.filter(state__in=OPEN_STATES)
    owners = dict(open_cases.values_list("assignee__username").annotate(n=Count("pk")).order_by())
    assert owners.get("alice", 0) > 3, owners
    assert owners.get("bob", 0) > 3, owners
    assert set(owners) <= {"alice", "bob", None}
    assigned = open_cases.exclude(assignee=None)
    assert set(assigned.values_list("team__name", flat=True)) == {"Desk 1"}
    events = AuditEvent.objects.filter(action="case.assign")
    assert sorted(events.values_list("object_id", flat=True)) == sorted(assigned.values_list("pk", flat=True))
    assert set(events.values_list("system_actor", "actor")) == {(command_system_actor(), None)}


def test_each_officer_talks_on_their_own_cases_and_every_word_is_audited_as_theirs(demo: None) -> None:
    owned = dict(Case.objects.filter(state__in=OPEN_STATES).values_list("assignee__username").annotate(n=Count("pk")))
    out = _run("demo_conversation", "--actor", "alice", "--cases", "4") + _run("demo_conversation", "--actor", "bob")

    assert re.search(r"alice: conversation on 4 cases: \d+ contacts, [1-9] promises to pay, 4 notes", out), out
    for name in ("alice", "bob"):
        officer = User.objects.get(username=name)
        notes, contacts = Note.objects.filter(author=officer), Contact.objects.filter(officer=officer)
        promises = PromiseToPay.objects.filter(made_by=officer)
        assert notes.count() == (4 if name == "alice" else min(8, owned[name]))
        assert promises.exists()
        assert contacts.count() >= notes.count()
        for entries in (notes, contacts, promises):
            assert set(entries.values_list("case__assignee__username", flat=True)) == {name}  # their own cases
        assert set(promises.values_list("status", flat=True)) == {PromiseStatus.OPEN}
        for action, entries in (("note.add", notes), ("contact.log", contacts), ("promise.make", promises)):
            events = AuditEvent.objects.filter(action=action, actor=officer)
            assert sorted(events.values_list("object_id", flat=True)) == sorted(entries.values_list("pk", flat=True))
    assert not AuditEvent.objects.filter(action__in=("note.add", "contact.log"), actor=None).exists()


def test_the_clients_send_promises_and_a_second_run_adds_none_twice(demo: None) -> None:
    _run("demo_conversation", "--actor", "alice")

    _run("demo_conversation", "--cases", "5")
    _run("demo_conversation", "--cases", "5")

    sent = PromiseToPay.objects.filter(source=PromiseSource.CLIENT)
    assert sent.count() >= 5
    open_per_case = PromiseToPay.objects.filter(status=PromiseStatus.OPEN).values("case").annotate(n=Count("pk"))
    assert {row["n"] for row in open_per_case} == {1}  # never two open promises on a case
    events = AuditEvent.objects.filter(action="promise.make", object_id__in=sent.values("pk"))
    assert events.count() == sent.count()
    assert all(e.actor_id is None and e.system_actor.startswith("client:") for e in events)
    worked = set(Note.objects.values_list("case", flat=True))
    _run("demo_conversation", "--actor", "alice")  # her cases with a conversation are left alone
    assert Note.objects.filter(case__in=worked).count() == len(worked)


def test_alice_opens_her_queue_on_her_cases_and_finds_the_conversation_on_them(demo: None) -> None:
    from tests.web.helpers import PASSWORD, signed_in

    _run("demo_conversation", "--actor", "alice")
    alice = User.objects.get(username="alice")
    alice.set_password(PASSWORD)  # the demo's own is printed by demo_users; the test client signs in with this one
    alice.save()
    web = signed_in(alice)

    queue = web.get("/queue/")
    mine = set(Case.objects.filter(state__in=OPEN_STATES, assignee=alice).values_list("pk", flat=True))
    assert set(queue_case_ids(queue)) == mine
    promise = PromiseToPay.objects.filter(made_by=alice).first()
    assert promise is not None
    page = text(web.get(f"/cases/{promise.case_id}/"))
    assert "Open promise:" in page
    assert "Cannot meet the whole call at once" in page
    assert "The client says the shortfall is temporary" in page


def test_the_demo_s_conversation_refuses_without_debug(demo: None) -> None:
    with pytest.raises(CommandError, match="runs only with DEBUG=true"):
        call_command("demo_conversation", "--actor", "alice", stdout=StringIO())
    assert not Note.objects.exists()
    assert not PromiseToPay.objects.exists()
