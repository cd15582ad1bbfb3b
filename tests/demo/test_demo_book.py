"""The synthetic book: its shape, its invariants, its calibration, and writing it on both backends.

The calibration checks value the book with an independent standard-margin approximation written here
(Black-Scholes for options, |notional| x maintenance rate, isolated positions on their own margin), not
with the generator's code and not with the risk engine.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from scipy.special import ndtr

from accounts.models import (
    Client,
    ClientGroup,
    HealthBand,
    Instrument,
    MarginAccount,
    MarginLoan,
    Position,
    Price,
    RiskSnapshot,
    RiskState,
    Sweep,
    SweepShard,
)
from accounts.services.sweep import sweep_run
from accounts.services.volatility import instrument_volatility_refresh
from core.errors import ConflictError, ValidationError
from demo.book import ARCHETYPES, DemoBook, demo_book_generate, demo_book_write
from demo.book import write as demo_book_write_module

AS_OF = datetime(2026, 3, 2, 21, 0, tzinfo=UTC)
RISK_FREE_RATE = 0.04
# Writing tests need few closes; the price rows are most of an SQLite write otherwise.
SHORT_HISTORY = 20
SHARES = {
    "leveraged_long": 0.44,
    "hedged": 0.14,
    "concentrated": 0.07,
    "option_heavy": 0.15,
    "isolated_perps": 0.12,
    "perp_trader": 0.08,
}


@pytest.fixture(scope="module")
def book() -> DemoBook:
    return demo_book_generate(accounts=3000, seed=11, as_of=AS_OF)


def _kinds(book: DemoBook) -> np.ndarray:
    return np.array(book.instruments.kind)


def _symbol_row(book: DemoBook, symbol: str) -> int:
    return book.instruments.symbol.index(symbol)


# --- An independent valuation --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Valuation:
    equity: np.ndarray  # per account: cash - debt + cross positions' value
    ratio: np.ndarray  # per account: worst of the cross pool and of each isolated position; inf if nothing required


def _valuation(book: DemoBook, moves: dict[str, float] | None = None) -> _Valuation:
    """Standard margin at as_of. Value: spot q x price, perpetual q x (price - entry), option q x
    Black-Scholes value (all x contract size); requirement |q| x price x size x maintenance rate, options on
    their underlying's price. A spot move carries its perpetuals, as `shock` does."""
    instruments = book.instruments
    kind = _kinds(book)
    price = np.full(len(kind), np.nan)
    price[book.prices.instrument] = book.prices.price[:, -1]
    volatility = np.full(len(kind), np.nan)
    volatility[book.prices.instrument] = book.prices.implied_volatility[:, -1]
    for symbol, fraction in (moves or {}).items():
        moved = _symbol_row(book, symbol)
        price[moved] *= 1 + fraction
        price[(kind == "perpetual") & (instruments.underlying == moved)] *= 1 + fraction

    option_value = np.full(len(kind), np.nan)
    for option_row in np.flatnonzero(kind == "option").tolist():
        row = int(option_row)
        under = instruments.underlying[row]
        expiry = instruments.expiry[row]
        assert expiry is not None
        option_value[row] = _black_scholes(
            price[under],
            instruments.strike[row],
            (expiry - book.as_of).total_seconds() / (365 * 86400),
            volatility[under],
            instruments.carry_yield[under],
            instruments.option_type[row] == "call",
        )

    positions, n = book.positions, len(book.accounts.code)
    rows, quantity = positions.instrument, positions.quantity
    size = instruments.contract_size[rows]
    position_kind = kind[rows]
    value = np.select(
        [position_kind == "option", position_kind == "perpetual"],
        [quantity * option_value[rows] * size, quantity * (price[rows] - positions.entry_price) * size],
        default=quantity * price[rows] * size,
    )
    reference = np.where(position_kind == "option", instruments.underlying[rows], rows)
    requirement = np.abs(quantity) * price[reference] * size * instruments.maintenance_rate[rows]
    isolated = ~np.isnan(positions.isolated_margin)

    debt = np.zeros(n)
    np.add.at(debt, book.loans.account, book.loans.principal + book.loans.accrued_interest)
    equity = book.accounts.cash - debt + np.bincount(positions.account[~isolated], value[~isolated], n)
    required = np.bincount(positions.account[~isolated], requirement[~isolated], n)
    ratio = np.full(n, np.inf)
    np.divide(equity, required, out=ratio, where=required > 0)
    isolated_ratio = (positions.isolated_margin[isolated] + value[isolated]) / requirement[isolated]
    np.minimum.at(ratio, positions.account[isolated], isolated_ratio)
    return _Valuation(equity=equity, ratio=ratio)


