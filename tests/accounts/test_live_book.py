from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from accounts import risk
from accounts.models import Instrument, RiskState
from accounts.services.live_book import LiveBook
from accounts.services.sweep import sweep_run
from tests.accounts.test_sweep import _account, _btc, _shock_btc

pytestmark = pytest.mark.django_db


def test_remark_moves_bands_as_a_full_sweep_would() -> None:
    # given ten accounts with 10 BTC at 100 and loans 0, 100, ..., 900
    btc = _btc()
    accounts = [_account(f"A{i}", btc, cash="0", btc_quantity="10", loan=str(100 * i)) for i in range(10)]
    live = LiveBook.load(shards=2)

    # when BTC ticks to 90 in memory
    remark = live.remark(prices={btc.pk: 90.0})

    # then the accounts whose band moved are reported: equity 900 - loan vs maintenance 270, warning below
    # 1.25 x 270 = 337.5: loan 600 (300: healthy -> warning); loan 700 (200: warning -> margin call);
    # loan 900 (0: margin call -> critical, equity <= 0 with a requirement)
    moved = {
        int(a): (risk.BANDS[p], risk.BANDS[c])
        for a, p, c in zip(remark.changes.account_ids, remark.changes.previous, remark.changes.current, strict=True)
    }
    assert moved == {
        accounts[6].pk: ("healthy", "warning"),
        accounts[7].pk: ("warning", "margin_call"),
        accounts[9].pk: ("margin_call", "critical"),
    }

    # and the figures equal those of a full sweep at the same price
    _shock_btc("90")
    sweep_run()
    stored = dict(RiskState.objects.values_list("account_id", "equity"))
    for i, account_id in enumerate(live.loaded.account_ids.tolist()):
        assert Decimal(str(round(remark.result.equity[i], 2))) == stored[account_id]
    np.testing.assert_array_equal(
        [risk.BANDS[b] for b in remark.result.band],
        [RiskState.objects.get(account_id=a).band for a in live.loaded.account_ids.tolist()],
    )


def test_remark_refuses_a_bad_price_and_keeps_the_last_mark() -> None:
    btc = _btc()
    _account("A", btc, cash="0", btc_quantity="10", loan="500")
    live = LiveBook.load(shards=1)
    before = live.result

    with pytest.raises(ValueError, match=f"instrument {btc.pk}: price nan is not a positive finite number"):
        live.remark(prices={btc.pk: float("nan")})
    with pytest.raises(ValueError, match=r"price -1\.0 is not a positive finite number"):
        live.remark(prices={btc.pk: -1.0})

    assert live.result is before
    assert Instrument.objects.count() == 1
