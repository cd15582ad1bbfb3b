"""manage.py demo_conversation: the demo's desk, talking, so that a newcomer opens cases with a conversation on them
(DEBUG only; run after demo_users, which gives the open cases their officers).

`--actor alice` is alice at work: on her open cases (the most urgent first) she logs calls and emails, takes
promises to pay in the calls that reach the client, and writes notes with reminders, each through the conversation
services, so each is audited as hers. Run once per officer (`make demo` runs it for alice and for bob): the events of
a run name only who ran it (tests/core/test_commands_audit.py), so one run never writes in another's name.

Without --actor the run is the clients': a few clients send promises to pay through the service behind the API's
POST /api/v1/cases/{id}/promises/ (audited as the client: "client:<code>").

A case already worked by the actor (or, for the clients, one with an open promise) is left alone: running it again
adds conversations only to cases that have none yet."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.db.models import Q
from django.utils import timezone

from core.commands import OperationCommand
from core.money import currency_quantum
from restructuring.models import OPEN_STATES, Case, CaseState, PromiseMethod, PromiseStatus
from restructuring.services.conversation import contact_log, contact_log_with_promise, note_add, promise_make

# The states in which a demo client is asked to pay: a margin call stands, or a restructured loan is being repaid.
_TALKED_TO = (CaseState.MARGIN_CALL, CaseState.PROPOSED, CaseState.OFFERED, CaseState.RESTRUCTURED)


def _promised(case: Case) -> Decimal:
    """A tenth of the margin call (100 of the currency when there is none), in the currency's places."""
    quantum = currency_quantum(case.account.base_currency)
    return max((case.call_amount or Decimal(100)) / 10, quantum).quantize(quantum, ROUND_DOWN)


class Command(OperationCommand):
    help = (
        "The demo's conversation (DEBUG only): with --actor, that officer's calls, emails, promises and notes on "
        "their open cases; without, promises to pay sent by a few clients."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--cases", type=int, default=8, help="how many cases get a conversation (default 8)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("demo_conversation writes a made-up conversation: it runs only with DEBUG=true")
        if options["cases"] < 0:
            raise CommandError(f"--cases {options['cases']}: a number of cases, 0 or more")
        today = timezone.localdate()
        with self.operation() as run:
            if self.actor is not None:
                counts = self._officer(options["cases"], today)
            else:
                counts = self._clients(options["cases"], today)
            run.outcome = counts
        who = self.actor.get_username() if self.actor is not None else "the clients"
        self.stdout.write(
            f"{who}: conversation on {counts['cases']} cases: {counts['contacts']} contacts, "
            f"{counts['promises']} promises to pay, {counts['notes']} notes"
        )

    def _officer(self, limit: int, today: date) -> dict[str, int]:
        """The actor's own open cases, nearest deadline first, that they have not talked about yet."""
        actor = self.actor
        assert actor is not None
        cases = list(
            Case.objects.filter(state__in=OPEN_STATES, assignee=actor)
            .exclude(Q(notes__author=actor) | Q(contacts__officer=actor))
            .select_related("account")
            .order_by("deadline", "pk")
            .distinct()[:limit]
        )
        counts = {"cases": len(cases), "contacts": 0, "promises": 0, "notes": 0}
        for k, case in enumerate(cases):
            open_promise = case.promises.filter(status=PromiseStatus.OPEN).exists()
            if k % 3 == 0 and case.state in _TALKED_TO and not open_promise:
                # reached: part of the call, wired in a few days
                contact_log_with_promise(
                    case_id=case.pk,
                    channel="call",
                    direction="outbound",
                    outcome="promise",
                    person="the client's treasurer",
                    summary="Cannot meet the whole call at once; will wire part of it this week.",
                    promise={
                        "amount": _promised(case),
                        "due": today + timedelta(days=1 + k % 5),
                        "method": "bank_transfer",
                    },
                    actor=actor,
                )
                counts["contacts"] += 1
                counts["promises"] += 1
            else:
                # not reached: a call nobody answered, then an email
                contact_log(case_id=case.pk, channel="call", direction="outbound", outcome="no_answer", actor=actor)
                contact_log(
                    case_id=case.pk,
                    channel="email",
                    direction="outbound",
                    outcome="message_left",
                    summary="Sent the figures of the margin call and asked for a call back.",
                    actor=actor,
                )
                counts["contacts"] += 2
            note_add(
                case_id=case.pk,
                text="The client says the shortfall is temporary: check the book again after the next sweep.",
                remind_on=today + timedelta(days=2),
                actor=actor,
            )
            counts["notes"] += 1
        return counts

    def _clients(self, limit: int, today: date) -> dict[str, int]:
        """A few clients whose case is in margin call send a promise to pay (as through the API)."""
        cases = list(
            Case.objects.filter(state__in=_TALKED_TO)
            .exclude(promises__status=PromiseStatus.OPEN)
            .select_related("account")
            .order_by("-call_amount", "pk")[:limit]
        )
        for k, case in enumerate(cases):
            promise_make(
                case_id=case.pk,
                amount=_promised(case),
                due=today + timedelta(days=2 + k % 4),
                method=PromiseMethod.CRYPTO_TRANSFER if k % 2 else PromiseMethod.BANK_TRANSFER,
                client_id=case.account.client_id,
            )
        return {"cases": len(cases), "contacts": 0, "promises": len(cases), "notes": 0}