def _margin_ratios(book: DemoBook, moves: dict[str, float] | None = None) -> np.ndarray:
    return _valuation(book, moves).ratio


def _black_scholes(spot: float, strike: float, years: float, sigma: float, carry: float, call: bool) -> float:
    d1 = (np.log(spot / strike) + (RISK_FREE_RATE - carry + sigma**2 / 2) * years) / (sigma * np.sqrt(years))
    d2 = d1 - sigma * np.sqrt(years)
    value = spot * np.exp(-carry * years) * ndtr(d1) - strike * np.exp(-RISK_FREE_RATE * years) * ndtr(d2)
    if not call:
        value += strike * np.exp(-RISK_FREE_RATE * years) - spot * np.exp(-carry * years)
    return float(value)


def _bands(ratio: np.ndarray) -> dict[str, float]:
    return {
        HealthBand.HEALTHY: float(np.mean(ratio >= 1.25)),
        HealthBand.WARNING: float(np.mean((ratio >= 1.0) & (ratio < 1.25))),
        "below_1": float(np.mean(ratio < 1.0)),
    }


def test_black_scholes_reference_matches_quantlib_figure() -> None:
    # DOMAIN.md: QuantLib's AnalyticEuropeanEngine, S=100, K=100, r=5%, q=0, s=20%, T=1: call = 10.4506.
    d1 = (np.log(1.0) + (0.05 + 0.02)) / 0.2
    call = 100 * ndtr(d1) - 100 * np.exp(-0.05) * ndtr(d1 - 0.2)
    assert round(float(call), 4) == 10.4506


# --- Determinism and arguments -------------------------------------------------------------------------


def _columns(book: DemoBook) -> dict[str, Any]:
    flat: dict[str, Any] = {"seed": book.seed, "as_of": book.as_of}
    for part in dataclasses.fields(book):
        value = getattr(book, part.name)
        if dataclasses.is_dataclass(value):
            for column in dataclasses.fields(value):
                flat[f"{part.name}.{column.name}"] = getattr(value, column.name)
    return flat


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, np.ndarray):
        return left.dtype == right.dtype and np.array_equal(left, right, equal_nan=left.dtype.kind == "f")
    return bool(left == right)


def test_same_seed_gives_the_identical_book() -> None:
    first = _columns(demo_book_generate(accounts=300, seed=5, as_of=AS_OF))
    second = _columns(demo_book_generate(accounts=300, seed=5, as_of=AS_OF))
    assert first.keys() == second.keys()
    assert [name for name in first if not _same(first[name], second[name])] == []


def test_another_seed_gives_another_book() -> None:
    first = demo_book_generate(accounts=300, seed=5, as_of=AS_OF)
    second = demo_book_generate(accounts=300, seed=6, as_of=AS_OF)
    assert not np.array_equal(first.prices.price, second.prices.price)
    assert not np.array_equal(first.accounts.cash, second.accounts.cash)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"accounts": 0}, "accounts"),
        ({"accounts": 10, "history_days": 1}, "history_days"),
        ({"accounts": 10, "as_of": datetime(2026, 3, 2)}, "as_of"),  # naive
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        demo_book_generate(**arguments)
    assert raised.value.context["field"] == field


# --- Universe and prices --------------------------------------------------------------------------------


