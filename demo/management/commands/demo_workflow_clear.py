"""manage.py demo_workflow_clear: the demo's reset of the workflow (cases and everything hanging off them), so
that `make demo` can replace the book again. DEBUG only: a deployment never deletes cases."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError

from core.commands import OperationCommand
from restructuring.models import Case, FeasibilityReport, LiquidationOrder, LiquidationPlan, Notification, Proposal


class Command(OperationCommand):
    help = "Delete every case with its proposals, reports, plans and notifications (DEBUG only; the audit trail stays)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_workflow_clear deletes cases: it runs only with DEBUG=true")
        with self.operation() as run:
            counts = {}
            for model in (Proposal, FeasibilityReport, LiquidationOrder, LiquidationPlan, Notification, Case):
                counts[str(model._meta.verbose_name_plural)] = model.objects.all().delete()[0]
            run.outcome = {"deleted": counts}
        self.stdout.write("cleared: " + ", ".join(f"{n} {name}" for name, n in counts.items()))
