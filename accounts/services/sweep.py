"""The sweep: load the book in bulk, run the risk kernel, write every account's risk state in bulk.

A sweep is split into shards (account-id ranges); a shard is one transaction and runs once: a redelivered
task finds it done. The whole book in one process is the one-shard case; `sweep_start` with more shards
hands each to a Celery task, and the last shard to finish closes the sweep.

Stored figures are rounded to the account currency's quantum. The latest state per account is updated in
place (RiskState); a history row (RiskSnapshot, with the account's book as the sweep saw it) is written
only when the band changes, on an account's first sweep, and once per history interval, so history grows
with events rather than with sweeps.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from accounts import risk
from accounts.models import (
    MarginLoan,
    Position,
    RiskSnapshot,
    RiskState,
    SnapshotReason,
    Sweep,
    SweepShard,
    SweepStatus,
)
from accounts.selectors import LoadedBook, account_id_bounds, book_arrays_load
from core.bulk import copy_into_temp_table, fetch_columns, is_postgresql, nan_sql
from core.dispatch import dispatch_on_commit

logger = logging.getLogger(__name__)

BAND_NAMES = list(risk.BANDS)
HISTORY_NONE, HISTORY_FIRST, HISTORY_BAND_CHANGE, HISTORY_INTERVAL = 0, 1, 2, 3
_HISTORY_REASONS = {
    HISTORY_FIRST: SnapshotReason.FIRST,
    HISTORY_BAND_CHANGE: SnapshotReason.BAND_CHANGE,
    HISTORY_INTERVAL: SnapshotReason.INTERVAL,
}
# Money figures of RiskResult, stored in the account currency's quantum; ratios in millionths.
_MONEY_FIGURES = [
    "equity",
    "market_value",
    "collateral_value",
    "initial_requirement",
    "maintenance_requirement",
    "shortfall_maintenance",
    "shortfall_initial",
    "worst_scenario_loss",
    "isolated_equity",
]
_RATIO_FIGURES = ["margin_ratio", "distance_to_liquidation"]
_RATIO_DECIMALS = 6
# Ratios beyond these are stored at the limit (a margin ratio of 10^12 says the same as 10^15).
_RATIO_LIMITS = {"margin_ratio": 1e12, "distance_to_liquidation": 1e5}
NULL_UNITS = int(np.iinfo(np.int64).min)
_MAX_UNITS = 2.0**62


def risk_params() -> risk.RiskParams:
    ranges = settings.WORKOUT_SCENARIO_RANGES
    return risk.RiskParams(
        warning_level=settings.WORKOUT_WARNING_LEVEL,
        portfolio_initial_factor=settings.WORKOUT_PORTFOLIO_INITIAL_FACTOR,
        grid=risk.ScenarioGrid(
            ranges=tuple(tuple(ranges[name]) for name in risk.SCENARIO_CLASSES),  # type: ignore[misc]
            steps_per_side=settings.WORKOUT_SCENARIO_STEPS_PER_SIDE,
            vol_shift_up=settings.WORKOUT_SCENARIO_VOL_SHIFT_UP,
            vol_shift_down=settings.WORKOUT_SCENARIO_VOL_SHIFT_DOWN,
        ),
        dynamic_margin=settings.WORKOUT_DYNAMIC_MARGIN,
        stress_weight=settings.WORKOUT_STRESS_WEIGHT,
    )


@dataclass(frozen=True)
class BandChanges:
    """Accounts of one shard whose band differs from the previous sweep's (previous -1: first sweep)."""

    account_ids: np.ndarray
    previous: np.ndarray
    current: np.ndarray


# ------------------------------------------------------------------------------------------ entry points


def sweep_run(*, as_of: datetime | None = None, shards: int = 1, workers: int = 1) -> Sweep:
    """Sweep the whole book in this process and return the finished Sweep.

    With `workers` > 1 the shards run in that many threads, each with its own database connection and
    transaction: the database work of two shards proceeds on two cores at once (numpy and scipy release the
    GIL too). Shards are independent by construction, so this changes nothing but the wall time.
    """
    if workers > 1 and connection.in_atomic_block:
        # the other threads could not see this transaction's sweep, and a shard could not be its own transaction
        raise RuntimeError("a sweep on several threads runs outside any transaction.atomic() block")
    sweep = sweep_start(as_of=as_of, shards=shards, dispatch=False)
    shard_ids = list(sweep.shards.order_by("account_id_from").values_list("id", flat=True))
    if workers > 1:
        # This thread takes the first shard on its own (already open) connection; each other thread opens one,
        # a backend start and cold catalog caches that cost 20 ms or more.
        with ThreadPoolExecutor(max_workers=workers - 1, thread_name_prefix="sweep") as pool:
            others = pool.map(_shard_run_in_thread, shard_ids[1:])
            _shard_run_here(shard_ids[0])
            list(others)  # waits for every shard; re-raises a shard's error
    else:
        for shard_id in shard_ids:
            _shard_run_here(shard_id)
    sweep.refresh_from_db()
    return sweep


