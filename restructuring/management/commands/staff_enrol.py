"""manage.py staff_enrol USERNAME [--create] [--role ROLE]... [--actor ADMIN]: issue a member of staff's one-time
enrolment link and print it. For the first administrator of a fresh install (`staff_enrol ada --create --role
administrator`), a superuser made by `createsuperuser` (who has no authenticator yet), or anyone when no
administrator can sign in. Everything it writes goes through the services, which audit it: the issuer is --actor
(an administrator, checked as on the staff page) or, without it, the system actor "command:<os user>@<host>"; the
run itself is on the record too (core.commands.OperationCommand), without the link (only its fingerprint is kept)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from core.commands import OperationCommand
from core.errors import WorkoutError
from core.roles import STAFF_ROLES
from core.staff import IssuedEnrolment, enrolment_issue
from restructuring.services.staff import staff_member_create, staff_role_grant


def _default_site() -> str:
    origins = list(settings.CSRF_TRUSTED_ORIGINS)
    return origins[0] if origins else "http://127.0.0.1:8000"


class Command(OperationCommand):
    help = "Issue a member of staff's one-time enrolment link (creating them with --create) and print it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create", action="store_true", help="create the user first (no password until enrolled)")
        parser.add_argument("--email", default="", help="with --create: their email address")
        parser.add_argument(
            "--role", action="append", default=[], choices=STAFF_ROLES, help="grant this role too (repeatable)"
        )
        parser.add_argument(
            "--site",
            default=None,
            help="the site's address the link starts with (default: the first CSRF_TRUSTED_ORIGINS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with self.operation() as run:
                issued = self._issue(options, self.actor, self.system_actor)
                run.outcome = {"user": issued.enrolment.user.get_username(), "expires_at": issued.enrolment.expires_at}
        except WorkoutError as error:
            raise CommandError(str(error)) from error
        site = (options["site"] or _default_site()).rstrip("/")
        who = issued.enrolment.user.get_username()
        self.stdout.write(f"Enrolment link for {who}, good once until {issued.enrolment.expires_at:%Y-%m-%d %H:%M %Z}:")
        self.stdout.write(f"  {site}{issued.path}")
        self.stdout.write(
            "It is shown only now (only its fingerprint is stored); any earlier link of theirs is revoked."
        )

    def _issue(self, options: dict[str, Any], actor: User | None, system_actor: str) -> IssuedEnrolment:
        username = options["username"]
        if options["create"]:
            return staff_member_create(
                username=username, email=options["email"], roles=options["role"], actor=actor, system_actor=system_actor
            )
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}: add --create to create them")
        with transaction.atomic():  # the roles and the link, or nothing
            for role in options["role"]:
                staff_role_grant(user_id=user.pk, role=role, actor=actor, system_actor=system_actor)
            return enrolment_issue(user_id=user.pk, actor=actor, system_actor=system_actor)
