"""A realistic synthetic book for the demo and the benchmarks.

`demo_book_generate` is pure Python and numpy (no database): it returns the rows as columnar arrays.
`demo_book_write` writes them in one transaction (COPY on PostgreSQL, bulk_create on SQLite).
The parts: rows.py (the columns), market.py (instruments and prices), clients.py, portfolios.py (positions by
archetype), funding.py (cash and loans at each account's target margin ratio), write.py.

What the book looks like, and why
---------------------------------
Universe (all USD):
- 30 crypto spot assets in four liquidity tiers (BTC and ETH; large alts; mid caps; small, thin caps),
  each with a linear perpetual `X-PERP` whose underlying is the spot. Spot rates run from 0.30/0.15
  (initial/maintenance) for the majors to 0.60/0.40 for the thin names, perpetuals from 0.10/0.05 to
  0.25/0.15, haircuts 0.10..0.50 by liquidity; daily volatility 3%..8%; ADV in units from the traded
  value. Derivatives have no collateral value (haircut 1).
- 50 equities at Reg T / FINRA 4210 rates (0.50 initial, 0.25 maintenance), with a house maintenance of
  0.35 on the speculative names; 1.5%..3% daily volatility, dividend yields as carry.
- 3 indexes: SPX (broad_index), NDX and RUT (index). They are option underlyings; nobody holds them.
- European options on BTC, ETH, SPX, NDX, RUT, AAPL, NVDA and TSLA: strikes at 70%..130% of spot in
  5% steps (rounded to the listed strike step), 4 expiries (the Fridays after 1 week, 1, 3 and 6 months;
  08:00 UTC for crypto as on Deribit, 20:00 UTC for the US listings), calls and puts, contract size 1
  for crypto and 100 for equities and indexes. Rates 0.20/0.15 of the underlying notional (0.15/0.10 for
  the indexes, FINRA's broad-based index level). They have no Price rows: the risk engine prices them
  with Black-Scholes-Merton from the underlying's price and implied volatility.

Prices: `history_days` daily closes ending at `as_of`, from a factor model of log returns: one factor
for crypto, one for equities and indexes (correlated 0.3), each asset loading on its class factor with
its own correlation (BTC and ETH about 0.95, thin coins 0.6) plus Student-t idiosyncratic noise (fat
tails), and one stress episode per factor in which volatility roughly doubles. The paths are rescaled
to end at today's reference prices, so strikes and tick sizes look familiar whatever the seed.
Simulated volatility is 80% of the instrument's reference `daily_volatility`: houses calibrate margin to
a conservative level, so dynamic margin adds nothing on a calm day and does add when a shock raises the
EWMA. Implied volatility (annualised over 365 days for crypto, 252 otherwise) is a blend of reference
and EWMA volatility with a premium. Perpetuals carry the spot's closes (the basis is ignored) and no
implied volatility. The EWMA (lambda 0.94) and stressed volatilities are filled in as the price import
would (the same log returns and `accounts.risk.ewma_volatility`), so the first sweep has them and the first
volatility refresh leaves them as they are.

Accounts (~5 positions on average, ~19% of them options), by archetype:
- leveraged_long (44%): long spot crypto or equities bought with a margin loan, most with a long call
  or a protective put;
- hedged (14%): long coins with a short perpetual on 1-3 of them (70%..100% hedged), or stocks that
  always include an optionable one (AAPL, NVDA, TSLA) with protective puts on it, plus an index put
  when the book is big enough for one contract;
- concentrated (7%): 70%..95% of the value in one thin coin or speculative stock, on a big loan;
- option_heavy (15%): 1-4 short strangles (80-90% puts, 110-120% calls) or long calls, half of them
  with some stock or coins beside;
- isolated_perps (12%): isolated-mode accounts whose perpetuals each carry their own isolated margin,
  with spot held in the (unlevered) cross pool;
- perp_trader (8%): cross-margined perpetuals, long and short, against cash.
Option underlyings are chosen among those whose smallest trade (one lot of one contract) fits the
account: an SPX contract is $590,000 of index, an NDX one $2.1 million. About 15% of accounts are on
portfolio margin: option-heavy and hedged ones with at least $100,000 of equity (FINRA 4210(g)'s
minimum), a few others; isolated-mode accounts never are.

Leverage is calibrated rather than left to chance: each account draws a target margin ratio (equity /
maintenance requirement, standard model: |notional| x maintenance rate, options on their underlying's
notional) from its band (about 86% healthy above 1.25, 9% warning, 3.5% margin call, 1.2% negative
equity; riskier for lower credit tiers and concentrated books), and cash and the loan are solved for so
that the account sits at that ratio at `as_of`. Crypto derivatives accounts post cash and owe only when
their equity is negative (the deficit is the debt); where their profits alone exceed the target they sit
above it. Isolated positions get their own target: the account's for its first one, a healthy one for
the others. Leveraged archetypes keep at least a tenth of their holdings on loan. Loans carry 5%..15% a
year by credit tier and up to a month of accrued interest (up to four months for distressed accounts);
15% have a maturity date, the rest are open-ended call loans. About 10% of clients belong to a group of
2 to 5 under one beneficial owner (a family: they share a surname); some clients hold several accounts;
credit tiers A-D; 30% declare external capacity.

Determinism: everything comes from one `numpy.random.Generator` seeded with `seed`, so the same seed and
`as_of` give the same book.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from core.errors import ValidationError
from demo.book.clients import _clients_build
from demo.book.funding import ARCHETYPES, _accounts_build
from demo.book.market import _universe_build
from demo.book.rows import DemoBook
from demo.book.write import demo_book_write

__all__ = ["ARCHETYPES", "DemoBook", "demo_book_generate", "demo_book_write"]


def demo_book_generate(
    *, accounts: int, seed: int = 7, history_days: int = 250, as_of: datetime | None = None
) -> DemoBook:
    if accounts < 1:
        raise ValidationError("accounts: a book needs at least one account", field="accounts")
    if history_days < 2:
        raise ValidationError("history_days: at least 2 closes are needed for a return", field="history_days")
    if as_of is None:
        as_of = datetime.now(UTC).replace(microsecond=0)
    elif as_of.tzinfo is None:
        raise ValidationError("as_of: give an aware datetime", field="as_of")
    rng = np.random.default_rng(seed)
    universe = _universe_build(rng, as_of=as_of, history_days=history_days)
    groups, clients, account_client = _clients_build(rng, accounts=accounts)
    book = _accounts_build(rng, universe=universe, clients=clients, account_client=account_client, as_of=as_of)
    return DemoBook(
        seed=seed,
        as_of=as_of,
        groups=groups,
        clients=clients,
        instruments=universe.instruments,
        prices=universe.prices,
        accounts=book[0],
        loans=book[1],
        positions=book[2],
    )
