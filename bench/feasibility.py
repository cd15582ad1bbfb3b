"""Benchmark of feasibility: one case in the kernel, and 1,000 open cases through Celery. Prints one JSON object
on its last line.

    python bench/feasibility.py [--cases 1000] [--workers 2] [--accounts 30000]

1. The issue's prototype, in the kernel: one case of 10 assets, 10,000 paths, 30 daily steps (every position
   needs the whole horizon: the co-sellers fill it). `recovery_case_ms` is the steady state, the market's draws
   already made (they are drawn once per market update and shared by every case); `recovery_case_cold_ms`
   includes drawing them. `case_ms` adds what a report computes besides: loss capacity and the standard
   candidates' valuations (monthly paths over their terms).
2. Through Celery: a demo book (generated into the bench database if it is not there) is swept; `--cases` of
   its accounts below maintenance get a case in margin call, and their feasibility is queued in batches
   (WORKOUT_FEASIBILITY_BATCH) to a real worker with `--workers` processes on Redis. `celery_s` is from the
   first enqueue to the last report stored; `per_case_ms` the mean compute time a report records (its
   `duration_ms`); `recovery_relative_se` the median standard error of the expected recovery over its value.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from statistics import mean, median
from typing import Any

from common import ROOT, database_ready, machine, timed, truncate_workflow

os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/workout_bench_feasibility"
)
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/3")
QUEUE = "bench-feasibility"


def _prototype_case() -> Any:
    from restructuring import feasibility as f

    k = 10
    drivers = tuple(f.Driver(1000 + i, f"A{i}", 50.0 + 10 * i, 0.02 + 0.004 * i, 365.0) for i in range(k))
    exposures = tuple(
        # 1,000 units against 1,000 a day (10% participation: 100 a day) and 2,000 co-sold: 30 days each
        f.Exposure(i, f"A{i}", i, f.Kind.SPOT, 1000.0, 1000.0, drivers[i].daily_volatility, 0.2, co_sold=2000.0)
        for i in range(k)
    )
    correlation = tuple(tuple(1.0 if i == j else 0.4 for j in range(k)) for i in range(k))
    return f.AccountInputs(drivers, exposures, correlation, cash=0.0, debt=700_000.0, external_capacity=50_000.0)


def _candidates(inputs: Any) -> list[Any]:
    from restructuring import feasibility as f

    out = []
    for name, months in (("extend_12m", 12), ("extend_24m", 24), ("interest_only_6m", 6)):
        level = inputs.debt / months * 1.05
        out.append(f.Candidate(name, (level,) * months, tuple(inputs.debt * (1 - m / months) for m in range(months))))
    out.append(f.Candidate("top_up", (inputs.debt / 12 * 1.05,) * 12, (inputs.debt,) * 12, collateral_added=40_000))
    out.append(f.Candidate("reduce", (inputs.debt / 24,) * 12, (inputs.debt / 2,) * 12, reduce=((0, 0.5), (1, 0.5))))
    return out


def kernel_figures(repeat: int = 20) -> dict[str, Any]:
    from restructuring import feasibility as f

    inputs = _prototype_case()
    params = f.Params()
    cold_s, first = timed(lambda: f.recovery(inputs, f.MarketPaths(11, params)))
    market = f.MarketPaths(11, params)
    f.recovery(inputs, market)
    assert first.days == params.horizon_days, first.days
    recovery_s = median(timed(lambda: f.recovery(inputs, market))[0] for _ in range(repeat))
    candidates = _candidates(inputs)

    def case() -> None:
        recovery = f.recovery(inputs, market)
        f.loss_capacity(inputs, params)
        f.valuations(inputs, candidates, market, 5, recovery)

    case()
    case_s = median(timed(case)[0] for _ in range(repeat))
    return {
        "recovery_case_ms": round(recovery_s * 1e3, 2),
        "recovery_case_cold_ms": round(cold_s * 1e3, 2),
        "case_ms": round(case_s * 1e3, 2),
        "paths": params.paths,
        "days": first.days,
        "assets": len(inputs.drivers),
        "recovery_se_relative": round(first.expected.standard_error / first.expected.value, 6),
    }


def _worker(workers: int) -> subprocess.Popen[bytes]:
    from config.queues import queue_names  # every queue of the prefix (config/queues.py)

    env = {
        **os.environ,
        "CELERY_BROKER_URL": BROKER,
        "CELERY_QUEUE": QUEUE,
        "OPENBLAS_NUM_THREADS": "1",
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-c",
            str(workers),
            "-Q",
            ",".join(queue_names(QUEUE)),
            "-l",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
    )


def celery_figures(cases: int, workers: int, accounts: int) -> dict[str, Any]:
    from django.utils import timezone

    from accounts.models import HealthBand, MarginAccount, RiskState
    from accounts.services.sweep import sweep_run
    from config.celery import app
    from demo.book import demo_book_generate, demo_book_write
    from restructuring.models import Case, CaseState, FeasibilityReport
    from restructuring.tasks import feasibility_enqueue

    if MarginAccount.objects.count() != accounts:
        demo_book_write(book=demo_book_generate(accounts=accounts, seed=7), replace=True)
    truncate_workflow()
    from django.conf import settings

    settings.WORKOUT_AFTER_SWEEP_TASKS = []
    sweep_run(shards=2, workers=2)
    distressed = list(
        RiskState.objects.filter(band__in=[HealthBand.MARGIN_CALL, HealthBand.CRITICAL])
        .order_by("account_id")
        .values_list("account_id", flat=True)[:cases]
    )
    if len(distressed) < cases:
        raise SystemExit(f"only {len(distressed)} accounts below maintenance: use a bigger --accounts")
    now = timezone.now()
    made = Case.objects.bulk_create(
        Case(account_id=a, opened_at=now, called_at=now, deadline=now, call_amount=0) for a in distressed
    )
    Case.objects.filter(pk__in=[c.pk for c in made]).update(state=CaseState.MARGIN_CALL)
    case_ids = [c.pk for c in made]

    app.conf.broker_url = BROKER
    app.conf.task_always_eager = False
    app.conf.task_default_queue = QUEUE
    worker = _worker(workers)
    try:
        time.sleep(6)  # the worker's processes start and import Django
        started = time.perf_counter()
        feasibility_enqueue(case_ids)
        deadline = started + 600
        while (done := FeasibilityReport.objects.count()) < cases and time.perf_counter() < deadline:
            time.sleep(0.1)
        celery_s = time.perf_counter() - started
    finally:
        worker.terminate()
        worker.wait(30)
    reports = list(FeasibilityReport.objects.values_list("duration_ms", "results"))
    relative = [
        float(r["recovery"]["expected"]["standard_error"]) / float(r["recovery"]["expected"]["value"])
        for _, r in reports
        if float(r["recovery"]["expected"]["value"]) > 0
    ]
    return {
        "cases": cases,
        "reports": done,
        "workers": workers,
        "batch": settings.WORKOUT_FEASIBILITY_BATCH,
        "celery_s": round(celery_s, 3),
        "per_case_ms": round(mean(d for d, _ in reports), 2),
        "per_case_p95_ms": round(sorted(d for d, _ in reports)[int(0.95 * len(reports))], 2),
        "recovery_relative_se": round(median(relative), 6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=30_000)
    args = parser.parse_args()

    database_ready()
    figures: dict[str, Any] = {"bench": "feasibility"}
    figures.update(kernel_figures())
    figures.update(celery_figures(args.cases, args.workers, args.accounts))
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
