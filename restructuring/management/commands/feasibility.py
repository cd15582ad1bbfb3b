"""manage.py feasibility: compute a case's feasibility report now and print its headline figures."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OperationCommand
from core.errors import WorkoutError
from restructuring.models import FeasibilityReport
from restructuring.services.feasibility import feasibility_compute


class Command(OperationCommand):
    help = (
        "Compute and store a feasibility report for each case named (on demand), and print what it found. "
        "All or nothing: a case that gets no report (unknown, or already computed under --key) refuses the run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("case_ids", nargs="+", type=int)
        parser.add_argument("--key", help="names the request: the same key computes once (default: the time)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            # All or nothing: a case named that gets no report refuses the run, storing none of the others.
            with self.operation() as run:
                report_ids = feasibility_compute(case_ids=options["case_ids"], key=options["key"])
                stored = dict(FeasibilityReport.objects.filter(pk__in=report_ids).values_list("case_id", "pk"))
                missing = set(options["case_ids"]) - set(stored)
                if missing:
                    raise CommandError(
                        f"no report for cases {sorted(missing)}: unknown, or already computed under this key"
                    )
                run.outcome = {"reports": {str(case_id): pk for case_id, pk in sorted(stored.items())}}
        except (WorkoutError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        for report in FeasibilityReport.objects.filter(pk__in=report_ids).order_by("case_id"):
            r = report.results["recovery"]
            self.stdout.write(
                f"case {report.case_id}: report {report.pk} ({report.duration_ms:.0f} ms), debt {report.debt}, "
                f"recovery {r['expected']['value']} +/- {r['expected']['standard_error']} "
                f"(5%: {r['p5']['value']}), expected loss {r['expected_loss']['value']}, "
                f"LGD {r['loss_given_default']['value']}, "
                f"recommended: {report.recommended or 'liquidate'}"
            )
