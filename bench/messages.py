"""Benchmark of writing the messages of a sweep's new margin calls, and of sending them. Prints one JSON object on
its last line.

    python bench/messages.py [--calls 5000] [--repeat 5] [--send 1000]

In its own database (`workout_bench_messages`; BENCH_DATABASE_URL overrides) it writes, once, 5,000 clients in
margin call, each with an email address; one in three also has message preferences (a phone number, so an SMS
too; German or English; quiet hours for half of those, which do not hold a margin call back). The templates in use
are the shipped ones (English and German).

`enqueue_s` times `notifications_enqueue_for_cases`, the call the sweep makes in its transaction for the cases it
moved: every message rendered from its template (compiled once per kind, channel, locale and version), then one
bulk insert; `--repeat` runs, each in a transaction rolled back so each starts from the same book (the median is
reported, and the first run, which compiles the templates, apart; `enqueue_cpu_s` is this process's CPU time in it,
which other work on a shared machine does not stretch as it stretches the wall time). `render_s` is the rendering alone
(restructuring.services.messages.message_rows on the same events), `queries` the statements of one run (fixed,
whatever the number of calls).

`send_per_s` is the outbox's own rate: `--send` of the rows (committed) sent by `notifications_send` to Django's
in-memory email backend and the console SMS backend writing to /dev/null, each with its claim, its record and its
audit event: what Workout adds to a provider's time per message.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import time as clock
from datetime import timedelta
from decimal import Decimal
from typing import Any

os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workout_bench_messages")

from common import database_ready, machine


def _book(calls: int) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Client, MarginAccount, MessagePreferences
    from restructuring.models import CallBasis, Case, CaseState

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE core_auditevent, restructuring_notification, restructuring_case, accounts_client "
            "RESTART IDENTITY CASCADE"
        )
    now = timezone.now()
    with transaction.atomic():
        clients = Client.objects.bulk_create(
            Client(code=f"C{i:06}", name=f"Client {i}", email=f"c{i:06}@client.example") for i in range(calls)
        )
        MessagePreferences.objects.bulk_create(
            MessagePreferences(
                client=client,
                phone=f"+4915{i:09d}",
                locale="de" if i % 2 else "en",
                time_zone="Europe/Berlin",
                quiet_hours_start=clock(21) if i % 6 == 0 else None,
                quiet_hours_end=clock(8) if i % 6 == 0 else None,
            )
            for i, client in enumerate(clients)
            if i % 3 == 0
        )
        accounts = MarginAccount.objects.bulk_create(
            MarginAccount(code=f"A{i:06}", client=client) for i, client in enumerate(clients)
        )
        Case.objects.bulk_create(
            Case(
                account=account,
                state=CaseState.MARGIN_CALL,
                band="margin_call",
                opened_at=now,
                state_changed_at=now,
                call_amount=Decimal(250 + (i * 7919) % 100_000),
                call_basis=CallBasis.INITIAL,
                called_at=now,
                deadline=now + timedelta(hours=24),
            )
            for i, account in enumerate(accounts)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--send", type=int, default=1000)
    args = parser.parse_args()

    database_ready()
    from django.conf import settings
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from config.celery import app
    from restructuring.models import Case, Notification
    from restructuring.selectors.contacts import contacts_load
    from restructuring.services.messages import Event, message_rows
    from restructuring.services.notifications import notifications_enqueue_for_cases, notifications_send

    # Nothing is sent on commit here (the send is timed on its own): the on-commit tasks go to a broker in memory.
    app.conf.task_always_eager = False
    app.conf.broker_url = "memory://"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.WORKOUT_SMS_FILE_PATH = ""

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    if Case.objects.count() != args.calls or Notification.objects.exists():
        log(f"writing the book: {args.calls} margin calls")
        _book(args.calls)
    cases = list(Case.objects.select_related("account").order_by("pk"))
    figures: dict[str, Any] = {"bench": "messages", "calls": len(cases)}

    # the events as the enqueue builds them, for the rendering alone
    contacts = contacts_load(c.account_id for c in cases)
    events = [
        Event(
            "margin_call",
            c.pk,
            c.account_id,
            {
                "call_amount": format(c.call_amount, "f"),
                "call_basis": "initial",
                "called_at": c.called_at.isoformat(),
                "deadline": c.deadline.isoformat(),
                "case_id": c.pk,
                "account": contacts[c.account_id].account_code,
                "currency": "USD",
                "state": "margin_call",
            },
            "",
        )
        for c in cases
    ]

    times: list[float] = []
    cpu: list[float] = []
    for run in range(args.repeat):
        with transaction.atomic():
            with CaptureQueriesContext(connection) as queries:
                start, start_cpu = time.perf_counter(), time.process_time()
                ids = notifications_enqueue_for_cases(cases=cases, now=timezone.now())
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            if run == 0:
                figures["queries"] = len(queries)
                figures["rows"] = len(ids)
                by_channel: dict[str, int] = {}
                for channel in Notification.objects.filter(pk__in=ids).values_list("channel", flat=True):
                    by_channel[channel] = by_channel.get(channel, 0) + 1
                figures["rows_by_channel"] = by_channel
            transaction.set_rollback(True)
        log(f"run {run + 1}: {times[-1]:.3f} s")
    figures["enqueue_first_s"] = round(times[0], 4)
    figures["enqueue_s"] = round(statistics.median(times[1:] or times), 4)
    figures["enqueue_max_s"] = round(max(times[1:] or times), 4)
    figures["enqueue_cpu_s"] = round(statistics.median(cpu[1:] or cpu), 4)

    renders, renders_cpu = [], []
    for _ in range(3):
        start, start_cpu = time.perf_counter(), time.process_time()
        rows = message_rows(events, contacts, timezone.now())
        renders.append(time.perf_counter() - start)
        renders_cpu.append(time.process_time() - start_cpu)
    figures["render_s"] = round(statistics.median(renders), 4)
    figures["render_cpu_s"] = round(statistics.median(renders_cpu), 4)
    figures["rendered"] = len(rows)

    # the outbox's own rate, on committed rows
    if args.send:
        with transaction.atomic():
            ids = notifications_enqueue_for_cases(cases=cases[: args.send], now=timezone.now())
        with open(os.devnull, "w") as sink:
            stdout, sys.stdout = sys.stdout, sink
            try:
                start = time.perf_counter()
                result = notifications_send(notification_ids=ids)
                elapsed = time.perf_counter() - start
            finally:
                sys.stdout = stdout
        figures["sent"] = result.sent
        figures["send_s"] = round(elapsed, 3)
        figures["send_per_s"] = round(result.sent / elapsed, 1)
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE core_auditevent, restructuring_notification RESTART IDENTITY CASCADE")
    figures["load_average"] = round(os.getloadavg()[0], 1)  # other work on the machine stretches the wall times
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
