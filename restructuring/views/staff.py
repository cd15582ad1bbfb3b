"""The administrator's page: the members of staff, their roles, authority limits and enrolment, and the actions on
them. Each action is a POST calling one service (restructuring/services/staff.py, core/staff.py) and going back to
the page with what happened as a message; a refusal by the service (oneself, a superuser, a bad amount) is the
message instead. A link just issued is shown once, on the page that answers the POST, and stored nowhere."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from core.access import staff_view
from core.errors import WorkoutError
from core.forms import DecimalTextField
from core.money import money_text
from core.roles import ROLE_LABELS, STAFF_ROLES
from core.staff import IssuedEnrolment, enrolment_issue, staff_user_deactivate, staff_user_reactivate
from core.web import refusal_show, service_run
from restructuring.selectors.staff import staff_members_load, staff_username
from restructuring.services.staff import (
    approval_limit_clear,
    approval_limit_set,
    staff_member_create,
    staff_role_grant,
    staff_role_revoke,
)

_ROLE_CHOICES = [(role, ROLE_LABELS[role]) for role in STAFF_ROLES]


def _currencies() -> list[str]:
    return sorted(
        set(settings.WORKOUT_CURRENCY_DECIMALS) | {c for v in settings.WORKOUT_APPROVAL_LIMITS.values() for c in v}
    )


class StaffCreateForm(forms.Form):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    role = forms.ChoiceField(choices=[("", gettext_lazy("(none yet)")), *_ROLE_CHOICES], required=False)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=_ROLE_CHOICES)


class LimitForm(forms.Form):
    currency = forms.CharField(max_length=8)
    amount = DecimalTextField(min_value=Decimal("0.00000001"))


class CurrencyForm(forms.Form):
    currency = forms.CharField(max_length=8)


def _actor(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]  # staff_view let only a signed-in user through


def _back(user_id: int | None = None) -> HttpResponseRedirect:
    return redirect(reverse("staff") + (f"#user-{user_id}" if user_id else ""))


def _member_action(
    request: HttpRequest,
    user_id: int,
    act: Callable[[str, dict[str, Any]], str],
    form_class: type[forms.Form] | None = None,
) -> HttpResponseRedirect:
    """An action on one member: the member looked up (404), the form read (its errors the message), then the service
    called with the member's name and the form's data; what it did, or its refusal, is the message."""
    username = staff_username(user_id)
    form = form_class(request.POST) if form_class else None
    if form is not None and not form.is_valid():
        messages.error(request, _form_errors(form))
    else:
        service_run(request, lambda: act(username, form.cleaned_data if form else {}))
    return _back(user_id)


def _form_errors(form: forms.Form) -> str:
    return "; ".join(
        f"{form.fields[name].label or name if name in form.fields else name}: {' '.join(str(e) for e in errors)}"
        for name, errors in form.errors.items()
    )


def _link_issued(request: HttpRequest, issued: IssuedEnrolment, created: bool) -> HttpResponse:
    return render(
        request,
        "staff/link_issued.html",
        {
            "member": issued.enrolment.user,
            "enrolment": issued.enrolment,
            "url": request.build_absolute_uri(issued.path),
            "created": created,
        },
    )


@staff_view("auth.view_user")
@require_GET
def staff_index(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "staff/index.html",
        {
            "rows": staff_members_load(timezone.now()),
            "create_form": StaffCreateForm(),
            "role_choices": _ROLE_CHOICES,
            "currencies": _currencies(),
            "enrolment_hours": settings.WORKOUT_ENROLMENT_HOURS,
        },
    )


@staff_view("auth.add_user")
@require_POST
@never_cache
def staff_create_view(request: HttpRequest) -> HttpResponse:
    form = StaffCreateForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back()
    role = form.cleaned_data["role"]
    try:
        issued = staff_member_create(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            roles=[role] if role else [],
            actor=_actor(request),
        )
    except WorkoutError as exc:
        refusal_show(request, exc)
        return _back()
    return _link_issued(request, issued, created=True)


@staff_view("auth.change_user")
@require_POST
@never_cache
def enrolment_issue_view(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        issued = enrolment_issue(user_id=user_id, actor=_actor(request))
    except WorkoutError as exc:
        refusal_show(request, exc)
        return _back(user_id)
    return _link_issued(request, issued, created=False)


@staff_view("auth.change_user")
@require_POST
def role_grant_view(request: HttpRequest, user_id: int) -> HttpResponse:
    def act(username: str, data: dict[str, Any]) -> str:
        role = data["role"]
        said = {"name": username, "role": ROLE_LABELS.get(role, role)}
        if staff_role_grant(user_id=user_id, role=role, actor=_actor(request)):
            return gettext("%(name)s is now %(role)s.") % said
        return gettext("%(name)s already was %(role)s.") % said

    return _member_action(request, user_id, act, RoleForm)


@staff_view("auth.change_user")
@require_POST
def role_revoke_view(request: HttpRequest, user_id: int) -> HttpResponse:
    def act(username: str, data: dict[str, Any]) -> str:
        role = data["role"]
        said = {"name": username, "role": ROLE_LABELS.get(role, role)}
        if staff_role_revoke(user_id=user_id, role=role, actor=_actor(request)):
            return gettext("%(name)s is no longer %(role)s.") % said
        return gettext("%(name)s was not %(role)s.") % said

    return _member_action(request, user_id, act, RoleForm)


@staff_view("auth.change_user")
@require_POST
def limit_set_view(request: HttpRequest, user_id: int) -> HttpResponse:
    def act(username: str, data: dict[str, Any]) -> str:
        currency, amount = data["currency"], data["amount"]
        said = {"name": username, "currency": currency.upper(), "amount": money_text(amount, currency.upper())}
        if approval_limit_set(user_id=user_id, currency=currency, amount=amount, actor=_actor(request)):
            return gettext("%(name)s's authority limit in %(currency)s is now %(amount)s.") % said
        return gettext("%(name)s's authority limit in %(currency)s already was %(amount)s.") % said

    return _member_action(request, user_id, act, LimitForm)


@staff_view("auth.change_user")
@require_POST
def limit_clear_view(request: HttpRequest, user_id: int) -> HttpResponse:
    def act(username: str, data: dict[str, Any]) -> str:
        currency = data["currency"]
        said = {"name": username, "currency": currency.upper()}
        if approval_limit_clear(user_id=user_id, currency=currency, actor=_actor(request)):
            return gettext("%(name)s's own limit in %(currency)s is cleared: their roles' limit applies.") % said
        return gettext("%(name)s had no limit of their own in %(currency)s.") % said

    return _member_action(request, user_id, act, CurrencyForm)


@staff_view("auth.change_user")
@require_POST
def deactivate_view(request: HttpRequest, user_id: int) -> HttpResponse:
    def act(username: str, _data: dict[str, Any]) -> str:
        if staff_user_deactivate(user_id=user_id, actor=_actor(request)):
            return gettext(
                "%(name)s is deactivated: they can no longer sign in, and their unused links are revoked."
            ) % {"name": username}
        return gettext("%(name)s already was deactivated.") % {"name": username}

    return _member_action(request, user_id, act)


@staff_view("auth.change_user")
@require_POST
def reactivate_view(request: HttpRequest, user_id: int) -> HttpResponse:
    def act(username: str, _data: dict[str, Any]) -> str:
        if staff_user_reactivate(user_id=user_id, actor=_actor(request)):
            return gettext("%(name)s is active again.") % {"name": username}
        return gettext("%(name)s already was active.") % {"name": username}

    return _member_action(request, user_id, act)
