"""Staff enrolment through the real pages: an administrator creates a member of staff and is shown their one-time
link; the new member opens it without signing in, chooses a password, adds the key the page shows to an
authenticator and types its code; then signs in through the login form like everyone else. Links that are
unknown, used, revoked or expired are refused and change nothing; a user without an authenticator is told what to
do (finding 7 of issue 13); only administrators reach the staff page."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import AuditEvent, StaffEnrolment
from core.roles import ADMINISTRATOR, COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from core.staff import enrolment_issue
from restructuring.services.staff import staff_member_create
from tests.web.helpers import PASSWORD, current_code, signed_in, staff_user

pytestmark = [pytest.mark.django_db]

NEW_PASSWORD = "plum orchard lantern 42"
LINK = re.compile(r'id="enrolment-link" type="text" readonly value="(http://testserver(/enrol/[^"/]+/))"')


@pytest.fixture
def ada() -> User:
    return staff_user("ada", ADMINISTRATOR)


@pytest.fixture
def admin_web(ada: User) -> Client:
    return signed_in(ada)


def _text(response: Any) -> str:
    return str(response.content.decode())


def _secret(page: str) -> bytes:
    found = re.search(r'id="authenticator-key">([A-Z2-7 ]+)<', page)
    assert found, page[:2000]
    return base64.b32decode(found.group(1).replace(" ", ""))


def _key_field(page: str) -> str:
    found = re.search(r'name="key" value="([^"]+)"', page)
    assert found
    return found.group(1)


def _code(key: bytes, *, steps_ahead: int = 0) -> str:
    """What an authenticator app holding `key` shows now (or that many 30-second steps later)."""
    totp = TOTP(key)
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def _staff_events(action: str = "") -> list[AuditEvent]:
    events = AuditEvent.objects.filter(object_type="auth.user")
    return list(events.filter(action=action) if action else events)


def _enrol_form(page: str, secret: bytes, **overrides: str) -> dict[str, str]:
    return {
        "password": NEW_PASSWORD,
        "password_again": NEW_PASSWORD,
        "key": _key_field(page),
        "code": _code(secret),
        **overrides,
    }


def _issued_link(username: str, actor: User) -> str:
    """A link issued by the service (the page's own path is tested in the journey)."""
    user = User.objects.get(username=username)
    return enrolment_issue(user_id=user.pk, actor=actor).path


def _nothing_enrolled(user: User) -> None:
    user.refresh_from_db()
    assert not user.has_usable_password()
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not _staff_events("staff.enrol")


# ------------------------------------------------------------------------------------------ the journey


def test_an_administrator_enrols_a_new_officer_who_then_signs_in_with_the_login_form(
    ada: User, admin_web: Client
) -> None:
    # given the administrator creates olga, a credit officer, on the staff page
    created = admin_web.post(
        "/staff/create/", {"username": "olga", "email": "olga@example.com", "role": CREDIT_OFFICER}
    )
    assert created.status_code == 200
    link = LINK.search(_text(created))
    assert link, _text(created)[:3000]
    url, path = link.groups()
    olga = User.objects.get(username="olga")
    assert list(olga.groups.values_list("name", flat=True)) == [CREDIT_OFFICER]
    assert olga.is_active
    assert not olga.has_usable_password()

    # olga cannot sign in before she enrols, whatever she types
    assert Client().post("/login/", {"username": "olga", "password": "", "otp_token": "123456"}).status_code == 200
    assert Client().get("/queue/").status_code == 302

    # when she opens the link, not signed in: the page shows a key (and its QR code) and asks for a password and code
    phone = Client()
    page = phone.get(path)
    assert page.status_code == 200
    assert "<svg" in _text(page)
    assert "Set up my account" in _text(page)
    assert page["Referrer-Policy"] == "same-origin"  # no other site learns the token
    assert "no-store" in page["Cache-Control"]
    key = _secret(_text(page))  # what she types into her authenticator app

    # and posts her password and the code her app shows
    done = phone.post(path, _enrol_form(_text(page), key))

    # then she is signed in, second factor verified, on the queue
    assert done.status_code == 302
    assert done["Location"] == "/queue/"
    assert phone.get("/queue/").status_code == 200
    olga.refresh_from_db()
    assert olga.check_password(NEW_PASSWORD)
    device = TOTPDevice.objects.get(user=olga)
    assert device.confirmed
    assert bytes.fromhex(device.key) == key

    # and later, from another browser, she signs in through the real login form with her app's next code
    later = Client()
    signed = later.post(
        "/login/", {"username": "olga", "password": NEW_PASSWORD, "otp_token": _code(key, steps_ahead=1)}
    )
    assert signed.status_code == 302
    assert later.get("/queue/").status_code == 200

    # the record: who created her, granted her role, issued her link (ada), and that she enrolled herself
    assert [(e.action, e.actor_id) for e in _staff_events()] == [
        ("staff.create", ada.pk),
        ("staff.role_grant", ada.pk),
        ("staff.enrolment_issue", ada.pk),
        ("staff.enrol", olga.pk),
    ]
    assert all(e.object_id == olga.pk for e in _staff_events())

    # the link worked once
    again = Client().get(path)
    assert again.status_code == 410
    assert "this link is not valid any more: ask your administrator for a new one" in _text(again).lower()
    assert url.endswith(path)


def test_the_link_token_is_stored_nowhere_only_its_digest(admin_web: Client) -> None:
    created = admin_web.post("/staff/create/", {"username": "olga", "role": COMPLIANCE})
    link = LINK.search(_text(created))
    assert link
    token = link.group(2).split("/")[2]
    page = Client().get(link.group(2))
    assert page.status_code == 200

    enrolment = StaffEnrolment.objects.get(user__username="olga")
    assert enrolment.digest == hashlib.sha256(token.encode()).hexdigest()
    stored = [
        json.dumps(next(iter(StaffEnrolment.objects.values())), default=str),
        *(json.dumps(e.payload) + e.reason for e in AuditEvent.objects.all()),
        *(json.dumps(s.get_decoded()) for s in Session.objects.all()),
    ]
    assert not [text for text in stored if token in text]


# ------------------------------------------------------------------------------------ links refused


def test_an_unknown_link_is_refused(client: Client) -> None:
    response = client.get("/enrol/not-a-token-anyone-issued/")
    assert response.status_code == 410
    assert "ask your administrator for a new one" in _text(response)
    posted = client.post("/enrol/not-a-token-anyone-issued/", {"password": NEW_PASSWORD, "code": "123456"})
    assert posted.status_code == 410


def test_an_expired_link_is_refused_and_nothing_changes(ada: User) -> None:
    olga = staff_member_create(username="olga", roles=[CREDIT_OFFICER], actor=ada).enrolment.user
    path = _issued_link("olga", ada)
    phone = Client()
    page = phone.get(path)
    key = _secret(_text(page))
    # the link's time runs out while the page is open
    past = timezone.now() - timedelta(hours=1)
    StaffEnrolment.objects.filter(used_at__isnull=True, revoked_at__isnull=True).update(
        issued_at=past - timedelta(hours=24), expires_at=past
    )
    events = AuditEvent.objects.count()

    refused = phone.post(path, _enrol_form(_text(page), key))

    assert refused.status_code == 410
    assert "this link is not valid any more" in _text(refused).lower()
    _nothing_enrolled(olga)
    assert AuditEvent.objects.count() == events
    assert StaffEnrolment.objects.filter(used_at__isnull=False).count() == 0
    assert phone.get("/queue/").status_code == 302  # and nobody is signed in


def test_a_used_link_is_refused_and_changes_nothing(ada: User) -> None:
    olga = staff_member_create(username="olga", roles=[CREDIT_OFFICER], actor=ada).enrolment.user
    path = _issued_link("olga", ada)
    page = Client().get(path)
    key = _secret(_text(page))
    assert Client().post(path, _enrol_form(_text(page), key)).status_code == 302
    olga.refresh_from_db()
    password, device = olga.password, TOTPDevice.objects.get(user=olga)
    events = AuditEvent.objects.count()

    # someone else who saw the link tries it with their own password and a fresh key of their own
    stolen = Client()
    assert stolen.get(path).status_code == 410
    refused = stolen.post(path, {**_enrol_form(_text(page), key), "password": "another password 99"})

    assert refused.status_code == 410
    olga.refresh_from_db()
    assert olga.password == password
    assert list(TOTPDevice.objects.filter(user=olga)) == [device]
    assert AuditEvent.objects.count() == events


def test_a_newer_link_revokes_the_older_one(ada: User) -> None:
    staff_member_create(username="olga", roles=[CREDIT_OFFICER], actor=ada)
    first = StaffEnrolment.objects.get()
    newer = _issued_link("olga", ada)
    first.refresh_from_db()
    assert first.revoked_at is not None
    assert Client().get(newer).status_code == 200


def test_a_wrong_code_or_a_weak_password_changes_nothing_and_the_link_still_works(ada: User) -> None:
    olga = staff_member_create(username="olga", roles=[CREDIT_OFFICER], actor=ada).enrolment.user
    path = _issued_link("olga", ada)
    phone = Client()
    page = phone.get(path)
    key = _secret(_text(page))
    wrong = str((int(_code(key)) + 1) % 1_000_000).zfill(6)

    for form, says in [
        (_enrol_form(_text(page), key, code=wrong), "not the authenticator"),
        (_enrol_form(_text(page), key, password="password", password_again="password"), "too common"),
        (_enrol_form(_text(page), key, password_again="something else entirely"), "the two passwords differ"),
        (_enrol_form(_text(page), key, key="tampered"), "open the link again"),
    ]:
        answer = phone.post(path, form)
        assert answer.status_code == 200, says
        assert says in _text(answer)
        if form["key"] == _key_field(_text(page)):  # the page keeps the key the app already holds
            assert _secret(_text(answer)) == key
        _nothing_enrolled(olga)
        assert not StaffEnrolment.objects.filter(used_at__isnull=False).exists()

    # a key signed for another link is refused as well: nobody enrols a key of their own choosing
    other = staff_member_create(username="otto", roles=[CREDIT_OFFICER], actor=ada).path
    other_page = Client().get(other)
    answer = phone.post(path, _enrol_form(_text(page), key, key=_key_field(_text(other_page))))
    assert "open the link again" in _text(answer)
    _nothing_enrolled(olga)

    # the right code for the key the page showed still works: nothing above used the link up
    again = phone.post(path, _enrol_form(_text(page), key))
    assert again.status_code == 302


def test_a_deactivated_users_link_is_refused(ada: User, admin_web: Client) -> None:
    olga = staff_member_create(username="olga", roles=[CREDIT_OFFICER], actor=ada).enrolment.user
    path = _issued_link("olga", ada)
    admin_web.post(f"/staff/{olga.pk}/deactivate/")
    assert Client().get(path).status_code == 410


# ------------------------------------------------------------------------ finding 7: signing in without


def test_finding_7_a_user_without_an_authenticator_is_told_to_ask_for_an_enrolment_link() -> None:
    # given a member of staff with a password and a role but no authenticator (createsuperuser makes such users)
    nina = User.objects.create_user("nina", password=PASSWORD)
    nina.groups.add(Group.objects.get(name=CREDIT_OFFICER))
    web = Client()

    # when she signs in with the right password and no code (she has none to type)
    response = web.post("/login/", {"username": "nina", "password": PASSWORD, "otp_token": ""})

    # then she is told what to do, not asked for a token she cannot have; and she is not signed in
    assert response.status_code == 200
    page = _text(response)
    assert "Please enter your OTP token" not in page
    assert "has no authenticator yet" in page
    assert "ask an administrator for an enrolment link" in page.lower()
    assert web.get("/queue/").status_code == 302
    # nor does the page that once set up an authenticator create one for her any more
    web.force_login(nina)  # a password-only session (the admin site's, say)
    sent = web.get("/queue/")
    assert sent.status_code == 302
    assert sent["Location"] == "/account/two-factor/"
    told = web.get("/account/two-factor/")
    assert told.status_code == 200
    assert "Ask an administrator for an enrolment link" in _text(told)
    assert 'action="/logout/"' in _text(told)
    assert not TOTPDevice.objects.filter(user=nina).exists()


def test_finding_7_a_new_member_of_staff_can_sign_in_once_enrolled(ada: User) -> None:
    issued = staff_member_create(username="nina", roles=[CREDIT_OFFICER], actor=ada)
    page = Client().get(issued.path)
    key = _secret(_text(page))
    assert Client().post(issued.path, _enrol_form(_text(page), key)).status_code == 302
    web = Client()
    assert (
        web.post(
            "/login/", {"username": "nina", "password": NEW_PASSWORD, "otp_token": _code(key, steps_ahead=1)}
        ).status_code
        == 302
    )
    assert web.get("/queue/").status_code == 200


# ----------------------------------------------------------------------------------- the staff page


def test_an_administrator_lands_on_the_staff_page_and_sees_nothing_of_the_credit_workflow(ada: User) -> None:
    web = Client()
    landed = web.post("/login/", {"username": "ada", "password": PASSWORD, "otp_token": current_code(ada)})
    assert landed["Location"] == "/staff/"
    assert web.get("/").url == "/staff/"  # type: ignore[attr-defined]
    for path in ("/queue/", "/rules/", "/audit/", "/cascade/"):
        assert web.get(path).status_code == 403, path
    page = _text(web.get("/staff/"))
    assert 'href="/staff/"' in page
    assert 'href="/queue/"' not in page


@pytest.mark.parametrize("role", [CREDIT_OFFICER, SENIOR_CREDIT_OFFICER, COMPLIANCE])
def test_officers_and_compliance_cannot_reach_the_staff_page_nor_its_actions(role: str) -> None:
    target = staff_user("tina", CREDIT_OFFICER)
    web = signed_in(staff_user("someone", role))
    events = AuditEvent.objects.count()

    assert web.get("/staff/").status_code == 403
    for path, data in [
        ("/staff/create/", {"username": "mallory", "role": SENIOR_CREDIT_OFFICER}),
        (f"/staff/{target.pk}/link/", {}),
        (f"/staff/{target.pk}/roles/grant/", {"role": SENIOR_CREDIT_OFFICER}),
        (f"/staff/{target.pk}/roles/revoke/", {"role": CREDIT_OFFICER}),
        (f"/staff/{target.pk}/limits/set/", {"currency": "USD", "amount": "99999999"}),
        (f"/staff/{target.pk}/limits/clear/", {"currency": "USD"}),
        (f"/staff/{target.pk}/deactivate/", {}),
        (f"/staff/{target.pk}/reactivate/", {}),
    ]:
        assert web.post(path, data).status_code == 403, path
    assert not User.objects.filter(username="mallory").exists()
    assert list(target.groups.values_list("name", flat=True)) == [CREDIT_OFFICER]
    assert not StaffEnrolment.objects.exists()
    assert AuditEvent.objects.count() == events
    assert Client().get("/staff/").status_code == 302  # and anonymous: to the login page


def test_a_superuser_counts_as_an_administrator() -> None:
    root = User.objects.create_superuser("root", password=PASSWORD)
    TOTPDevice.objects.create(user=root, name="authenticator", confirmed=True)
    web = signed_in(root)
    assert web.get("/staff/").status_code == 200
    assert web.post("/staff/create/", {"username": "olga", "role": ADMINISTRATOR}).status_code == 200
    assert User.objects.get(username="olga").groups.get().name == ADMINISTRATOR


def test_the_staff_page_lists_members_with_roles_limits_enrolment_and_last_sign_in(
    ada: User, admin_web: Client, django_assert_max_num_queries: Any
) -> None:
    # given enrolled officers with limits, one not enrolled, one deactivated, and a client's user
    for n in range(6):
        officer = staff_user(f"officer{n}", CREDIT_OFFICER)
        officer.approval_limits.create(currency="USD", amount=100_000 + n)
    staff_member_create(username="newbie", roles=[COMPLIANCE], actor=ada)
    gone = staff_user("gone", SENIOR_CREDIT_OFFICER)
    User.objects.filter(pk=gone.pk).update(is_active=False)
    staff_user("clientuser", "client")

    with django_assert_max_num_queries(14):
        page = admin_web.get("/staff/")

    text = _text(page)
    assert page.status_code == 200
    assert text.count('id="user-') == 9  # ada, six officers, newbie, gone; not the client's user
    assert "clientuser" not in text
    assert "$100,005.00" in text
    newbie = re.search(r'id="user-\d+"[^>]*>\s*<td><strong>newbie</strong>.*?</tr>', text, re.S)
    assert newbie
    assert "not enrolled" in newbie.group(0)
    assert "link open until" in newbie.group(0)
    assert re.search(r"<strong>gone</strong>.*?deactivated", text, re.S)
    mine = re.search(r"<strong>ada</strong>.*?</tr>", text, re.S)
    assert mine
    assert "Manage" not in mine.group(0)


def test_self_service_through_the_page_is_refused_with_a_message_and_changes_nothing(
    ada: User, admin_web: Client
) -> None:
    events = AuditEvent.objects.count()
    for path, data in [
        (f"/staff/{ada.pk}/link/", {}),
        (f"/staff/{ada.pk}/roles/grant/", {"role": SENIOR_CREDIT_OFFICER}),
        (f"/staff/{ada.pk}/roles/revoke/", {"role": ADMINISTRATOR}),
        (f"/staff/{ada.pk}/limits/set/", {"currency": "USD", "amount": "5000000"}),
        (f"/staff/{ada.pk}/deactivate/", {}),
    ]:
        answer = admin_web.post(path, data, follow=True)
        assert answer.status_code == 200
        assert "nobody may" in _text(answer), path
        assert "themselves" in _text(answer), path
    assert list(ada.groups.values_list("name", flat=True)) == [ADMINISTRATOR]
    assert not ada.approval_limits.exists()
    assert not StaffEnrolment.objects.exists()
    ada.refresh_from_db()
    assert ada.is_active
    assert AuditEvent.objects.count() == events


def test_the_page_actions_grant_set_deactivate_and_reactivate(ada: User, admin_web: Client) -> None:
    bob = staff_user("bob", CREDIT_OFFICER)
    bob_web = signed_in(bob)

    granted = admin_web.post(f"/staff/{bob.pk}/roles/grant/", {"role": SENIOR_CREDIT_OFFICER}, follow=True)
    assert "bob is now senior credit officer." in _text(granted)
    admin_web.post(f"/staff/{bob.pk}/roles/revoke/", {"role": CREDIT_OFFICER})
    assert list(bob.groups.values_list("name", flat=True)) == [SENIOR_CREDIT_OFFICER]

    limited = admin_web.post(f"/staff/{bob.pk}/limits/set/", {"currency": "usd", "amount": "750000.50"}, follow=True)
    assert "$750,000.50" in _text(limited)
    assert str(bob.approval_limits.get(currency="USD").amount) == "750000.50000000"
    refused = admin_web.post(f"/staff/{bob.pk}/limits/set/", {"currency": "USD", "amount": "-5"}, follow=True)
    assert "amount" in _text(refused)
    assert bob.approval_limits.get().amount == 750000.5
    admin_web.post(f"/staff/{bob.pk}/limits/clear/", {"currency": "USD"})
    assert not bob.approval_limits.exists()

    # deactivated, bob's session ends and he cannot sign in; reactivated, he can
    admin_web.post(f"/staff/{bob.pk}/deactivate/")
    assert bob_web.get("/queue/").status_code == 302
    assert signed_in_fails(bob)
    admin_web.post(f"/staff/{bob.pk}/reactivate/")
    back = Client()
    next_code = _code(bytes.fromhex(TOTPDevice.objects.get(user=bob).key), steps_ahead=1)  # the current one is spent
    assert back.post("/login/", {"username": "bob", "password": PASSWORD, "otp_token": next_code}).status_code == 302
    assert back.get("/queue/").status_code == 200

    assert [e.action for e in _staff_events()] == [
        "staff.role_grant",
        "staff.role_revoke",
        "staff.approval_limit_set",
        "staff.approval_limit_clear",
        "staff.deactivate",
        "staff.reactivate",
    ]
    assert {e.actor_id for e in _staff_events()} == {ada.pk}


def signed_in_fails(user: User) -> bool:
    answer = Client().post(
        "/login/", {"username": user.username, "password": PASSWORD, "otp_token": current_code(user)}
    )
    return answer.status_code == 200


def test_issuing_a_new_link_shows_it_once_and_the_old_one_stops_working(ada: User, admin_web: Client) -> None:
    first = staff_member_create(username="olga", roles=[CREDIT_OFFICER], actor=ada)
    answer = admin_web.post(f"/staff/{first.enrolment.user_id}/link/")
    link = LINK.search(_text(answer))
    assert answer.status_code == 200
    assert link
    assert 'data-copy="enrolment-link"' in _text(answer)
    assert "workout/copy.js" in _text(answer)
    assert Client().get(first.path).status_code == 410
    assert Client().get(link.group(2)).status_code == 200
    listing = _text(admin_web.get("/staff/"))
    assert link.group(2) not in listing  # shown once: the page lists only when the open link expires


def test_the_demo_users_include_ada_the_administrator() -> None:
    out = StringIO()
    with override_settings(DEBUG=True):
        call_command("demo_users", stdout=out)
        code = StringIO()
        call_command("demo_users", "--code", "ada", stdout=code)
    assert re.search(r"^  ada +administrator", out.getvalue(), re.MULTILINE)
    web = Client()
    landed = web.post("/login/", {"username": "ada", "password": "workout-demo", "otp_token": code.getvalue().strip()})
    assert landed.status_code == 302
    assert landed["Location"] == "/staff/"
    assert web.get("/staff/").status_code == 200


def test_every_staff_view_declares_its_policy() -> None:
    from restructuring import staff_urls

    for pattern in staff_urls.urlpatterns:
        assert pattern.callback.staff_permissions, pattern.name  # type: ignore[attr-defined]