def _shard_run_here(shard_id: int) -> None:
    try:
        sweep_shard_run(shard_id=shard_id)
    except OperationalError as exc:  # no task to retry it here: the sweep has failed
        sweep_shard_fail(shard_id=shard_id, error=f"{type(exc).__name__}: {exc}")
        raise


def _shard_run_in_thread(shard_id: int) -> None:
    try:
        _shard_run_here(shard_id)
    finally:
        connection.close()  # this thread's own connection


def sweep_start(*, as_of: datetime | None = None, shards: int = 1, dispatch: bool = True) -> Sweep:
    """Create the sweep and its shards; with `dispatch`, each shard is queued as a Celery task on commit."""
    from accounts.tasks import sweep_shard_run_task

    now = timezone.now()
    params = risk_params()
    with transaction.atomic():
        sweep = Sweep.objects.create(
            started_at=now,
            as_of=as_of or now,
            model_version=risk.MODEL_VERSION,
            parameters={
                **asdict(params),
                "history_interval_hours": settings.WORKOUT_SNAPSHOT_HISTORY_INTERVAL_HOURS,
                "risk_free_rate": settings.WORKOUT_RISK_FREE_RATE,
                "shards": shards,
            },
        )
        SweepShard.objects.bulk_create(
            SweepShard(sweep=sweep, account_id_from=lo, account_id_to=hi) for lo, hi in account_id_bounds(shards=shards)
        )
        if dispatch:
            dispatch_on_commit(
                sweep_shard_run_task,
                *({"shard_id": shard_id} for shard_id in sweep.shards.values_list("id", flat=True)),
                redrive="the sweeps re-drive beat (sweeps_redrive_task, shards still running)",
            )
    return sweep


def sweeps_redrive(*, older_than: timedelta | None = None, now: datetime | None = None) -> list[int]:
    """Queue again the shards of sweeps still running after `older_than`: a shard task lost on the way (the
    broker down at commit, a worker gone) would otherwise leave its sweep running for ever. Shards run once,
    so a shard that was only slow is not computed twice. Returns the shard ids queued."""
    from accounts.tasks import sweep_shard_run_task

    now = now or timezone.now()
    older_than = older_than or timedelta(seconds=settings.WORKOUT_SWEEP_REDRIVE_AFTER_SECONDS)
    stalled = list(
        SweepShard.objects.filter(
            sweep__status=SweepStatus.RUNNING, sweep__started_at__lte=now - older_than, status__in=[SweepStatus.RUNNING]
        ).values_list("id", flat=True)
    )
    for shard_id in stalled:
        sweep_shard_run_task.delay(shard_id=shard_id)
    return stalled


def sweep_shard_run(*, shard_id: int) -> SweepShard:
    """Compute and store one shard, once. Returns the shard; closes the sweep if it was the last one.

    A database OperationalError (a restart, a serialisation conflict) propagates with the shard still
    running, for the caller to retry; any other error fails the shard and so the sweep.
    """
    started = time.perf_counter()
    try:
        shard = _shard_compute_and_store(shard_id=shard_id, started=started)
    except OperationalError:
        raise
    except Exception as exc:
        sweep_shard_fail(shard_id=shard_id, error=f"{type(exc).__name__}: {exc}")
        raise
    _sweep_finish_if_complete(sweep_id=shard.sweep_id)
    return shard


def sweep_shard_fail(*, shard_id: int, error: str) -> None:
    """Mark a shard failed (unless it is done) and close its sweep if nothing else is running."""
    with transaction.atomic():
        SweepShard.objects.filter(pk=shard_id).exclude(status=SweepStatus.DONE).update(
            status=SweepStatus.FAILED, error=error[:2000]
        )
    sweep_id = SweepShard.objects.filter(pk=shard_id).values_list("sweep_id", flat=True).first()
    if sweep_id is not None:
        _sweep_finish_if_complete(sweep_id=sweep_id)


