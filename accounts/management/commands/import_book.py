"""manage.py import_book FILE: a whole book (.json) or positions (.csv); see docs/import-formats.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.services.book_import import book_import
from core.commands import OperationCommand
from core.errors import WorkoutError


class Command(OperationCommand):
    help = (
        "Import a book (.json: groups, clients, instruments, accounts with loans and positions) or positions "
        "(.csv). All or nothing: a file with any bad row is refused, every problem listed. "
        "Formats: docs/import-formats.md."
    )

    input_files = ("file",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the .json book or .csv positions file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with self.operation() as run:
                result = book_import(path=options["file"])
                run.outcome = {entity: vars(counts) for entity, counts in result.counts().items()}
        except WorkoutError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Imported {result.file}")
        for entity, counts in result.counts().items():
            self.stdout.write(
                f"  {entity}: {counts.created} created, {counts.updated} updated, {counts.deleted} deleted"
            )
