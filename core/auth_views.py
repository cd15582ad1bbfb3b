"""Sign-in with a second factor: username, password and the current TOTP code in one form (django-otp), behind
django-axes' lockout; enrolment of a new member of staff through the one-time link an administrator issued
(core/staff.py); sign-out.

A user without an authenticator cannot sign in (the form says to ask an administrator for an enrolment link):
the link is the only way an authenticator is set up, so nobody who learns a password alone can attach their own.
"""

from __future__ import annotations

import io
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django_otp.forms import OTPAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.errors import ValidationError
from core.staff import (
    EnrolmentKey,
    EnrolmentLinkInvalidError,
    enrolment_find,
    enrolment_key_new,
    enrolment_key_read,
    enrolment_redeem,
)

NO_AUTHENTICATOR = gettext_lazy(
    "This account has no authenticator yet, so it cannot sign in. Ask an administrator for an enrolment link: "
    "it sets up your password and your authenticator."
)


class SignInForm(OTPAuthenticationForm):
    """Username, password and the authenticator's current code."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError:
            if self.get_user() is not None:  # the password was right, the code wrong: a failure all the same
                user_login_failed.send(
                    sender=__name__, credentials={"username": self.cleaned_data.get("username")}, request=self.request
                )
            raise

    def clean_otp(self, user: Any) -> None:
        # Reached only with the right password. Without a confirmed authenticator django-otp would ask for a code
        # that cannot exist ("Please enter your OTP token"): say what to do instead.
        if user is not None and not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise forms.ValidationError(NO_AUTHENTICATOR, code="no_authenticator")
        super().clean_otp(user)

    def _chosen_device(self, user: Any) -> Any:
        # django-otp refuses a code unless a device is picked from a list; a user here has one authenticator.
        return super()._chosen_device(user) or TOTPDevice.objects.filter(user=user, confirmed=True).first()


def landing_url(user: User | AnonymousUser) -> str:
    """Where a member of staff starts: the queue, or the staff page for an administrator (who sees no case)."""
    if user.has_perm("auth.view_user") and not user.has_perm("restructuring.view_case"):
        return resolve_url("staff")
    return resolve_url(settings.LOGIN_REDIRECT_URL)


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        return landing_url(self.request.user)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return redirect(landing_url(request.user))


@login_required
@require_GET
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Where the pages send someone signed in without a second factor (a password-only session, such as the
    admin's). An authenticator is set up only through an enrolment link, so this page says how to get one."""
    if request.user.is_verified():  # type: ignore[union-attr]
        return redirect(landing_url(request.user))
    has_authenticator = TOTPDevice.objects.filter(user=request.user, confirmed=True).exists()
    return render(request, "registration/two_factor_setup.html", {"has_authenticator": has_authenticator})


# ----------------------------------------------------------------------------------------------- enrolment


class EnrolmentForm(forms.Form):
    password = forms.CharField(
        label=gettext_lazy("Choose a password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password_again = forms.CharField(
        label=gettext_lazy("The password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    code = forms.CharField(
        label=gettext_lazy("Code the authenticator shows now"),
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


def _link_invalid(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/enrolment_invalid.html", status=410)


@never_cache
@require_http_methods(["GET", "POST"])
def enrol(request: HttpRequest, token: str) -> HttpResponse:
    """The enrolment link (no sign-in: its token is the credential). Shows a fresh authenticator key and takes the
    password and the code; on success the user is signed in, second factor verified."""
    enrolment = enrolment_find(token)
    if enrolment is None:
        return _link_invalid(request)
    form = EnrolmentForm(request.POST or None)
    key: EnrolmentKey | None = None
    if request.method == "POST":
        try:
            key = enrolment_key_read(token, request.POST.get("key", ""))
        except ValidationError as error:
            form.add_error(None, error.message)
        if key is not None and form.is_valid():
            try:
                device = enrolment_redeem(
                    token=token,
                    password=form.cleaned_data["password"],
                    password_again=form.cleaned_data["password_again"],
                    signed_key=key.signed,
                    code=form.cleaned_data["code"],
                )
            except EnrolmentLinkInvalidError:
                return _link_invalid(request)
            except ValidationError as error:
                field = error.context.get("field")
                form.add_error(field if field in form.fields else None, error.message)
            else:
                user = device.user
                user.otp_device = device  # django-otp's login hook records it
                auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(
                    request,
                    gettext("Welcome, %(name)s: your password and authenticator are set.")
                    % {"name": user.get_username()},
                )
                return redirect(landing_url(user))
    key = key or enrolment_key_new(token)
    device = TOTPDevice(user=enrolment.user, key=key.hex)  # unsaved: only for the address the QR code holds
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    svg = io.BytesIO()
    image.save(svg)
    grouped = " ".join(key.base32[i : i + 4] for i in range(0, len(key.base32), 4))
    # No other site learns the token from a Referer: the site's policy (SECURE_REFERRER_POLICY) is same-origin. (Not
    # no-referrer here: browsers then send "Origin: null" with the form, which the CSRF check rightly refuses.)
    return render(
        request,
        "registration/enrol.html",
        {"form": form, "enrolment": enrolment, "key": key, "secret": grouped, "qr_svg": svg.getvalue().decode()},
    )
