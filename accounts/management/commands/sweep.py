from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from accounts.models import SweepStatus
from accounts.services.sweep import sweep_run, sweep_start
from core.errors import WorkoutError


class Command(BaseCommand):
    help = "Sweep the book: compute every account's risk and print the count per health band."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="value the book at the latest prices at or before this ISO time")
        parser.add_argument("--shards", type=int, default=1, help="split the book into this many account ranges")
        parser.add_argument("--workers", type=int, default=1, help="run the shards here in this many threads")
        parser.add_argument(
            "--dispatch",
            action="store_true",
            help="queue the shards as Celery tasks instead of running them here",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        as_of = self._as_of(options["as_of"])
        if options["shards"] < 1:
            raise CommandError("--shards must be at least 1")
        try:
            if options["dispatch"]:
                sweep = sweep_start(as_of=as_of, shards=options["shards"])
                self.stdout.write(f"sweep {sweep.pk}: {options['shards']} shard task(s) queued")
                return
            sweep = sweep_run(as_of=as_of, shards=options["shards"], workers=max(options["workers"], 1))
        except WorkoutError as exc:
            raise CommandError(str(exc)) from exc
        if sweep.status != SweepStatus.DONE:
            raise CommandError(f"sweep {sweep.pk} {sweep.status}")
        self.stdout.write(f"sweep {sweep.pk}: {sweep.accounts} accounts, {sweep.positions} positions")
        for band, count in sweep.band_counts.items():
            self.stdout.write(f"  {band:<12} {count}")
        timings = ", ".join(f"{k} {v:.3f}" for k, v in sweep.timings.items())
        self.stdout.write(f"  ({timings})")

    @staticmethod
    def _as_of(value: str | None) -> datetime | None:
        if value is None:
            return None
        parsed = parse_datetime(value)
        if parsed is None or parsed.tzinfo is None:
            raise CommandError(f"--as-of {value!r}: give an ISO 8601 time with a timezone")
        return parsed
