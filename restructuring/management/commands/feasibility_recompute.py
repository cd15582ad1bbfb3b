"""manage.py feasibility_recompute: rerun stored feasibility reports and check they reproduce exactly."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import WorkoutError
from restructuring.services.feasibility import feasibility_recompute


class Command(BaseCommand):
    help = (
        "Recompute feasibility reports from their stored inputs, seeds, parameters and model version, and compare "
        "every figure with the stored one. Exits with an error naming the figures that differ."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("report_ids", nargs="+", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        failed = []
        for report_id in options["report_ids"]:
            try:
                recomputed = feasibility_recompute(report_id=report_id)
            except WorkoutError as exc:
                raise CommandError(str(exc)) from exc
            if recomputed.reproduced:
                self.stdout.write(f"report {report_id}: reproduced exactly ({recomputed.report.model_version})")
                continue
            failed.append(report_id)
            self.stdout.write(f"report {report_id}: {len(recomputed.differences)} figures differ:")
            for difference in recomputed.differences[:20]:
                self.stdout.write(f"  {difference}")
        if failed:
            raise CommandError(f"not reproduced: reports {', '.join(map(str, failed))}")
