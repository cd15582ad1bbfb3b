"""What each demo account holds: positions drawn by archetype, rounded to lots, entered at past closes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from accounts import risk
from demo.book.market import (
    _EQUITY_CONTRACT_SIZE,
    _M80,
    _M85,
    _M90,
    _M95,
    _M100,
    _M110,
    _M120,
    _OPTION_CHEAPEST_CRYPTO,
    _OPTION_CHEAPEST_OTHER,
    _OPTION_UNDERLYINGS,
    _OPTIONABLE_STOCKS,
    CLASS_CRYPTO,
    OPTION_MONEYNESS,
    RISK_FREE_RATE,
    _round_to,
    _Universe,
)
from demo.book.rows import BoolArray, FloatArray, IntArray, PositionRows


@dataclass
class _Legs:
    """Positions as they are drawn, before de-duplication and calibration."""

    account: list[IntArray]
    instrument: list[IntArray]
    quantity: list[FloatArray]  # in units; rounded to lots later
    days_ago: list[IntArray]  # entry day

    def add(self, account: IntArray, instrument: IntArray, quantity: FloatArray, days_ago: IntArray) -> None:
        self.account.append(account.astype(np.int64))
        self.instrument.append(instrument.astype(np.int64))
        self.quantity.append(quantity.astype(np.float64))
        self.days_ago.append(days_ago.astype(np.int64))


def _pick_distinct(
    rng: np.random.Generator,
    candidates: IntArray,
    weights: FloatArray,
    counts: IntArray,
    forced: IntArray | None = None,
) -> tuple[IntArray, IntArray, IntArray]:
    """For each owner i, `counts[i]` distinct candidates drawn by weight without replacement (Gumbel top-k),
    with `forced[i]` (a position in candidates) always first. Returns flat (owner, slot, instrument)."""
    n, m = len(counts), len(candidates)
    counts = np.minimum(counts, m)
    keys = np.log(weights)[None, :] + rng.gumbel(size=(n, m))
    if forced is not None:
        keys[np.arange(n), forced] = np.inf
    width = int(counts.max())
    order = np.argsort(-keys, axis=1)[:, :width]
    taken = np.arange(width)[None, :] < counts[:, None]
    owner = np.broadcast_to(np.arange(n)[:, None], (n, width))[taken]
    slot = np.broadcast_to(np.arange(width)[None, :], (n, width))[taken]
    return owner.astype(np.int64), slot.astype(np.int64), candidates[order[taken]]


def _shares_within(rng: np.random.Generator, owner: IntArray, n_owners: int) -> FloatArray:
    """Random portfolio weights summing to 1 within each owner (a flat Dirichlet)."""
    raw = rng.exponential(size=len(owner))
    total = np.bincount(owner, weights=raw, minlength=n_owners)
    shares: FloatArray = raw / total[owner]
    return shares


def _liquidity_weights(universe: _Universe, rows: IntArray) -> FloatArray:
    """Clients favour liquid names: weight by the square root of the traded value."""
    instruments = universe.instruments
    traded = instruments.average_daily_volume[rows] * universe.price_now[rows]
    result: FloatArray = np.sqrt(traded)
    return result


def _units(universe: _Universe, rows: IntArray, notional_usd: FloatArray) -> FloatArray:
    """Quantity for a notional: options are sized on their underlying's notional."""
    instruments = universe.instruments
    is_option = np.isnan(universe.price_now[rows])
    price = np.where(is_option, universe.price_now[instruments.underlying[rows]], universe.price_now[rows])
    result: FloatArray = notional_usd / (price * instruments.contract_size[rows])
    return result


def _days_ago(rng: np.random.Generator, size: int, max_days_ago: int) -> IntArray:
    return rng.integers(1, max_days_ago + 1, size=size).astype(np.int64)


def _option_row(
    universe: _Universe, underlying: IntArray, expiry: IntArray, strike: IntArray, put: BoolArray
) -> IntArray:
    """Row of an option in the grid: underlying k, expiry index, strike index (into OPTION_MONEYNESS)."""
    rows: IntArray = universe.option_first[underlying] + (expiry * len(OPTION_MONEYNESS) + strike) * 2 + put
    return rows