# ------------------------------------------------------------------------------------------ the work


def _shard_compute_and_store(*, shard_id: int, started: float) -> SweepShard:
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if is_postgresql() and outermost:
            # One snapshot for reading the book and writing its history: the inputs stored with a history row
            # are exactly the rows the figures were computed from.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if is_postgresql():
            # The book a sweep reads is in memory (it reads all of it every minute), where an index probe costs
            # about what a sequential read does; at the default 4.0 the planner hashed the whole account and
            # loan tables to join the few accounts due a history row (196 -> 121 ms for 2,500 of them).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL random_page_cost = 1.1")
        # Lock the shard row only: a join would lock the shared Sweep row too and serialise the shards.
        shard = SweepShard.objects.select_for_update(of=("self",)).select_related("sweep").get(pk=shard_id)
        if shard.status == SweepStatus.DONE:
            return shard
        sweep = shard.sweep
        timings: dict[str, float] = {}
        loaded = book_arrays_load(as_of=sweep.as_of, account_id_range=(shard.account_id_from, shard.account_id_to))
        timings["load_s"] = time.perf_counter() - started
        mark = time.perf_counter()
        result = risk.sweep(loaded.book, loaded.market, risk_params())
        timings["compute_s"] = time.perf_counter() - mark
        mark = time.perf_counter()
        risk_results_store(sweep=sweep, loaded=loaded, result=result)
        timings["write_s"] = time.perf_counter() - mark
        shard.status = SweepStatus.DONE
        shard.accounts = len(loaded.account_ids)
        shard.positions = len(loaded.book.positions)
        shard.band_counts = result.band_counts()
        shard.timings = {name: round(seconds, 4) for name, seconds in timings.items()}
        shard.prices = loaded.prices_used
        shard.save(update_fields=["status", "accounts", "positions", "band_counts", "timings", "prices"])
    return shard


def _sweep_finish_if_complete(*, sweep_id: int) -> None:
    """Close the sweep once no shard is running: DONE when all are, else FAILED. A failed shard that a retry
    later completes turns a FAILED sweep DONE."""
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().get(pk=sweep_id)
        if sweep.status == SweepStatus.DONE:
            return
        shards = list(sweep.shards.all())
        if any(s.status == SweepStatus.FAILED for s in shards):
            sweep.status = SweepStatus.FAILED
        elif all(s.status == SweepStatus.DONE for s in shards):
            sweep.status = SweepStatus.DONE
        else:
            return
        sweep.finished_at = timezone.now()
        sweep.accounts = sum(s.accounts for s in shards)
        sweep.positions = sum(s.positions for s in shards)
        sweep.band_counts = {band: sum(s.band_counts.get(band, 0) for s in shards) for band in BAND_NAMES}
        sweep.timings = {
            key: round(sum(s.timings.get(key, 0.0) for s in shards), 4) for key in ("load_s", "compute_s", "write_s")
        }
        sweep.prices = {instrument: used for s in shards for instrument, used in s.prices.items()}
        sweep.save(update_fields=["status", "finished_at", "accounts", "positions", "band_counts", "timings", "prices"])
        if sweep.status == SweepStatus.DONE:
            # Imported by dotted path from the settings: the book does not depend on what is built on it. These
            # tasks act on the latest risk state, not on this sweep's, so the next beat sweep's re-drives them.
            for path in settings.WORKOUT_AFTER_SWEEP_TASKS:
                dispatch_on_commit(
                    import_string(path),
                    {"sweep_id": sweep.pk},
                    redrive="the next beat sweep (its own after-sweep tasks)",
                )
    logger.info("sweep %s %s: %s", sweep.pk, sweep.status, sweep.band_counts)


# ------------------------------------------------------------------------------------------ storing


