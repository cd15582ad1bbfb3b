from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from accounts.models import Instrument, Price
from accounts.services.volatility import daily_closes, instrument_volatility_refresh, log_returns


def test_daily_closes_take_the_last_price_of_each_utc_day() -> None:
    # given two instruments, prices out of order, two prices on day 0 for instrument 7
    day = 86400.0
    ids = np.array([7, 7, 9, 7, 9])
    seconds = np.array([0.5 * day, 0.1 * day, 0.2 * day, 2.3 * day, 1.9 * day])
    prices = np.array([101.0, 100.0, 50.0, 104.0, 51.0])

    # when
    unique_ids, closes = daily_closes(instrument_ids=ids, epoch_seconds=seconds, prices=prices)

    # then day 0 closes at the later 101; instrument 7 has no price on day 1
    assert unique_ids.tolist() == [7, 9]
    np.testing.assert_array_equal(closes[0], [101.0, np.nan, 104.0])
    np.testing.assert_array_equal(closes[1], [50.0, 51.0, np.nan])


def test_log_returns_span_gaps() -> None:
    closes = np.array([[100.0, np.nan, 110.0, 99.0]])
    returns = log_returns(closes)
    # log(b) - log(a) with logs near 4.6 carries ~2 ulps of 4.6 (1.8e-15) of rounding: 2e-14 relative to 0.1
    np.testing.assert_allclose(returns[0, 2:], [math.log(1.1), math.log(0.9)], rtol=2e-14)
    assert np.isnan(returns[0, :2]).all()


@pytest.mark.django_db
def test_refresh_stores_the_riskmetrics_ewma_of_daily_returns() -> None:
    # given 30 daily closes alternating +1% / -1% log moves
    btc = Instrument.objects.create(
        symbol="BTC",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.04"),
    )
    start = datetime(2026, 1, 1, 16, tzinfo=UTC)
    level = 100.0
    for day in range(31):
        Price.objects.create(instrument=btc, time=start + timedelta(days=day), price=Decimal(f"{level:.8f}"))
        level *= math.exp(0.01 if day % 2 == 0 else -0.01)

    # when
    instrument_volatility_refresh(as_of=start + timedelta(days=31))

    # then every |return| is 0.01 (to the 8-decimal rounding of the stored prices), so the seeded EWMA and
    # its maximum are 0.01 too
    btc.refresh_from_db()
    assert btc.ewma_volatility == pytest.approx(0.01, rel=1e-6)
    assert btc.stressed_volatility == pytest.approx(0.01, rel=1e-6)
    assert btc.volatility_as_of == start + timedelta(days=31)


@pytest.mark.django_db
def test_refresh_follows_a_volatility_spike_and_remembers_it_as_stressed() -> None:
    # given 25 quiet days (+/-1%) then one day of -10%
    eth = Instrument.objects.create(
        symbol="ETH",
        kind="spot",
        initial_rate=Decimal("0.5"),
        maintenance_rate=Decimal("0.3"),
        scenario_class="crypto",
        daily_volatility=Decimal("0.05"),
    )
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    moves = [0.01 if d % 2 == 0 else -0.01 for d in range(25)] + [-0.10]
    level = 1000.0
    Price.objects.create(instrument=eth, time=start, price=Decimal("1000"))
    for day, move in enumerate(moves, start=1):
        level *= math.exp(move)
        Price.objects.create(instrument=eth, time=start + timedelta(days=day), price=Decimal(f"{level:.8f}"))

    # when
    instrument_volatility_refresh(as_of=start + timedelta(days=40))

    # then sigma^2 = 0.94 x 0.01^2 + 0.06 x 0.10^2 after the seed of 20 quiet returns and 5 more quiet ones
    eth.refresh_from_db()
    expected = math.sqrt(0.94 * 0.01**2 + 0.06 * 0.10**2)
    assert eth.ewma_volatility == pytest.approx(expected, rel=1e-6)
    assert eth.stressed_volatility == pytest.approx(expected, rel=1e-6)
