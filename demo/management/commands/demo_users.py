"""manage.py demo_users: the demo's staff, one per role, each with an authenticator (DEBUG only), and how to sign
in as them; `DEBUG=true manage.py demo_users --code USERNAME` prints a user's current code (the demo's authenticator
app), and the listing prints that command as it runs here."""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import CommandError, CommandParser
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.commands import OperationCommand
from core.roles import ADMINISTRATOR, COMPLIANCE, CREDIT_OFFICER, SENIOR_CREDIT_OFFICER
from restructuring.models import Team, TeamMembership
from restructuring.services.assignment import cases_balance

# Only ever set on a DEBUG machine (handle refuses otherwise), so a fixed, printed password is the point.
DEMO_PASSWORD = "workout-demo"  # noqa: S105
DEMO_USERS = (
    ("alice", CREDIT_OFFICER, "credit officer (approval limit 250,000)"),
    ("bob", CREDIT_OFFICER, "credit officer (approval limit 250,000)"),
    ("sam", SENIOR_CREDIT_OFFICER, "senior credit officer (limit 5,000,000; publishes rules)"),
    ("carol", COMPLIANCE, "compliance (read-only: audit trail, cases, rules)"),
    ("ada", ADMINISTRATOR, "administrator (staff: enrolment links, roles, limits; no case or rule)"),
)


def _key(username: str) -> str:
    """A fixed authenticator key per demo user (hex, as django-otp stores it), so the printed secret stays valid."""
    return hashlib.sha256(f"workout-demo:{username}".encode()).hexdigest()[:40]


def _code(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


class Command(OperationCommand):
    help = "Create the demo's staff users with authenticators and print how to sign in (DEBUG only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--code", metavar="USERNAME", help="print this user's current authenticator code")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_users sets known passwords and keys: it runs only with DEBUG=true")
        if options["code"]:
            device = TOTPDevice.objects.filter(user__username=options["code"], confirmed=True).first()
            if device is None:
                raise CommandError(f"{options['code']} has no authenticator")
            self.stdout.write(_code(device))
            return
        devices = []
        with self.operation() as run:
            for username, role, _what in DEMO_USERS:
                user, _ = User.objects.get_or_create(username=username)
                user.set_password(DEMO_PASSWORD)
                user.is_staff = role == ADMINISTRATOR  # the admin site (read-only) lets in its administrator
                user.save()
                user.groups.set([Group.objects.get(name=role)])
                TOTPDevice.objects.filter(user=user).delete()
                devices.append(
                    TOTPDevice.objects.create(user=user, name="demo authenticator", key=_key(username), confirmed=True)
                )
            # The desk: alice and bob on sam's team, and the open cases the sweep left unassigned balanced over them.
            team, _ = Team.objects.get_or_create(name="Desk 1", defaults={"senior": User.objects.get(username="sam")})
            for username in ("alice", "bob"):
                TeamMembership.objects.get_or_create(user=User.objects.get(username=username), defaults={"team": team})
            assigned = cases_balance(actor=self.actor, system_actor=self.system_actor)
            # Never the password or the keys: who got which role, and that both were set.
            run.outcome = {
                "users": [{"username": username, "role": role} for username, role, _what in DEMO_USERS],
                "passwords_set": len(DEMO_USERS),
                "authenticators_set": len(devices),
                "cases_assigned": assigned.assigned,
            }
        self.stdout.write("Sign in at http://127.0.0.1:8000/login/ (password: workout-demo) as:")
        for (username, _role, what), device in zip(DEMO_USERS, devices, strict=True):
            secret = base64.b32encode(device.bin_key).decode()
            self.stdout.write(f"  {username:6} {what}")
            self.stdout.write(f"         authenticator secret (base32) {secret}; code now: {_code(device)}")
        self.stdout.write(f"  a current code any time: {_code_command('alice')}")


def _code_command(username: str) -> str:
    """The shell command that prints `username`'s current code, as it runs from where this one ran: with DEBUG
    (the command refuses without it) and the database this run used (its URL may have been given to `make demo`
    alone), through this interpreter (the project's .venv) and this manage.py."""
    cwd = Path.cwd()

    def here(path: Path) -> str:
        return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)

    environment = ["DEBUG=true"]
    if os.environ.get("DATABASE_URL"):
        environment.append(f"DATABASE_URL={shlex.quote(os.environ['DATABASE_URL'])}")
    command = [here(Path(sys.executable)), here(Path(settings.BASE_DIR) / "manage.py"), "demo_users", "--code"]
    return " ".join([*environment, shlex.join([*command, username])])
