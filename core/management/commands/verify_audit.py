from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.audit import audit_verify


class Command(BaseCommand):
    help = "Recompute the audit trail's hash chain and name the first broken link (exit status 1 if any)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=10_000, help="events read per query")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        result = audit_verify(batch_size=options["batch_size"])
        if not result.ok:
            sound = f"{result.checked} event{'' if result.checked == 1 else 's'} before it verified"
            raise CommandError(f"audit chain broken: {result.problem} ({sound})")
        self.stdout.write(f"audit chain verified: {result.checked} events")