def test_universe_has_crypto_with_perpetuals_equities_indexes_and_options(book: DemoBook) -> None:
    instruments, kind = book.instruments, _kinds(book)
    classes = np.array(instruments.scenario_class)
    crypto_spots = np.flatnonzero((kind == "spot") & (classes == "crypto"))
    perps = np.flatnonzero(kind == "perpetual")
    assert len(crypto_spots) == 30
    assert sorted(instruments.underlying[perps]) == sorted(crypto_spots)
    assert all(instruments.symbol[p] == f"{instruments.symbol[instruments.underlying[p]]}-PERP" for p in perps)
    assert int(np.sum((kind == "spot") & (classes == "equity"))) == 50
    indexes = np.flatnonzero((kind == "spot") & np.isin(classes, ["broad_index", "index"]))
    assert sorted(instruments.symbol[k] for k in indexes) == [
        "NDX",
        "RUT",
        "SPX",
    ]
    assert instruments.scenario_class[_symbol_row(book, "SPX")] == "broad_index"
    option_underlyings = {instruments.symbol[u] for u in instruments.underlying[kind == "option"]}
    assert option_underlyings == {"BTC", "ETH", "SPX", "NDX", "RUT", "AAPL", "NVDA", "TSLA"}


def test_rates_are_ordered_and_realistic(book: DemoBook) -> None:
    instruments, kind = book.instruments, _kinds(book)
    classes = np.array(instruments.scenario_class)
    assert np.all(instruments.maintenance_rate > 0)
    assert np.all(instruments.maintenance_rate <= instruments.initial_rate)
    assert np.all(instruments.initial_rate <= 1)
    assert np.all((instruments.haircut >= 0) & (instruments.haircut <= 1))
    spot = kind == "spot"
    assert np.all((instruments.haircut[spot] >= 0.1) & (instruments.haircut[spot] <= 0.5))
    equity = spot & (classes == "equity")
    assert np.all(instruments.initial_rate[equity] == 0.5)
    assert np.all(instruments.maintenance_rate[equity] >= 0.25)  # FINRA 4210 minimum
    btc, thin = _symbol_row(book, "BTC"), _symbol_row(book, "WIF")
    assert instruments.maintenance_rate[btc] < instruments.maintenance_rate[thin]
    assert instruments.average_daily_volume[btc] * 95_000 > 100 * instruments.average_daily_volume[thin] * 2
    perp_rates = instruments.maintenance_rate[kind == "perpetual"]
    assert perp_rates.min() == 0.05
    crypto_volatility = instruments.daily_volatility[spot & (classes == "crypto")]
    assert crypto_volatility.min() >= 0.03
    assert crypto_volatility.max() <= 0.08
    assert np.all((instruments.daily_volatility[equity] >= 0.015) & (instruments.daily_volatility[equity] <= 0.03))


def test_every_option_has_its_terms(book: DemoBook) -> None:
    instruments, kind = book.instruments, _kinds(book)
    pattern = re.compile(r"^([A-Z.]+)-(\d{8})-(\d+(?:\.\d+)?)-([CP])$")
    options = np.flatnonzero(kind == "option")
    assert len(options) == 8 * 13 * 4 * 2
    for row in options:
        match = pattern.match(instruments.symbol[row])
        assert match is not None, instruments.symbol[row]
        under = instruments.underlying[row]
        expiry = instruments.expiry[row]
        assert expiry is not None
        assert kind[under] == "spot"
        assert match.group(1) == instruments.symbol[under]
        assert match.group(2) == f"{expiry:%Y%m%d}"
        assert float(match.group(3)) == instruments.strike[row] > 0
        assert {"C": "call", "P": "put"}[match.group(4)] == instruments.option_type[row]
        assert timedelta(days=7) <= expiry - AS_OF <= timedelta(days=190)
        assert instruments.contract_size[row] == (1 if instruments.scenario_class[row] == "crypto" else 100)
    strikes = instruments.strike[options] / np.array([_last_close(book, u) for u in instruments.underlying[options]])
    assert strikes.min() >= 0.68
    assert strikes.max() <= 1.32
    assert np.all(instruments.price_row[options] == -1)  # no Price rows: the model prices them


def _last_close(book: DemoBook, row: int) -> float:
    return float(book.prices.price[book.instruments.price_row[row], -1])


