"""The admin (core/admin_site.py): behind the second factor, and read-only for every model registered in it,
whoever registered it. Issue 13, finding 3: a staff user signed in with a password alone changed an account's
cash and a case's deadline, call amount and written-off amount there, with no audit event."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.admin.sites import AdminSite
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, Permission, User
from django.contrib.staticfiles import finders
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.forms.models import model_to_dict
from django.test import Client, TestCase, override_settings
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ApiToken, ClientGroup, Instrument, MarginAccount, Price, WebhookEndpoint
from accounts.services.api_tokens import api_token_create
from core.admin_site import ReadOnlyModelAdmin, WorkoutAdminSite, _read_only
from core.audit import audit_verify
from core.models import AuditEvent, IdempotencyRecord, Operation, StaffEnrolment
from core.roles import CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import (
    ApprovalLimit,
    Case,
    CaseState,
    CollateralDemand,
    FeasibilityReport,
    Installment,
    LiquidationOrder,
    LiquidationPlan,
    Notification,
    Proposal,
    ProposalState,
    ReductionOrder,
)
from restructuring.services.case_sweep import cases_apply_risk
from restructuring.services.negotiation.proposals import proposal_approve
from restructuring.services.negotiation.topups import topup_declare
from rules.models import Rule, RuleSet
from tests.restructuring.helpers import account, btc, sweep_only
from tests.web.helpers import PASSWORD, current_code, policy_in_force, signed_in, staff_user
from tests.web.test_content_security_policy import INLINE_HANDLER, INLINE_SCRIPT, JAVASCRIPT_URL

pytestmark = [
    pytest.mark.django_db,
    # whitenoise notes at start-up that `collectstatic` has not run; these tests do not serve static files.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

ADMIN_LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _plain_http_and_static() -> Iterator[None]:
    """Plain HTTP (no redirect to HTTPS), pages without `collectstatic`'s manifest, a fast password hasher and a
    small Monte Carlo for the book the services make."""
    with override_settings(
        SECURE_SSL_REDIRECT=False,
        STORAGES={
            "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        WORKOUT_FEASIBILITY_PATHS=500,
    ):
        yield


def _superuser(username: str = "root", *, authenticator: bool = True) -> User:
    user = User.objects.create_superuser(username, password=PASSWORD)
    if authenticator:
        TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    return user


def _admin_sign_in(user: User, client: Client | None = None) -> Client:
    """Signed in through the admin's own sign-in form, with the authenticator's current code."""
    client = client or Client()
    response = client.post(
        ADMIN_LOGIN,
        {"username": user.username, "password": PASSWORD, "otp_token": current_code(user), "next": "/admin/"},
    )
    assert response.status_code == 302, response.content[:1000]
    assert response["Location"] == "/admin/"
    return client


@pytest.fixture
def root() -> User:
    return _superuser()


@pytest.fixture
def admin_web(root: User) -> Client:
    return _admin_sign_in(root)


# ------------------------------------------------------------------------------------------- the book, made once


def _swept() -> None:
    """A sweep, then the cases it moves; the margin calls' feasibility and the rules run on commit, in process."""
    with TestCase.captureOnCommitCallbacks(execute=True), TestCase.captureOnCommitCallbacks(execute=True):
        cases_apply_risk(sweep_id=sweep_only().pk)


