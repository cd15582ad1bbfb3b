"""manage.py demo_conversation: the demo's desk, talking: on the first open margin calls, alice and bob log calls and
emails, take promises to pay and write notes, through the services (so each is audited), so a newcomer opens a case
with a conversation on it (DEBUG only; run after demo_users)."""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from core.commands import OperationCommand
from core.money import currency_quantum
from restructuring.models import Case, CaseState
from restructuring.services.conversation import contact_log, contact_log_with_promise, note_add


class Command(OperationCommand):
    help = "Log contacts, promises to pay and notes on the demo's first open margin calls (DEBUG only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cases", type=int, default=12, help="how many margin calls get a conversation")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_conversation writes a made-up conversation: it runs only with DEBUG=true")
        officers = list(User.objects.filter(username__in=("alice", "bob")).order_by("username"))
        if not officers:
            raise CommandError("no demo officer: run manage.py demo_users first")
        cases = list(
            Case.objects.filter(state__in=(CaseState.MARGIN_CALL, CaseState.PROPOSED), promises__isnull=True)
            .select_related("account")
            .order_by("pk")[: options["cases"]]
        )
        today = timezone.localdate()
        counts = {"contacts": 0, "promises": 0, "notes": 0}
        with self.operation() as run:
            for k, case in enumerate(cases):
                officer = officers[k % len(officers)]
                if k % 3 == 0:  # reached, and a promise of a tenth of the call in a few days
                    quantum = currency_quantum(case.account.base_currency)
                    amount = max((case.call_amount or Decimal(100)) / 10, quantum).quantize(quantum, ROUND_DOWN)
                    contact_log_with_promise(
                        case_id=case.pk,
                        channel="call",
                        direction="outbound",
                        outcome="promise",
                        person="the client's treasurer",
                        summary="Cannot meet the whole call; will wire part of it this week.",
                        promise={"amount": amount, "due": today + timedelta(days=1 + k % 5), "method": "bank_transfer"},
                        actor=officer,
                    )
                    counts["promises"] += 1
                elif k % 3 == 1:
                    contact_log(
                        case_id=case.pk, channel="call", direction="outbound", outcome="no_answer", actor=officer
                    )
                    contact_log(
                        case_id=case.pk,
                        channel="email",
                        direction="outbound",
                        outcome="message_left",
                        summary="Sent the margin call and asked for a call back.",
                        actor=officer,
                    )
                    counts["contacts"] += 1
                counts["contacts"] += 1
                note_add(
                    case_id=case.pk,
                    text="Client says the shortfall is temporary; check the book again after the next sweep.",
                    remind_on=today + timedelta(days=2),
                    actor=officer,
                )
                counts["notes"] += 1
            run.outcome = {"cases": len(cases), **counts}
        self.stdout.write(
            f"conversation on {len(cases)} cases: {counts['contacts']} contacts, {counts['promises']} promises, "
            f"{counts['notes']} notes"
        )
