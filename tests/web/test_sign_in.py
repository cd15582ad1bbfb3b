"""Signing in: password and authenticator code together; repeated failures lock the username out; the demo's
users sign in with the codes the demo prints."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from tests.web.helpers import PASSWORD, current_code, staff_user


@pytest.mark.django_db
def test_a_wrong_code_is_refused_and_five_failures_lock_the_user_out() -> None:
    user = staff_user("alice", "credit_officer")
    client = Client()
    refused = client.post("/login/", {"username": "alice", "password": PASSWORD, "otp_token": "000000"})
    assert refused.status_code == 200  # the form again, with its error
    assert client.get("/queue/").status_code == 302  # not signed in: to the login page
    for _ in range(4):
        client.post("/login/", {"username": "alice", "password": "wrong", "otp_token": current_code(user)})
    # the fifth failure was the last allowed: now even the right password and code are refused
    locked = client.post("/login/", {"username": "alice", "password": PASSWORD, "otp_token": current_code(user)})
    assert locked.status_code == 429
    assert Client().get("/queue/").status_code == 302  # and nobody is signed in


@pytest.mark.django_db
def test_the_demo_users_sign_in_with_the_codes_the_demo_prints() -> None:
    out = StringIO()
    with override_settings(DEBUG=True):
        call_command("demo_users", stdout=out)
    printed = out.getvalue()
    assert {"alice", "bob", "sam", "carol"} <= set(re.findall(r"^  (\w+) ", printed, re.MULTILINE))
    code = StringIO()
    with override_settings(DEBUG=True):
        call_command("demo_users", "--code", "sam", stdout=code)
    client = Client()
    response = client.post(
        "/login/", {"username": "sam", "password": "workout-demo", "otp_token": code.getvalue().strip()}
    )
    assert response.status_code == 302
    assert client.get("/queue/").status_code == 200