def _option_underlyings_pick(
    rng: np.random.Generator,
    universe: _Universe,
    *,
    crypto: BoolArray,
    notional: FloatArray,
    allowed: Sequence[str] | None = None,
) -> IntArray:
    """Option underlyings (k) by popularity, within the account's side of the house (exchange or broker)
    and among those whose smallest trade is not much above the notional wanted: a $50,000 book does not
    buy an SPX put worth $590,000 of index. -1 where nothing fits."""
    names = [name for name, _, _ in _OPTION_UNDERLYINGS]
    weight = np.array([w for _, _, w in _OPTION_UNDERLYINGS])
    is_crypto = universe.instruments.asset_class[universe.option_underlying] == CLASS_CRYPTO
    fits = universe.option_min_notional[None, :] <= 1.5 * notional[:, None]
    weights = weight[None, :] * fits * (is_crypto[None, :] == crypto[:, None])
    if allowed is not None:
        weights = weights * np.isin(names, allowed)[None, :]
    total = weights.sum(axis=1)
    chosen = (np.cumsum(weights, axis=1) > (rng.random(len(crypto)) * total)[:, None]).argmax(axis=1)
    result: IntArray = np.where(total > 0, chosen, -1).astype(np.int64)
    return result


def _normalised(weights: FloatArray) -> FloatArray:
    result: FloatArray = weights / weights.sum()
    return result


def _spot_basket(
    rng: np.random.Generator,
    universe: _Universe,
    legs: _Legs,
    accounts: IntArray,
    gross: FloatArray,
    counts: IntArray,
    candidates: IntArray,
    max_days_ago: int,
    forced: IntArray | None = None,
) -> tuple[IntArray, IntArray, IntArray, FloatArray, IntArray]:
    """Long spot holdings spread over `counts` distinct names; returns the legs (owner, slot, instrument,
    quantity, days ago) so that callers can hedge some of them."""
    owner, slot, rows = _pick_distinct(rng, candidates, _liquidity_weights(universe, candidates), counts, forced)
    notional = gross[owner] * _shares_within(rng, owner, len(accounts))
    quantity = _units(universe, rows, notional)
    days = _days_ago(rng, len(owner), max_days_ago)
    legs.add(accounts[owner], rows, quantity, days)
    return owner, slot, rows, quantity, days


def _leveraged_long(
    rng: np.random.Generator, universe: _Universe, legs: _Legs, accounts: IntArray, gross: FloatArray, max_days_ago: int
) -> None:
    n = len(accounts)
    crypto = rng.random(n) < 0.55
    for side, candidates, mean_extra in ((crypto, universe.crypto_spots, 3.0), (~crypto, universe.equities, 3.5)):
        members = np.flatnonzero(side)
        if len(members):
            counts = np.minimum(2 + rng.poisson(mean_extra, size=len(members)), 12)
            _spot_basket(rng, universe, legs, accounts[members], gross[members], counts, candidates, max_days_ago)
    # Most buy a long call for upside or a put for protection.
    with_option = np.flatnonzero(rng.random(n) < 0.6)
    notional = gross[with_option] * rng.uniform(0.1, 0.4, len(with_option))
    names = _option_underlyings_pick(rng, universe, crypto=crypto[with_option], notional=notional)
    with_option, notional, names = with_option[names >= 0], notional[names >= 0], names[names >= 0]
    if len(with_option):
        put = rng.random(len(with_option)) < 0.5
        strike = np.where(
            put, rng.integers(_M80, _M95 + 1, len(with_option)), rng.integers(_M100, _M120 + 1, len(with_option))
        )
        expiry = rng.integers(1, 4, len(with_option))
        rows = _option_row(universe, names, expiry, strike, put)
        legs.add(
            accounts[with_option],
            rows,
            _units(universe, rows, notional),
            _days_ago(rng, len(with_option), max_days_ago),
        )


