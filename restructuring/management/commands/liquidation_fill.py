"""manage.py liquidation_fill: the demo's stand-in for the trading desk, filling liquidation orders."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import WorkoutError
from restructuring.models import LiquidationPlan, LiquidationStatus
from restructuring.services.liquidation import liquidation_book


class Command(BaseCommand):
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
        for plan_id in plan_ids:
            try:
                plan = liquidation_book(plan_id=plan_id, system_actor="demo-desk")
            except (WorkoutError, LiquidationPlan.DoesNotExist) as exc:
                raise CommandError(f"plan {plan_id}: {exc}") from exc
            case = plan.case
            self.stdout.write(
                f"plan {plan.pk} (case {case.pk}): {plan.status}, realised {plan.cash_realised}, "
                f"repaid {plan.debt_repaid}, written off {plan.shortfall} -> case {case.state}"
            )
