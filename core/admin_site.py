"""The admin site: Django's admin behind the second factor, and read-only.

Every change that matters goes through a service, which locks, checks who may do it and writes the audit event
in the same transaction. The admin does none of that, so it must not write: it is a place to look things up.
Two layers hold this, both here, for every ModelAdmin whoever registers it (our apps, Django's auth, django-otp,
django-axes, and any app added later):

- `register` puts `ReadOnlyModelAdmin` in front of the ModelAdmin class it is given (its inlines too): no add,
  no change, no delete, no actions (bulk delete included). A ModelAdmin that grants itself more is overridden,
  so a new one is read-only without anyone remembering to make it so.
- `admin_view` refuses any method but GET, HEAD and OPTIONS (403) on every admin page except sign-out and the
  user's own password change (audited): a custom view of a third-party ModelAdmin that writes on POST is stopped
  too.

Signing in takes the authenticator's code (django-otp's `OTPAdminSite`): a session that signed in with a
password alone, or a user without a confirmed authenticator, is treated as not staff and sent to the admin's
sign-in form, which asks for the code.

The site is installed as Django's default one (core.apps.AdminConfig in INSTALLED_APPS), so `admin.site` is it
from the first registration on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache, wraps
from typing import Any, TypeVar, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.auth.models import User
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import transaction
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.audit import audit_record
from core.audit_events import STAFF_PASSWORD_CHANGE

_AdminT = TypeVar("_AdminT", bound=type)

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_ONLY_METHODS = ("has_add_permission", "has_change_permission", "has_delete_permission", "get_actions")


class _NoWrites:
    """Neither add, change nor delete, whatever the user's permissions: what the admin's inlines and pages share."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(_NoWrites, InlineModelAdmin):
    """Put in front of every inline of a registered ModelAdmin: rows are shown, never added, changed or deleted."""


class ReadOnlyModelAdmin(_NoWrites, admin.ModelAdmin):
    """Put in front of every ModelAdmin the site registers (`WorkoutAdminSite.register`): list and detail pages
    only. The view permission still decides who sees what (a superuser sees everything)."""

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Actions are writes (bulk delete, django-axes' clean-up): none, whatever permission they ask for.
        return {}

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[type[InlineModelAdmin[Any, Any]]]:
        return [_read_only_inline(inline) for inline in super().get_inlines(request, obj)]


def _read_only(admin_class: _AdminT, policy: type) -> _AdminT:
    """`admin_class` with `policy` first in its method resolution order, so that the policy's permissions win
    over whatever the class (or a class it inherits from) says."""
    if issubclass(admin_class, policy):
        overridden = [
            name
            for name in _READ_ONLY_METHODS
            if hasattr(policy, name) and getattr(admin_class, name) is not getattr(policy, name)
        ]
        if overridden:
            raise ImproperlyConfigured(
                f"{admin_class.__qualname__} overrides {', '.join(overridden)} of {policy.__qualname__}: the admin "
                "is read-only, changes go through the services"
            )
        return admin_class
    attributes = {"__module__": admin_class.__module__, "__qualname__": admin_class.__qualname__}
    return type(admin_class.__name__, (policy, admin_class), attributes)  # type: ignore[return-value]


@cache  # one read-only class per inline class, not one per request
def _read_only_inline(inline: type[InlineModelAdmin]) -> type[InlineModelAdmin]:
    return _read_only(inline, ReadOnlyInline)


class AdminSignInForm(OTPAdminAuthenticationForm):
    """The admin's sign-in form: a staff user's username, password and the authenticator's current code.

    Kept apart from the site's sign-in form (core.auth_views.SignInForm) on purpose: whatever that form lets a user
    without an authenticator do (set one up), the admin never lets such a user in."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError:
            if self.get_user() is not None:  # the password was right, the code wrong: a failure for django-axes
                user_login_failed.send(
                    sender=__name__, credentials={"username": self.cleaned_data.get("username")}, request=self.request
                )
            raise

    def _chosen_device(self, user: Any) -> Any:
        # django-otp refuses a code unless a device is picked from a list; a user here has one authenticator.
        return super()._chosen_device(user) or TOTPDevice.objects.filter(user=user, confirmed=True).first()


class WorkoutAdminSite(OTPAdminSite):
    site_header = "Workout administration (read-only)"
    site_title = "Workout administration"
    index_title = "Look things up: changes go through the application, which audits them"
    login_form = AdminSignInForm

    def __init__(self, name: str = "admin") -> None:
        # django-otp names its site "otpadmin"; ours is the default site and keeps the "admin" URL namespace.
        super().__init__(name)

    def register(
        self,
        model_or_iterable: type[Model] | Iterable[type[Model]],
        admin_class: type[admin.ModelAdmin[Any]] | None = None,
        **options: Any,
    ) -> None:
        admin_class = admin_class or admin.ModelAdmin
        if options:  # Django would subclass with them itself, after us: done first, so the policy goes in front
            admin_class = type(admin_class.__name__, (admin_class,), {"__module__": __name__, **options})
        super().register(model_or_iterable, _read_only(admin_class, ReadOnlyModelAdmin))

    def password_change(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """One's own password, changed with the old one: the one write the admin makes, and it is on the record
        (one audit event, in the transaction of the change; never the password)."""
        user = cast(User, request.user)  # signed in and verified: the admin lets nobody else here
        with transaction.atomic():
            response = super().password_change(request, extra_context)
            if request.method == "POST" and response.status_code == 302:  # Django's view redirects once done
                audit_record(STAFF_PASSWORD_CHANGE.entry(user, actor=user, payload={"via": "admin"}))
        return response

    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Callable[..., Any]:
        # Signing out is a POST, and changing one's own password is the user's own credential, not the record.
        if view in (self.logout, self.password_change):
            return super().admin_view(view, cacheable)
        return super().admin_view(_reads_only(view), cacheable)


def _reads_only(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in READ_METHODS:
            raise PermissionDenied("The admin is read-only: changes go through the application, which audits them.")
        return view(request, *args, **kwargs)

    return guarded
