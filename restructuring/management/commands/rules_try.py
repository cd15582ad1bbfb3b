"""manage.py rules_try: dry-run (open cases) or backtest (closed cases) a rule set against the published one."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from restructuring.services.rules_trial import ruleset_backtest, ruleset_dry_run
from rules.models import RuleSet


class Command(BaseCommand):
    help = "Compare a rule set with the published one: proposals added, removed, changed, expected recovery."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", type=int, help="the rule set's version")
        parser.add_argument("--backtest", action="store_true", help="over closed cases instead of open ones")

    def handle(self, *args: Any, **options: Any) -> None:
        rule_set = RuleSet.objects.filter(version=options["version"]).first()
        if rule_set is None:
            raise CommandError(f"no rule set v{options['version']}")
        run = ruleset_backtest if options["backtest"] else ruleset_dry_run
        trial = run(rule_set_id=rule_set.pk)
        for diff in trial.differences[:50]:
            self.stdout.write(
                f"case {diff.case_id}: +{diff.added} -{diff.removed} ~{diff.changed} "
                f"expected recovery {diff.before} -> {diff.after}"
            )
        self.stdout.write(json.dumps(trial.as_dict()))
