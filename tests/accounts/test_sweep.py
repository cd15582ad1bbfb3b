"""The sweep end to end through the database: load, compute, store, history, shards."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import risk
from accounts.models import (
    Client,
    Instrument,
    MarginAccount,
    MarginLoan,
    Position,
    Price,
    RiskSnapshot,
    RiskState,
    Sweep,
    SweepShard,
    SweepStatus,
)
from accounts.selectors import MissingPriceError, book_arrays_load
from accounts.services import sweep as sweep_service
from accounts.services.sweep import sweep_run, sweep_shard_run, sweep_start

pytestmark = pytest.mark.django_db

FIGURES = [
    "equity",
    "market_value",
    "collateral_value",
    "initial_requirement",
    "maintenance_requirement",
    "margin_ratio",
    "shortfall_maintenance",
    "shortfall_initial",
    "worst_scenario_loss",
    "distance_to_liquidation",
    "isolated_equity",
    "isolated_breaches",
    "band",
]


def _btc(price: str = "100") -> Instrument:
    btc = Instrument.objects.create(
        symbol="BTC",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        haircut=Decimal("0.1"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
    )
    Price.objects.create(instrument=btc, time=timezone.now() - timedelta(minutes=5), price=Decimal(price))
    return btc


def _account(code: str, btc: Instrument, *, cash: str, btc_quantity: str, loan: str) -> MarginAccount:
    client = Client.objects.create(code=f"C-{code}", name=code)
    account = MarginAccount.objects.create(code=code, client=client, cash=Decimal(cash))
    Position.objects.create(account=account, instrument=btc, quantity=Decimal(btc_quantity), entry_price=Decimal(90))
    MarginLoan.objects.create(account=account, principal=Decimal(loan), rate_annual=Decimal("0.08"))
    return account


@pytest.fixture
def four_accounts() -> dict[str, MarginAccount]:
    btc = _btc()
    return {
        "healthy": _account("HEALTHY", btc, cash="1000", btc_quantity="10", loan="500"),
        "warning": _account("WARNING", btc, cash="0", btc_quantity="10", loan="660"),
        "margin_call": _account("CALL", btc, cash="0", btc_quantity="10", loan="750"),
        "critical": _account("CRITICAL", btc, cash="0", btc_quantity="10", loan="1100"),
    }


def _shock_btc(price: str) -> None:
    Price.objects.create(instrument=Instrument.objects.get(symbol="BTC"), time=timezone.now(), price=Decimal(price))


def test_sweep_stores_hand_worked_figures(four_accounts: dict[str, MarginAccount]) -> None:
    # given 10 BTC at 100 in each account (maintenance 30%, initial 50%, haircut 10%, crypto range +/-16%)

    # when
    sweep = sweep_run()

    # then the sweep is done and counts one account per band
    assert sweep.status == SweepStatus.DONE
    assert sweep.accounts == 4
    assert sweep.positions == 4
    assert sweep.band_counts == {"healthy": 1, "warning": 1, "margin_call": 1, "critical": 1}
    assert sweep.model_version == risk.MODEL_VERSION
    btc = Instrument.objects.get(symbol="BTC")
    assert sweep.prices[str(btc.pk)][0] == 100.0

    # healthy: equity = 1000 cash + 1000 BTC - 500 loan = 1500; maintenance = 1000 x 0.3 = 300;
    # initial = 500; collateral = 1000 + 1000 x 0.9 = 1900; ratio 5; worst scenario 1000 x 16% = 160;
    # distance: 1200 + (1000 - 300) x = 0 -> x = -1.714: beyond -100%, so none.
    healthy = RiskState.objects.get(account=four_accounts["healthy"])
    assert healthy.equity == Decimal("1500.00")
    assert healthy.market_value == Decimal("1000.00")
    assert healthy.collateral_value == Decimal("1900.00")
    assert healthy.maintenance_requirement == Decimal("300.00")
    assert healthy.initial_requirement == Decimal("500.00")
    assert healthy.margin_ratio == Decimal("5.000000")
    assert healthy.worst_scenario_loss == Decimal("160.00")
    assert healthy.distance_to_liquidation is None
    assert healthy.band == "healthy"

    # warning: equity 1000 - 660 = 340; ratio 340 / 300 = 1.133333; distance -(340 - 300) / (1000 - 300)
    warning = RiskState.objects.get(account=four_accounts["warning"])
    assert warning.equity == Decimal("340.00")
    assert warning.margin_ratio == Decimal("1.133333")
    assert warning.distance_to_liquidation == Decimal("-0.057143")
    assert warning.shortfall_maintenance == Decimal("0.00")
    assert warning.shortfall_initial == Decimal("160.00")
    assert warning.band == "warning"

    # margin call: equity 250 < 300: shortfalls 50 to maintenance and 250 to initial; already below: distance 0
    call = RiskState.objects.get(account=four_accounts["margin_call"])
    assert call.shortfall_maintenance == Decimal("50.00")
    assert call.shortfall_initial == Decimal("250.00")
    assert call.distance_to_liquidation == Decimal("0.000000")
    assert call.band == "margin_call"

    # critical: equity 1000 - 1100 = -100
    critical = RiskState.objects.get(account=four_accounts["critical"])
    assert critical.equity == Decimal("-100.00")
    assert critical.band == "critical"


def test_first_sweep_writes_history_with_the_inputs(four_accounts: dict[str, MarginAccount]) -> None:
    # when
    sweep = sweep_run()

    # then every account has one history row, reason "first", holding the book it was computed from
    snapshots = RiskSnapshot.objects.filter(sweep=sweep)
    assert snapshots.count() == 4
    snapshot = snapshots.get(account=four_accounts["warning"])
    btc = Instrument.objects.get(symbol="BTC")
    assert snapshot.reason == "first"
    assert snapshot.previous_band == ""
    assert snapshot.band == "warning"
    assert snapshot.inputs == {
        "cash": "0.00000000",
        "loan": {"principal": "660.00000000", "accrued_interest": "0.00000000", "rate_annual": "0.08000000"},
        "margin_model": "standard",
        "positions": [[btc.pk, "10.00000000", "90.00000000", None]],
    }


def test_history_grows_with_band_changes_not_with_sweeps(four_accounts: dict[str, MarginAccount]) -> None:
    # given a first sweep
    first = sweep_run()

    # when nothing moves, a second sweep updates the state in place and writes no history
    second = sweep_run()
    assert RiskSnapshot.objects.filter(sweep=second).count() == 0
    assert set(RiskState.objects.values_list("sweep_id", flat=True)) == {second.pk}
    assert RiskState.objects.count() == 4

    # when BTC falls to 90, the warning account (equity 900 - 660 = 240 < 270) enters a margin call
    _shock_btc("90")
    third = sweep_run()

    # then exactly the accounts whose band changed get a history row: the others stay where they were
    # (healthy 1900 - 500 = 1400 vs 270; call 900 - 750 = 150 vs 270; critical 900 - 1100 = -200)
    changed = RiskSnapshot.objects.filter(sweep=third).select_related("account")
    assert {(s.account.code, s.previous_band, s.band, s.reason) for s in changed} == {
        ("WARNING", "warning", "margin_call", "band_change")
    }
    assert RiskSnapshot.objects.filter(sweep=first).count() == 4


def test_history_is_written_again_after_the_interval(four_accounts: dict[str, MarginAccount]) -> None:
    # given a first sweep whose history is older than the interval
    sweep_run()
    RiskState.objects.update(last_history_at=timezone.now() - timedelta(hours=25))

    # when
    sweep = sweep_run()

    # then every account gets an "interval" row and its clock is reset
    assert set(RiskSnapshot.objects.filter(sweep=sweep).values_list("reason", flat=True)) == {"interval"}
    assert RiskSnapshot.objects.filter(sweep=sweep).count() == 4
    assert not RiskState.objects.filter(last_history_at__lt=timezone.now() - timedelta(hours=1)).exists()


def test_split_sweep_equals_whole_sweep(four_accounts: dict[str, MarginAccount]) -> None:
    # given the whole book swept in one shard
    sweep_run(shards=1)
    whole = {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()}

    # when it is swept again in three shards
    RiskState.objects.all().delete()
    split = sweep_run(shards=3)

    # then the figures are the same and the sweep adds the shards up
    assert split.shards.count() == 3
    assert split.accounts == 4
    assert {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()} == whole


def test_a_shard_runs_once(four_accounts: dict[str, MarginAccount]) -> None:
    # given a sweep whose only shard has run
    sweep = sweep_run()
    shard = sweep.shards.get()
    state_before = list(RiskState.objects.order_by("account_id").values_list("account_id", "computed_at"))

    # when the same shard runs again (a redelivered task)
    again = sweep_shard_run(shard_id=shard.pk)

    # then nothing is recomputed or written twice
    assert again.status == SweepStatus.DONE
    assert list(RiskState.objects.order_by("account_id").values_list("account_id", "computed_at")) == state_before
    assert RiskSnapshot.objects.filter(sweep=sweep).count() == 4


def test_missing_price_fails_the_sweep_naming_the_instrument(four_accounts: dict[str, MarginAccount]) -> None:
    # given an account holding an instrument that has no price
    eth = Instrument.objects.create(
        symbol="ETH",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.05"),
    )
    Position.objects.create(account=four_accounts["healthy"], instrument=eth, quantity=Decimal(1))
    sweep = sweep_start(shards=1, dispatch=False)

    # when / then
    with pytest.raises(MissingPriceError, match=r"no price at or before .* for held instruments: ETH"):
        sweep_shard_run(shard_id=sweep.shards.get().pk)
    sweep.refresh_from_db()
    assert sweep.status == SweepStatus.FAILED
    assert "ETH" in SweepShard.objects.get(sweep=sweep).error
    assert not RiskState.objects.exists()


def test_sweep_queries_do_not_grow_with_the_book() -> None:
    # given two books, 5 and 100 accounts
    btc = _btc()

    def queries_for(n_accounts: int) -> int:
        for i in range(n_accounts):
            _account(f"A{n_accounts}-{i}", btc, cash="10", btc_quantity="1", loan="50")
        RiskState.objects.all().delete()
        with CaptureQueriesContext(connection) as context:
            sweep_run()
        return len(context.captured_queries)

    small = queries_for(5)
    large = queries_for(100)

    # then no statement is issued per account or position. PostgreSQL moves everything by COPY and
    # set-based SQL: the count is identical. The portable path's bulk inserts are cut into batches
    # (SQLite: 999 parameters per statement), so 100 accounts take the extra batches Django computes.
    extra_batches = 0
    if connection.vendor != "postgresql":
        for model in (RiskSnapshot, RiskState):
            batch = connection.ops.bulk_batch_size(list(model._meta.concrete_fields), [None] * 100)
            extra_batches += math.ceil(100 / batch) - math.ceil(5 / batch)
    assert large == small + extra_batches


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["insert", "update"])
def test_postgresql_and_portable_writers_store_the_same_rows(
    four_accounts: dict[str, MarginAccount], path: str
) -> None:
    # given the figures written by the COPY path: on the accounts' first sweep (rows inserted), or on a later
    # one after BTC fell to 90, which moves every figure and the warning account's band (rows updated in place)
    if path == "update":
        sweep_run()
        _shock_btc("90")
    sweep = sweep_run()
    fast = {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()}
    assert set(RiskState.objects.values_list("sweep_id", flat=True)) == {sweep.pk}
    fast_history = {s.account_id: (s.inputs, s.reason) for s in RiskSnapshot.objects.filter(sweep=sweep)}
    assert len(fast_history) == (4 if path == "insert" else 1)

    # when the same result is written through the ORM path (as every account's first sweep)
    RiskState.objects.all().delete()
    RiskSnapshot.objects.all().delete()
    loaded = book_arrays_load(as_of=sweep.as_of)
    result = risk.sweep(loaded.book, loaded.market, sweep_service.risk_params())
    history = np.full(len(loaded.account_ids), sweep_service.HISTORY_FIRST, dtype=np.int16)
    stored = sweep_service.figures_round(result, np.full(len(loaded.account_ids), 2, dtype=np.int16))
    sweep_service._store_orm(
        sweep=sweep,
        loaded=loaded,
        result=result,
        history=history,
        stored=stored,
        now=timezone.now(),
        existing=np.zeros(len(loaded.account_ids), dtype=np.bool_),
    )

    # then the rows are identical (and so are the inputs kept with the history rows both wrote)
    assert {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()} == fast
    orm_history = {s.account_id: (s.inputs, s.reason) for s in RiskSnapshot.objects.filter(sweep=sweep)}
    assert {a: inputs for a, (inputs, _reason) in fast_history.items()} == {a: orm_history[a][0] for a in fast_history}
    if path == "insert":
        assert fast_history == orm_history


def test_sweep_command_prints_band_counts(four_accounts: dict[str, MarginAccount]) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("sweep", stdout=out)
    text = out.getvalue()
    assert "4 accounts, 4 positions" in text
    for band in ("healthy", "warning", "margin_call", "critical"):
        assert f"  {band:<12} 1" in text
    assert Sweep.objects.get().status == SweepStatus.DONE


def test_a_sweep_whose_shard_task_was_lost_is_redriven(four_accounts: dict[str, MarginAccount]) -> None:
    # given a sweep dispatched to the broker whose shard task never ran (the broker was down at commit)
    sweep = sweep_start(shards=2, dispatch=False)
    Sweep.objects.filter(pk=sweep.pk).update(started_at=timezone.now() - timedelta(minutes=10))

    # when the sweeper runs (tasks run in-process in tests)
    redriven = sweep_service.sweeps_redrive(older_than=timedelta(minutes=5))

    # then both shards ran and the sweep is done; a second pass finds nothing to do
    assert sorted(redriven) == sorted(sweep.shards.values_list("id", flat=True))
    sweep.refresh_from_db()
    assert sweep.status == SweepStatus.DONE
    assert sweep.accounts == 4
    assert sweep_service.sweeps_redrive(older_than=timedelta(minutes=5)) == []


def test_a_recent_sweep_is_left_to_its_tasks(four_accounts: dict[str, MarginAccount]) -> None:
    sweep = sweep_start(shards=1, dispatch=False)
    assert sweep_service.sweeps_redrive(older_than=timedelta(minutes=5)) == []
    assert Sweep.objects.get(pk=sweep.pk).status == SweepStatus.RUNNING


@pytest.mark.django_db
def test_a_sweep_of_an_empty_book_is_done_with_nothing_written() -> None:
    # found by the end-to-end test: on PostgreSQL the writer built invalid SQL for no accounts, so every beat
    # sweep of a fresh deployment failed until a book was imported
    sweep = sweep_run()
    assert (sweep.status, sweep.accounts, sweep.positions) == (SweepStatus.DONE, 0, 0)
    assert not RiskState.objects.exists()


def test_a_sweep_on_several_threads_is_refused_inside_a_transaction(four_accounts: dict[str, MarginAccount]) -> None:
    # (this test runs inside the test's transaction: the other threads could not see the sweep it would create)
    with pytest.raises(RuntimeError, match=r"outside any transaction\.atomic"):
        sweep_run(shards=2, workers=2)
    assert not Sweep.objects.exists()