@pytest.fixture
def book(root: User) -> dict[str, Model]:
    """At least one row of every model the admin shows: a margin call swept under the default rules by the real
    services (account, positions, loan, prices, sweep, risk, case, feasibility, proposals, rule set, audit events),
    an approval, and the rest written directly."""
    bitcoin = btc()
    policy_in_force()
    margin_account = account("CALL", bitcoin, band="margin_call")
    margin_account.client.group = ClientGroup.objects.create(code="OWNER1", name="One owner")
    margin_account.client.save(update_fields=["group"])
    _swept()
    case = Case.objects.get(account=margin_account)
    assert case.state == CaseState.PROPOSED
    MarginAccount.objects.filter(pk=margin_account.pk).update(cash=Decimal("1402.33"))  # as in the finding
    proposal = Proposal.objects.filter(case=case, state=ProposalState.PENDING_APPROVAL).order_by("rank").first()
    assert proposal is not None
    proposal_approve(
        proposal_id=proposal.pk,
        actor=staff_user("sam", SENIOR_CREDIT_OFFICER),
        version=proposal.version,
        override_reason="the client's other assets",  # kept only when the model flags the proposal
    )
    topup_declare(account_id=margin_account.pk, client_id=margin_account.client_id, amount=Decimal("100"))
    officer = staff_user("alice", CREDIT_OFFICER)
    api_token_create(user_id=officer.pk, actor=root)
    now = timezone.now()
    ApprovalLimit.objects.create(user=officer, currency="USD", amount=Decimal("5000"))
    Installment.objects.create(
        proposal=proposal,
        number=1,
        due=date(2027, 1, 31),
        principal=Decimal("100"),
        interest=Decimal("5"),
        arrears=Decimal(0),
        total=Decimal("105"),
        balance=Decimal("650"),
    )
    CollateralDemand.objects.create(proposal=proposal, amount=Decimal("200"), due=now + timedelta(days=7))
    position = margin_account.positions.get()
    ReductionOrder.objects.create(
        proposal=proposal, position_id=position.pk, instrument=bitcoin, quantity=Decimal("1"), created_at=now
    )
    plan = LiquidationPlan.objects.create(
        case=case,
        created_at=now,
        model_version="test",
        days=1,
        expected_proceeds=Decimal("997.20"),
        impact_cost=Decimal("2.80"),
    )
    LiquidationOrder.objects.create(
        plan=plan,
        sequence=1,
        instrument=bitcoin,
        position_id=position.pk,
        day=0,
        quantity=Decimal("10"),
        expected_price=Decimal("99.72"),
        expected_proceeds=Decimal("997.20"),
    )
    Notification.objects.create(
        case=case, kind="margin_call", channel="email", recipient="ops@client.test", next_attempt_at=now, created_at=now
    )
    WebhookEndpoint.objects.create(
        client=margin_account.client,
        url="https://hooks.client.test/workout",
        event_types=["*"],
        secret="whsec_admin",
        created_at=now,
        updated_at=now,
    )
    IdempotencyRecord.objects.create(
        scope="client:1", key="k-1", request_hash="0" * 64, method="POST", path="/api/v1/x/", created_at=now
    )
    Operation.objects.create(name="import_book", channel="command", system_actor="ops", started_at=now)
    StaffEnrolment.objects.create(
        user=officer, digest="e" * 64, issued_by=root, issued_at=now, expires_at=now + timedelta(hours=1)
    )
    common = {"user_agent": "pytest", "ip_address": "127.0.0.1", "username": "alice", "http_accept": "*/*"}
    AccessAttempt.objects.create(**common, path_info="/login/", get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**common, path_info="/login/")
    AccessFailureLog.objects.create(**common, path_info="/login/")
    return {"account": MarginAccount.objects.get(pk=margin_account.pk), "case": case, "proposal": proposal}


# -------------------------------------------------------------------------------------------- the second factor


def test_a_password_only_session_reaches_no_admin_page(client: Client, root: User) -> None:
    # given a superuser signed in with the password alone (no authenticator code)
    client.force_login(root)
    pages = ["/admin/", "/admin/auth/", f"/admin/auth/user/{root.pk}/change/"]
    for model in admin.site._registry:
        pages.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        pages.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add"))

    # when they open any admin page, or post to one
    answers = {page: client.get(page) for page in pages}
    posted = client.post(f"/admin/auth/user/{root.pk}/change/", {"username": "renamed", "is_superuser": "on"})

    # then every one sends them to the admin's sign-in, which asks for the code; nothing changed
    for page, response in answers.items():
        assert response.status_code == 302, page
        assert response["Location"].startswith(f"{ADMIN_LOGIN}?next="), page
    assert posted.status_code == 302
    assert posted["Location"].startswith(f"{ADMIN_LOGIN}?next=")
    assert User.objects.get(pk=root.pk).username == "root"
    sign_in = client.get(ADMIN_LOGIN)
    assert sign_in.status_code == 200
    assert 'name="otp_token"' in sign_in.content.decode()


