"""An account paid in full cannot lose more than it holds, so no risk figure puts it in distress (issue 14).

Paid in full (accounts/risk.py, docs/domain.md): no debt, no debit cash, and among its cross positions only
long spot and long options (no short of any kind, no perpetual or future: those are margined, not paid
for). One long call bought with cash and no loan has a requirement equal to its value (an option has no
loan value), so its margin ratio is exactly 1, which was the warning band and opened a WARNING case.

Per margin model (standard at static rates, standard with dynamic rates, portfolio/TIMS, isolated), then a
property over random paid-in-full books through the vectorised kernel (whole and sharded) and the reference.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import risk
from accounts.risk import BAND_HEALTHY, KIND_OPTION, KIND_PERPETUAL, KIND_SPOT

from . import builders, reference
from .builders import Account, Instrument, Position
from .quantlib_prices import option_price, years
from .strategies import LINEAR, instruments_and_market, risk_params

# 0 a stock at 100 (maintenance 25%, initial 50%; reference daily volatility 1%), 1 a 30-day call struck at
# 120, 100 per contract (the standard option rates: 15% / 20% of the underlying), 2 a perpetual on the stock.
INSTRUMENTS = [
    Instrument(KIND_SPOT, 0, initial_rate=0.5, maintenance_rate=0.25, reference_volatility=0.01),
    Instrument(KIND_OPTION, 0, 100.0, 0.2, 0.15, strike=120.0, expiry_years=years(30), is_call=True),
    Instrument(KIND_PERPETUAL, 0, initial_rate=0.1, maintenance_rate=0.05),
]
# Implied volatility 30%, r = 4%; EWMA 5% and stressed 6% a day against a reference of 1%: rates x 5.25.
CALM = builders.market([100.0, math.nan, 100.0], [0.3, math.nan, math.nan], risk_free_rate=0.04)
STORMY = builders.market(
    [100.0, math.nan, 100.0], [0.3, math.nan, math.nan], [0.05, math.nan, math.nan], [0.06, math.nan, math.nan], 0.04
)
CALL = 100.0 * option_price(spot=100.0, strike=120.0, days=30, rate=0.04, carry=0.0, volatility=0.3, is_call=True)
STATIC = risk.RiskParams(dynamic_margin=False)


def _one(
    account: Account, *positions: Position, market: risk.Market = CALM, params: risk.RiskParams = STATIC
) -> dict[str, float]:
    result = risk.sweep(builders.book(INSTRUMENTS, [account], list(positions)), market, params)
    return {
        "equity": float(result.equity[0]),
        "maintenance_requirement": float(result.maintenance_requirement[0]),
        "margin_ratio": float(result.margin_ratio[0]),
        "shortfall_maintenance": float(result.shortfall_maintenance[0]),
        "distance": float(result.distance_to_liquidation[0]),
        "isolated_breaches": float(result.isolated_breaches[0]),
        "band": float(result.band[0]),
    }


def _band(figures: dict[str, float]) -> str:
    return risk.BANDS[int(figures["band"])]


def _assert_paid_in_full_is_healthy(figures: dict[str, float]) -> None:
    assert _band(figures) == "healthy", figures
    assert figures["shortfall_maintenance"] == 0.0, figures
    assert math.isnan(figures["distance"]), figures  # no move brings it to liquidation


def test_standard_one_long_call_paid_in_cash_is_healthy() -> None:
    # given one call contract bought with cash (none left), no loan, static rates
    figures = _one(Account(cash=0.0), Position(0, 1, 1.0))

    # then its requirement is its value, 100 x C = 6.40 (15% of the underlying, 1,500, is more), so the ratio
    # is exactly 1, as before; but the account owes nothing and can come to owe nothing: healthy
    # (before: band warning, distance to liquidation 0)
    assert figures["equity"] == pytest.approx(CALL, rel=1e-12)
    assert figures["maintenance_requirement"] == pytest.approx(CALL, rel=1e-12)
    assert figures["margin_ratio"] == pytest.approx(1.0, rel=1e-12)
    _assert_paid_in_full_is_healthy(figures)


def test_dynamic_rates_never_require_more_than_a_long_holding_is_worth() -> None:
    # given 3 shares bought outright, 10 cash left, no loan, in a stormy market: the rates scale by
    # (0.75 x 5% + 0.25 x 6%) / 1% = 5.25, so 25% maintenance becomes 131.25% of the value
    figures = _one(Account(cash=10.0), Position(0, 0, 3.0), market=STORMY, params=risk.RiskParams())

    # then the requirement stops at what the shares can lose, their value 300 (before: 393.75, ratio 0.787,
    # a margin call for 83.75 on an account that owes nothing); equity 310, healthy
    assert figures["maintenance_requirement"] == pytest.approx(300.0, rel=1e-12)
    assert figures["equity"] == pytest.approx(310.0, rel=1e-12)
    _assert_paid_in_full_is_healthy(figures)


def test_dynamic_cap_also_holds_for_a_leveraged_long() -> None:
    # given the same shares with a loan of 100 (not paid in full): the cap is about the position, not the band
    figures = _one(Account(cash=10.0, debt=100.0), Position(0, 0, 3.0), market=STORMY, params=risk.RiskParams())

    # then the requirement is still the value, 300, and the ratio rule applies: equity 210 < 300, margin call
    assert figures["maintenance_requirement"] == pytest.approx(300.0, rel=1e-12)
    assert _band(figures) == "margin_call"
    assert figures["shortfall_maintenance"] == pytest.approx(90.0, rel=1e-12)


def test_portfolio_tims_one_long_call_paid_in_cash_is_healthy() -> None:
    # given the call on a portfolio-margin account: its worst loss on the TIMS grid (-15%, volatility down)
    # is nearly all of its value
    figures = _one(Account(cash=0.0, portfolio=True), Position(0, 1, 1.0))

    # then the ratio is just above 1 (before: warning), and the account is healthy
    assert 1.0 <= figures["margin_ratio"] < 1.25
    _assert_paid_in_full_is_healthy(figures)


def test_isolated_call_with_its_premium_allocated_and_a_cross_call_are_healthy() -> None:
    # given an isolated-mode holding: one call isolated, its premium (6.40) as its allocation, bought at that
    # premium; and one call in the cross pool paid in cash
    premium = CALL / 100.0
    figures = _one(Account(cash=0.0), Position(0, 1, 1.0, premium, isolated_margin=CALL), Position(0, 1, 1.0))

    # then neither the isolated position (own equity = its value = its requirement) nor the pool is in distress
    assert figures["isolated_breaches"] == 0
    _assert_paid_in_full_is_healthy(figures)


def test_isolated_positions_neither_make_nor_break_paid_in_full() -> None:
    # given the cross call paid in cash beside an isolated short perpetual whose loss stops at its allocation
    # (already out of the cash): the pool still owes nothing
    figures = _one(Account(cash=0.0), Position(0, 1, 1.0), Position(0, 2, -5.0, 100.0, isolated_margin=50.0))

    # then healthy; the isolated position is judged on its own (not breached: 50 >= 5% x 500 = 25)
    assert figures["isolated_breaches"] == 0
    _assert_paid_in_full_is_healthy(figures)


def test_an_isolated_long_bought_with_its_allocation_is_never_breached_by_rounding() -> None:
    # given 91 accounts each holding one call isolated, bought at a premium p from 0.50 to 9.50 with exactly its
    # cost (100 x p) allocated, at 51 prices of the underlying from 80 to 130
    premiums = np.round(np.linspace(0.5, 9.5, 91), 2)
    positions = [Position(i, 1, 1.0, float(p), isolated_margin=float(p) * 100.0) for i, p in enumerate(premiums)]
    book = builders.book(INSTRUMENTS, [Account() for _ in premiums], positions)
    breaches = 0
    for spot in np.linspace(80.0, 130.0, 51):
        market = builders.market([spot, math.nan, spot], [0.3, math.nan, math.nan], risk_free_rate=0.04)

        # when
        breaches += int(risk.sweep(book, market).isolated_breaches.sum())

    # then none is breached: its own equity is its value, which is its requirement (before: 1,447 of the
    # 4,641 were, as (allocation + value) - cost rounded below value)
    assert breaches == 0


@pytest.mark.parametrize(
    ("account", "extra"),
    [
        (Account(cash=0.0, debt=0.01), []),  # a cent of loan: the lender is exposed
        (Account(cash=-0.01), []),  # a debit balance is a loan
        (Account(cash=0.0), [Position(0, 0, -0.001)]),  # any short (0.001 share)
        (Account(cash=0.0), [Position(0, 2, 0.001, 100.0)]),  # a long perpetual: margined, not paid for
    ],
    ids=["loan", "debit-cash", "short", "perpetual"],
)
def test_anything_that_can_be_owed_brings_the_ratio_rule_back(account: Account, extra: list[Position]) -> None:
    # given the call paid in cash (ratio exactly 1) and one thing, however small, that can make the account owe
    figures = _one(account, Position(0, 1, 1.0), *extra)

    # then the ratio decides the band again: each takes equity a little below the requirement (or the
    # requirement a little above equity), a margin call at a distance of 0
    assert figures["margin_ratio"] < 1.0
    assert _band(figures) == "margin_call", figures
    assert figures["distance"] == 0.0


# ---------------------------------------------------------------------------------- random books, property


@st.composite
def paid_in_full_books(draw: st.DrawFn) -> tuple[risk.Book, risk.Market, risk.RiskParams]:
    """Random instruments and market (strategies.py), random parameters (dynamic rates often far above 100%),
    and accounts with cash >= 0, no debt, standard or portfolio, holding cross only long spot and long options
    (any strike, expiry, contract size), and isolated positions of any kind and sign."""
    instrument_rows, market = draw(instruments_and_market())
    payable = [i for i, row in enumerate(instrument_rows) if row.kind in (KIND_SPOT, KIND_OPTION)]
    n_accounts = draw(st.integers(1, 6))
    accounts = [
        Account(cash=draw(st.one_of(st.just(0.0), st.floats(0.0, 1e6))), portfolio=draw(st.booleans()))
        for _ in range(n_accounts)
    ]
    positions = []
    taken: set[tuple[int, int]] = set()
    for _ in range(draw(st.integers(0, 12))):
        account = draw(st.integers(0, n_accounts - 1))
        if draw(st.integers(0, 3)) == 0:  # isolated: linear, either sign, any allocation
            instrument = draw(st.sampled_from(LINEAR))
            if (account, instrument) in taken:  # one position per account and instrument, as in the database
                continue
            taken.add((account, instrument))
            price = float(market.price[instrument])
            positions.append(
                Position(
                    account,
                    instrument,
                    draw(st.floats(0.01, 40.0)) * draw(st.sampled_from([1.0, -1.0])),
                    price * draw(st.floats(0.5, 1.5)),
                    isolated_margin=draw(st.floats(0.0, 1e4)),
                )
            )
            continue
        instrument = draw(st.sampled_from(payable))
        if (account, instrument) in taken:  # one position per account and instrument, as in the database
            continue
        taken.add((account, instrument))
        positions.append(Position(account, instrument, draw(st.floats(1e-4, 1e4))))
    params = draw(risk_params())
    return builders.book(instrument_rows, accounts, positions), market, params


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=paid_in_full_books(), shards=st.integers(1, 3))
def test_no_paid_in_full_book_is_in_a_distress_band(
    case: tuple[risk.Book, risk.Market, risk.RiskParams], shards: int
) -> None:
    book, market, params = case

    # when the whole book goes through the kernel, at once and in shards
    whole = risk.sweep(book, market, params)
    sharded = risk.ShardedBook.prepare(book, shards).evaluate(market, params)

    # then every account is healthy, short of nothing, and no move liquidates it, whatever its ratio
    for result in (whole, sharded):
        np.testing.assert_array_equal(result.band, np.full(len(book.accounts), BAND_HEALTHY))
        assert np.all(np.isnan(result.distance_to_liquidation))
        tolerance = 1e-9 * (np.abs(result.equity) + 1.0)
        assert np.all(result.shortfall_maintenance <= tolerance), result.shortfall_maintenance
        # a long-only pool's requirement never exceeds what it holds beyond its cash
        assert np.all(result.maintenance_requirement <= result.equity - book.accounts.cash + tolerance)
    # and the reference, written from the definitions, agrees account by account
    for a, figures in enumerate(reference.account_figures(book, market, params)):
        assert figures.band == BAND_HEALTHY, a
        assert math.isnan(figures.distance_to_liquidation), a
        assert whole.maintenance_requirement[a] == pytest.approx(figures.maintenance_requirement, rel=1e-9, abs=1e-9)