def _hedged(
    rng: np.random.Generator, universe: _Universe, legs: _Legs, accounts: IntArray, gross: FloatArray, max_days_ago: int
) -> None:
    n = len(accounts)
    crypto = rng.random(n) < 0.6
    # Crypto: long coins, the first 1-3 of them hedged with a short perpetual (basis or carry trade).
    members = np.flatnonzero(crypto)
    if len(members):
        pairs = 1 + rng.binomial(2, 0.35, size=len(members))
        counts = pairs + np.minimum(rng.poisson(1.2, size=len(members)), 3)
        liquid = universe.crypto_spots[universe.crypto_tier <= 3]
        owner, slot, rows, quantity, days = _spot_basket(
            rng, universe, legs, accounts[members], gross[members], counts, liquid, max_days_ago
        )
        hedged = slot < pairs[owner]
        hedge_ratio = rng.uniform(0.7, 1.0, size=int(hedged.sum()))
        legs.add(
            accounts[members][owner[hedged]],
            universe.perp_of_spot[rows[hedged]],
            -quantity[hedged] * hedge_ratio,
            days[hedged],
        )
    # Equities: a stock portfolio, always holding an optionable stock, with protective puts on it (and on
    # the other optionable stocks held, mostly), and an index put when the book is big enough for one.
    members = np.flatnonzero(~crypto)
    if len(members):
        counts = np.minimum(2 + rng.poisson(2.0, size=len(members)), 8)
        optionable = np.array([universe.instruments.symbol.index(name) for name in _OPTIONABLE_STOCKS])
        forced = np.searchsorted(universe.equities, rng.choice(optionable, size=len(members)))
        owner, slot, rows, quantity, days = _spot_basket(
            rng, universe, legs, accounts[members], gross[members], counts, universe.equities, max_days_ago, forced
        )
        protect = (universe.option_underlying_of[rows] >= 0) & ((slot == 0) | (rng.random(len(rows)) < 0.6))
        k = int(protect.sum())
        stock_put = _option_row(
            universe,
            universe.option_underlying_of[rows[protect]],
            rng.integers(1, 4, size=k),
            rng.integers(_M85, _M95 + 1, size=k),
            np.ones(k, dtype=bool),
        )
        contracts = quantity[protect] * rng.uniform(0.7, 1.0, size=k) / _EQUITY_CONTRACT_SIZE
        legs.add(accounts[members][owner[protect]], stock_put, contracts, days[protect])

        hedge = gross[members] * rng.uniform(0.5, 1.0, size=len(members))
        index = _option_underlyings_pick(
            rng, universe, crypto=np.zeros(len(members), dtype=bool), notional=hedge, allowed=("SPX", "NDX", "RUT")
        )
        big = np.flatnonzero(index >= 0)
        rows_put = _option_row(
            universe,
            index[big],
            rng.integers(1, 4, size=len(big)),
            rng.integers(_M85, _M95 + 1, size=len(big)),
            np.ones(len(big), dtype=bool),
        )
        days_put = _days_ago(rng, len(big), max_days_ago)
        legs.add(accounts[members[big]], rows_put, _units(universe, rows_put, hedge[big]), days_put)


def _concentrated(
    rng: np.random.Generator, universe: _Universe, legs: _Legs, accounts: IntArray, gross: FloatArray, max_days_ago: int
) -> None:
    n = len(accounts)
    crypto = rng.random(n) < 0.65
    thin_coins = universe.crypto_spots[universe.crypto_tier >= 3]
    for side, candidates, main_pool in (
        (crypto, universe.crypto_spots, thin_coins),
        (~crypto, universe.equities, universe.speculative_equities),
    ):
        members = np.flatnonzero(side)
        if not len(members):
            continue
        # The thinner the name, the likelier it is the one a concentrated holder is stuck in.
        thinness = 1.0 / _liquidity_weights(universe, main_pool)
        main = rng.choice(main_pool, size=len(members), p=_normalised(thinness))
        forced = np.searchsorted(candidates, main)
        counts = 2 + np.minimum(rng.poisson(1.5, size=len(members)), 3)
        owner, slot, rows = _pick_distinct(rng, candidates, _liquidity_weights(universe, candidates), counts, forced)
        main_share = rng.uniform(0.70, 0.95, size=len(members))
        others = slot > 0
        rest_share = np.zeros(len(owner))
        rest_share[others] = _shares_within(rng, owner[others], len(members))
        share = np.where(slot == 0, main_share[owner], (1.0 - main_share[owner]) * rest_share)
        legs.add(
            accounts[members][owner],
            rows,
            _units(universe, rows, gross[members][owner] * share),
            _days_ago(rng, len(owner), max_days_ago),
        )


def _option_heavy(
    rng: np.random.Generator, universe: _Universe, legs: _Legs, accounts: IntArray, gross: FloatArray, max_days_ago: int
) -> None:
    n = len(accounts)
    crypto = rng.random(n) < 0.4
    structures = 1 + rng.binomial(3, 0.6, size=n)
    owner = np.repeat(np.arange(n), structures)
    k = len(owner)
    notional = gross[owner] / structures[owner] * rng.uniform(0.5, 1.2, size=k)
    names = _option_underlyings_pick(rng, universe, crypto=crypto[owner], notional=notional)
    # Too small for any contract on its side: the cheapest one it is then (one lot of NVDA or ETH).
    cheapest = np.where(crypto[owner], _OPTION_CHEAPEST_CRYPTO, _OPTION_CHEAPEST_OTHER)
    names = np.where(names >= 0, names, cheapest)
    days = _days_ago(rng, k, max_days_ago)
    strangle = rng.random(k) < 0.55
    # Short strangles: 80-90% puts and 110-120% calls, mostly the monthly expiry.
    expiry = rng.choice(3, size=k, p=[0.3, 0.5, 0.2])
    s = np.flatnonzero(strangle)
    for strike, put in ((rng.integers(_M80, _M90 + 1, size=k), True), (rng.integers(_M110, _M120 + 1, size=k), False)):
        rows = _option_row(universe, names[s], expiry[s], strike[s], np.full(len(s), put))
        legs.add(accounts[owner[s]], rows, -_units(universe, rows, notional[s]), days[s])
    # Long calls at or out of the money, one to six months.
    c = np.flatnonzero(~strangle)
    rows = _option_row(
        universe,
        names[c],
        rng.integers(1, 4, size=len(c)),
        rng.integers(_M100, _M120 + 1, size=len(c)),
        np.zeros(len(c), dtype=bool),
    )
    legs.add(
        accounts[owner[c]], rows, _units(universe, rows, notional[c] * rng.uniform(0.2, 0.5, size=len(c))), days[c]
    )
    # Some hold stock or coins beside their options.
    holders = np.flatnonzero(rng.random(n) < 0.5)
    for side, candidates in ((crypto[holders], universe.crypto_spots), (~crypto[holders], universe.equities)):
        members = holders[side]
        if len(members):
            counts = 1 + rng.binomial(1, 0.4, size=len(members))
            _spot_basket(rng, universe, legs, accounts[members], gross[members] * 0.5, counts, candidates, max_days_ago)


