from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from restructuring.state_graph import case_state_mermaid

DOC = Path(settings.BASE_DIR) / "docs" / "case-states.md"


class Command(BaseCommand):
    help = "Print the case state graph (Mermaid) generated from the transitions; --write updates docs/case-states.md."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--write", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        text = case_state_mermaid()
        if options["write"]:
            DOC.write_text(text)
            self.stdout.write(f"wrote {DOC}")
        else:
            self.stdout.write(text)
