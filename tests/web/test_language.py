"""Issue 17: the pages are translatable, German ships as the second locale, each member of staff chooses theirs
(a stored, audited preference, carried in the session: no query per page), and money follows the language."""

from __future__ import annotations

import gettext
import re
import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from core.models import AuditEvent, UserPreference
from core.preferences import SESSION_KEY as LANGUAGE_SESSION_KEY
from core.preferences import language_set
from core.roles import ADMINISTRATOR, COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from core.staff import enrolment_issue
from restructuring.models import Case, Installment, Proposal, Team, TeamMembership
from restructuring.services.conversation import contact_log_with_promise, note_add
from restructuring.services.negotiation.execution import proposal_execute
from restructuring.services.negotiation.offers import offer_accept, offer_send
from restructuring.services.negotiation.proposals import proposal_approve
from restructuring.services.negotiation.repayments import repayment_record
from rules.models import Rule, RuleSet, RuleSetStatus
from rules.services import ruleset_clone
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
    """The queue's 13 queries (tests/web/test_officer_pages.py), in German as in English."""
    _queue_book()
    web = signed_in(alice)
    web.post("/account/language/", {"language": "de"})
    with django_assert_num_queries(13):
        assert len(queue_case_ids(web.get("/queue/"))) == 4


def _catalogue() -> Any:
    with (ROOT / "locale/de/LC_MESSAGES/django.po").open("rb") as f:
        return read_po(f, locale="de")


