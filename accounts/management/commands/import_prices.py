"""manage.py import_prices FILE: prices (.csv or .json); see docs/import-formats.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts.services.book_import import prices_import
from core.commands import OperationCommand
from core.errors import WorkoutError


class Command(OperationCommand):
    help = (
        "Import prices (.csv or .json), upserting on (instrument, time). All or nothing: a file with any bad "
        "row is refused, every problem listed. Formats: docs/import-formats.md."
    )

    input_files = ("file",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="the .csv or .json prices file")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with self.operation() as run:
                result = prices_import(path=options["file"])
                run.outcome = {"prices": vars(result.prices), "instruments_priced": len(result.priced_instrument_ids)}
        except WorkoutError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Imported {result.file}")
        self.stdout.write(f"  prices: {result.prices.created} created, {result.prices.updated} updated")
        self.stdout.write(f"  instruments priced: {len(result.priced_instrument_ids)}")
