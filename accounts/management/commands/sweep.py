from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from accounts.models import Sweep, SweepStatus
from accounts.services.sweep import sweep_run, sweep_start
from core.commands import OperationCommand
from core.errors import WorkoutError


class Command(OperationCommand):
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
                with self.operation() as run:  # the shard tasks are queued on this transaction's commit
                    sweep = sweep_start(as_of=as_of, shards=options["shards"])
                    run.outcome = {"sweep_id": sweep.pk, "status": sweep.status, "shards": options["shards"]}
                self.stdout.write(f"sweep {sweep.pk}: {options['shards']} shard task(s) queued")
                return
            run = self.operation_run()
            sweep = sweep_run(as_of=as_of, shards=options["shards"], workers=max(options["workers"], 1))
        except WorkoutError as exc:
            raise CommandError(str(exc)) from exc
        # Recorded right after the sweep, not in its transaction: a sweep is a transaction per shard (on several
        # threads with --workers, which sweep_run refuses inside a transaction), and the case moves it queues run
        # on their commits. A sweep that failed has written too (its shards, its status): it is recorded as well.
        run.outcome = _outcome(sweep)
        self.operation_record_after(run)
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


def _outcome(sweep: Sweep) -> dict[str, object]:
    return {
        "sweep_id": sweep.pk,
        "status": sweep.status,
        "accounts": sweep.accounts,
        "positions": sweep.positions,
        "band_counts": sweep.band_counts,
    }
