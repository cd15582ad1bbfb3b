"""manage.py changepassword, Django's, with the run on the record: whose password changed, by whom (--actor or
the operating-system user). Never the password."""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth.management.commands import changepassword

from core.commands import OperationCommand


class Command(OperationCommand, changepassword.Command):
    help = f"{changepassword.Command.help} The change is an audit event naming --actor or the operating-system user."

    def handle(self, *args: Any, **options: Any) -> str:
        # Django's command prompts inside this transaction (it has only read the user by then); the new password
        # and its event are written together, or not at all (three mismatched attempts write neither).
        with self.operation() as run:
            message = super().handle(*args, **options) or ""
            run.outcome = {"password_changed": options["username"] or getpass.getuser()}  # whom Django's command chose
        return message
