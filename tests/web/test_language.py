"""Issue 17: the pages are translatable, German ships as the second locale, each member of staff chooses theirs
(a stored, audited preference, carried in the session: no query per page), and money follows the language."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User

from core.models import AuditEvent, UserPreference
from core.preferences import language_set
from core.roles import CREDIT_OFFICER
from tests.web.helpers import signed_in, staff_user
from tests.web.test_officer_pages import _queue_book, proposed_case, queue_case_ids, text

pytestmark = [pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def alice() -> User:
    return staff_user("alice", CREDIT_OFFICER)


def test_an_officer_chooses_german_and_the_pages_and_money_follow(alice: User) -> None:
    web = signed_in(alice)
    case = proposed_case()

    english = text(web.get(f"/cases/{case.pk}/"))
    chosen = web.post("/account/language/", {"language": "de", "next": f"/cases/{case.pk}/"}, follow=True)
    german = text(chosen)

    assert "Debt $750.00" in english
    assert "Die Seiten sind jetzt auf Deutsch." in german
    assert "Schuld 750,00 $" in german
    assert "Nachschussforderung" in german.split("Verlauf")[-1]  # the timeline's labels too
    assert UserPreference.objects.get(user=alice).language == "de"
    event = AuditEvent.objects.get(action="staff.language_set")
    assert (event.actor_id, event.payload["language"]) == (alice.pk, "de")
    # the queue: headers and the pager's words in German
    queue = text(web.get("/queue/"))
    assert "Arbeitsliste" in queue
    assert "Erwarteter Verlust" in queue


def test_the_choice_is_the_users_and_outlives_the_session(alice: User) -> None:
    language_set(user=alice, language="de")  # chosen in an earlier session
    bob = staff_user("bob", CREDIT_OFFICER)

    again = text(signed_in(alice).get("/queue/"))  # signing in reads the preference into the session
    other = text(signed_in(bob).get("/queue/"))

    assert "Arbeitsliste" in again
    assert "Arbeitsliste" not in other
    assert "Queue" in other


def test_a_language_the_site_does_not_ship_is_refused_and_nothing_changes(alice: User) -> None:
    web = signed_in(alice)

    response = web.post("/account/language/", {"language": "xx"}, follow=True)

    assert "language 'xx': not one of en, de" in text(response)
    assert not UserPreference.objects.exists()
    assert not AuditEvent.objects.filter(action="staff.language_set").exists()


def test_the_language_costs_no_query_per_page(alice: User, django_assert_num_queries: Any) -> None:
    """The queue's 14 queries (tests/web/test_officer_pages.py), in German as in English."""
    _queue_book()
    web = signed_in(alice)
    web.post("/account/language/", {"language": "de"})
    with django_assert_num_queries(14):
        assert len(queue_case_ids(web.get("/queue/"))) == 4


def test_the_german_catalogue_is_compiled_and_covers_the_desk() -> None:
    po = (ROOT / "locale/de/LC_MESSAGES/django.po").read_text()
    mo = ROOT / "locale/de/LC_MESSAGES/django.mo"
    assert mo.exists()
    assert mo.stat().st_mtime >= (ROOT / "locale/de/LC_MESSAGES/django.po").stat().st_mtime - 5
    untranslated = re.findall(r'msgid "([^"]+)"\nmsgstr ""\n\n', po)
    assert untranslated == []