def test_the_admin_sign_in_asks_for_the_code_and_refuses_without_it(client: Client, root: User) -> None:
    # given the admin's sign-in form
    page = client.get(ADMIN_LOGIN)
    assert 'name="otp_token"' in page.content.decode()

    # when a superuser signs in with the password only, then with a wrong code
    without_code = client.post(ADMIN_LOGIN, {"username": "root", "password": PASSWORD, "next": "/admin/"})
    wrong = str((int(current_code(root)) + 1) % 1_000_000).zfill(6)
    wrong_code = client.post(
        ADMIN_LOGIN, {"username": "root", "password": PASSWORD, "otp_token": wrong, "next": "/admin/"}
    )

    # then both are refused with the form again, the wrong code counts as a failed sign-in, and the admin stays shut
    assert without_code.status_code == 200
    assert "Please enter your OTP token" in without_code.content.decode()
    assert wrong_code.status_code == 200
    assert "Invalid token" in wrong_code.content.decode()
    assert AccessAttempt.objects.get(username="root").failures_since_start == 2
    assert client.get("/admin/").status_code == 302


def test_a_verified_superuser_signs_in_through_the_admin_form_and_sees_pages(client: Client, root: User) -> None:
    # when the superuser signs in through the admin's own form with the authenticator's code
    _admin_sign_in(root, client)

    # then the admin's pages open
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/auth/user/").status_code == 200
    assert client.get(f"/admin/auth/user/{root.pk}/change/").status_code == 200


def test_a_user_without_an_authenticator_cannot_sign_in_to_the_admin(client: Client) -> None:
    _superuser("nodevice", authenticator=False)

    response = client.post(
        ADMIN_LOGIN, {"username": "nodevice", "password": PASSWORD, "otp_token": "123456", "next": "/admin/"}
    )

    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_a_session_verified_on_the_site_reaches_the_admin_only_if_staff(root: User) -> None:
    # the site's own sign-in (password and code) verifies the session for the admin too, for staff only
    assert signed_in(root).get("/admin/").status_code == 200
    officer = signed_in(staff_user("alice", CREDIT_OFFICER))  # verified, not staff
    assert officer.get("/admin/").status_code == 302


# ------------------------------------------------------------------------------------------------- read-only


def test_audit_events_are_listed_and_shown(admin_web: Client, chain: Callable[[int], list[AuditEvent]]) -> None:
    events = chain(3)

    listing = admin_web.get("/admin/core/auditevent/")
    detail = admin_web.get(f"/admin/core/auditevent/{events[1].pk}/change/")

    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 3
    assert detail.status_code == 200
    assert events[1].hash in detail.content.decode()


