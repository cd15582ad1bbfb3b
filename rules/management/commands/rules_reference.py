"""manage.py rules_reference: the rule writer's reference generated from the code (docs/rules.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from rules.reference import rules_reference

DOC = Path(settings.BASE_DIR) / "docs" / "rules.md"


class Command(BaseCommand):
    help = "Print the facts and actions rules can use; --write updates docs/rules.md."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--write", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        text = rules_reference()
        if options["write"]:
            DOC.write_text(text)
            self.stdout.write(f"wrote {DOC}")
        else:
            self.stdout.write(text)
