"""manage.py cases_assign: the auto-assignment's balancing by command (restructuring/services/assignment.py).

manage.py cases_assign                       every unassigned open case to the least-loaded eligible officer
manage.py cases_assign --officer A --to B    every open case of officer A to officer B
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from core.commands import OperationCommand
from core.errors import WorkoutError
from restructuring.services.assignment import cases_balance, officer_cases_move


class Command(OperationCommand):
    help = (
        "Assign every unassigned open case to the least-loaded eligible officer (authority covering the debt, "
        "within capacity); with --officer NAME --to NAME, move one officer's open cases to another."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--officer", metavar="NAME", help="the officer whose open cases move (with --to)")
        parser.add_argument("--to", metavar="NAME", help="the officer who takes them")

    def handle(self, *args: Any, **options: Any) -> None:
        officer, to = options["officer"], options["to"]
        if bool(officer) != bool(to):
            raise CommandError("--officer and --to go together")
        try:
            with self.operation() as run:
                if officer:
                    result = officer_cases_move(
                        officer=officer, to=to, actor=self.actor, system_actor=self.system_actor
                    )
                else:
                    result = cases_balance(actor=self.actor, system_actor=self.system_actor)
                run.outcome = result.as_dict()
        except WorkoutError as error:
            raise CommandError(error.message) from error
        moved = ", ".join(f"{name} {n}" for name, n in result.by_officer.items()) or "none"
        self.stdout.write(f"assigned {result.assigned} cases ({moved}); {result.unplaced} left unassigned")
