"""Users of the UI for tests: a role, a confirmed authenticator, and a test client signed in through the real
login form with the authenticator's current code."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

PASSWORD = "correct horse battery staple"


def staff_user(username: str, role: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD)
    user.groups.add(Group.objects.get(name=role))
    TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    return user


def current_code(user: User) -> str:
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def signed_in(user: User, client: Client | None = None) -> Client:
    client = client or Client()
    response = client.post(
        "/login/", {"username": user.username, "password": PASSWORD, "otp_token": current_code(user)}
    )
    assert response.status_code == 302, response.content[:500]
    return client