def test_price_history_ends_at_as_of_and_perpetuals_track_their_spot(book: DemoBook) -> None:
    prices, instruments = book.prices, book.instruments
    assert len(prices.time) == 250
    assert prices.time[-1] == AS_OF
    assert prices.time[0] == AS_OF - timedelta(days=249)
    assert np.all(prices.price > 0)
    for perp in np.flatnonzero(_kinds(book) == "perpetual"):
        spot_row = instruments.price_row[instruments.underlying[perp]]
        assert np.array_equal(prices.price[instruments.price_row[perp]], prices.price[spot_row])
        assert np.all(np.isnan(prices.implied_volatility[instruments.price_row[perp]]))
    underlyings = np.isin(prices.instrument, np.flatnonzero(_kinds(book) == "spot"))
    assert np.all(prices.implied_volatility[underlyings] > 0)


def test_crypto_moves_with_bitcoin_and_equities_with_the_index(book: DemoBook) -> None:
    def returns(symbol: str) -> np.ndarray:
        return np.diff(np.log(book.prices.price[book.instruments.price_row[_symbol_row(book, symbol)]]))

    assert np.corrcoef(returns("BTC"), returns("ETH"))[0, 1] > 0.7
    assert np.corrcoef(returns("BTC"), returns("WIF"))[0, 1] > 0.3
    assert np.corrcoef(returns("SPX"), returns("AAPL"))[0, 1] > 0.4
    # Annualised implied volatility sits above the daily reference volatility scaled up.
    btc = _symbol_row(book, "BTC")
    implied = book.prices.implied_volatility[book.instruments.price_row[btc], -1]
    assert 0.8 * 0.03 * np.sqrt(365) < implied < 1.5 * 0.03 * np.sqrt(365)


# --- Accounts, positions, loans -------------------------------------------------------------------------


def test_archetypes_come_in_the_documented_proportions(book: DemoBook) -> None:
    archetype = book.accounts.archetype
    measured = {name: float(np.mean(archetype == k)) for k, name in enumerate(ARCHETYPES)}
    assert measured == pytest.approx(SHARES, abs=0.025)


def test_about_five_positions_per_account_one_in_five_an_option(book: DemoBook) -> None:
    positions = book.positions
    assert 4.5 <= len(positions.account) / len(book.accounts.code) <= 5.5
    assert np.all(np.bincount(positions.account, minlength=len(book.accounts.code)) >= 1)
    assert 0.15 <= np.mean(_kinds(book)[positions.instrument] == "option") <= 0.25
    keys = positions.account * len(book.instruments.symbol) + positions.instrument
    assert len(np.unique(keys)) == len(keys)  # one position per instrument per account


def test_isolated_margin_only_on_perpetuals_of_isolated_accounts(book: DemoBook) -> None:
    positions, accounts = book.positions, book.accounts
    has_margin = ~np.isnan(positions.isolated_margin)
    kind = _kinds(book)[positions.instrument]
    assert np.all(np.isin(kind[has_margin], ["perpetual", "future"]))
    assert np.all(accounts.isolated[positions.account[has_margin]])
    assert np.all(positions.isolated_margin[has_margin] >= 0)
    # Every perpetual in an isolated-mode account is isolated; none elsewhere.
    isolated_perp = (kind == "perpetual") & accounts.isolated[positions.account]
    assert np.array_equal(has_margin, isolated_perp)
    assert 0.08 <= np.mean(accounts.isolated) <= 0.16


def test_hedged_accounts_hold_the_spot_against_a_short_perpetual_or_a_put(book: DemoBook) -> None:
    positions, instruments = book.positions, book.instruments
    kind = _kinds(book)[positions.instrument]
    hedged = np.flatnonzero(book.accounts.archetype == ARCHETYPES.index("hedged"))
    short_perp = (kind == "perpetual") & (positions.quantity < 0)
    long_put = (kind == "option") & (positions.quantity > 0)
    for account in hedged:
        mine = positions.account == account
        held = set(positions.instrument[mine & (kind == "spot")].tolist())
        perp_hedged = any(instruments.underlying[r] in held for r in positions.instrument[mine & short_perp])
        put_hedged = bool(np.any(mine & long_put))
        assert perp_hedged or put_hedged, book.accounts.code[account]


