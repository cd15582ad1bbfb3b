"""The split sweep through real Celery tasks: a worker subprocess on Redis, the real database."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from accounts.models import RiskState, Sweep, SweepStatus
from accounts.services.sweep import sweep_run, sweep_start
from tests.accounts.test_sweep import FIGURES, _account, _btc
from tests.celery_worker import celery_worker

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def _wait_for(sweep_id: int, timeout_s: float = 60.0) -> Sweep:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sweep = Sweep.objects.get(pk=sweep_id)
        if sweep.status != SweepStatus.RUNNING:
            return sweep
        time.sleep(0.2)
    raise TimeoutError(f"sweep {sweep_id} still running after {timeout_s} s")


def test_split_sweep_on_workers_equals_whole_sweep() -> None:
    # given a book of 30 accounts with loans from 0 to 870 against 10 BTC at 100
    btc = _btc()
    for i in range(30):
        _account(f"ACC{i:03}", btc, cash="0", btc_quantity="10", loan=str(Decimal(30) * i))
    whole_sweep = sweep_run(shards=1)
    whole = {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()}
    RiskState.objects.all().delete()

    # when the sweep is split into 3 shard tasks run by a real worker
    with celery_worker():
        split = _wait_for(sweep_start(shards=3).pk)

    # then every shard ran once and the figures are those of the whole sweep
    assert split.status == SweepStatus.DONE, list(split.shards.values_list("error", flat=True))
    assert list(split.shards.values_list("status", flat=True)) == [SweepStatus.DONE] * 3
    assert split.accounts == 30
    assert split.band_counts == whole_sweep.band_counts
    assert {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()} == whole
    assert set(RiskState.objects.values_list("sweep_id", flat=True)) == {split.pk}
