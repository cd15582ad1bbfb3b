"""Benchmark of the full-book margin sweep on PostgreSQL. Prints one JSON object on its last line.

    python bench/sweep.py [--accounts 100000] [--orm-accounts 2000] [--repeat 5] [--reuse]

It writes a synthetic book (demo.book) into its own database (BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/workout_bench, created if missing), then measures:

- kernel_s: the risk kernel over the prepared book (median of --repeat), two account shards on two threads;
  prepare_s: building the prepared book from the loaded arrays (once per load);
- end_to_end_s: a steady-state sweep (after a price move) from PostgreSQL and back: load, compute, write
  (median of 3), two account shards on two threads (one database connection each); end_to_end_one_worker_s:
  the same in one shard; first_sweep_s: the first sweep, which also writes a history row for every account;
- incremental_s: LiveBook.remark, a price tick re-marking the whole book held in memory (median);
- orm_loop_ratio: per-account time of the ORM loop a typical Django app would write (per account: fetch
  positions, latest prices, loan; compute in Decimal; update_or_create the state), measured on
  --orm-accounts accounts, divided by the per-account time of the end-to-end sweep;
- peak_rss_mb: the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from decimal import Decimal
from typing import Any

from common import database_ready, machine, median_time, nudge_prices, timed, truncate_workflow


def orm_loop(account_ids: list[int]) -> float:
    """The per-account loop a typical Django app would write; returns seconds."""
    from django.db import transaction
    from django.utils import timezone

    from accounts.models import MarginAccount, Price, RiskState, Sweep

    sweep = Sweep.objects.latest("id")
    now = timezone.now()

    def black_scholes(spot: float, strike: float, years: float, rate: float, vol: float, call: bool) -> float:
        if years <= 0:
            return max(spot - strike, 0.0) if call else max(strike - spot, 0.0)
        d1 = (math.log(spot / strike) + (rate + vol * vol / 2) * years) / (vol * math.sqrt(years))
        d2 = d1 - vol * math.sqrt(years)
        cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))  # noqa: E731
        c = spot * cdf(d1) - strike * math.exp(-rate * years) * cdf(d2)
        return c if call else c - spot + strike * math.exp(-rate * years)

    start = time.perf_counter()
    with transaction.atomic():
        for account_id in account_ids:
            account = MarginAccount.objects.get(pk=account_id)
            equity = account.cash
            maintenance = Decimal(0)
            initial = Decimal(0)
            for position in account.positions.select_related("instrument", "instrument__underlying"):
                instrument = position.instrument
                priced = instrument.underlying if instrument.kind == "option" else instrument
                last = Price.objects.filter(instrument=priced, time__lte=now).latest("time")
                size = position.quantity * instrument.contract_size
                if instrument.kind == "option":
                    assert instrument.expiry is not None
                    assert instrument.strike is not None
                    value = Decimal(
                        black_scholes(
                            float(last.price),
                            float(instrument.strike),
                            (instrument.expiry - now).total_seconds() / 31536000,
                            0.04,
                            float(last.implied_volatility or Decimal("0.6")),
                            instrument.option_type == "call",
                        )
                    ).quantize(Decimal("1E-8"))
                    equity += size * value
                    notional = abs(size) * last.price
                elif instrument.kind == "spot":
                    equity += size * last.price
                    notional = abs(size) * last.price
                else:
                    equity += size * (last.price - position.entry_price)
                    notional = abs(size) * last.price
                maintenance += notional * instrument.maintenance_rate
                initial += notional * instrument.initial_rate
            loan = account.loans.filter(status="active").first()
            if loan is not None:
                equity -= loan.principal + loan.accrued_interest
            ratio = (equity / maintenance).quantize(Decimal("0.000001")) if maintenance else None
            band = "critical" if equity <= 0 else "healthy"
            if ratio is not None and ratio < 1:
                band = "margin_call"
            elif ratio is not None and ratio < Decimal("1.25"):
                band = "warning"
            zero = Decimal(0)
            RiskState.objects.update_or_create(
                account=account,
                defaults={
                    "sweep": sweep,
                    "computed_at": now,
                    "equity": equity.quantize(Decimal("0.01")),
                    "market_value": zero,
                    "collateral_value": zero,
                    "initial_requirement": initial.quantize(Decimal("0.01")),
                    "maintenance_requirement": maintenance.quantize(Decimal("0.01")),
                    "margin_ratio": ratio,
                    "shortfall_maintenance": max(maintenance - equity, zero).quantize(Decimal("0.01")),
                    "shortfall_initial": max(initial - equity, zero).quantize(Decimal("0.01")),
                    "worst_scenario_loss": zero,
                    "band": band,
                },
            )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--orm-accounts", type=int, default=2_000, help="0 skips the ORM loop comparison")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reuse", action="store_true", help="keep the book already in the bench database")
    args = parser.parse_args()

    database_ready()

    from django.conf import settings

    from accounts import risk
    from accounts.models import MarginAccount, Position
    from accounts.selectors import book_arrays_load
    from accounts.services.live_book import LiveBook
    from accounts.services.sweep import risk_params, sweep_run
    from accounts.services.volatility import instrument_volatility_refresh
    from demo.book import demo_book_generate, demo_book_write

    settings.WORKOUT_AFTER_SWEEP_TASKS = []  # the sweep alone; bench/cases.py times it with the case moves
    figures: dict[str, Any] = {"bench": "sweep"}
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    if not (args.reuse and MarginAccount.objects.count() == args.accounts):
        truncate_workflow()  # bench/cases.py leaves its cases, which hold on to the book
        generate_s, book = timed(lambda: demo_book_generate(accounts=args.accounts, seed=args.seed))
        write_s, _counts = timed(lambda: demo_book_write(book=book, replace=True))
        figures["book_generate_s"], figures["book_write_s"] = round(generate_s, 3), round(write_s, 3)
        log(f"book: generated in {generate_s:.1f} s, written in {write_s:.1f} s")
        instrument_volatility_refresh()
    params = risk_params()

    first_s, first = timed(lambda: sweep_run())
    figures["first_sweep_s"] = round(first_s, 3)
    log(f"first sweep {first_s:.2f} s {first.band_counts}")

    def steady_sweeps(shards: int, workers: int) -> tuple[float, Any]:
        runs = []
        for step in range(3):
            nudge_prices(step)
            elapsed, sweep = timed(lambda: sweep_run(shards=shards, workers=workers))
            runs.append((elapsed, sweep))
            log(f"steady sweep ({shards} shards, {workers} workers) {elapsed:.3f} s {sweep.timings}")
        return sorted(runs, key=lambda pair: pair[0])[1]  # the median of three

    one_worker_s, _sweep = steady_sweeps(1, 1)
    end_to_end_s, last_sweep = steady_sweeps(2, 2)
    figures["end_to_end_s"] = round(end_to_end_s, 4)
    figures["end_to_end_one_worker_s"] = round(one_worker_s, 4)
    figures["end_to_end_parts_s"] = last_sweep.timings

    loaded = book_arrays_load(as_of=last_sweep.as_of)
    figures["accounts"] = len(loaded.account_ids)
    figures["positions"] = len(loaded.book.positions)
    kinds = loaded.book.instruments.kind[loaded.book.positions.instrument]
    figures["options_share"] = round(float((kinds == risk.KIND_OPTION).mean()), 3)
    figures["portfolio_accounts_share"] = round(float(loaded.book.accounts.portfolio.mean()), 3)
    figures["scenarios"] = params.grid.scenario_count

    prepare_s, sharded = timed(lambda: risk.ShardedBook.prepare(loaded.book, 2))
    figures["prepare_s"] = round(prepare_s, 4)
    figures["kernel_s"] = round(median_time(lambda: sharded.evaluate(loaded.market, params), args.repeat), 4)
    single = risk.ShardedBook.prepare(loaded.book, 1)
    figures["kernel_one_thread_s"] = round(median_time(lambda: single.evaluate(loaded.market, params), args.repeat), 4)

    live = LiveBook(loaded, params=params, shards=2)
    btc = next(
        int(i)
        for i, symbol in zip(loaded.instrument_ids, _symbols(loaded.instrument_ids), strict=True)
        if symbol == "BTC"
    )
    base = float(loaded.market.price[list(loaded.instrument_ids).index(btc)])
    ticks = iter([base * (1 + 0.001 * ((k % 7) - 3)) for k in range(1000)])
    figures["incremental_s"] = round(
        median_time(lambda: live.remark(prices={btc: next(ticks)}), max(args.repeat, 10)), 4
    )

    if args.orm_accounts:
        sample = list(MarginAccount.objects.order_by("id").values_list("id", flat=True)[: args.orm_accounts])
        orm_s = orm_loop(sample)
        per_account_orm = orm_s / len(sample)
        per_account_sweep = end_to_end_s / figures["accounts"]
        figures["orm_loop_accounts"] = len(sample)
        figures["orm_loop_s"] = round(orm_s, 3)
        figures["orm_loop_ratio"] = round(per_account_orm / per_account_sweep, 1)
        figures["orm_positions_per_account"] = round(
            Position.objects.filter(account_id__in=sample).count() / len(sample), 2
        )
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))


def _symbols(ids: Any) -> list[str]:
    from accounts.models import Instrument

    by_id = dict(Instrument.objects.values_list("id", "symbol"))
    return [by_id[int(i)] for i in ids]


if __name__ == "__main__":
    main()