def test_concentrated_accounts_hold_most_of_their_value_in_one_thin_name(book: DemoBook) -> None:
    positions = book.positions
    kind = _kinds(book)[positions.instrument]
    price = np.full(len(kind), np.nan)
    price[book.prices.instrument] = book.prices.price[:, -1]
    value = positions.quantity * price[positions.instrument]
    concentrated = np.flatnonzero(book.accounts.archetype == ARCHETYPES.index("concentrated"))
    largest_share = []
    for account in concentrated:
        mine = (positions.account == account) & (kind == "spot")
        largest_share.append(value[mine].max() / value[mine].sum())
        assert book.instruments.haircut[positions.instrument[mine][np.argmax(value[mine])]] >= 0.3
    assert np.median(largest_share) > 0.75
    borrowed = np.isin(concentrated, book.loans.account)
    assert np.mean(borrowed) > 0.9


def test_money_is_rounded_and_never_negative(book: DemoBook) -> None:
    accounts, loans, clients = book.accounts, book.loans, book.clients
    for amounts in (accounts.cash, loans.principal, loans.accrued_interest, clients.external_capacity):
        assert np.all(amounts >= 0)
        assert np.array_equal(np.round(amounts, 2), amounts)
    assert np.all(loans.principal > 0)
    assert np.all((loans.rate_annual >= 0.05) & (loans.rate_annual <= 0.15))
    assert len(np.unique(loans.account)) == len(loans.account)  # one active loan per account
    assert 0.5 <= len(loans.account) / len(accounts.code) <= 0.8
    assert 0.2 <= np.mean(clients.external_capacity > 0) <= 0.4


def test_clients_groups_and_codes(book: DemoBook) -> None:
    clients, accounts, groups = book.clients, book.accounts, book.groups
    sizes = np.bincount(clients.group[clients.group >= 0])
    assert len(sizes) == len(groups.code)
    assert sizes.min() >= 2
    assert sizes.max() <= 5
    assert 0.07 <= np.mean(clients.group >= 0) <= 0.11
    accounts_per_client = np.bincount(accounts.client, minlength=len(clients.code))
    assert accounts_per_client.min() >= 1
    assert np.mean(accounts_per_client > 1) > 0.1
    assert accounts.code[0] == "ACC000001"
    assert clients.code[0] == "CL000001"
    assert groups.code[0] == "GRP0001"
    assert set(np.unique(clients.credit_tier).tolist()) == {0, 1, 2, 3}


def test_portfolio_margin_for_big_option_and_hedged_books(book: DemoBook) -> None:
    accounts = book.accounts
    portfolio = accounts.portfolio_margin
    assert 0.10 <= np.mean(portfolio) <= 0.20
    option_or_hedged = np.isin(accounts.archetype, [ARCHETYPES.index("option_heavy"), ARCHETYPES.index("hedged")])
    assert np.mean(option_or_hedged[portfolio]) > 0.8
    assert not np.any(portfolio & accounts.isolated)


@pytest.mark.parametrize("accounts", [1, 2, 7])
def test_tiny_books_are_generated_too(accounts: int) -> None:
    book = demo_book_generate(accounts=accounts, seed=accounts, history_days=3, as_of=AS_OF)
    assert len(book.accounts.code) == accounts
    assert np.all(np.bincount(book.positions.account, minlength=accounts) >= 1)
    assert np.all(book.accounts.cash >= 0)


# --- Calibration, checked with the independent valuation above --------------------------------------------


def test_most_accounts_are_healthy_some_in_warning_a_few_below_one(book: DemoBook) -> None:
    bands = _bands(_margin_ratios(book))
    assert 0.80 <= bands[HealthBand.HEALTHY] <= 0.90
    assert 0.05 <= bands[HealthBand.WARNING] <= 0.13
    assert 0.02 <= bands["below_1"] <= 0.08


def test_calibration_puts_cross_accounts_at_their_target_ratio(book: DemoBook) -> None:
    ratio = _margin_ratios(book)
    cross = ~book.accounts.isolated & np.isfinite(ratio)
    assert np.abs(ratio[cross] - book.accounts.margin_ratio_target[cross]).max() < 0.01


