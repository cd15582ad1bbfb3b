"""Sign-in with a second factor: username, password and the current TOTP code in one form (django-otp), behind
django-axes' lockout; first-time setup of the authenticator for a user who has none; sign-out."""

from __future__ import annotations

import io
from typing import Any

import qrcode
import qrcode.image.svg
from django import forms
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login
from django_otp.forms import OTPAuthenticationForm
from django_otp.plugins.otp_totp.models import TOTPDevice


class SignInForm(OTPAuthenticationForm):
    """Username, password and the authenticator's current code (a user without a device signs in with the
    first two and is sent to set one up)."""

    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except forms.ValidationError:
            if self.get_user() is not None:  # the password was right, the code wrong: a failure all the same
                user_login_failed.send(
                    sender=__name__, credentials={"username": self.cleaned_data.get("username")}, request=self.request
                )
            raise

    def _chosen_device(self, user: Any) -> Any:
        # django-otp refuses a code unless a device is picked from a list; a user here has one authenticator.
        return super()._chosen_device(user) or TOTPDevice.objects.filter(user=user, confirmed=True).first()


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True


class TokenForm(forms.Form):
    token = forms.CharField(label="Code from the authenticator", max_length=8)


@login_required
@require_http_methods(["GET", "POST"])
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator: a TOTP device, unconfirmed until the user types a code it shows."""
    user = request.user
    if TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        return redirect("login") if not user.is_verified() else redirect("/")  # type: ignore[union-attr]
    device, _ = TOTPDevice.objects.get_or_create(user=user, confirmed=False, defaults={"name": "authenticator"})
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            return redirect("/")
        form.add_error("token", "That code is not the current one: try the next")
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    svg = io.BytesIO()
    image.save(svg)
    return render(
        request,
        "registration/two_factor_setup.html",
        {"form": form, "qr_svg": svg.getvalue().decode(), "secret": device.bin_key.hex()},
    )
