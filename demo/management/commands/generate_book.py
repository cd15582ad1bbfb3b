"""`manage.py generate_book --accounts N [--seed S] [--history-days D]`: load a synthetic book.

The book is described in demo/book/. By default it replaces the book in the database
(with its sweeps and risk state); `--keep-existing` refuses instead when a book is already loaded.
"""

from __future__ import annotations

import time
from argparse import ArgumentParser
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError

from core.commands import OperationCommand
from core.errors import WorkoutError
from demo.book import demo_book_generate, demo_book_write


class Command(OperationCommand):
    help = "Generate a realistic synthetic book (clients, accounts, positions, loans, price history) and load it."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--accounts", type=int, required=True, help="number of margin accounts")
        parser.add_argument("--seed", type=int, default=7, help="random seed: the same seed gives the same book")
        parser.add_argument("--history-days", type=int, default=250, help="daily closes per underlying")
        parser.add_argument(
            "--as-of",
            type=datetime.fromisoformat,
            default=None,
            help="time of the last close (ISO 8601 with offset); default now",
        )
        parser.add_argument(
            "--keep-existing",
            action="store_true",
            help="do not delete the book already loaded; fail if there is one",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            book = demo_book_generate(
                accounts=options["accounts"],
                seed=options["seed"],
                history_days=options["history_days"],
                as_of=options["as_of"],
            )
            generated = time.perf_counter()
            with self.operation() as run:
                counts = demo_book_write(book=book, replace=not options["keep_existing"])
                run.outcome = {"written": counts, "seed": book.seed, "as_of": book.as_of}
        except WorkoutError as error:
            raise CommandError(str(error)) from error
        written = time.perf_counter()
        for name, count in counts.items():
            self.stdout.write(f"{name:<12} {count:>10,}")
        self.stdout.write(
            f"generated in {generated - started:.2f} s, written in {written - generated:.2f} s "
            f"(seed {book.seed}, as of {book.as_of.isoformat()})"
        )
