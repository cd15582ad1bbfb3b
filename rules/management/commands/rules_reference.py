"""manage.py rules_reference: the rule writer's reference generated from the code (docs/rules.md)."""

from __future__ import annotations

from core.commands import GeneratedDocCommand
from rules.reference import rules_reference


class Command(GeneratedDocCommand):
    help = "Print the facts and actions rules can use; --write updates docs/rules.md."
    doc = "rules.md"

    def generate(self) -> str:
        return rules_reference()