def test_portfolio_margin_accounts_have_the_finra_minimum_equity(book: DemoBook) -> None:
    equity = _valuation(book).equity
    assert equity[book.accounts.portfolio_margin].min() >= 100_000 * 0.99


def test_derivatives_accounts_owe_only_when_their_equity_is_gone(book: DemoBook) -> None:
    cash_only = np.isin(book.accounts.archetype, [ARCHETYPES.index("isolated_perps"), ARCHETYPES.index("perp_trader")])
    owing = np.zeros(len(book.accounts.code), dtype=bool)
    owing[book.loans.account] = True
    assert np.all(_valuation(book).equity[cash_only & owing] < 0)
    assert np.mean(owing[~cash_only & (book.accounts.archetype == ARCHETYPES.index("leveraged_long"))]) == 1.0


def test_bitcoin_falling_a_quarter_pushes_accounts_into_distress(book: DemoBook) -> None:
    before = _bands(_margin_ratios(book))
    after = _bands(_margin_ratios(book, {"BTC": -0.25}))
    assert after["below_1"] >= before["below_1"] + 0.03
    assert after[HealthBand.HEALTHY] <= before[HealthBand.HEALTHY] - 0.04


def test_a_thin_coin_falling_hits_the_accounts_concentrated_in_it(book: DemoBook) -> None:
    positions, accounts = book.positions, book.accounts
    concentrated = accounts.archetype[positions.account] == ARCHETYPES.index("concentrated")
    thin = np.array([book.instruments.haircut[r] == 0.5 for r in positions.instrument])
    coin = int(np.bincount(positions.instrument[concentrated & thin]).argmax())
    holders = np.unique(positions.account[(positions.instrument == coin) & concentrated])
    assert len(holders) >= 10
    before = _margin_ratios(book)[holders]
    after = _margin_ratios(book, {book.instruments.symbol[coin]: -0.40})[holders]
    assert np.mean(after < 1.0) >= np.mean(before < 1.0) + 0.25


# --- Writing ---------------------------------------------------------------------------------------------


def _database_counts() -> dict[str, int]:
    return {
        "groups": ClientGroup.objects.count(),
        "clients": Client.objects.count(),
        "instruments": Instrument.objects.count(),
        "prices": Price.objects.count(),
        "accounts": MarginAccount.objects.count(),
        "loans": MarginLoan.objects.count(),
        "positions": Position.objects.count(),
    }


def _assert_stored_exactly(book: DemoBook) -> None:
    """Spot checks that the Decimals stored are the generator's figures rounded to their places."""
    accounts = {a.code: a for a in MarginAccount.objects.select_related("client__group")}
    for k in range(0, len(book.accounts.code), 37):
        account = accounts[book.accounts.code[k]]
        assert account.cash == Decimal(f"{book.accounts.cash[k]:.2f}")
        assert account.client.code == book.clients.code[book.accounts.client[k]]
        assert account.mode == ("isolated" if book.accounts.isolated[k] else "cross")
        assert account.margin_model == ("portfolio" if book.accounts.portfolio_margin[k] else "standard")
    stored = {
        (p.account.code, p.instrument.symbol): p for p in Position.objects.select_related("account", "instrument")
    }
    for k in range(0, len(book.positions.account), 53):
        key = (book.accounts.code[book.positions.account[k]], book.instruments.symbol[book.positions.instrument[k]])
        position = stored[key]
        assert position.quantity == Decimal(f"{book.positions.quantity[k]:.8f}")
        assert position.entry_price == Decimal(f"{book.positions.entry_price[k]:.8f}")
        margin = book.positions.isolated_margin[k]
        assert position.isolated_margin == (None if np.isnan(margin) else Decimal(f"{margin:.2f}"))
    btc = Instrument.objects.get(symbol="BTC")
    latest = Price.objects.filter(instrument=btc).latest("time")
    assert latest.time == book.as_of
    assert latest.price == Decimal(f"{_last_close(book, _symbol_row(book, 'BTC')):.8f}")
    assert Instrument.objects.exclude(currency="USD").count() == 0
    assert MarginAccount.objects.exclude(base_currency="USD").count() == 0
    assert not Price.objects.filter(instrument__kind="option").exists()
    connection.check_constraints()  # foreign keys are deferred: check them before the test rolls back


