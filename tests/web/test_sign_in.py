"""Signing in: password and authenticator code together; repeated failures lock the username out; the demo's
users sign in with the codes the demo prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django_otp.oath import totp

from demo.management.commands.demo_users import _key
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


@pytest.mark.slow
def test_the_printed_code_command_works_as_printed(tmp_path: Path) -> None:
    """`make demo` ends with demo_users, which prints the command for a fresh code; a newcomer pastes it into the
    same shell, which has no DEBUG (the Makefile sets it per command), nor the database when it was given to
    `DATABASE_URL=... make demo` alone, and it must print alice's code (issue 14: it printed `manage.py
    demo_users --code alice`, which exits 1 without DEBUG=true)."""
    shell = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DATABASE_URL")}
    shell |= {"CELERY_BROKER_URL": "", "CELERY_TASK_ALWAYS_EAGER": "true"}
    # as the Makefile runs each step
    make_demo = {**shell, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}", "DEBUG": "true"}

    def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120, check=False
        )

    assert run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], make_demo).returncode == 0
    listing = run([sys.executable, "manage.py", "demo_users"], make_demo)
    assert listing.returncode == 0, listing.stderr
    (hint,) = re.findall(r"a current code any time: (.+)$", listing.stdout, re.MULTILINE)

    printed = run(["bash", "-c", hint], shell)

    assert printed.returncode == 0, (hint, printed.stderr)
    # alice's current code: her demo key's TOTP in this 30-second step or the one just before
    expected = {f"{totp(bytes.fromhex(_key('alice')), drift=drift):06d}\n" for drift in (0, -1)}
    assert printed.stdout in expected, (hint, printed.stdout)
