"""Users of the UI for tests: a role, a confirmed authenticator, and a test client signed in through the real
login form with the authenticator's current code."""

from __future__ import annotations

from django.contrib.auth.models import Group, User
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from rules.models import RuleSet
from rules.services import DEFAULT_RULES, ruleset_load, ruleset_publish

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


def policy_in_force() -> RuleSet:
    """The default rules as a policy two people own: written by a credit officer ("policy-author") and published
    by a senior who did not write it ("policy-publisher"). Their proposals have two people on record already, so
    one officer's approval completes them (a policy nobody wrote, loaded by a command, needs two approvers). The two
    never sign in: no password (a hash is slow)."""
    people = []
    for username, role in (("policy-author", "credit_officer"), ("policy-publisher", "senior_credit_officer")):
        user, created = User.objects.get_or_create(username=username)
        if created:
            user.groups.add(Group.objects.get(name=role))
        people.append(user)
    author, publisher = people
    draft = ruleset_load(DEFAULT_RULES, actor=author)
    return ruleset_publish(rule_set_id=draft.pk, actor=publisher)