@pytest.mark.django_db
def test_write_stores_what_was_generated() -> None:
    # given
    book = demo_book_generate(accounts=200, seed=3, history_days=SHORT_HISTORY, as_of=AS_OF)
    # when
    written = demo_book_write(book=book)
    # then
    assert written == book.counts()
    assert _database_counts() == book.counts()
    _assert_stored_exactly(book)


@pytest.mark.django_db
def test_replace_deletes_the_old_book_with_its_risk_state() -> None:
    # given a book, swept once
    old = demo_book_generate(accounts=200, seed=3, history_days=SHORT_HISTORY, as_of=AS_OF)
    demo_book_write(book=old)
    old_max_account_id = MarginAccount.objects.order_by("-id").values_list("id", flat=True)[0]
    sweep = Sweep.objects.create(started_at=timezone.now(), as_of=AS_OF, model_version="test")
    _risk_state_create(MarginAccount.objects.first(), sweep)
    # when
    new = demo_book_generate(accounts=120, seed=4, history_days=SHORT_HISTORY, as_of=AS_OF + timedelta(days=1))
    demo_book_write(book=new, replace=True)
    # then
    assert _database_counts() == new.counts()
    assert not Sweep.objects.exists()
    assert not RiskState.objects.exists()
    assert set(MarginAccount.objects.values_list("code", flat=True)) == set(new.accounts.code)
    assert MarginAccount.objects.order_by("id").values_list("id", flat=True)[0] > old_max_account_id
    _assert_stored_exactly(new)


def _risk_state_create(account: MarginAccount | None, sweep: Sweep) -> None:
    assert account is not None
    zero = Decimal(0)
    RiskState.objects.create(
        account=account,
        sweep=sweep,
        computed_at=timezone.now(),
        equity=zero,
        market_value=zero,
        collateral_value=zero,
        initial_requirement=zero,
        maintenance_requirement=zero,
        shortfall_maintenance=zero,
        shortfall_initial=zero,
        worst_scenario_loss=zero,
        band=HealthBand.HEALTHY,
    )


@pytest.mark.django_db
def test_replace_deletes_the_sweeps_with_their_shards() -> None:
    # given a book swept in two shards (a shard row per account-id range, risk state and snapshots)
    old = demo_book_generate(accounts=60, seed=3, history_days=SHORT_HISTORY, as_of=AS_OF)
    demo_book_write(book=old)
    sweep_run(as_of=AS_OF, shards=2)
    assert SweepShard.objects.count() == 2
    assert RiskState.objects.count() == RiskSnapshot.objects.count() == 60
    # when
    new = demo_book_generate(accounts=40, seed=4, history_days=SHORT_HISTORY, as_of=AS_OF)
    demo_book_write(book=new, replace=True)
    # then the old book's risk is gone with it, and the new book sweeps
    assert _database_counts() == new.counts()
    assert not Sweep.objects.exists()
    assert not SweepShard.objects.exists()
    assert not RiskState.objects.exists()
    assert not RiskSnapshot.objects.exists()
    _assert_stored_exactly(new)
    swept = sweep_run(as_of=AS_OF)
    assert swept.accounts == 40
    assert RiskState.objects.filter(sweep=swept).count() == 40


