"""manage.py createsuperuser, Django's, with the run on the record: the user made, by whom (--actor or the
operating-system user)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management.commands import createsuperuser
from django.db.models import Max

from core.commands import OperationCommand


class Command(OperationCommand, createsuperuser.Command):
    help = f"{createsuperuser.Command.help} The new user is an audit event naming --actor or the operating-system user."

    def handle(self, *args: Any, **options: Any) -> None:
        model: Any = self.UserModel  # settings.AUTH_USER_MODEL: a username field, and is_superuser
        users = model._default_manager.db_manager(options["database"])
        # Django's command asks its questions inside this transaction, so a person typing holds it open: it has
        # only read (the username's uniqueness) by then, which locks nothing a writer needs, and the user and its
        # event are then written together or not at all.
        with self.operation() as run:
            before = users.aggregate(highest=Max("pk"))["highest"] or 0
            super().handle(*args, **options)
            # The user Django just made: the newest superuser past the highest id seen before (Django's command
            # does not return it). None when it made none (no terminal to ask on): then nothing is recorded.
            made = list(
                users.filter(pk__gt=before, is_superuser=True)
                .order_by("pk")
                .values_list(model.USERNAME_FIELD, flat=True)
            )
            run.nothing_done = not made
            run.outcome = {"created": made}