def test_the_german_catalogue_is_complete_and_msgfmt_checks_it(tmp_path: Path) -> None:
    """Every message has its German (no empty msgstr, no fuzzy one, plural forms too), GNU msgfmt --check finds
    no fault (placeholders kept, the header sound), and the committed .mo is the .po compiled."""
    catalogue = _catalogue()
    untranslated = [
        m.id for m in catalogue if m.id and (not all(m.string) if isinstance(m.string, tuple) else not m.string)
    ]
    fuzzy = [m.id for m in catalogue if m.id and "fuzzy" in m.flags]
    assert (untranslated, fuzzy) == ([], [])
    assert len(catalogue) > 900

    po = ROOT / "locale/de/LC_MESSAGES/django.po"
    compiled = tmp_path / "django.mo"
    check = subprocess.run(["msgfmt", "--check", "-o", str(compiled), str(po)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with compiled.open("rb") as fresh, (ROOT / "locale/de/LC_MESSAGES/django.mo").open("rb") as shipped:
        fresh_messages, shipped_messages = (gettext.GNUTranslations(f)._catalog for f in (fresh, shipped))  # type: ignore[attr-defined]
    # the same messages (the header, "", says which tool compiled it: msgfmt or Babel's tools/locale_fill.py)
    fresh_messages.pop("")
    shipped_messages.pop("")
    assert fresh_messages == shipped_messages


# --------------------------------------------------------------------------- every page, read in German


# English a German page may show that is not the catalogue's: data (names, codes, the rules' own text as their
# authors wrote it, audit payloads) and words German shares.
def _known_english() -> list[str]:
    """The catalogue's English phrases a German reader must not meet: two words or more, no placeholder, whose German
    differs."""
    phrases = []
    for m in _catalogue():
        if not m.id or isinstance(m.id, tuple) or m.context or "%" in m.id or "<" in m.id:
            continue
        text = " ".join(m.id.split())
        if len(text.split()) >= 2 and len(text) >= 10 and m.string and " ".join(m.string.split()) != text:
            phrases.append(text)
    return phrases


@pytest.fixture
def german_world(django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    """A senior (sam), an officer on his team (alice), compliance (cora) and an administrator (ada), all reading
    German; a proposed case, a restructured one with a conversation and a partial payment, a draft rule set."""
    users = {
        "sam": staff_user("sam", SENIOR_CREDIT_OFFICER),
        "alice": staff_user("alice", CREDIT_OFFICER),
        "cora": staff_user("cora", COMPLIANCE),
        "ada": staff_user("ada", ADMINISTRATOR),
    }
    for user in users.values():
        language_set(user=user, language="de")
    team = Team.objects.create(name="Desk A", senior=users["sam"])
    TeamMembership.objects.create(team=team, user=users["alice"])
    proposed = proposed_case()
    restructured = proposed_case("EXEC")
    proposal = Proposal.objects.get(case=restructured)
    proposal_approve(proposal_id=proposal.pk, actor=users["sam"], version=1, override_reason="other assets")
    offer_send(proposal_id=proposal.pk, actor=users["sam"], version=1)
    offer_accept(proposal_id=proposal.pk, client_id=restructured.account.client_id)
    proposal_execute(proposal_id=proposal.pk, actor=users["sam"], version=1)
    first = Installment.objects.filter(proposal=proposal).order_by("number").first()
    assert first is not None
    repayment_record(installment_id=first.pk, amount=Decimal("1.00"), actor=users["sam"])
    contact_log_with_promise(
        case_id=restructured.pk,
        channel="call",
        direction="outbound",
        outcome="promise",
        actor=users["alice"],
        promise={"amount": Decimal("50.00"), "due": timezone.localdate() + timedelta(days=3), "method": "card"},
    )
    note_add(case_id=restructured.pk, text="—", actor=users["alice"], remind_on=timezone.localdate())
    Case.objects.filter(pk__in=[proposed.pk, restructured.pk]).update(assignee=users["alice"], team=team)
    policy = RuleSet.objects.get(status=RuleSetStatus.PUBLISHED)
    draft = ruleset_clone(rule_set_id=policy.pk, actor=users["sam"])
    return {**users, "proposed": proposed, "restructured": restructured, "policy": policy, "draft": draft}


def _german_pages(w: dict[str, Any]) -> dict[str, Any]:
    """Each page of the UI as its reader sees it, in German."""
    sam, cora, ada = signed_in(w["sam"]), signed_in(w["cora"]), signed_in(w["ada"])
    draft, proposed, restructured = w["draft"], w["proposed"], w["restructured"]
    rule = draft.rules.order_by("priority", "pk").first()
    pending = Proposal.objects.filter(case=proposed).first()
    assert rule is not None
    assert pending is not None
    anonymous = Client()
    session = anonymous.session
    session[LANGUAGE_SESSION_KEY] = "de"
    session.save()
    pages = {
        "queue": sam.get("/queue/"),
        "queue, unassigned": sam.get("/queue/?assignee=none"),
        "case, proposed": sam.get(f"/cases/{proposed.pk}/"),
        "case, restructured": sam.get(f"/cases/{restructured.pk}/"),
        "terms form": sam.get(f"/cases/{proposed.pk}/proposals/new/"),
        "terms form, edit": sam.get(f"/proposals/{pending.pk}/edit/"),
        "teams": sam.get("/staff/team/"),
        "cascade": sam.get("/cascade/?symbol=BTC&drop=0.3"),
        "rules": sam.get("/rules/"),
        "rule set in force": sam.get(f"/rules/{w['policy'].pk}/"),
        "draft rule set": sam.get(f"/rules/{draft.pk}/"),
        "new rule": sam.get(f"/rules/{draft.pk}/rules/new/"),
        "rule": sam.get(f"/rules/{draft.pk}/rules/{rule.pk}/"),
        "dry run": sam.post(f"/rules/{draft.pk}/dry-run/"),
        "audit trail": cora.get("/audit/"),
        "case history": cora.get(f"/audit/cases/{restructured.pk}/"),
        "chain verified": cora.post("/audit/verify/"),
        "staff": ada.get("/staff/"),
        "link issued": ada.post("/staff/create/", {"username": "newbie", "email": "", "role": CREDIT_OFFICER}),
        "sign-in": anonymous.get("/login/"),
        "enrolment": anonymous.get(
            enrolment_issue(user_id=User.objects.get(username="newbie").pk, actor=w["ada"]).path
        ),
        "enrolment, invalid": anonymous.get("/enrol/not-a-link/"),
    }
    for name, response in pages.items():
        assert response.status_code in (200, 410), (name, response.status_code)
    return pages


def _as_read(response: Any, authored: list[str]) -> str:
    """The page's text a German reader reads in the UI's words: without the record as it was written (the raw
    payloads one click away, compliance's payload tables: the audit trail keeps its English) and without what people
    wrote (the rules' descriptions)."""
    body = response.content.decode()
    body = re.sub(r'<details class="raw">.*?</details>', " ", body, flags=re.S)
    body = re.sub(r'<table class="payload">.*?</table>', " ", body, flags=re.S)
    page = text(type("Page", (), {"content": body.encode()})())
    for description in authored:
        page = page.replace(" ".join(description.split()), " ")
    return page


def test_every_page_read_in_german_shows_none_of_the_catalogues_english(german_world: dict[str, Any]) -> None:
    """Each page in German: none of the catalogue's English phrases left on it (a string not marked for translation,
    or marked and not translated, would show here), and a few German words each page must have."""
    pages = _german_pages(german_world)
    phrases = _known_english()
    authored = [d for d in Rule.objects.values_list("description", flat=True) if d]
    left = {}
    for name, response in pages.items():
        page = _as_read(response, authored)
        found = [p for p in phrases if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", page)]
        if found:
            left[name] = found
    assert left == {}
    expected = {
        "queue": ["Meine Fälle", "Alle offenen", "Arbeitslast", "Warten auf Mitarbeiter"],
        "case, restructured": ["zugewiesen an alice", "Offene Zusage: 50,00 $", "Tilgungsplan", "teilweise bezahlt"],
        "case, proposed": ["Neu zuweisen", "Vorschläge", "Nachschussforderung"],
        "teams": ["In den Urlaub schicken", "Desk A"],
        "rules": ["In Kraft:", "Alle Regelwerke"],
        "new rule": ["Fakten", "Bedeutung", "Bedingung"],
        "audit trail": ["Die Kette prüfen", "CSV exportieren"],
        "chain verified": ["Die Kette ist intakt."],
        "staff": ["Neuer Mitarbeiter", "Mitarbeiter"],
        "link issued": ["newbie ist angelegt"],
        "sign-in": ["Anmelden", "Benutzername", "Passwort"],
        "enrolment": ["Mein Konto einrichten"],
        "enrolment, invalid": ["Dieser Link ist nicht mehr gültig"],
    }
    missing = {name: [w for w in words if w not in text(pages[name])] for name, words in expected.items()}
    assert {k: v for k, v in missing.items() if v} == {}


def test_the_services_refusals_and_messages_are_german_with_money_by_babel(german_world: dict[str, Any]) -> None:
    alice = signed_in(german_world["alice"])
    case = german_world["proposed"]

    refused = alice.post(f"/cases/{case.pk}/reassign/", {"to": "sam"}, follow=True)
    taken = alice.post(
        f"/cases/{case.pk}/promises/",
        {"promise_amount": "1234.50", "promise_due": "2099-01-01", "promise_method": "card"},
        follow=True,
    )
    due = (timezone.localdate() + timedelta(days=2)).isoformat()
    again = alice.post(
        f"/cases/{german_world['restructured'].pk}/promises/",
        {"promise_amount": "10", "promise_due": due, "promise_method": "card"},
        follow=True,
    )

    assert "alice darf Folgendes nicht: Fälle neu zuweisen" in text(refused)
    assert "due: 2099-01-01 liegt mehr als 366 Tage voraus" in text(taken)
    assert f"Fall {german_world['restructured'].pk} hat eine offene Zusage (50,00 $ bis" in text(again)


def test_the_german_catalogue_is_compiled_and_covers_the_desk() -> None:
    po = (ROOT / "locale/de/LC_MESSAGES/django.po").read_text()
    mo = ROOT / "locale/de/LC_MESSAGES/django.mo"
    assert mo.exists()
    assert mo.stat().st_mtime >= (ROOT / "locale/de/LC_MESSAGES/django.po").stat().st_mtime - 5
    untranslated = re.findall(r'msgid "([^"]+)"\nmsgstr ""\n\n', po)
    assert untranslated == []