@pytest.mark.django_db
def test_replace_refuses_while_rows_outside_the_book_refer_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a swept book, with sweep shards standing in for another app's rows (restructuring and rules
    # have no models yet): they are taken out of the book, so they point into it from outside
    old = demo_book_generate(accounts=30, seed=3, history_days=SHORT_HISTORY, as_of=AS_OF)
    demo_book_write(book=old)
    sweep = sweep_run(as_of=AS_OF)
    outside = tuple(model for model in demo_book_write_module._BOOK_MODELS if model is not SweepShard)
    monkeypatch.setattr(demo_book_write_module, "_BOOK_MODELS", outside)
    # when
    new = demo_book_generate(accounts=20, seed=4, history_days=SHORT_HISTORY, as_of=AS_OF)
    with pytest.raises(ConflictError, match=r"^accounts\.SweepShard rows refer to the book \(sweep\)"):
        demo_book_write(book=new, replace=True)
    # then nothing was deleted nor written
    assert _database_counts() == old.counts()
    assert list(Sweep.objects.values_list("pk", flat=True)) == [sweep.pk]
    assert SweepShard.objects.filter(sweep=sweep).count() == 1
    assert RiskState.objects.count() == 30


@pytest.mark.django_db
def test_stored_volatility_is_what_the_price_import_computes() -> None:
    # given a written book: its EWMA and stressed volatility as the generator stored them
    book = demo_book_generate(accounts=20, seed=3, history_days=60, as_of=AS_OF)
    demo_book_write(book=book)
    linear = Instrument.objects.exclude(kind="option")
    generated = {row[0]: row[1:] for row in linear.values_list("symbol", "ewma_volatility", "stressed_volatility")}
    assert all(ewma is not None and stressed is not None for ewma, stressed in generated.values())
    # when the price import's refresh recomputes them from the stored closes
    instrument_volatility_refresh(as_of=book.as_of)
    # then nothing changes: the same kernel, the same closes (to float rounding through the database)
    refreshed = {row[0]: row[1:] for row in linear.values_list("symbol", "ewma_volatility", "stressed_volatility")}
    assert refreshed.keys() == generated.keys()
    for symbol, (ewma, stressed) in generated.items():
        assert refreshed[symbol] == pytest.approx((ewma, stressed), rel=1e-12, abs=0), symbol
    assert not Instrument.objects.filter(kind="option", ewma_volatility__isnull=False).exists()


@pytest.mark.django_db
def test_without_replace_an_existing_book_is_left_alone() -> None:
    # given
    first = demo_book_generate(accounts=50, seed=3, history_days=SHORT_HISTORY, as_of=AS_OF)
    demo_book_write(book=first)
    # when
    with pytest.raises(ConflictError):
        demo_book_write(
            book=demo_book_generate(accounts=80, seed=4, history_days=SHORT_HISTORY, as_of=AS_OF), replace=False
        )
    # then
    assert _database_counts() == first.counts()


@pytest.mark.django_db
def test_without_replace_an_empty_database_is_filled() -> None:
    book = demo_book_generate(accounts=60, seed=8, history_days=SHORT_HISTORY, as_of=AS_OF)
    assert demo_book_write(book=book, replace=False) == book.counts()
    assert _database_counts() == book.counts()


@pytest.mark.django_db
def test_rows_created_after_the_load_get_fresh_ids() -> None:
    demo_book_write(book=demo_book_generate(accounts=40, seed=3, history_days=SHORT_HISTORY, as_of=AS_OF))
    highest = Client.objects.order_by("-id").values_list("id", flat=True)[0]
    client = Client.objects.create(code="CL-NEW", name="New client")
    assert client.pk > highest


@pytest.mark.django_db
def test_generate_book_command_prints_the_counts() -> None:
    out = StringIO()
    call_command(
        "generate_book",
        "--accounts",
        "40",
        "--seed",
        "9",
        "--history-days",
        "20",
        "--as-of",
        AS_OF.isoformat(),
        stdout=out,
    )
    book = demo_book_generate(accounts=40, seed=9, history_days=20, as_of=AS_OF)
    for name, count in book.counts().items():
        assert re.search(rf"^{name}\s+{count:,}$", out.getvalue(), re.MULTILINE), name
    assert _database_counts() == book.counts()


@pytest.mark.postgres
@pytest.mark.django_db
def test_copy_writes_five_thousand_accounts_on_postgresql() -> None:
    # given
    book = demo_book_generate(accounts=5000, seed=21, as_of=AS_OF)
    # when
    written = demo_book_write(book=book)
    # then
    assert written == book.counts()
    assert _database_counts() == book.counts()
    assert book.counts()["positions"] > 20_000
    _assert_stored_exactly(book)
