"""Benchmark of the officer's desk: the queue and the case page, served whole (middleware, session, second factor,
template) by Django's test client, on the demo book and with 10,000 open cases. Prints one JSON object on its last
line.

    python bench/desk.py [--demo-accounts 2000] [--open-cases 10000] [--repeat 9]

1. The demo book (`make demo`'s size, demo/book seed 7), swept: its standing distress opens the cases.
2. The same book grown to --open-cases open cases (one per account, in bulk, each with a feasibility report, half
   of them assigned, margin calls with deadlines), so the queue's urgency order and SLA clocks run over all of
   them.

For each: the median time of GET /queue/ (the default urgency order), sorted by time in state, filtered (state and
search), its page 2, and GET /cases/<id>/ of the most urgent case (`<page>_ms`, and `<page>_cpu_ms` the CPU time
of this process for it: the Django side, which the other work of a shared machine inflates far less than the wall
time); and the number of queries each makes, which must not depend on the book (`queries_same` is true when both
books make the same). Target: every page under 200 ms. Its own database (workout_bench_desk;
BENCH_DESK_DATABASE_URL overrides): it replaces the book there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

os.environ["BENCH_DATABASE_URL"] = os.environ.get(
    "BENCH_DESK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workout_bench_desk"
)

from common import database_ready, machine, truncate_workflow

PASSWORD = "bench desk password"  # noqa: S105 (a bench database's throwaway user)
TARGET_MS = 200.0


def _signed_in() -> Any:
    """A test client signed in as a senior credit officer through the real login form and authenticator."""
    from django.contrib.auth.models import Group, User
    from django.test import Client
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = User.objects.filter(username="bench-senior").first()
    if user is None:
        user = User.objects.create_user("bench-senior", password=PASSWORD)
        user.groups.add(Group.objects.get(name="senior_credit_officer"))
        TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)  # a rerun within the code's 30 s: not a replay here
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"
    client = Client()
    response = client.post("/login/", {"username": user.username, "password": PASSWORD, "otp_token": code})
    if response.status_code != 302:
        raise SystemExit(f"bench: sign-in failed ({response.status_code})")
    return client


def _measure(client: Any, path: str, repeat: int) -> tuple[float, float, int]:
    """The median wall time of GET `path` in ms, the median CPU time this process spent on it (the Django side:
    what other work on a shared machine cannot inflate much, as it inflates the wall time), and the number of
    queries one GET makes."""
    from django.db import connection

    client.get(path)  # warm: templates compiled, plans cached
    queries: list[str] = []

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"bench: GET {path} answered {response.status_code}")
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return round(statistics.median(times), 1), round(statistics.median(cpu), 1), len(queries)


def _pages(client: Any, repeat: int) -> dict[str, Any]:
    from restructuring.models import Case
    from restructuring.selectors.queue import QueueFilters, cases_for_queue

    first = cases_for_queue(QueueFilters()).first()
    if first is None:
        raise SystemExit("bench: no open case")
    code = first.account.code[:4]
    paths = {
        "queue": "/queue/",
        "queue_sorted_in_state": "/queue/?sort=-in_state",
        "queue_filtered": f"/queue/?state=margin_call&q={code}",
        "queue_page_2": "/queue/?page=2",
        "case": f"/cases/{first.pk}/",
    }
    figures: dict[str, Any] = {"open_cases": Case.objects.filter(closed_at__isnull=True).count()}
    queries = {}
    for name, path in paths.items():
        figures[f"{name}_ms"], figures[f"{name}_cpu_ms"], queries[name] = _measure(client, path, repeat)
    figures["queries"] = queries
    return figures


def _grow(open_cases: int) -> None:
    """Open cases on accounts without one until `open_cases` are open: margin calls with deadlines and a
    feasibility report each, half of them assigned to the bench's officer, their clocks spread over two days."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from accounts.models import MarginAccount
    from restructuring.models import Case, CaseState, FeasibilityReport
    from restructuring.services.feasibility import cases_report_figures_update

    now = timezone.now()
    have = Case.objects.filter(closed_at__isnull=True).count()
    busy = Case.objects.filter(closed_at__isnull=True).values("account_id")
    free = MarginAccount.objects.exclude(pk__in=busy).order_by("pk").values_list("pk", flat=True)
    officer = User.objects.get(username="bench-senior")
    new = [
        Case(
            account_id=account_id,
            state=CaseState.MARGIN_CALL,
            opened_at=now - timedelta(minutes=k % 2880),
            state_changed_at=now - timedelta(minutes=k % 2880),
            called_at=now - timedelta(minutes=k % 2880),
            call_amount=Decimal(1000 + (k * 37) % 90000),
            call_basis="initial",
            deadline=now + timedelta(minutes=(k * 13) % 4320 - 600),
            assignee=officer if k % 2 else None,
            assigned_at=now if k % 2 else None,
            band="margin_call",
        )
        for k, account_id in enumerate(free[: max(open_cases - have, 0)])
    ]
    Case.objects.bulk_create(new, batch_size=2000)
    FeasibilityReport.objects.bulk_create(
        (
            FeasibilityReport(
                case=case,
                key=f"bench-{case.pk}",
                trigger="margin_call",
                created_at=now,
                as_of=now,
                model_version="bench",
                market_seed=7,
                case_seed=case.pk,
                debt=case.call_amount * 3,
                recovery_expected=case.call_amount * 2,
                recovery_p5=case.call_amount,
                expected_loss=case.call_amount,
                loss_given_default=Decimal("0.33"),
                liquidation_value=case.call_amount * 2,
                recommended="extend_term" if case.pk % 3 else "",
            )
            for case in new
        ),
        batch_size=2000,
    )
    # what the feasibility service does when it stores reports: the latest report's figures kept on the case
    cases_report_figures_update(case_ids=[case.pk for case in new])
    _analyze()


