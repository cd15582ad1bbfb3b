"""manage.py cascade SYMBOL --drop 0.3: what liquidating every account a fall breaches would cost, against
restructuring them by the published rules (restructuring/services/cascade.py)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import WorkoutError
from restructuring.services.cascade import Scenario, cascade_compare


class Command(BaseCommand):
    help = "Shock one asset and compare liquidating every breached account with restructuring by the rules."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("symbol")
        parser.add_argument("--drop", type=float, default=0.3, help="the fall, as a fraction (0.3: 30%%)")
        parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            comparison = cascade_compare(symbol=options["symbol"], drop=options["drop"])
        except WorkoutError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(comparison.as_dict()))
            return
        self.stdout.write(
            f"{comparison.symbol} {comparison.price_before:,.2f} -> {comparison.price_shocked:,.2f} "
            f"(-{comparison.drop:.0%}): {comparison.accounts_breached} accounts below maintenance"
        )
        for scenario in (comparison.liquidate_all, comparison.by_rules):
            self.stdout.write(self._line(scenario))
        if comparison.rule_set_version is None:
            self.stdout.write("  (no rule set is published: the rules send nobody to liquidation)")

    @staticmethod
    def _line(s: Scenario) -> str:
        path = " -> ".join(f"{p:,.2f}" for p in s.price_path)
        kept = f"; kept {s.accounts_kept} ({s.debt_kept} of debt, {s.under_water_kept} under water)"
        return (
            f"  {s.name}: {s.accounts_sold} sold over {s.rounds} rounds, bad debt {s.bad_debt}, "
            f"impact {s.impact_cost}{kept}\n    price: {path}"
        )
