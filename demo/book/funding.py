"""The demo accounts: an archetype each, its positions (portfolios.py), then the cash, loans and isolated margins
solved so that the account sits at the margin ratio it drew from its band.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import numpy as np

from demo.book.market import _round_to, _Universe
from demo.book.portfolios import (
    _concentrated,
    _hedged,
    _isolated_perps,
    _Legs,
    _leveraged_long,
    _option_heavy,
    _perp_trader,
    _positions_finish,
)
from demo.book.rows import AccountRows, BoolArray, ClientRows, FloatArray, IntArray, LoanRows, PositionRows

# FINRA 4210(g): portfolio margin needs at least $100,000 of equity.
PORTFOLIO_MARGIN_MIN_EQUITY: Final = 100_000.0

ARCHETYPES: Final = ("leveraged_long", "hedged", "concentrated", "option_heavy", "isolated_perps", "perp_trader")
_ARCHETYPE_SHARES: Final = (0.44, 0.14, 0.07, 0.15, 0.12, 0.08)
# Median gross exposure (USD) and its log-normal dispersion, by archetype.
_ARCHETYPE_GROSS: Final = (
    (40_000.0, 1.2),
    (150_000.0, 1.1),
    (250_000.0, 1.0),
    (300_000.0, 1.0),
    (20_000.0, 1.2),
    (30_000.0, 1.2),
)
# How much likelier than average an archetype is to be in warning or worse.
_ARCHETYPE_DISTRESS: Final = (1.0, 0.7, 1.8, 1.0, 0.9, 1.1)
# Healthy accounts sit at 1.25 x exp(E) above maintenance, E exponential with this mean: concentrated
# holders borrow close to the limit, leveraged longs fairly close, the others keep more room.
_ARCHETYPE_HEADROOM: Final = (0.5, 0.8, 0.3, 0.8, 0.8, 0.8)
# Archetypes defined by borrowing against their holdings: a healthy target never leaves them unlevered.
_BORROWING_ARCHETYPES: Final = (0, 2)
_PORTFOLIO_MARGIN_SHARE: Final = (0.05, 0.80, 0.05, 0.95, 0.0, 0.10)
# Crypto derivatives accounts post cash; they owe only when losses have gone through it (negative equity).
_CASH_ONLY_ARCHETYPES: Final = (4, 5)

_CREDIT_TIER_DISTRESS: Final = (0.5, 0.8, 1.3, 2.2)
_CREDIT_TIER_LOAN_RATE: Final = ((0.05, 0.07), (0.065, 0.09), (0.085, 0.12), (0.11, 0.15))

# Band targets of the margin ratio: probabilities at an average account and the ranges drawn from.
_P_CRITICAL: Final = 0.012
_P_MARGIN_CALL: Final = 0.035
_P_WARNING: Final = 0.09
WARNING_LEVEL: Final = 1.25


def _accounts_build(
    rng: np.random.Generator, *, universe: _Universe, clients: ClientRows, account_client: IntArray, as_of: datetime
) -> tuple[AccountRows, LoanRows, PositionRows]:
    n = len(account_client)
    archetype = rng.choice(len(ARCHETYPES), size=n, p=_ARCHETYPE_SHARES).astype(np.int64)
    median, dispersion = np.array(_ARCHETYPE_GROSS).T
    gross = np.minimum(rng.lognormal(np.log(median[archetype]), dispersion[archetype]), 50e6)
    max_days_ago = min(120, len(universe.prices.time) - 1)
    legs = _Legs([], [], [], [])
    builders = (_leveraged_long, _hedged, _concentrated, _option_heavy, _isolated_perps, _perp_trader)
    for code, build in enumerate(builders):
        members = np.flatnonzero(archetype == code)
        if len(members):
            build(rng, universe, legs, members, gross[members], max_days_ago)
    positions = _positions_finish(universe, legs)
    isolated = archetype == ARCHETYPES.index("isolated_perps")
    tier = clients.credit_tier[account_client]
    target = _margin_ratio_targets(rng, archetype=archetype, tier=tier, isolated=isolated)
    return _calibrate(rng, universe, positions, account_client, archetype, tier, isolated, target, as_of)


def _margin_ratio_targets(
    rng: np.random.Generator, *, archetype: IntArray, tier: IntArray, isolated: BoolArray
) -> FloatArray:
    n = len(archetype)
    distress = np.array(_CREDIT_TIER_DISTRESS)[tier] * np.array(_ARCHETYPE_DISTRESS)[archetype]
    p_critical = np.where(isolated, 0.0, _P_CRITICAL * distress)  # an isolated loss stops at its margin
    p_call = _P_MARGIN_CALL * distress + np.where(isolated, _P_CRITICAL * distress, 0.0)
    p_warning = _P_WARNING * distress
    u = rng.random(n)
    healthy = _healthy_ratios(rng, n, headroom=np.array(_ARCHETYPE_HEADROOM)[archetype])
    return np.select(
        [u < p_critical, u < p_critical + p_call, u < p_critical + p_call + p_warning],
        [rng.uniform(-0.5, -0.02, n), rng.uniform(0.5, 0.98, n), rng.uniform(1.02, 1.23, n)],
        default=healthy,
    )


@dataclass(frozen=True)
class _Exposure:
    """What each position contributes at as_of under the standard model."""

    value: FloatArray  # to equity: spot market value, perpetual PnL, option value
    maintenance: FloatArray  # |notional| x maintenance rate (options: on the underlying's notional)
    isolated: BoolArray


def _exposure(universe: _Universe, positions: PositionRows, isolated_account: BoolArray) -> _Exposure:
    instruments = universe.instruments
    rows = positions.instrument
    size = instruments.contract_size[rows]
    is_option = universe.is_option[rows]
    is_perp = universe.is_perpetual[rows]
    price = universe.price_now[rows]
    under_price = universe.price_now[np.where(is_option, instruments.underlying[rows], rows)]
    q = positions.quantity
    value = np.where(
        is_option,
        q * universe.option_value_now[rows] * size,
        np.where(is_perp, q * (price - positions.entry_price) * size, q * price * size),
    )
    maintenance = np.abs(q) * under_price * size * instruments.maintenance_rate[rows]
    return _Exposure(value=value, maintenance=maintenance, isolated=is_perp & isolated_account[positions.account])


def _calibrate(
    rng: np.random.Generator,
    universe: _Universe,
    positions: PositionRows,
    account_client: IntArray,
    archetype: IntArray,
    tier: IntArray,
    isolated_account: BoolArray,
    target: FloatArray,
    as_of: datetime,
) -> tuple[AccountRows, LoanRows, PositionRows]:
    """Solve cash, loans and isolated margins so that each account sits at its target margin ratio."""
    n = len(account_client)
    exposure = _exposure(universe, positions, isolated_account)
    cross = ~exposure.isolated
    owner = positions.account
    requirement = _sum_by(owner[cross], exposure.maintenance[cross], n)
    value = _sum_by(owner[cross], exposure.value[cross], n)

    # A healthy leveraged long keeps at least a tenth of its holdings on loan.
    unlevered_ratio = 0.9 * value / np.where(requirement > 0, requirement, 1.0)
    capped = np.isin(archetype, _BORROWING_ARCHETYPES) & (target >= WARNING_LEVEL) & (unlevered_ratio > WARNING_LEVEL)
    target = np.where(capped, np.minimum(target, unlevered_ratio), target)
    isolated_margin = _isolated_margins(rng, exposure, owner, target)

    # Isolated-mode accounts keep their cross pool healthy: their risk is in the isolated positions.
    cross_target = np.where(isolated_account, _healthy_ratios(rng, n, headroom=0.8), target)
    # equity = cash - principal x (1 + accrual) + value. Cash-only accounts and the cross pools of
    # isolated-mode accounts do not borrow: where their profits alone exceed the target, they sit above it,
    # and the target recorded is the ratio reached.
    needed = cross_target * requirement - value
    unlevered = isolated_account | (np.isin(archetype, _CASH_ONLY_ARCHETYPES) & (target >= 0))
    needed = np.where(unlevered, np.maximum(needed, 0.0), needed)
    reached = (needed + value) / np.where(requirement > 0, requirement, 1.0)
    target = np.where(unlevered & ~isolated_account & (requirement > 0), reached, target)
    # An account with no cross requirement still has free cash.
    median, _ = np.array(_ARCHETYPE_GROSS).T
    free_cash = _round_to(np.where(requirement > 0, 0.0, rng.uniform(0.05, 0.3, n) * median[archetype]), 2)
    cash, loans = _funding(rng, needed=needed, requirement=requirement, tier=tier, distressed=target < 1.0, as_of=as_of)
    cash = cash + free_cash

    # FINRA 4210(g): portfolio margin only from $100,000 of equity; isolated-mode accounts stay standard.
    eligible = (needed + free_cash + value >= PORTFOLIO_MARGIN_MIN_EQUITY) & ~isolated_account
    portfolio = eligible & (rng.random(n) < np.array(_PORTFOLIO_MARGIN_SHARE)[archetype])
    accounts = AccountRows(
        code=[f"ACC{k + 1:06d}" for k in range(n)],
        client=account_client,
        isolated=isolated_account,
        portfolio_margin=portfolio,
        cash=cash,
        archetype=archetype,
        margin_ratio_target=target,
    )
    return accounts, loans, dataclasses.replace(positions, isolated_margin=isolated_margin)


def _sum_by(owner: IntArray, values: FloatArray, n: int) -> FloatArray:
    total: FloatArray = np.bincount(owner, weights=values, minlength=n).astype(np.float64)
    return total


def _healthy_ratios(rng: np.random.Generator, n: int, *, headroom: float | FloatArray) -> FloatArray:
    ratios: FloatArray = WARNING_LEVEL * np.exp(rng.exponential(headroom, size=n))
    return ratios


def _isolated_margins(rng: np.random.Generator, exposure: _Exposure, owner: IntArray, target: FloatArray) -> FloatArray:
    """Margin allocated to each isolated position: the first of each account at the account's target
    ratio, the others healthy. NaN on positions that are not isolated."""
    margin = np.full(len(owner), np.nan)
    iso = np.flatnonzero(exposure.isolated)
    first_of_account = np.ones(len(iso), dtype=bool)
    first_of_account[1:] = owner[iso][1:] != owner[iso][:-1]
    position_target = np.where(first_of_account, target[owner[iso]], _healthy_ratios(rng, len(iso), headroom=0.8))
    # A position far in profit needs no margin for its target; it still keeps a sliver allocated.
    floor = 0.01 * exposure.maintenance[iso]
    margin[iso] = _round_to(np.maximum(position_target * exposure.maintenance[iso] - exposure.value[iso], floor), 2)
    return margin


def _funding(
    rng: np.random.Generator,
    *,
    needed: FloatArray,
    requirement: FloatArray,
    tier: IntArray,
    distressed: BoolArray,
    as_of: datetime,
) -> tuple[FloatArray, LoanRows]:
    """Cash and loans with cash - principal - accrued = needed: what the equity target leaves after the
    positions' value. Where needed < 0 the account borrows the difference, 40% of borrowers keeping some
    idle cash (and borrowing that much more)."""
    n = len(needed)
    buffer = np.where((rng.random(n) < 0.4) & (needed < 0), rng.uniform(0.0, 0.2, n) * requirement, 0.0)
    rate_low, rate_high = np.array(_CREDIT_TIER_LOAN_RATE)[tier].T
    rate = np.round(rng.uniform(rate_low, rate_high), 4)
    # Interest is capitalised monthly; distressed accounts have stopped paying it.
    accrual_days = np.where(distressed, rng.uniform(30.0, 120.0, n), rng.uniform(0.0, 31.0, n))
    accrual = rate * accrual_days / 365.0
    principal = _round_to(np.maximum(buffer - needed, 0.0) / (1.0 + accrual), 2)
    accrued = _round_to(principal * accrual, 2)
    cash = _round_to(np.maximum(needed, buffer), 2)

    borrowing = np.flatnonzero(principal > 0.0)
    # Most margin loans are open-ended call loans; some were granted for a term.
    term = rng.random(len(borrowing)) < 0.15
    term_days = rng.integers(30, 366, size=len(borrowing))
    maturity: list[date | None] = [
        as_of.date() + timedelta(days=days) if is_term else None
        for is_term, days in zip(term.tolist(), term_days.tolist(), strict=True)
    ]
    loans = LoanRows(
        account=borrowing.astype(np.int64),
        principal=principal[borrowing],
        rate_annual=rate[borrowing],
        accrued_interest=accrued[borrowing],
        maturity_date=maturity,
    )
    return cash, loans
