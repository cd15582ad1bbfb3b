"""The staff services (core/staff.py, restructuring/services/staff.py): each grant, revocation, limit, link,
deactivation and enrolment writes exactly one audit event naming its actor; nobody does any of it to themselves;
only administrators (and superusers) do it at all; a limit is an exact positive amount; concurrent enrolments of one
link enrol once; `manage.py staff_enrol` issues the first administrator's link as the operating-system user."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.errors import ConflictError, NotFoundError, PermissionRefusedError, ValidationError
from core.models import AuditEvent, StaffEnrolment
from core.staff import (
    EnrolmentLinkInvalidError,
    enrolment_digest,
    enrolment_issue,
    enrolment_key_new,
    enrolment_redeem,
    staff_user_deactivate,
    staff_user_reactivate,
)
from restructuring.models import ApprovalLimit
from restructuring.roles import ADMINISTRATOR, CLIENT, COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.services.negotiation.proposals import approval_limit
from restructuring.services.staff import (
    approval_limit_clear,
    approval_limit_set,
    staff_member_create,
    staff_role_grant,
    staff_role_revoke,
)
from tests.restructuring.helpers import run_together

PASSWORD = "plum orchard lantern 42"


def _user(username: str, *roles: str) -> User:
    user = User.objects.create_user(username, password="not used here 1")
    user.groups.add(*Group.objects.filter(name__in=roles))
    return user


def _events() -> list[tuple[str, int | None, str, int]]:
    return [
        (e.action, e.actor_id, e.system_actor, e.object_id) for e in AuditEvent.objects.filter(object_type="auth.user")
    ]


def _code(key_hex: str) -> str:
    return f"{TOTP(bytes.fromhex(key_hex)).token():06d}"


def _redeem(token: str, **overrides: str) -> TOTPDevice:
    key = enrolment_key_new(token)
    fields = {"password": PASSWORD, "password_again": PASSWORD, "signed_key": key.signed, "code": _code(key.hex)}
    return enrolment_redeem(token=token, **{**fields, **overrides})


@pytest.fixture
def ada() -> User:
    return _user("ada", ADMINISTRATOR)


@pytest.fixture
def bob() -> User:
    return _user("bob", CREDIT_OFFICER)


# ------------------------------------------------------------------------------- one event per change


@pytest.mark.django_db
def test_every_change_writes_exactly_one_event_naming_its_actor(ada: User, bob: User) -> None:
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("staff.role_grant", lambda: staff_role_grant(user_id=bob.pk, role=SENIOR_CREDIT_OFFICER, actor=ada)),
        ("staff.role_revoke", lambda: staff_role_revoke(user_id=bob.pk, role=CREDIT_OFFICER, actor=ada)),
        (
            "staff.approval_limit_set",
            lambda: approval_limit_set(user_id=bob.pk, currency="USD", amount=Decimal("600000.25"), actor=ada),
        ),
        ("staff.approval_limit_clear", lambda: approval_limit_clear(user_id=bob.pk, currency="USD", actor=ada)),
        ("staff.enrolment_issue", lambda: enrolment_issue(user_id=bob.pk, actor=ada)),
        ("staff.deactivate", lambda: staff_user_deactivate(user_id=bob.pk, actor=ada)),
        ("staff.reactivate", lambda: staff_user_reactivate(user_id=bob.pk, actor=ada)),
    ]
    for action, step in steps:
        before = len(_events())
        step()
        assert _events()[before:] == [(action, ada.pk, "", bob.pk)], action


@pytest.mark.django_db
def test_the_enrolment_is_recorded_once_with_the_user_as_its_actor(ada: User) -> None:
    issued = staff_member_create(username="olga", roles=[CREDIT_OFFICER, COMPLIANCE], actor=ada)
    olga = issued.enrolment.user
    assert _events() == [
        ("staff.create", ada.pk, "", olga.pk),
        ("staff.role_grant", ada.pk, "", olga.pk),
        ("staff.role_grant", ada.pk, "", olga.pk),
        ("staff.enrolment_issue", ada.pk, "", olga.pk),
    ]

    device = _redeem(issued.token)

    assert _events()[-1] == ("staff.enrol", olga.pk, "", olga.pk)
    assert len(_events()) == 5
    assert device.confirmed
    assert device.user == olga
    olga.refresh_from_db()
    assert olga.check_password(PASSWORD)
    enrolment = StaffEnrolment.objects.get()
    assert enrolment.used_at is not None
    assert enrolment.digest == hashlib.sha256(issued.token.encode()).hexdigest() == enrolment_digest(issued.token)
    event = AuditEvent.objects.get(action="staff.enrolment_issue")
    assert issued.token not in str(event.payload)


@pytest.mark.django_db
def test_a_change_that_changes_nothing_records_nothing(ada: User, bob: User) -> None:
    assert staff_role_grant(user_id=bob.pk, role=CREDIT_OFFICER, actor=ada) is False
    assert staff_role_revoke(user_id=bob.pk, role=COMPLIANCE, actor=ada) is False
    assert approval_limit_clear(user_id=bob.pk, currency="USD", actor=ada) is False
    assert staff_user_reactivate(user_id=bob.pk, actor=ada) is False
    assert approval_limit_set(user_id=bob.pk, currency="USD", amount=Decimal(1000), actor=ada) is True
    assert approval_limit_set(user_id=bob.pk, currency="USD", amount=Decimal("1000.00"), actor=ada) is False
    assert [e[0] for e in _events()] == ["staff.approval_limit_set"]


@pytest.mark.django_db
def test_a_limit_set_here_is_the_approval_authority_the_workflow_reads(ada: User, bob: User) -> None:
    assert approval_limit(bob, "USD") == Decimal(250000)  # the role's
    approval_limit_set(user_id=bob.pk, currency="usd", amount=Decimal("80000.50"), actor=ada)
    assert approval_limit(bob, "USD") == Decimal("80000.50")
    payload = AuditEvent.objects.get(action="staff.approval_limit_set").payload
    assert payload == {"username": "bob", "currency": "USD", "amount": "80000.50", "previous": None}
    approval_limit_clear(user_id=bob.pk, currency="USD", actor=ada)
    assert approval_limit(bob, "USD") == Decimal(250000)


# ------------------------------------------------------------------------------------------ refusals


@pytest.mark.django_db
def test_nobody_grants_a_role_or_a_limit_or_a_link_to_themselves(ada: User) -> None:
    # given an administrator who is also a senior officer (a superuser would be too)
    ada.groups.add(Group.objects.get(name=SENIOR_CREDIT_OFFICER))
    attempts: list[Callable[[], Any]] = [
        lambda: staff_role_grant(user_id=ada.pk, role=COMPLIANCE, actor=ada),
        lambda: staff_role_revoke(user_id=ada.pk, role=SENIOR_CREDIT_OFFICER, actor=ada),
        lambda: approval_limit_set(user_id=ada.pk, currency="USD", amount=Decimal(99_000_000), actor=ada),
        lambda: approval_limit_clear(user_id=ada.pk, currency="USD", actor=ada),
        lambda: enrolment_issue(user_id=ada.pk, actor=ada),
        lambda: staff_user_deactivate(user_id=ada.pk, actor=ada),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionRefusedError, match="themselves") as refused:
            attempt()
        assert refused.value.code == "permission_denied"  # 403 wherever it is shown
    assert sorted(ada.groups.values_list("name", flat=True)) == [ADMINISTRATOR, SENIOR_CREDIT_OFFICER]
    assert not ApprovalLimit.objects.exists()
    assert not StaffEnrolment.objects.exists()
    assert not _events()


@pytest.mark.django_db
def test_the_database_refuses_a_link_issued_to_oneself(ada: User) -> None:
    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        StaffEnrolment.objects.create(
            user=ada, digest="0" * 64, issued_by=ada, issued_at=now, expires_at=now + timedelta(hours=1)
        )


@pytest.mark.django_db
@pytest.mark.parametrize("role", [CREDIT_OFFICER, SENIOR_CREDIT_OFFICER, COMPLIANCE, CLIENT])
def test_only_administrators_call_the_staff_services(role: str, bob: User) -> None:
    someone = _user("someone", role)
    attempts: list[Callable[[], Any]] = [
        lambda: staff_member_create(username="mallory", roles=[SENIOR_CREDIT_OFFICER], actor=someone),
        lambda: staff_role_grant(user_id=bob.pk, role=SENIOR_CREDIT_OFFICER, actor=someone),
        lambda: staff_role_revoke(user_id=bob.pk, role=CREDIT_OFFICER, actor=someone),
        lambda: approval_limit_set(user_id=bob.pk, currency="USD", amount=Decimal(10**9), actor=someone),
        lambda: approval_limit_clear(user_id=bob.pk, currency="USD", actor=someone),
        lambda: enrolment_issue(user_id=bob.pk, actor=someone),
        lambda: staff_user_deactivate(user_id=bob.pk, actor=someone),
        lambda: staff_user_reactivate(user_id=bob.pk, actor=someone),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionRefusedError, match="someone may not"):
            attempt()
    assert not User.objects.filter(username="mallory").exists()
    assert list(bob.groups.values_list("name", flat=True)) == [CREDIT_OFFICER]
    assert not ApprovalLimit.objects.exists()
    assert not StaffEnrolment.objects.exists()
    assert not _events()


@pytest.mark.django_db
def test_a_superuser_is_an_administrator_and_only_a_superuser_acts_on_one(ada: User, bob: User) -> None:
    root = User.objects.create_superuser("root", password="not used here 1")
    with pytest.raises(PermissionRefusedError, match="only a superuser"):
        enrolment_issue(user_id=root.pk, actor=ada)  # who redeemed it would be root
    with pytest.raises(PermissionRefusedError, match="only a superuser"):
        staff_user_deactivate(user_id=root.pk, actor=ada)
    other = User.objects.create_superuser("root2", password="not used here 1")
    assert enrolment_issue(user_id=other.pk, actor=root).token
    assert staff_role_grant(user_id=bob.pk, role=COMPLIANCE, actor=root) is True
    assert [e[:2] for e in _events()] == [("staff.enrolment_issue", root.pk), ("staff.role_grant", root.pk)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "problem"),
    [
        (0.5, "not a float"),
        ("1000", "not a str"),
        (Decimal(0), "positive"),
        (Decimal(-5), "positive"),
        (Decimal("NaN"), "positive"),
        (Decimal("Infinity"), "positive"),
        (Decimal("10.001"), "steps of 0.01"),
        (Decimal(10) ** 20, "too large"),
    ],
)
def test_a_limit_is_an_exact_positive_amount_in_the_currency(ada: User, bob: User, amount: Any, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        approval_limit_set(user_id=bob.pk, currency="USD", amount=amount, actor=ada)
    assert not ApprovalLimit.objects.exists()
    assert not _events()


@pytest.mark.django_db
def test_a_limit_in_a_currency_not_used_here_is_refused_and_btc_keeps_its_eight_decimals(ada: User, bob: User) -> None:
    with pytest.raises(ValidationError, match="not a currency here"):
        approval_limit_set(user_id=bob.pk, currency="XYZ", amount=Decimal(1), actor=ada)
    approval_limit_set(user_id=bob.pk, currency="BTC", amount=Decimal("2.50000001"), actor=ada)
    assert ApprovalLimit.objects.get().amount == Decimal("2.50000001")


@pytest.mark.django_db
def test_roles_are_staff_roles_and_a_clients_user_gets_none(ada: User) -> None:
    carl = _user("carl", CLIENT)
    with pytest.raises(ValidationError, match="client's user"):
        staff_role_grant(user_id=carl.pk, role=CREDIT_OFFICER, actor=ada)
    for role in (CLIENT, "superuser", ""):
        with pytest.raises(ValidationError, match="not a staff role"):
            staff_role_grant(user_id=ada.pk + 1000, role=role, actor=ada)
    with pytest.raises(NotFoundError):
        staff_role_grant(user_id=ada.pk + 1000, role=COMPLIANCE, actor=ada)
    assert not _events()


@pytest.mark.django_db
def test_a_new_member_has_no_password_and_a_taken_name_is_refused(ada: User) -> None:
    olga = staff_member_create(username="olga", actor=ada).enrolment.user
    assert olga.is_active
    assert not olga.has_usable_password()
    assert not TOTPDevice.objects.filter(user=olga).exists()
    events = len(_events())
    for taken in ("olga", "OLGA", "ada"):
        with pytest.raises(ConflictError, match="already exists"):
            staff_member_create(username=taken, roles=[CREDIT_OFFICER], actor=ada)
    with pytest.raises(ValidationError, match="username"):
        staff_member_create(username="no spaces allowed!", actor=ada)
    assert len(_events()) == events
    assert User.objects.count() == 2


@pytest.mark.django_db
def test_deactivating_revokes_unused_links_and_no_link_goes_to_an_inactive_user(ada: User, bob: User) -> None:
    issued = enrolment_issue(user_id=bob.pk, actor=ada)
    staff_user_deactivate(user_id=bob.pk, actor=ada)
    assert StaffEnrolment.objects.get().revoked_at is not None
    assert AuditEvent.objects.get(action="staff.deactivate").payload["revoked_links"] == [issued.enrolment.pk]
    with pytest.raises(EnrolmentLinkInvalidError):
        _redeem(issued.token)
    with pytest.raises(ValidationError, match="reactivate them first"):
        enrolment_issue(user_id=bob.pk, actor=ada)
    staff_user_reactivate(user_id=bob.pk, actor=ada)
    with pytest.raises(EnrolmentLinkInvalidError):  # reactivating does not revive a revoked link
        _redeem(issued.token)


@pytest.mark.django_db
def test_a_lost_phone_is_re_enrolled_by_a_new_link_that_replaces_the_old_authenticator(ada: User, bob: User) -> None:
    old = TOTPDevice.objects.create(user=bob, name="authenticator", confirmed=True)
    issued = enrolment_issue(user_id=bob.pk, actor=ada)
    new = _redeem(issued.token)
    assert list(TOTPDevice.objects.filter(user=bob)) == [new]
    assert new.pk != old.pk
    assert AuditEvent.objects.get(action="staff.enrol").payload["devices_replaced"] == 1


@pytest.mark.django_db
def test_a_failed_redemption_changes_nothing(ada: User, bob: User) -> None:
    old = TOTPDevice.objects.create(user=bob, name="authenticator", confirmed=True)
    password = bob.password
    issued = enrolment_issue(user_id=bob.pk, actor=ada)
    events = len(_events())
    with pytest.raises(ValidationError, match="current one"):
        _redeem(issued.token, code="not a code")
    with pytest.raises(ValidationError, match="password"):
        _redeem(issued.token, password="bob", password_again="bob")
    with pytest.raises(EnrolmentLinkInvalidError):
        _redeem("x" + issued.token)
    bob.refresh_from_db()
    assert bob.password == password
    assert list(TOTPDevice.objects.filter(user=bob)) == [old]
    assert StaffEnrolment.objects.get().used_at is None
    assert len(_events()) == events


# --------------------------------------------------------------------------------------- concurrency


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_redemptions_of_one_link_at_once_enrol_once(ada: User) -> None:
    issued = staff_member_create(username="olga", roles=[CREDIT_OFFICER], actor=ada)
    key = enrolment_key_new(issued.token)
    code = _code(key.hex)

    def redeem(password: str) -> TOTPDevice:
        return enrolment_redeem(
            token=issued.token, password=password, password_again=password, signed_key=key.signed, code=code
        )

    outcomes = run_together(lambda: redeem(PASSWORD), lambda: redeem("another password 77"))

    assert sorted(type(o.error).__name__ for o in outcomes) == ["EnrolmentLinkInvalidError", "NoneType"]
    assert TOTPDevice.objects.filter(user__username="olga").count() == 1
    assert AuditEvent.objects.filter(action="staff.enrol").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_links_issued_at_once_leave_one_that_works(ada: User) -> None:
    olga = staff_member_create(username="olga", actor=ada).enrolment.user
    ida = _user("ida", ADMINISTRATOR)

    outcomes = run_together(
        lambda: enrolment_issue(user_id=olga.pk, actor=ada), lambda: enrolment_issue(user_id=olga.pk, actor=ida)
    )

    assert all(o.error is None for o in outcomes)
    live = StaffEnrolment.objects.filter(user=olga, revoked_at__isnull=True, used_at__isnull=True)
    assert live.count() == 1
    assert AuditEvent.objects.filter(action="staff.enrolment_issue").count() == 3


# ------------------------------------------------------------------------------------------ command


@pytest.mark.django_db
def test_the_first_administrator_is_enrolled_by_the_command_as_the_operating_system_user() -> None:
    out = StringIO()
    call_command(
        "staff_enrol", "ada", "--create", "--role", ADMINISTRATOR, "--site", "https://workout.example/", stdout=out
    )

    link = re.search(r"https://workout\.example(/enrol/[^/\s]+/)", out.getvalue())
    assert link, out.getvalue()
    ada = User.objects.get(username="ada")
    assert list(ada.groups.values_list("name", flat=True)) == [ADMINISTRATOR]
    events = AuditEvent.objects.filter(object_type="auth.user")
    assert [e.action for e in events] == ["staff.create", "staff.role_grant", "staff.enrolment_issue"]
    assert {e.actor_id for e in events} == {None}
    assert all(re.fullmatch(r"command:.+@.+", e.system_actor) for e in events)
    enrolment = StaffEnrolment.objects.get()
    assert enrolment.issued_by is None
    assert enrolment.issued_by_system == events[0].system_actor
    token = link.group(1).split("/")[2]
    assert _redeem(token).user == ada


@pytest.mark.django_db
def test_the_command_with_an_actor_is_checked_like_the_page(ada: User, bob: User) -> None:
    call_command("staff_enrol", "bob", "--actor", "ada", stdout=StringIO())
    assert [e[:3] for e in _events()] == [("staff.enrolment_issue", ada.pk, "")]
    with pytest.raises(CommandError, match="bob may not"):
        call_command("staff_enrol", "ada", "--actor", "bob", stdout=StringIO())
    with pytest.raises(CommandError, match="themselves"):
        call_command("staff_enrol", "ada", "--actor", "ada", stdout=StringIO())
    with pytest.raises(CommandError, match="--create"):
        call_command("staff_enrol", "nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="--actor 'ghost': no such user"):
        call_command("staff_enrol", "bob", "--actor", "ghost", stdout=StringIO())
    assert len(_events()) == 1
    # the run itself is on the record too (core.commands), without the link
    [run] = AuditEvent.objects.filter(action="operation.staff_enrol")
    assert (run.actor_id, run.payload["outcome"]["user"]) == (ada.pk, "bob")
    assert "enrol/" not in str(run.payload)