def _analyze() -> None:
    """Planner statistics, as autovacuum gathers them within a minute or so of this many new rows: without them
    PostgreSQL plans the queue on the estimates of the empty tables (a nested loop over "one" open case)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-accounts", type=int, default=2000)
    parser.add_argument("--open-cases", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    database_ready()
    from django.conf import settings
    from django.test.utils import override_settings

    from accounts.models import MarginAccount
    from accounts.services.sweep import sweep_run
    from demo.book import demo_book_generate, demo_book_write
    from restructuring.services.case_sweep import cases_apply_risk

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    settings.WORKOUT_AFTER_SWEEP_TASKS = []  # feasibility is the workers' (bench/feasibility.py), not timed here
    from config.celery import app

    app.conf.task_always_eager = False
    accounts = max(args.demo_accounts, args.open_cases + 2000)  # room for the grown book's cases
    figures: dict[str, Any] = {"bench": "desk", "target_ms": TARGET_MS}
    # Plain HTTP from the test client, and static files without collectstatic's manifest (the pages' links only).
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(ALLOWED_HOSTS=["*"], SECURE_SSL_REDIRECT=False, DEBUG=False, STORAGES=storages):
        truncate_workflow()
        if MarginAccount.objects.count() != args.demo_accounts:
            demo_book_write(book=demo_book_generate(accounts=args.demo_accounts, seed=args.seed), replace=True)
        cases_apply_risk(sweep_id=sweep_run(shards=2, workers=2).pk)
        _analyze()
        client = _signed_in()
        figures["demo"] = _pages(client, args.repeat)
        log(f"demo book: {figures['demo']}")

        truncate_workflow()
        demo_book_write(book=demo_book_generate(accounts=accounts, seed=args.seed), replace=True)
        cases_apply_risk(sweep_id=sweep_run(shards=2, workers=2).pk)
        _grow(args.open_cases)
        figures["open_10000"] = _pages(client, args.repeat)
        log(f"{args.open_cases} open cases: {figures['open_10000']}")
    slowest = max(
        v for book in ("demo", "open_10000") for k, v in figures[book].items() if k.endswith("_ms") and "_cpu" not in k
    )
    figures["slowest_ms"] = slowest
    figures["under_target"] = slowest < TARGET_MS
    figures["queries_same"] = figures["demo"]["queries"] == figures["open_10000"]["queries"]
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]  # a shared machine's other work inflates the times
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
