"""Benchmark of the sweep with its case transitions on PostgreSQL. Prints one JSON object on its last line.

    python bench/cases.py [--accounts 100000] [--band-change 0.05]

On the book of bench/sweep.py (generated into the bench database if it is not there), it:
1. sweeps and applies the cases once (the book's standing distress: not timed as the figure);
2. finds, in memory (LiveBook), the uniform price move that changes the health band of about
   --band-change of the accounts, and writes those prices;
3. times the sweep (two shards on two threads) and the case transitions it calls for (cases opened in
   warning, escalated to margin call, cured; each with its audit event), one after the other.

`end_to_end_s` is sweep + cases; `cases_s` the case transitions alone; `band_changes` the accounts whose band
moved; `case_moves` what the cases did; `audit_events` the events written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from typing import Any

from common import database_ready, machine, timed, truncate_workflow


def _move_for(live: Any, target_changes: int) -> float:
    """The uniform price factor (below 1) whose re-mark changes about `target_changes` bands (bisection)."""
    import numpy as np

    base_bands = live.result.band.copy()
    base_market = live.market
    priced = np.flatnonzero(np.isfinite(base_market.price))
    ids = live.loaded.instrument_ids[priced]

    def changes(factor: float) -> int:
        live.market = base_market  # each try moves from the same prices
        moved = {int(i): float(p) * factor for i, p in zip(ids, base_market.price[priced], strict=True)}
        return int((live.remark(prices=moved).result.band != base_bands).sum())

    lo, hi = 0.5, 1.0  # changes(lo) > target >= changes(hi) = 0
    for _ in range(20):
        mid = (lo + hi) / 2
        if changes(mid) > target_changes:
            lo = mid
        else:
            hi = mid
    return hi


def _prices_scale(factor: float) -> Any:
    """Write every latest price times `factor`, at one new time, and return that time."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Price

    now = timezone.now()
    latest = Price.objects.order_by("instrument_id", "-time").distinct("instrument_id")
    Price.objects.bulk_create(
        Price(
            instrument_id=p.instrument_id,
            time=now,
            price=(p.price * Decimal(repr(factor))).quantize(Decimal("1E-8")),
            implied_volatility=p.implied_volatility,
        )
        for p in latest
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM accounts_riskstate")
    return now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--band-change", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    database_ready()
    from django.conf import settings

    from accounts.models import MarginAccount, Price, RiskSnapshot
    from accounts.services.live_book import LiveBook
    from accounts.services.sweep import sweep_run
    from core.models import AuditEvent
    from demo.book import demo_book_generate, demo_book_write
    from restructuring.services.case_sweep import cases_apply_risk

    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    figures: dict[str, Any] = {"bench": "cases"}
    if MarginAccount.objects.count() != args.accounts:
        demo_book_write(book=demo_book_generate(accounts=args.accounts, seed=args.seed), replace=True)
    truncate_workflow()
    settings.WORKOUT_AFTER_SWEEP_TASKS = []  # the cases are applied, and timed, explicitly below
    from config.celery import app

    # The feasibility the new margin calls queue is the workers' work (bench/feasibility.py), not the sweep's:
    # here it is published (to the in-memory broker when none is configured), not run in process.
    app.conf.task_always_eager = False

    standing_s, _ = timed(lambda: cases_apply_risk(sweep_id=sweep_run(shards=2, workers=2).pk))
    figures["standing_cases"] = AuditEvent.objects.filter(action="case.open").count()
    figures["standing_s"] = round(standing_s, 3)
    log(f"standing distress: {figures['standing_cases']} cases in {standing_s:.2f} s")

    live = LiveBook.load(shards=2)
    factor = _move_for(live, int(args.band_change * args.accounts))
    figures["price_factor"] = round(factor, 6)
    moved_at = _prices_scale(factor)
    events_before = AuditEvent.objects.count()

    sweep_s, sweep = timed(lambda: sweep_run(shards=2, workers=2))
    cases_s, moves = timed(lambda: cases_apply_risk(sweep_id=sweep.pk))
    figures["accounts"] = sweep.accounts
    figures["band_changes"] = RiskSnapshot.objects.filter(sweep=sweep, reason="band_change").count()
    figures["case_moves"] = moves.as_dict()
    figures["audit_events"] = AuditEvent.objects.count() - events_before
    figures["sweep_s"] = round(sweep_s, 4)
    figures["cases_s"] = round(cases_s, 4)
    figures["end_to_end_s"] = round(sweep_s + cases_s, 4)
    # The move is taken back, so the next run starts from the same book and prices (the sweep bench's and
    # this one's share the database; without it every run left the book 2% lower and more distressed).
    Price.objects.filter(time=moved_at).delete()
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