def _perpetual_book(
    rng: np.random.Generator,
    universe: _Universe,
    legs: _Legs,
    accounts: IntArray,
    gross: FloatArray,
    max_days_ago: int,
    mean_extra: float,
) -> None:
    n = len(accounts)
    counts = np.minimum(1 + rng.poisson(mean_extra, size=n), 8)
    perps = universe.perp_of_spot[universe.crypto_spots]
    owner, _slot, rows = _pick_distinct(rng, perps, _liquidity_weights(universe, perps), counts)
    side = np.where(rng.random(len(owner)) < 0.65, 1.0, -1.0)
    notional = gross[owner] * _shares_within(rng, owner, n)
    legs.add(accounts[owner], rows, side * _units(universe, rows, notional), _days_ago(rng, len(owner), max_days_ago))


def _isolated_perps(
    rng: np.random.Generator, universe: _Universe, legs: _Legs, accounts: IntArray, gross: FloatArray, max_days_ago: int
) -> None:
    _perpetual_book(rng, universe, legs, accounts, gross, max_days_ago, mean_extra=2.0)
    # Coins held in the cross pool beside the isolated positions.
    holders = np.flatnonzero(rng.random(len(accounts)) < 0.4)
    if len(holders):
        counts = 1 + rng.binomial(1, 0.3, size=len(holders))
        _spot_basket(
            rng, universe, legs, accounts[holders], gross[holders] * 0.3, counts, universe.crypto_spots, max_days_ago
        )


def _perp_trader(
    rng: np.random.Generator, universe: _Universe, legs: _Legs, accounts: IntArray, gross: FloatArray, max_days_ago: int
) -> None:
    _perpetual_book(rng, universe, legs, accounts, gross, max_days_ago, mean_extra=3.0)


def _positions_finish(universe: _Universe, legs: _Legs) -> PositionRows:
    """Round to lots, drop duplicate (account, instrument) legs keeping the first, price the entries."""
    account = np.concatenate(legs.account)
    instrument = np.concatenate(legs.instrument)
    quantity = np.concatenate(legs.quantity)
    days_ago = np.concatenate(legs.days_ago)
    n_instruments = len(universe.instruments.symbol)
    _, first = np.unique(account * n_instruments + instrument, return_index=True)  # sorted by account
    account, instrument, quantity, days_ago = account[first], instrument[first], quantity[first], days_ago[first]
    decimals = universe.lot_decimals[instrument]
    lot = 10.0 ** -decimals.astype(np.float64)
    rounded = _round_to(quantity, decimals)
    # Never round a position away: the smallest order is one lot.
    quantity = np.where(rounded == 0.0, np.sign(quantity) * lot, rounded)
    return PositionRows(
        account=account,
        instrument=instrument,
        quantity=quantity,
        entry_price=_entry_prices(universe, instrument, days_ago),
        isolated_margin=np.full(len(account), np.nan),
    )


def _entry_prices(universe: _Universe, instrument: IntArray, days_ago: IntArray) -> FloatArray:
    """Close on the entry day; options at their model value then (same implied volatility source)."""
    instruments, prices = universe.instruments, universe.prices
    last_day = prices.price.shape[1] - 1
    day = last_day - days_ago
    is_option = universe.is_option[instrument]
    entry = np.zeros(len(instrument))
    linear = ~is_option
    entry[linear] = prices.price[instruments.price_row[instrument[linear]], day[linear]]
    rows = instrument[is_option]
    under = instruments.underlying[rows]
    under_row = instruments.price_row[under]
    option_entry = risk.black_scholes(
        spot=prices.price[under_row, day[is_option]],
        strike=instruments.strike[rows],
        years=universe.years_to_expiry[rows] + days_ago[is_option] / 365.0,
        rate=RISK_FREE_RATE,
        carry=instruments.carry_yield[under],
        volatility=prices.implied_volatility[under_row, day[is_option]],
        is_call=universe.is_call[rows],
    )
    entry[is_option] = option_entry
    return _round_to(entry, 8)
