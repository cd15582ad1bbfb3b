"""manage.py liquidation_fill: the demo's stand-in for the trading desk, filling liquidation orders."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OperationCommand
from core.errors import WorkoutError
from restructuring.models import LiquidationPlan, LiquidationStatus
from restructuring.services.liquidation import liquidation_book


class Command(OperationCommand):
    help = (
        "Fill every open order of the given liquidation plans (or of all open plans with --all) at its expected "
        "price, and book the fills. Workout does not trade: in production the desk's confirmed fills are booked."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plan_ids", nargs="*", type=int)
        parser.add_argument("--all", action="store_true", help="every plan not yet booked")

    def handle(self, *args: Any, **options: Any) -> None:
        plan_ids = options["plan_ids"]
        if options["all"]:
            plan_ids = list(
                LiquidationPlan.objects.filter(status=LiquidationStatus.PLANNED)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
        if not plan_ids:
            raise CommandError("name plan ids, or --all")
        known = set(LiquidationPlan.objects.filter(pk__in=plan_ids).values_list("pk", flat=True))
        unknown = sorted(set(plan_ids) - known)
        if unknown:  # refused before anything is booked
            raise CommandError(f"no liquidation plan {', '.join(map(str, unknown))}")
        run = self.operation_run(plan_ids=plan_ids)
        booked: list[dict[str, object]] = []
        try:
            for plan_id in plan_ids:
                # Each plan is booked in its own transaction (with its case's events, naming this run's actor), and
                # the run is recorded right after: one transaction over several plans would hold the audit trail's
                # append lock from the first plan while it waited for the next plan's rows (core/audit.py).
                plan = liquidation_book(plan_id=plan_id, actor=self.actor, system_actor=self.system_actor)
                case = plan.case
                booked.append({"plan_id": plan.pk, "case_id": case.pk, "status": plan.status, "case_state": case.state})
                self.stdout.write(
                    f"plan {plan.pk} (case {case.pk}): {plan.status}, realised {plan.cash_realised}, "
                    f"repaid {plan.debt_repaid}, written off {plan.shortfall} -> case {case.state}"
                )
        except (WorkoutError, LiquidationPlan.DoesNotExist) as exc:
            if booked:  # the plans before this one are booked: the run is on the record with them
                run.outcome = {"booked": booked, "failed": {"plan_id": plan_id, "error": str(exc)}}
                self.operation_record_after(run)
            raise CommandError(f"plan {plan_id}: {exc}") from exc
        run.outcome = {"booked": booked}
        self.operation_record_after(run)
