"""Shards run in parallel threads of one process (each thread its own connection and transaction)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import RiskState, SweepStatus
from accounts.services.sweep import sweep_run
from tests.accounts.test_sweep import FIGURES, _account, _btc

# Threads use their own connections: they see only committed rows, hence transaction=True.
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_shards_in_parallel_threads_equal_the_whole_sweep() -> None:
    # given 30 accounts swept whole
    btc = _btc()
    for i in range(30):
        _account(f"ACC{i:03}", btc, cash="0", btc_quantity="10", loan=str(Decimal(30) * i))
    sweep_run(shards=1)
    whole = {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()}
    RiskState.objects.all().delete()

    # when four shards run on two threads, each with its own connection and transaction
    split = sweep_run(shards=4, workers=2)

    # then
    assert split.status == SweepStatus.DONE
    assert split.accounts == 30
    assert {s.account_id: [getattr(s, f) for f in FIGURES] for s in RiskState.objects.all()} == whole
