"""A liquidation cascade (docs/domain.md, "Liquidation cascades"): a shock moves one asset; the accounts that breach
their maintenance requirement are liquidated; their sales move prices further by the square-root law; more
accounts breach; repeat until no new account breaches. Pure numpy over accounts.risk, no Django.

Rules of this model:
- The shock multiplies the price of every instrument whose scenario root is the shocked asset (the asset, its
  perpetuals and futures) by 1 - drop; options follow through their underlying.
- Each round re-marks the whole book (accounts.risk.evaluate). An account below maintenance (band margin call
  or critical) that `sellers` allows is liquidated: all its positions are closed. Once liquidated it stays so.
- Permanent impact: the net units sold of each non-option instrument by all liquidated accounts together move
  its price from the shocked level by f = Y x daily volatility x sqrt(|units| / daily volume), capped at 90%,
  down for net sales and up for net buy-backs (sellers of one instrument share the impact: their quantities add
  before the square root). An instrument with no daily volume is held at its shocked price (not sold into).
- The outcome of a liquidation is marked at the final prices: the lender's bad debt is what the account's
  equity is below zero; the impact cost is what the closed positions lost between the shocked and the final
  prices. Options are closed at their value at the final underlying price (their own market's impact is not
  modelled).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from accounts import risk

Float = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

_MAX_IMPACT = 0.9


@dataclass(frozen=True)
class CascadeRound:
    round: int
    liquidated: int  # accounts liquidated so far
    shocked_price: float  # the shocked asset's price after this round's sales


@dataclass(frozen=True)
class CascadeOutcome:
    liquidated: Bool  # per account
    bad_debt: float
    impact_cost: float
    final_price: Float  # per instrument
    final_equity: Float  # per account
    final_breached: Bool  # per account: below maintenance at the final prices
    rounds: tuple[CascadeRound, ...] = field(default_factory=tuple)

    @property
    def accounts_liquidated(self) -> int:
        return int(self.liquidated.sum())


def shocked_prices(book: risk.Book, market: risk.Market, root: int, drop: float) -> Float:
    """Prices after the shock: every instrument whose root is `root` (options aside) times 1 - drop."""
    if not 0 < drop < 1:
        raise ValueError(f"drop {drop}: must be in (0, 1)")
    instruments = book.instruments
    moved = (instruments.root == root) & (instruments.kind != risk.KIND_OPTION)
    return np.where(moved, market.price * (1.0 - drop), market.price)


def cascade(
    prepared: risk.ShardedBook,
    book: risk.Book,
    market: risk.Market,
    params: risk.RiskParams,
    *,
    root: int,
    drop: float,
    daily_volume: Float,
    impact_coefficient: float,
    sellers: Bool | None = None,
    max_rounds: int = 50,
) -> CascadeOutcome:
    """Run the cascade (module docstring). `daily_volume` per instrument in units (contract size applied);
    `sellers` marks the accounts that may be liquidated (all when None)."""
    instruments, positions = book.instruments, book.positions
    allowed = np.ones(len(book.accounts), dtype=np.bool_) if sellers is None else np.asarray(sellers, dtype=np.bool_)
    start = shocked_prices(book, market, root, drop)
    prices = start.copy()
    liquidated = np.zeros(len(book.accounts), dtype=np.bool_)
    units = positions.quantity * instruments.contract_size[positions.instrument]
    tradable = (instruments.kind != risk.KIND_OPTION) & (daily_volume > 0)
    shocked_index = int(root)
    rounds = []
    result = prepared.evaluate(replace(market, price=prices), params)
    for number in range(1, max_rounds + 1):
        breached = (result.band >= risk.BAND_MARGIN_CALL) & allowed & ~liquidated
        if not breached.any():
            break
        liquidated |= breached
        sold = np.bincount(
            positions.instrument[liquidated[positions.account]],
            weights=units[liquidated[positions.account]],
            minlength=len(instruments),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            fraction = impact_coefficient * instruments.reference_volatility * np.sqrt(np.abs(sold) / daily_volume)
        fraction = np.where(tradable, np.minimum(np.nan_to_num(fraction), _MAX_IMPACT), 0.0)
        prices = start * (1.0 - np.sign(sold) * fraction)
        result = prepared.evaluate(replace(market, price=prices), params)
        rounds.append(CascadeRound(number, int(liquidated.sum()), float(prices[shocked_index])))
    closed = liquidated[positions.account] & (instruments.kind[positions.instrument] != risk.KIND_OPTION)
    concession = units * (start[positions.instrument] - prices[positions.instrument])
    return CascadeOutcome(
        liquidated=liquidated,
        bad_debt=float(np.maximum(-result.equity[liquidated], 0.0).sum()),
        impact_cost=float(np.abs(concession[closed]).sum()),
        final_price=prices,
        final_equity=result.equity,
        final_breached=result.band >= risk.BAND_MARGIN_CALL,
        rounds=tuple(rounds),
    )