def previous_state_load(*, account_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(band code or -1, last history time as epoch seconds or NaN) of each account, from RiskState."""
    if not len(account_ids):
        return np.empty(0, np.int16), np.empty(0)
    band_case = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(BAND_NAMES))
    ids, bands, history = fetch_columns(
        f"""
        SELECT account_id, CAST(CASE band {band_case} END AS int2),
               COALESCE(CAST({_epoch_sql("last_history_at")} AS float8), {nan_sql()})
        FROM accounts_riskstate WHERE account_id >= %s AND account_id <= %s
        """,
        [int(account_ids[0]), int(account_ids[-1])],
        ["int8", "int2", "float8"],
    )
    previous_band = np.full(len(account_ids), -1, dtype=np.int16)
    last_history = np.full(len(account_ids), np.nan)
    index = np.searchsorted(account_ids, ids)
    found = (index < len(account_ids)) & (account_ids[np.minimum(index, len(account_ids) - 1)] == ids)
    previous_band[index[found]] = bands[found]
    last_history[index[found]] = np.where(np.isfinite(history[found]), history[found], np.nan)
    return previous_band, last_history


def _epoch_sql(column: str) -> str:
    # date_part gives float8; EXTRACT gives numeric since PostgreSQL 14, whose cast to float8 goes through
    # text (40 ms per 100,000 rows).
    return f"date_part('epoch', {column})" if is_postgresql() else f"strftime('%%s', {column})"


def history_decision(
    *, previous_band: np.ndarray, last_history: np.ndarray, band: np.ndarray, now: float, interval_s: float
) -> np.ndarray:
    """Which accounts get a history row, and why (HISTORY_* codes)."""
    decision = np.zeros(len(band), dtype=np.int16)
    due = ~(last_history > now - interval_s)  # NaN (never) counts as due
    decision[due] = HISTORY_INTERVAL
    decision[(previous_band >= 0) & (previous_band != band)] = HISTORY_BAND_CHANGE
    decision[previous_band < 0] = HISTORY_FIRST
    return decision


def risk_results_store(*, sweep: Sweep, loaded: LoadedBook, result: risk.RiskResult) -> BandChanges:
    """Write RiskState for every account of `loaded` and RiskSnapshot history where due."""
    now = timezone.now()
    previous_band, last_history = previous_state_load(account_ids=loaded.account_ids)
    history = history_decision(
        previous_band=previous_band,
        last_history=last_history,
        band=result.band,
        now=now.timestamp(),
        interval_s=settings.WORKOUT_SNAPSHOT_HISTORY_INTERVAL_HOURS * 3600.0,
    )
    stored = figures_round(result, loaded.account_decimals)
    writer = _store_postgresql if is_postgresql() else _store_orm
    writer(
        sweep=sweep, loaded=loaded, result=result, history=history, stored=stored, now=now, existing=previous_band >= 0
    )
    changed = previous_band != result.band
    return BandChanges(
        account_ids=loaded.account_ids[changed], previous=previous_band[changed], current=result.band[changed]
    )


@dataclass(frozen=True)
class StoredFigures:
    """A RiskResult rounded for storage, as whole units of each figure's quantum (the account currency's
    for money, 10^-6 for ratios; NULL_UNITS for none). Both writers store exactly these numbers."""

    decimals: np.ndarray
    money: dict[str, np.ndarray]
    ratios: dict[str, np.ndarray]


def figures_round(result: risk.RiskResult, decimals: np.ndarray) -> StoredFigures:
    """Round half to even at each quantum (the float64 kernel value in, an exact integer of quanta out)."""
    scale = 10.0 ** decimals.astype(np.float64)
    money = {}
    for name in _MONEY_FIGURES:
        scaled = np.rint(getattr(result, name) * scale)
        if not (np.isfinite(scaled) & (np.abs(scaled) < _MAX_UNITS)).all():
            raise ValueError(f"{name}: a value is not finite or too large to store")
        money[name] = scaled.astype(np.int64)
    ratios = {}
    for name in _RATIO_FIGURES:
        values = getattr(result, name)
        limit = _RATIO_LIMITS[name]
        scaled = np.rint(np.clip(np.nan_to_num(values, nan=0.0), -limit, limit) * 10.0**_RATIO_DECIMALS)
        ratios[name] = np.where(np.isfinite(values), scaled, NULL_UNITS).astype(np.int64)
    return StoredFigures(decimals=decimals, money=money, ratios=ratios)


def _store_postgresql(
    *,
    sweep: Sweep,
    loaded: LoadedBook,
    result: risk.RiskResult,
    history: np.ndarray,
    stored: StoredFigures,
    now: datetime,
    existing: np.ndarray,
) -> None:
    if not len(loaded.account_ids):
        return  # an empty book or shard: nothing to write (and no currency to build the quantum from)

    def table(rows: np.ndarray | slice) -> dict[str, tuple[str, np.ndarray]]:
        columns: dict[str, tuple[str, np.ndarray]] = {
            "account_id": ("int8", loaded.account_ids[rows]),
            "band": ("int2", result.band[rows].astype(np.int16)),
            "history": ("int2", history[rows]),
            "isolated_breaches": ("int8", result.isolated_breaches[rows].astype(np.int64)),
        }
        columns["decimals"] = ("int2", stored.decimals[rows])
        columns.update({name: ("int8", units[rows]) for name, units in stored.money.items()})
        columns.update({name: ("int8", units[rows]) for name, units in stored.ratios.items()})
        return columns

    # Accounts that already have a RiskState row are updated in place by a join (0.4 s for 100,000 rows where
    # INSERT ... ON CONFLICT, which probes the index and attempts an insert per row, took 0.6 s); the others
    # (first sweeps) are inserted, ON CONFLICT still guarding a concurrent sweep that inserted them first.
    copy_into_temp_table("risk_update", table(np.flatnonzero(existing)))
    copy_into_temp_table("risk_insert", table(np.flatnonzero(~existing)))
    # The few accounts due a history row get a table of their own: joining them to the book is then a
    # handful of index probes, with no statistics to gather on the big table first.
    copy_into_temp_table("risk_history", table(np.flatnonzero(history)))

    # int8 x numeric is exact and much cheaper than float8 -> numeric (which formats through text).
    present = sorted({int(d) for d in np.unique(stored.decimals)})
    quantum = (
        f"{Decimal(1).scaleb(-present[0])}"
        if len(present) == 1
        else "CASE r.decimals " + " ".join(f"WHEN {d} THEN {Decimal(1).scaleb(-d)}" for d in present) + " END"
    )
    figures = {name: f"r.{name} * {quantum}" for name in _MONEY_FIGURES}
    # Ratios may be NULL, which a fixed-width binary row cannot say: int8 millionths, NULL_UNITS for none.
    ratio_quantum = Decimal(1).scaleb(-_RATIO_DECIMALS)
    figures.update({name: f"NULLIF(r.{name}, {NULL_UNITS}) * {ratio_quantum}" for name in _RATIO_FIGURES})
    figures["isolated_breaches"] = "r.isolated_breaches"
    band_text = "(ARRAY[" + ", ".join(f"'{b}'" for b in BAND_NAMES) + "])[r.band + 1]"
    reasons = ", ".join(f"'{_HISTORY_REASONS[k].value}'" for k in sorted(_HISTORY_REASONS))
    reason_text = f"(ARRAY[{reasons}])[r.history]"
    names = ", ".join(figures)
    values = ", ".join(figures.values())
    with connection.cursor() as cursor:
        # History first: it reads the previous band from RiskState before the update below.
        cursor.execute(
            f"""
            INSERT INTO accounts_risksnapshot
                (account_id, sweep_id, computed_at, {names}, band, previous_band, reason, inputs)
            SELECT r.account_id, %s, %s, {values}, {band_text}, COALESCE(s.band, ''), {reason_text},
                   jsonb_build_object(
                       'cash', a.cash::text,
                       'loan', CASE WHEN l.id IS NULL THEN NULL ELSE jsonb_build_object(
                           'principal', l.principal::text, 'accrued_interest', l.accrued_interest::text,
                           'rate_annual', l.rate_annual::text) END,
                       'margin_model', a.margin_model,
                       'positions', COALESCE(p.positions, '[]'::jsonb))
            FROM risk_history r
            JOIN accounts_marginaccount a ON a.id = r.account_id
            LEFT JOIN accounts_riskstate s ON s.account_id = r.account_id
            LEFT JOIN accounts_marginloan l ON l.account_id = r.account_id AND l.status = 'active'
            LEFT JOIN LATERAL (
                SELECT jsonb_agg(jsonb_build_array(instrument_id, quantity::text, entry_price::text,
                                                   isolated_margin::text) ORDER BY instrument_id) AS positions
                FROM accounts_position WHERE account_id = r.account_id AND quantity <> 0
            ) p ON true
            ON CONFLICT (account_id, sweep_id) DO NOTHING
            """,
            [sweep.pk, now],
        )
        updates = ", ".join(f"{name} = {value}" for name, value in figures.items())
        cursor.execute(
            f"""
            UPDATE accounts_riskstate s SET
                sweep_id = %s, computed_at = %s, band = {band_text}, {updates},
                last_history_at = CASE WHEN r.history > 0 THEN %s ELSE s.last_history_at END
            FROM risk_update r WHERE s.account_id = r.account_id
            """,
            [sweep.pk, now, now],
        )
        assignments = ", ".join(f"{name} = EXCLUDED.{name}" for name in figures)
        cursor.execute(
            f"""
            INSERT INTO accounts_riskstate (account_id, sweep_id, computed_at, {names}, band, last_history_at)
            SELECT r.account_id, %s, %s, {values}, {band_text}, CASE WHEN r.history > 0 THEN %s END
            FROM risk_insert r
            ON CONFLICT (account_id) DO UPDATE SET
                sweep_id = EXCLUDED.sweep_id, computed_at = EXCLUDED.computed_at, band = EXCLUDED.band,
                {assignments},
                last_history_at = COALESCE(EXCLUDED.last_history_at, accounts_riskstate.last_history_at)
            """,
            [sweep.pk, now, now],
        )


def _figures(result: risk.RiskResult, stored: StoredFigures, i: int) -> dict[str, Any]:
    places = int(stored.decimals[i])
    values: dict[str, Any] = {name: Decimal(int(units[i])).scaleb(-places) for name, units in stored.money.items()}
    for name, units in stored.ratios.items():
        value = int(units[i])
        values[name] = None if value == NULL_UNITS else Decimal(value).scaleb(-_RATIO_DECIMALS)
    values["isolated_breaches"] = int(result.isolated_breaches[i])
    values["band"] = BAND_NAMES[int(result.band[i])]
    return values


def _store_orm(
    *,
    sweep: Sweep,
    loaded: LoadedBook,
    result: risk.RiskResult,
    history: np.ndarray,
    stored: StoredFigures,
    now: datetime,
    existing: np.ndarray,
) -> None:
    """The portable path (the embedded SQLite demo): the same rows as the PostgreSQL path, through the ORM."""
    account_ids = loaded.account_ids.tolist()
    previous = dict(RiskState.objects.filter(account_id__in=account_ids).values_list("account_id", "last_history_at"))
    previous_band = dict(RiskState.objects.filter(account_id__in=account_ids).values_list("account_id", "band"))
    history_ids = [account_ids[i] for i in np.flatnonzero(history)]
    inputs = _history_inputs(history_ids)
    states, snapshots = [], []
    for i, account_id in enumerate(account_ids):
        figures = _figures(result, stored, i)
        states.append(
            RiskState(
                account_id=account_id,
                sweep=sweep,
                computed_at=now,
                last_history_at=now if history[i] else previous.get(account_id),
                **figures,
            )
        )
        if history[i]:
            snapshots.append(
                RiskSnapshot(
                    account_id=account_id,
                    sweep=sweep,
                    computed_at=now,
                    previous_band=previous_band.get(account_id, ""),
                    reason=_HISTORY_REASONS[int(history[i])],
                    inputs=inputs[account_id],
                    **figures,
                )
            )
    RiskSnapshot.objects.bulk_create(snapshots, batch_size=2000, ignore_conflicts=True)
    update_fields = ["sweep", "computed_at", "last_history_at", "band", *_MONEY_FIGURES, *_RATIO_FIGURES]
    RiskState.objects.bulk_create(
        states,
        batch_size=2000,
        update_conflicts=True,
        unique_fields=["account"],
        update_fields=[*update_fields, "isolated_breaches"],
    )


def _text(value: Decimal) -> str:
    """A stored decimal as PostgreSQL prints numeric(28, 8): fixed point, all eight places."""
    return format(value.quantize(Decimal("1E-8")), "f")


def _history_inputs(account_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The book of each account as stored with a history row (the same shape the PostgreSQL path builds)."""
    from accounts.models import MarginAccount

    inputs: dict[int, dict[str, Any]] = {
        account_id: {"cash": _text(cash), "loan": None, "margin_model": model, "positions": []}
        for account_id, cash, model in MarginAccount.objects.filter(id__in=account_ids).values_list(
            "id", "cash", "margin_model"
        )
    }
    for account_id, principal, accrued, rate in MarginLoan.objects.filter(
        account_id__in=account_ids, status="active"
    ).values_list("account_id", "principal", "accrued_interest", "rate_annual"):
        inputs[account_id]["loan"] = {
            "principal": _text(principal),
            "accrued_interest": _text(accrued),
            "rate_annual": _text(rate),
        }
    for account_id, instrument_id, quantity, entry, isolated in (
        Position.objects.filter(account_id__in=account_ids)
        .exclude(quantity=0)
        .order_by("account_id", "instrument_id")
        .values_list("account_id", "instrument_id", "quantity", "entry_price", "isolated_margin")
    ):
        inputs[account_id]["positions"].append(
            [instrument_id, _text(quantity), _text(entry), None if isolated is None else _text(isolated)]
        )
    return inputs
