"""manage.py rules_load: load a rule set from a JSON file as a draft (the default set when no file is named)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OperationCommand
from core.errors import WorkoutError
from core.operations import command_system_actor
from rules.models import RuleSet, RuleSetStatus
from rules.services import DEFAULT_RULES, ruleset_load


class Command(OperationCommand):
    help = (
        "Load a rule set from JSON as a draft (written by --actor when given); --publish puts it in force when "
        "none is (an installation's first policy), published by the operating-system user as command:<user>@<host>."
    )
    input_files = ("path",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", default=str(DEFAULT_RULES))
        parser.add_argument("--publish", action="store_true")
        parser.add_argument(
            "--if-none-published", action="store_true", help="do nothing when a rule set is already in force"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_none_published"] and RuleSet.objects.filter(status=RuleSetStatus.PUBLISHED).exists():
            self.stdout.write("a rule set is already published: nothing loaded")
            return
        try:
            # One transaction: a draft whose publication is refused is not left behind.
            with self.operation() as run:
                rule_set = ruleset_load(
                    Path(options["path"]),
                    publish=options["publish"],
                    # The draft is the --actor's; a publication here is the installation's (rules.services lets a
                    # system actor publish only the first policy): it names the operating-system user.
                    system_actor=command_system_actor(),
                    actor=self.actor,
                )
                run.outcome = {
                    "rule_set_id": rule_set.pk,
                    "version": rule_set.version,
                    "status": rule_set.status,
                    "rules": rule_set.rules.count(),
                }
        except (WorkoutError, OSError, ValueError, KeyError) as exc:
            raise CommandError(f"{options['path']}: {exc}") from exc
        self.stdout.write(f"loaded {rule_set}: {run.outcome['rules']} rules")