def _url(site: AdminSite, model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"{site.name}:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def _rows(model: type[Model]) -> list[dict[str, Any]]:
    return list(model._default_manager.order_by("pk").values())


def _form_data(obj: Model) -> dict[str, Any]:
    """The object's editable fields as a change form would post them (values as text), one of them altered."""
    data: dict[str, Any] = {}
    for name, value in model_to_dict(obj).items():
        if isinstance(value, list | tuple):
            data[name] = [getattr(v, "pk", v) for v in value]
        elif isinstance(value, dict):
            data[name] = json.dumps(value)
        elif value is None:
            data[name] = ""
        else:
            data[name] = str(value)
    for name, value in data.items():
        if isinstance(value, str) and not value.startswith(("{", "[")):
            data[name] = value + "1"
            break
    return data


def _assert_read_only(client: Client, site: AdminSite, model: type[Model]) -> None:
    """Nothing of `model` can be added, changed or deleted through `site`, whatever is posted; its list and (when
    a row exists) its detail page show, without a save or delete button. Raises AssertionError otherwise."""
    label = model._meta.label
    before = _rows(model)
    obj = model._default_manager.order_by("pk").first()

    assert client.get(_url(site, model, "add")).status_code == 403, f"{label}: the add page opens"
    assert client.post(_url(site, model, "add"), _form_data(obj) if obj else {}).status_code == 403, (
        f"{label}: an add is accepted"
    )
    listing = client.get(_url(site, model, "changelist"))
    assert listing.status_code == 200, f"{label}: the list does not show"
    assert not listing.context.get("action_form"), f"{label}: the list offers actions"
    if obj is not None:
        pk = quote(obj.pk)
        detail = client.get(_url(site, model, "change", pk))
        assert detail.status_code == 200, f"{label}: the detail page does not show"
        assert detail.context["has_change_permission"] is False, f"{label}: the detail page is a form"
        assert detail.context["has_delete_permission"] is False, f"{label}: the detail page offers to delete"
        assert b'name="_save"' not in detail.content, f"{label}: the detail page has a save button"
        changed = client.post(_url(site, model, "change", pk), _form_data(obj))
        assert changed.status_code == 403, f"{label}: a change is accepted ({changed.status_code})"
        assert client.get(_url(site, model, "delete", pk)).status_code == 403, f"{label}: the delete page opens"
        deleted = client.post(_url(site, model, "delete", pk), {"post": "yes"})
        assert deleted.status_code == 403, f"{label}: a delete is accepted ({deleted.status_code})"
        bulk = {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes", "index": "0"}
        assert client.post(_url(site, model, "changelist"), bulk).status_code == 403, f"{label}: a bulk delete"
    assert _rows(model) == before, f"{label}: rows changed"


# The models the issue names, which must be both registered and shown with a row of the book.
MUST_SHOW = [
    "accounts.ClientGroup",
    "accounts.Client",
    "accounts.MarginAccount",
    "accounts.Position",
    "accounts.MarginLoan",
    "accounts.Instrument",
    "accounts.Price",
    "accounts.RiskState",
    "accounts.RiskSnapshot",
    "accounts.Sweep",
    "restructuring.Case",
    "restructuring.Proposal",
    "restructuring.Approval",
    "restructuring.ApprovalLimit",
    "restructuring.LiquidationPlan",
    "restructuring.Notification",
    "restructuring.FeasibilityReport",
    "restructuring.CollateralTopUp",
    "restructuring.Installment",
    "rules.RuleSet",
    "rules.Rule",
    "core.AuditEvent",
    "accounts.ApiToken",
    "core.IdempotencyRecord",
    "core.Operation",
    "core.StaffEnrolment",
    "auth.User",
    "auth.Group",
    "auth.Permission",
    "otp_totp.TOTPDevice",
    "axes.AccessAttempt",
    "axes.AccessLog",
    "axes.AccessFailureLog",
]


def test_every_model_in_the_admin_is_read_only(admin_web: Client, book: dict[str, Model]) -> None:
    registered = {model._meta.label: model for model in admin.site._registry}
    missing = [label for label in MUST_SHOW if label not in registered]
    assert not missing, f"not in the admin: {missing}"
    empty = [label for label in MUST_SHOW if not registered[label]._default_manager.exists()]
    assert not empty, f"the book made no row of {empty}"
    audit_events = AuditEvent.objects.count()

    for model in registered.values():
        _assert_read_only(admin_web, admin.site, model)

    assert AuditEvent.objects.count() == audit_events
    assert audit_verify().ok


def test_inlines_show_rows_without_forms(admin_web: Client, book: dict[str, Model]) -> None:
    # a rule set with its rules, a proposal with its approvals, an account with its positions and loan
    policy = RuleSet.objects.get(status="published")
    pages = {
        f"/admin/rules/ruleset/{policy.pk}/change/": Rule.objects.filter(rule_set=policy).count(),
        f"/admin/restructuring/proposal/{book['proposal'].pk}/change/": 1,
        f"/admin/accounts/marginaccount/{book['account'].pk}/change/": 2,
    }
    for page, rows in pages.items():
        response = admin_web.get(page)
        assert response.status_code == 200
        formsets = response.context["inline_admin_formsets"]
        assert sum(len(formset.formset.forms) for formset in formsets) >= rows, page
        for formset in formsets:
            assert not formset.has_add_permission, page
            assert not formset.has_change_permission, page
            assert not formset.has_delete_permission, page
        body = response.content.decode()
        for formset in formsets:
            field = rf'<(input|select|textarea)\b(?![^>]*type="hidden")[^>]*name="{formset.formset.prefix}-\d+-'
            assert not re.search(field, body), f"{page}: an inline row is a form"


def test_secrets_are_never_shown(admin_web: Client, root: User, book: dict[str, Model]) -> None:
    device = TOTPDevice.objects.get(user=root)
    token = ApiToken.objects.get()
    enrolment = StaffEnrolment.objects.get()

    pages = [
        f"/admin/otp_totp/totpdevice/{device.pk}/change/",
        "/admin/otp_totp/totpdevice/",
        f"/admin/accounts/apitoken/{token.pk}/change/",
        f"/admin/core/staffenrolment/{enrolment.pk}/change/",
        f"/admin/auth/user/{root.pk}/change/",
    ]
    shown = "".join(admin_web.get(page).content.decode() for page in pages)

    assert device.key not in shown
    assert token.digest not in shown
    assert enrolment.digest not in shown
    assert User.objects.get(pk=root.pk).password.split("$")[-1] not in shown
    # django-otp's pages that show the key as text and as a QR code do not exist here
    for name in ("admin:otp_totp_totpdevice_config", "admin:otp_totp_totpdevice_qrcode"):
        with pytest.raises(NoReverseMatch):
            reverse(name, kwargs={"pk": device.pk})
    for page in (f"/admin/otp_totp/totpdevice/{device.pk}/config/", f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/"):
        response = admin_web.get(page, follow=True)
        assert device.key not in response.content.decode()
        assert response["Content-Type"].startswith("text/html")  # not the QR code's SVG


def test_the_check_fails_for_a_model_admin_that_writes(admin_web: Client, settings: Any) -> None:
    # given a plain Django admin site with a plain (writable) ModelAdmin, mounted in place of ours
    plain = AdminSite(name="plainadmin")
    plain.register(ClientGroup)
    ClientGroup.objects.create(code="G1", name="A group")
    urlconf = ModuleType("plain_admin_urls")
    urlconf.urlpatterns = [path("plainadmin/", plain.urls)]  # type: ignore[attr-defined]
    settings.ROOT_URLCONF = urlconf

    # then the check that holds every model of our admin catches it
    with pytest.raises(AssertionError, match=r"accounts\.ClientGroup: the add page opens"):
        _assert_read_only(admin_web, plain, ClientGroup)


def test_a_model_admin_registered_later_is_read_only_whatever_it_says() -> None:
    class Writable(admin.ModelAdmin):
        actions = ["delete_selected"]

        def has_change_permission(self, request: Any, obj: Any = None) -> bool:
            return True

    site = WorkoutAdminSite(name="later")
    site.register(ClientGroup)
    site.register(Instrument, Writable)
    site.register(Price, has_delete_permission=lambda self, request, obj=None: True)

    assert len(site._registry) == 3
    for model_admin in site._registry.values():
        assert isinstance(model_admin, ReadOnlyModelAdmin)
        assert not model_admin.has_add_permission(None)  # type: ignore[arg-type]
        assert not model_admin.has_change_permission(None)  # type: ignore[arg-type]
        assert not model_admin.has_delete_permission(None)  # type: ignore[arg-type]
        assert model_admin.get_actions(None) == {}  # type: ignore[arg-type]


def test_a_read_only_admin_cannot_be_made_writable_by_inheriting() -> None:
    class Sneaky(ReadOnlyModelAdmin):
        def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
            return True

    with pytest.raises(ImproperlyConfigured, match="overrides has_delete_permission"):
        _read_only(Sneaky, ReadOnlyModelAdmin)


def test_every_installed_apps_model_admin_is_on_our_site() -> None:
    assert isinstance(admin.site._wrapped, WorkoutAdminSite)  # type: ignore[attr-defined]
    assert admin.site.name == "admin"
    assert all(isinstance(model_admin, ReadOnlyModelAdmin) for model_admin in admin.site._registry.values())
    assert {User, Group, Permission, TOTPDevice, AccessAttempt, FeasibilityReport} <= set(admin.site._registry)


def test_the_admin_refuses_every_post_but_signing_out(admin_web: Client, root: User) -> None:
    # pages that are no model's form: the index, an object's history, the JavaScript catalogue
    for page in ("/admin/", f"/admin/auth/user/{root.pk}/history/", "/admin/jsi18n/"):
        assert admin_web.post(page).status_code == 403, page

    signed_out = admin_web.post("/admin/logout/")

    assert signed_out.status_code == 302  # to the site's sign-in (LOGOUT_REDIRECT_URL)
    assert admin_web.get("/admin/").status_code == 302


def test_changing_ones_own_password_in_the_admin_is_on_the_record(admin_web: Client, root: User) -> None:
    new = "another long passphrase 2026"

    wrong = admin_web.post(
        "/admin/password_change/", {"old_password": "not it", "new_password1": new, "new_password2": new}
    )
    done = admin_web.post(
        "/admin/password_change/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )

    assert (wrong.status_code, done.status_code) == (200, 302)
    root.refresh_from_db()
    assert root.check_password(new)
    [event] = AuditEvent.objects.filter(action="staff.password_change")
    assert (event.actor_id, event.object_type, event.object_id) == (root.pk, "auth.user", root.pk)
    assert new not in str(event.payload)
    assert PASSWORD not in str(event.payload)
    assert audit_verify().ok


# ---------------------------------------------------------------------------------- finding 3, as it was found


def test_finding_3_an_admin_edit_of_cash_or_a_case_is_refused_and_nothing_changes(
    admin_web: Client, book: dict[str, Model]
) -> None:
    margin_account = MarginAccount.objects.get(pk=book["account"].pk)
    case = Case.objects.get(pk=book["case"].pk)
    assert margin_account.cash == Decimal("1402.33")
    events = AuditEvent.objects.count()

    # when a verified superuser posts the account's change form with 99,999,999.00 cash
    cash = admin_web.post(
        f"/admin/accounts/marginaccount/{margin_account.pk}/change/",
        {
            "code": margin_account.code,
            "client": margin_account.client_id,
            "mode": margin_account.mode,
            "margin_model": margin_account.margin_model,
            "base_currency": margin_account.base_currency,
            "cash": "99999999.00",
            "positions-TOTAL_FORMS": "0",
            "positions-INITIAL_FORMS": "0",
            "loans-TOTAL_FORMS": "0",
            "loans-INITIAL_FORMS": "0",
        },
    )
    # and the case's change form with a new deadline, call amount and written-off amount
    later = timezone.now() + timedelta(days=30)
    deadline = admin_web.post(
        f"/admin/restructuring/case/{case.pk}/change/",
        {
            "account": case.account_id,
            "state": case.state,
            "opened_at_0": case.opened_at.date().isoformat(),
            "opened_at_1": case.opened_at.time().isoformat(),
            "call_amount": "1.00",
            "call_basis": case.call_basis,
            "deadline_0": later.date().isoformat(),
            "deadline_1": later.time().isoformat(),
            "written_off_amount": "750.00",
            "band": case.band,
            "facts": "{}",
        },
    )

    # then both are refused, nothing changed, and the trail (which has nothing to record) still verifies
    assert cash.status_code == 403
    assert deadline.status_code == 403
    assert MarginAccount.objects.get(pk=margin_account.pk).cash == Decimal("1402.33")
    unchanged = Case.objects.get(pk=case.pk)
    assert (unchanged.deadline, unchanged.call_amount, unchanged.written_off_amount) == (
        case.deadline,
        case.call_amount,
        case.written_off_amount,
    )
    assert unchanged.updated_at == case.updated_at
    assert AuditEvent.objects.count() == events
    assert audit_verify().ok


# ------------------------------------------------------------------------------------ Content-Security-Policy


def test_admin_pages_run_under_the_content_security_policy(
    admin_web: Client, root: User, book: dict[str, Model]
) -> None:
    """Django's admin has no inline script nor event handler (its constants travel in data- attributes of script
    tags with a src), so the site's policy (scripts from 'self' only) lets it run: every script and stylesheet a
    page names is one of this site's static files, or the admin's own JavaScript catalogue."""
    pages = [
        ADMIN_LOGIN,
        "/admin/",
        "/admin/accounts/marginaccount/",
        f"/admin/accounts/marginaccount/{book['account'].pk}/change/",
        f"/admin/restructuring/proposal/{book['proposal'].pk}/change/",
        "/admin/core/auditevent/",
        f"/admin/auth/user/{root.pk}/change/",
        "/admin/accounts/price/",  # a date hierarchy
    ]
    anonymous = Client()
    for page in pages:
        response = (anonymous if page == ADMIN_LOGIN else admin_web).get(page)
        assert response.status_code == 200, page
        assert "script-src 'self'" in response["Content-Security-Policy"], page
        body = response.content.decode()
        for pattern in (INLINE_SCRIPT, INLINE_HANDLER, JAVASCRIPT_URL):
            assert not pattern.search(body), f"{page}: {pattern.search(body)}"
        assets = re.findall(r'<script\b[^>]*\bsrc="([^"]+)"', body) + re.findall(
            r'<link\b[^>]*\bhref="([^"]+\.css)"', body
        )
        assert assets, page
        for asset in assets:
            if asset.startswith("/static/"):
                assert finders.find(asset.removeprefix("/static/")), f"{page}: {asset} is not a static file"
            else:
                assert asset == "/admin/jsi18n/", f"{page}: {asset} is not this site's"
    catalogue = admin_web.get("/admin/jsi18n/")
    assert catalogue.status_code == 200
    assert catalogue["Content-Type"].startswith("text/javascript")
