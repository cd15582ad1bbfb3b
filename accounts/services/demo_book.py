"""A realistic synthetic book for the demo and the benchmarks.

`demo_book_generate` is pure Python and numpy (no database): it returns the rows as columnar arrays.
`demo_book_write` writes them in one transaction (COPY on PostgreSQL, bulk_create on SQLite).

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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, TypeAlias

import numpy as np
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone
from numpy.typing import NDArray

from accounts import risk
from accounts.models import (
    Client,
    ClientGroup,
    Instrument,
    InstrumentKind,
    LoanStatus,
    MarginAccount,
    MarginLoan,
    MarginMode,
    MarginModel,
    OptionType,
    Position,
    Price,
    RiskSnapshot,
    RiskState,
    ScenarioClass,
    Sweep,
    SweepShard,
)
from accounts.services.volatility import log_returns
from core.errors import ConflictError, ValidationError

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]
BoolArray: TypeAlias = NDArray[np.bool_]

# Same default as settings.WORKOUT_RISK_FREE_RATE; the generator reads no settings so that it stays pure.
RISK_FREE_RATE: Final = 0.04
EWMA_LAMBDA: Final = 0.94
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

CREDIT_TIERS: Final = ("A", "B", "C", "D")
_CREDIT_TIER_SHARES: Final = (0.20, 0.45, 0.25, 0.10)
_CREDIT_TIER_DISTRESS: Final = (0.5, 0.8, 1.3, 2.2)
_CREDIT_TIER_LOAN_RATE: Final = ((0.05, 0.07), (0.065, 0.09), (0.085, 0.12), (0.11, 0.15))

# Band targets of the margin ratio: probabilities at an average account and the ranges drawn from.
_P_CRITICAL: Final = 0.012
_P_MARGIN_CALL: Final = 0.035
_P_WARNING: Final = 0.09
WARNING_LEVEL: Final = 1.25

# symbol, reference price (USD), reference daily volatility, average daily traded value (USD millions),
# liquidity tier
_CRYPTO: Final = (
    ("BTC", 95_000.0, 0.030, 25_000.0, 1),
    ("ETH", 3_400.0, 0.040, 12_000.0, 1),
    ("SOL", 180.0, 0.050, 3_000.0, 2),
    ("XRP", 2.2, 0.050, 2_500.0, 2),
    ("BNB", 650.0, 0.035, 1_200.0, 2),
    ("DOGE", 0.32, 0.060, 1_500.0, 2),
    ("ADA", 0.9, 0.055, 700.0, 2),
    ("TRX", 0.25, 0.035, 400.0, 2),
    ("AVAX", 35.0, 0.060, 450.0, 2),
    ("LINK", 20.0, 0.055, 500.0, 2),
    ("DOT", 6.5, 0.055, 250.0, 2),
    ("LTC", 100.0, 0.045, 450.0, 2),
    ("BCH", 420.0, 0.050, 300.0, 2),
    ("NEAR", 5.0, 0.060, 250.0, 3),
    ("UNI", 12.0, 0.060, 220.0, 3),
    ("ATOM", 6.5, 0.055, 150.0, 3),
    ("XLM", 0.4, 0.055, 180.0, 3),
    ("ETC", 26.0, 0.055, 160.0, 3),
    ("FIL", 5.0, 0.065, 140.0, 3),
    ("APT", 9.0, 0.065, 150.0, 3),
    ("ARB", 0.75, 0.065, 200.0, 3),
    ("OP", 1.8, 0.065, 150.0, 3),
    ("SUI", 4.0, 0.070, 400.0, 3),
    ("AAVE", 300.0, 0.065, 200.0, 3),
    ("INJ", 22.0, 0.075, 40.0, 4),
    ("TIA", 5.5, 0.075, 35.0, 4),
    ("SEI", 0.4, 0.080, 30.0, 4),
    ("JUP", 0.8, 0.075, 25.0, 4),
    ("WIF", 2.0, 0.080, 30.0, 4),
    ("MKR", 1_600.0, 0.060, 20.0, 4),
)
# tier: spot initial, spot maintenance, haircut, perp initial, perp maintenance, correlation with the
# crypto factor
_CRYPTO_TIERS: Final = {
    1: (0.30, 0.15, 0.10, 0.10, 0.05, 0.95),
    2: (0.40, 0.25, 0.20, 0.15, 0.08, 0.75),
    3: (0.50, 0.30, 0.30, 0.20, 0.10, 0.70),
    4: (0.60, 0.40, 0.50, 0.25, 0.15, 0.60),
}
# Perpetuals trade about twice the spot volume.
_PERP_VOLUME_MULTIPLE: Final = 2.0

# symbol, reference price, reference daily volatility, average daily volume (millions of shares),
# dividend yield, speculative (house maintenance above the FINRA minimum)
_EQUITIES: Final = (
    ("AAPL", 230.0, 0.016, 55.0, 0.005, False),
    ("MSFT", 420.0, 0.015, 22.0, 0.008, False),
    ("NVDA", 135.0, 0.030, 250.0, 0.0003, False),
    ("AMZN", 200.0, 0.020, 40.0, 0.0, False),
    ("GOOGL", 175.0, 0.018, 25.0, 0.005, False),
    ("META", 580.0, 0.022, 14.0, 0.004, False),
    ("TSLA", 350.0, 0.030, 90.0, 0.0, True),
    ("BRK.B", 460.0, 0.015, 4.0, 0.0, False),
    ("JPM", 240.0, 0.016, 9.0, 0.021, False),
    ("V", 310.0, 0.015, 6.0, 0.007, False),
    ("UNH", 520.0, 0.017, 4.0, 0.015, False),
    ("XOM", 115.0, 0.016, 15.0, 0.033, False),
    ("JNJ", 155.0, 0.015, 7.0, 0.031, False),
    ("WMT", 90.0, 0.015, 15.0, 0.009, False),
    ("MA", 520.0, 0.015, 3.0, 0.005, False),
    ("PG", 165.0, 0.015, 7.0, 0.024, False),
    ("HD", 400.0, 0.016, 3.5, 0.022, False),
    ("COST", 930.0, 0.016, 2.0, 0.005, False),
    ("ORCL", 170.0, 0.022, 9.0, 0.009, False),
    ("ABBV", 185.0, 0.017, 6.0, 0.034, False),
    ("BAC", 45.0, 0.018, 35.0, 0.023, False),
    ("KO", 63.0, 0.015, 14.0, 0.031, False),
    ("CVX", 150.0, 0.017, 7.0, 0.043, False),
    ("AMD", 125.0, 0.030, 45.0, 0.0, True),
    ("NFLX", 880.0, 0.025, 3.5, 0.0, False),
    ("CRM", 330.0, 0.022, 6.0, 0.005, False),
    ("ADBE", 450.0, 0.022, 3.5, 0.0, False),
    ("PEP", 150.0, 0.015, 6.0, 0.036, False),
    ("TMO", 530.0, 0.016, 1.6, 0.003, False),
    ("INTC", 21.0, 0.028, 70.0, 0.0, True),
    ("DIS", 110.0, 0.018, 9.0, 0.008, False),
    ("CSCO", 59.0, 0.016, 18.0, 0.027, False),
    ("QCOM", 160.0, 0.024, 8.0, 0.021, False),
    ("IBM", 225.0, 0.017, 4.0, 0.029, False),
    ("GS", 590.0, 0.019, 2.2, 0.020, False),
    ("CAT", 380.0, 0.018, 3.0, 0.015, False),
    ("BA", 170.0, 0.024, 8.0, 0.0, False),
    ("UBER", 70.0, 0.026, 18.0, 0.0, False),
    ("PYPL", 85.0, 0.024, 12.0, 0.0, False),
    ("SHOP", 110.0, 0.030, 9.0, 0.0, True),
    ("PLTR", 75.0, 0.030, 70.0, 0.0, True),
    ("COIN", 280.0, 0.030, 10.0, 0.0, True),
    ("MSTR", 350.0, 0.030, 15.0, 0.0, True),
    ("SNOW", 170.0, 0.028, 5.0, 0.0, True),
    ("RIVN", 13.0, 0.030, 30.0, 0.0, True),
    ("HOOD", 38.0, 0.030, 25.0, 0.0, True),
    ("GME", 28.0, 0.030, 8.0, 0.0, True),
    ("AMC", 4.5, 0.030, 20.0, 0.0, True),
    ("SOFI", 15.0, 0.030, 40.0, 0.0, True),
    ("MARA", 18.0, 0.030, 35.0, 0.0, True),
)
_EQUITY_CORRELATION: Final = {False: 0.60, True: 0.45}

# symbol, reference level, reference daily volatility, average daily volume (millions of index units
# traded through futures and ETFs), dividend yield, scenario class, correlation with the equity factor
_INDEXES: Final = (
    ("SPX", 5_900.0, 0.010, 50.0, 0.013, ScenarioClass.BROAD_INDEX, 0.99),
    ("NDX", 21_000.0, 0.013, 5.0, 0.007, ScenarioClass.INDEX, 0.92),
    ("RUT", 2_250.0, 0.015, 4.0, 0.012, ScenarioClass.INDEX, 0.85),
)

# Option underlyings, their listed strike step, and the weight with which option traders pick them.
_OPTION_UNDERLYINGS: Final = (
    ("BTC", 1_000.0, 0.25),
    ("ETH", 50.0, 0.15),
    ("SPX", 25.0, 0.20),
    ("NDX", 100.0, 0.10),
    ("RUT", 10.0, 0.05),
    ("AAPL", 5.0, 0.08),
    ("NVDA", 5.0, 0.09),
    ("TSLA", 10.0, 0.08),
)
OPTION_MONEYNESS: Final = tuple(round(0.70 + 0.05 * step, 2) for step in range(13))
OPTION_EXPIRY_DAYS: Final = (7, 30, 91, 182)
_OPTIONS_PER_UNDERLYING: Final = len(OPTION_MONEYNESS) * len(OPTION_EXPIRY_DAYS) * 2
_OPTION_CHEAPEST_CRYPTO: Final = 1  # ETH
_OPTION_CHEAPEST_OTHER: Final = 6  # NVDA
_OPTIONABLE_STOCKS: Final = ("AAPL", "NVDA", "TSLA")
_EQUITY_CONTRACT_SIZE: Final = 100.0

# Index into OPTION_MONEYNESS of a moneyness level.
_M80, _M85, _M90, _M95, _M100, _M110, _M115, _M120 = 2, 3, 4, 5, 6, 8, 9, 10

KIND_SPOT: Final[str] = InstrumentKind.SPOT.value
KIND_PERPETUAL: Final[str] = InstrumentKind.PERPETUAL.value
KIND_OPTION: Final[str] = InstrumentKind.OPTION.value
CLASS_CRYPTO, CLASS_EQUITY, CLASS_INDEX = 0, 1, 2

_FIRST_NAMES: Final = (
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Beatriz", "Boris", "Chen", "Chloe", "Dmitri", "Elena", "Emeka",
    "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jamal", "Julia", "Kenji", "Lars", "Leila",
    "Luca", "Maya", "Mateo", "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael", "Sara", "Sofia", "Tariq",
    "Tomas", "Wei", "Yara", "Zoe",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Abbott", "Alvarez", "Bauer", "Becker", "Castro", "Chen", "Costa", "Dubois", "Eriksen", "Fischer",
    "Garcia", "Gupta", "Haddad", "Hansen", "Ibrahim", "Ivanova", "Jensen", "Kim", "Kowalski", "Larsen",
    "Lindqvist", "Lopez", "Mahlangu", "Martin", "Mensah", "Moreau", "Nakamura", "Novak", "Okafor", "Olsen",
    "Patel", "Peeters", "Petrov", "Quinn", "Rahman", "Rossi", "Santos", "Schmidt", "Silva", "Sokolov",
    "Suzuki", "Tanaka", "Varga", "Vogel", "Walsh", "Weber", "Yilmaz", "Zhang",
)  # fmt: skip
_COMPANY_SUFFIXES: Final = ("Capital LLC", "Trading Ltd", "Holdings", "Partners LP", "Ventures")
_GROUP_SUFFIXES: Final = ("family office", "holdings", "group")


# --- The book as columns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupRows:
    code: list[str]
    name: list[str]


@dataclass(frozen=True)
class ClientRows:
    code: list[str]
    name: list[str]
    credit_tier: IntArray  # index into CREDIT_TIERS
    group: IntArray  # row in GroupRows, -1 when the client is in no group
    external_capacity: FloatArray  # USD, cents


@dataclass(frozen=True)
class InstrumentRows:
    symbol: list[str]
    kind: list[str]
    underlying: IntArray  # row in InstrumentRows, -1 when none
    strike: FloatArray  # NaN when none
    expiry: list[datetime | None]
    option_type: list[str]
    contract_size: FloatArray
    initial_rate: FloatArray
    maintenance_rate: FloatArray
    haircut: FloatArray
    scenario_class: list[str]
    average_daily_volume: FloatArray
    daily_volatility: FloatArray
    carry_yield: FloatArray
    ewma_volatility: FloatArray  # NaN for options (no price history of their own)
    stressed_volatility: FloatArray
    asset_class: IntArray  # CLASS_CRYPTO / CLASS_EQUITY / CLASS_INDEX (not stored: it picks the universe)
    price_row: IntArray  # row in PriceRows, -1 for options


@dataclass(frozen=True)
class PriceRows:
    """Daily closes: `price[row, day]` of instrument `instrument[row]` at `time[day]`."""

    time: list[datetime]
    instrument: IntArray
    price: FloatArray
    implied_volatility: FloatArray  # annualised; NaN where none (perpetuals)

    @property
    def count(self) -> int:
        return int(self.price.size)


@dataclass(frozen=True)
class AccountRows:
    code: list[str]
    client: IntArray
    isolated: BoolArray  # mode isolated (else cross)
    portfolio_margin: BoolArray  # margin model portfolio (else standard)
    cash: FloatArray  # USD, cents, >= 0
    archetype: IntArray  # index into ARCHETYPES (not stored)
    margin_ratio_target: FloatArray  # what the calibration aimed at (not stored)


@dataclass(frozen=True)
class LoanRows:
    account: IntArray
    principal: FloatArray  # USD, cents
    rate_annual: FloatArray
    accrued_interest: FloatArray  # USD, cents
    maturity_date: list[date | None]


@dataclass(frozen=True)
class PositionRows:
    account: IntArray
    instrument: IntArray
    quantity: FloatArray
    entry_price: FloatArray
    isolated_margin: FloatArray  # USD, cents; NaN when the position is not isolated


@dataclass(frozen=True)
class DemoBook:
    seed: int
    as_of: datetime
    groups: GroupRows
    clients: ClientRows
    instruments: InstrumentRows
    prices: PriceRows
    accounts: AccountRows
    loans: LoanRows
    positions: PositionRows

    def counts(self) -> dict[str, int]:
        return {
            "groups": len(self.groups.code),
            "clients": len(self.clients.code),
            "instruments": len(self.instruments.symbol),
            "prices": self.prices.count,
            "accounts": len(self.accounts.code),
            "loans": len(self.loans.account),
            "positions": len(self.positions.account),
        }


# --- Generation ------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class _Universe:
    instruments: InstrumentRows
    prices: PriceRows
    price_now: FloatArray  # last close, NaN for options
    option_value_now: FloatArray  # model value at as_of, NaN for everything else
    implied_volatility_now: FloatArray  # of underlyings, NaN elsewhere
    years_to_expiry: FloatArray  # at as_of, NaN for non-options
    lot_decimals: IntArray
    crypto_spots: IntArray
    crypto_tier: IntArray  # of crypto_spots
    perp_of_spot: IntArray  # indexed by instrument row, -1 when the instrument has no perpetual
    equities: IntArray
    speculative_equities: IntArray
    is_option: BoolArray
    is_perpetual: BoolArray
    is_call: BoolArray
    # By option underlying k (the order of _OPTION_UNDERLYINGS): its instrument row, its first option's
    # row, and the smallest notional one can trade (one lot of one contract at the spot).
    option_underlying: IntArray
    option_first: IntArray
    option_min_notional: FloatArray
    option_underlying_of: IntArray  # by instrument row: k when options are listed on it, else -1


def _universe_build(rng: np.random.Generator, *, as_of: datetime, history_days: int) -> _Universe:
    spec = _underlying_spec()
    closes, ewma_path, ewma, stressed = _closes_simulate(rng, spec=spec, days=history_days)
    n_crypto, n_equity = len(_CRYPTO), len(_EQUITIES)
    # Instrument rows: crypto spots, their perpetuals, equities, indexes, options.
    spot_rows = np.arange(n_crypto)
    perp_rows = n_crypto + spot_rows
    equity_rows = 2 * n_crypto + np.arange(n_equity)
    index_rows = 2 * n_crypto + n_equity + np.arange(len(_INDEXES))
    underlying_rows = np.concatenate([spot_rows, equity_rows, index_rows])
    n_linear = 2 * n_crypto + n_equity + len(_INDEXES)

    annualisation = np.where(spec.asset_class == CLASS_CRYPTO, 365.0, 252.0)
    premium = np.where(spec.asset_class == CLASS_CRYPTO, 1.15, 1.10)
    implied = np.round(
        np.sqrt(annualisation)[:, None] * (0.5 * spec.sigma[:, None] + 0.5 * ewma_path) * premium[:, None], 4
    )

    # Price rows: the underlyings, then the perpetuals with their spot's closes.
    price_instrument = np.concatenate([underlying_rows, perp_rows]).astype(np.int64)
    price_matrix = np.concatenate([closes, closes[:n_crypto]])
    implied_matrix = np.concatenate([implied, np.full((n_crypto, history_days), np.nan)])
    times = [as_of - timedelta(days=history_days - 1 - day) for day in range(history_days)]

    linear = _linear_instruments(spec, ewma=ewma, stressed=stressed)
    options = _option_instruments(spec, as_of=as_of, underlying_rows=underlying_rows, first_option_row=n_linear)
    instruments = _instruments_concat(linear, options, price_instrument=price_instrument)

    price_now = np.full(len(instruments.symbol), np.nan)
    price_now[price_instrument] = price_matrix[:, -1]
    implied_now = np.full(len(instruments.symbol), np.nan)
    implied_now[underlying_rows] = implied[:, -1]
    option_rows = np.arange(n_linear, len(instruments.symbol))
    years = np.full(len(instruments.symbol), np.nan)
    years[option_rows] = [(expiry - as_of).total_seconds() / (365.0 * 86400.0) for expiry in options.expiry if expiry]
    option_value = np.full(len(instruments.symbol), np.nan)
    is_call = np.array([kind == OptionType.CALL for kind in instruments.option_type])
    under = instruments.underlying[option_rows]
    option_value[option_rows] = risk.black_scholes(
        spot=price_now[under],
        strike=instruments.strike[option_rows],
        years=years[option_rows],
        rate=RISK_FREE_RATE,
        carry=instruments.carry_yield[under],
        volatility=implied_now[under],
        is_call=is_call[option_rows],
    )
    perp_of_spot = np.full(len(instruments.symbol), -1, dtype=np.int64)
    perp_of_spot[spot_rows] = perp_rows
    speculative = np.array([row[5] for row in _EQUITIES])
    lot_decimals = _lot_decimals(instruments, price_now)
    option_first = n_linear + _OPTIONS_PER_UNDERLYING * np.arange(len(_OPTION_UNDERLYINGS), dtype=np.int64)
    option_underlying = instruments.underlying[option_first]
    option_underlying_of = np.full(len(instruments.symbol), -1, dtype=np.int64)
    option_underlying_of[option_underlying] = np.arange(len(_OPTION_UNDERLYINGS))
    kind = np.array(instruments.kind)
    return _Universe(
        instruments=instruments,
        prices=PriceRows(
            time=times, instrument=price_instrument, price=price_matrix, implied_volatility=implied_matrix
        ),
        price_now=price_now,
        option_value_now=option_value,
        implied_volatility_now=implied_now,
        years_to_expiry=years,
        lot_decimals=lot_decimals,
        crypto_spots=spot_rows.astype(np.int64),
        crypto_tier=np.array([row[4] for row in _CRYPTO], dtype=np.int64),
        perp_of_spot=perp_of_spot,
        equities=equity_rows.astype(np.int64),
        speculative_equities=equity_rows[speculative].astype(np.int64),
        is_option=kind == KIND_OPTION,
        is_perpetual=kind == KIND_PERPETUAL,
        is_call=is_call,
        option_underlying=option_underlying,
        option_first=option_first,
        option_min_notional=price_now[option_underlying]
        * instruments.contract_size[option_first]
        * 10.0 ** -lot_decimals[option_first].astype(np.float64),
        option_underlying_of=option_underlying_of,
    )


@dataclass(frozen=True)
class _UnderlyingSpec:
    """The assets whose prices are simulated: crypto spots, equities, indexes, in that order."""

    symbol: list[str]
    asset_class: IntArray
    price: FloatArray
    sigma: FloatArray  # reference daily volatility
    correlation: FloatArray  # with the class factor
    adv_units: FloatArray
    carry: FloatArray
    initial: FloatArray
    maintenance: FloatArray
    haircut: FloatArray
    scenario_class: list[str]


def _underlying_spec() -> _UnderlyingSpec:
    symbol: list[str] = []
    asset_class: list[int] = []
    price: list[float] = []
    sigma: list[float] = []
    correlation: list[float] = []
    adv_units: list[float] = []
    carry: list[float] = []
    initial: list[float] = []
    maintenance: list[float] = []
    haircut: list[float] = []
    scenario_class: list[str] = []
    for name, last, vol, adv_musd, tier in _CRYPTO:
        spot_initial, spot_maintenance, spot_haircut, _, _, rho = _CRYPTO_TIERS[tier]
        symbol.append(name)
        asset_class.append(CLASS_CRYPTO)
        price.append(last)
        sigma.append(vol)
        correlation.append(rho)
        adv_units.append(adv_musd * 1e6 / last)
        carry.append(0.0)
        initial.append(spot_initial)
        maintenance.append(spot_maintenance)
        haircut.append(spot_haircut)
        scenario_class.append(ScenarioClass.CRYPTO)
    for name, last, vol, adv_mshares, dividend, speculative in _EQUITIES:
        symbol.append(name)
        asset_class.append(CLASS_EQUITY)
        price.append(last)
        sigma.append(vol)
        correlation.append(_EQUITY_CORRELATION[speculative])
        adv_units.append(adv_mshares * 1e6)
        carry.append(dividend)
        initial.append(0.50)
        # FINRA 4210 minimum 25%; houses ask more of volatile single names.
        maintenance.append(0.35 if speculative else 0.25)
        traded_value = adv_mshares * 1e6 * last
        haircut.append(0.35 if speculative else (0.15 if traded_value > 5e9 else 0.20))
        scenario_class.append(ScenarioClass.EQUITY)
    for name, last, vol, adv_munits, dividend, scenario, rho in _INDEXES:
        symbol.append(name)
        asset_class.append(CLASS_INDEX)
        price.append(last)
        sigma.append(vol)
        correlation.append(rho)
        adv_units.append(adv_munits * 1e6)
        carry.append(dividend)
        initial.append(0.50)
        maintenance.append(0.25)
        haircut.append(0.10)
        scenario_class.append(scenario)
    return _UnderlyingSpec(
        symbol=symbol,
        asset_class=np.array(asset_class, dtype=np.int64),
        price=np.array(price),
        sigma=np.array(sigma),
        correlation=np.array(correlation),
        adv_units=np.round(np.array(adv_units)),
        carry=np.array(carry),
        initial=np.array(initial),
        maintenance=np.array(maintenance),
        haircut=np.array(haircut),
        scenario_class=scenario_class,
    )


def _closes_simulate(
    rng: np.random.Generator, *, spec: _UnderlyingSpec, days: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Daily closes from the two-factor model (see the module docstring), rescaled to end at the reference
    prices; with the EWMA daily volatility on each close (for implied volatility), and the latest and
    stressed EWMA volatility as the price import computes them from these closes."""
    n_assets, n_returns = len(spec.symbol), days - 1
    sigma_sim = 0.8 * spec.sigma
    # Class factors, correlated 0.3 (crypto trades partly as a risk asset).
    factor_correlation = np.array([[1.0, 0.3], [0.3, 1.0]])
    factors = np.linalg.cholesky(factor_correlation) @ _student_t(rng, (2, n_returns))
    # One stress episode per factor, volatility up to about twice its calm level.
    centre = rng.uniform(0.1, 0.8, size=2) * n_returns
    t = np.arange(n_returns)[None, :]
    stress = 1.0 + 1.0 * np.exp(-0.5 * ((t - centre[:, None]) / 6.0) ** 2)
    factor_of = np.where(spec.asset_class == CLASS_CRYPTO, 0, 1)
    rho = spec.correlation[:, None]
    idiosyncratic = _student_t(rng, (n_assets, n_returns))
    returns = (
        sigma_sim[:, None] * stress[factor_of] * (rho * factors[factor_of] + np.sqrt(1.0 - rho**2) * idiosyncratic)
    )
    log_path = np.concatenate([np.zeros((n_assets, 1)), np.cumsum(returns, axis=1)], axis=1)
    closes = spec.price[:, None] * np.exp(log_path - log_path[:, -1:])
    closes = _round_to(closes, _price_decimals(spec.asset_class, spec.price)[:, None])
    # The price import's own steps (volatility refresh), so that the stored figures are the ones it would
    # store: log returns with no return on the first close (NaN), then the kernel's EWMA.
    returns = log_returns(closes)
    latest, stressed = risk.ewma_volatility(returns, lam=EWMA_LAMBDA)
    return closes, _ewma_path(returns[:, 1:], seed_sigma=sigma_sim), latest, stressed


def _student_t(rng: np.random.Generator, shape: tuple[int, int]) -> FloatArray:
    """Student-t draws with 5 degrees of freedom scaled to unit variance: the fat tails of daily returns."""
    degrees = 5.0
    return rng.standard_t(degrees, size=shape) * np.sqrt((degrees - 2.0) / degrees)


def _ewma_path(returns: FloatArray, *, seed_sigma: FloatArray) -> FloatArray:
    """RiskMetrics EWMA of daily returns as it stood on every close (the first is the seed), for the
    implied volatility history.

    Not `risk.ewma_volatility`, on purpose: that is the estimator the price import stores (the latest and
    the stressed figure only, seeded with the mean square of the first returns), and the stored figures come
    from it. Implied volatility needs a value on every close, the first ones included, before there are
    returns to seed from; the simulation knows its own volatility, so the path starts there. Taking the path
    from the kernel, one call per close, would cost time quadratic in the history (6 s at 1,000 days).
    """
    variance = np.empty((returns.shape[0], returns.shape[1] + 1))
    variance[:, 0] = seed_sigma**2
    for day in range(returns.shape[1]):
        variance[:, day + 1] = EWMA_LAMBDA * variance[:, day] + (1.0 - EWMA_LAMBDA) * returns[:, day] ** 2
    result: FloatArray = np.sqrt(variance)
    return result


def _price_decimals(asset_class: IntArray, price: FloatArray) -> IntArray:
    """Tick sizes: cents for equities and indexes, finer for cheaper coins."""
    crypto_decimals = np.select([price >= 1000, price >= 10, price >= 1], [2, 3, 4], default=5)
    return np.where(asset_class == CLASS_CRYPTO, crypto_decimals, 2).astype(np.int64)


def _round_to(values: FloatArray, decimals: IntArray | int) -> FloatArray:
    scale = 10.0 ** np.asarray(decimals, dtype=np.float64)
    # + 0.0 turns -0.0 into 0.0, which would otherwise be written as "-0.00".
    result: FloatArray = np.round(values * scale) / scale + 0.0
    return result


def _linear_instruments(spec: _UnderlyingSpec, *, ewma: FloatArray, stressed: FloatArray) -> InstrumentRows:
    """Crypto spots, their perpetuals, equities and indexes (the rows of `spec` with perpetuals inserted)."""
    n_crypto = len(_CRYPTO)
    crypto = slice(0, n_crypto)
    rest = slice(n_crypto, None)
    perp_rates = np.array([_CRYPTO_TIERS[row[4]][3:5] for row in _CRYPTO])

    def join(spot: Any, perp: Any) -> Any:
        if isinstance(spot, list):
            return spot[crypto] + list(perp) + spot[rest]
        return np.concatenate([spot[crypto], perp, spot[rest]])

    n = len(spec.symbol) + n_crypto
    return InstrumentRows(
        symbol=join(spec.symbol, [f"{name}-PERP" for name in spec.symbol[crypto]]),
        kind=[KIND_SPOT] * n_crypto + [KIND_PERPETUAL] * n_crypto + [KIND_SPOT] * (n - 2 * n_crypto),
        underlying=np.concatenate([np.full(n_crypto, -1), np.arange(n_crypto), np.full(n - 2 * n_crypto, -1)]),
        strike=np.full(n, np.nan),
        expiry=[None] * n,
        option_type=[""] * n,
        contract_size=np.ones(n),
        initial_rate=join(spec.initial, perp_rates[:, 0]),
        maintenance_rate=join(spec.maintenance, perp_rates[:, 1]),
        # A derivative is not an asset: it has no collateral value.
        haircut=join(spec.haircut, np.ones(n_crypto)),
        scenario_class=join(spec.scenario_class, [ScenarioClass.CRYPTO] * n_crypto),
        average_daily_volume=join(spec.adv_units, spec.adv_units[crypto] * _PERP_VOLUME_MULTIPLE),
        daily_volatility=join(spec.sigma, spec.sigma[crypto]),
        carry_yield=join(spec.carry, np.zeros(n_crypto)),
        ewma_volatility=join(ewma, ewma[crypto]),
        stressed_volatility=join(stressed, stressed[crypto]),
        asset_class=join(spec.asset_class, spec.asset_class[crypto]),
        price_row=np.full(n, -1),  # filled by _instruments_concat
    )


def _option_instruments(
    spec: _UnderlyingSpec, *, as_of: datetime, underlying_rows: IntArray, first_option_row: int
) -> InstrumentRows:
    """The option grid: per underlying, expiry-major, then strike, then call before put (the layout
    `_option_row` relies on)."""
    symbol: list[str] = []
    underlying: list[int] = []
    strike: list[float] = []
    expiry: list[datetime | None] = []
    option_type: list[str] = []
    contract_size: list[float] = []
    rates: list[tuple[float, float]] = []
    scenario_class: list[str] = []
    adv: list[float] = []
    sigma: list[float] = []
    asset_class: list[int] = []
    for name, step, _weight in _OPTION_UNDERLYINGS:
        k = spec.symbol.index(name)
        is_crypto = spec.asset_class[k] == CLASS_CRYPTO
        size = 1.0 if is_crypto else _EQUITY_CONTRACT_SIZE
        # FINRA 4210: 20% of the underlying for single names (crypto desks use similar levels), 15% for
        # broad-based indexes; maintenance at the minimum.
        rate = (0.20, 0.15) if spec.asset_class[k] != CLASS_INDEX else (0.15, 0.10)
        spot = float(spec.price[k])
        for when in _option_expiries(as_of, crypto=bool(is_crypto)):
            months = max((when - as_of).days / 30.0, 0.25)
            for moneyness in OPTION_MONEYNESS:
                level = round(moneyness * spot / step) * step
                # Volume concentrates at the money and in the near expiries.
                volume = spec.adv_units[k] / size * 0.002 * np.exp(-(((moneyness - 1.0) / 0.1) ** 2)) / months
                for kind in (OptionType.CALL, OptionType.PUT):
                    symbol.append(
                        f"{name}-{when:%Y%m%d}-{_strike_text(level)}-{'C' if kind == OptionType.CALL else 'P'}"
                    )
                    underlying.append(int(underlying_rows[k]))
                    strike.append(level)
                    expiry.append(when)
                    option_type.append(kind)
                    contract_size.append(size)
                    rates.append(rate)
                    scenario_class.append(spec.scenario_class[k])
                    adv.append(round(volume, 1 if is_crypto else 0))
                    # The engine moves an option through its underlying, so the underlying's sigma applies.
                    sigma.append(float(spec.sigma[k]))
                    asset_class.append(int(spec.asset_class[k]))
    if len(set(symbol)) != len(symbol):
        raise AssertionError("option strike steps collapse two strikes into one symbol")
    n = len(symbol)
    return InstrumentRows(
        symbol=symbol,
        kind=[KIND_OPTION] * n,
        underlying=np.array(underlying, dtype=np.int64),
        strike=np.array(strike),
        expiry=expiry,
        option_type=option_type,
        contract_size=np.array(contract_size),
        initial_rate=np.array([r[0] for r in rates]),
        maintenance_rate=np.array([r[1] for r in rates]),
        # Reg T: options have no loan value.
        haircut=np.ones(n),
        scenario_class=scenario_class,
        average_daily_volume=np.array(adv),
        daily_volatility=np.array(sigma),
        carry_yield=np.zeros(n),
        ewma_volatility=np.full(n, np.nan),
        stressed_volatility=np.full(n, np.nan),
        asset_class=np.array(asset_class, dtype=np.int64),
        price_row=np.full(n, -1, dtype=np.int64),
    )


def _option_expiries(as_of: datetime, *, crypto: bool) -> list[datetime]:
    """The Friday on or after each of OPTION_EXPIRY_DAYS from as_of; Deribit settles at 08:00 UTC, US
    listed options at the 16:00 New York close (20:00 UTC, ignoring daylight saving)."""
    hour = 8 if crypto else 20
    result = []
    for days in OPTION_EXPIRY_DAYS:
        day = (as_of + timedelta(days=days)).date()
        day += timedelta(days=(4 - day.weekday()) % 7)
        result.append(datetime(day.year, day.month, day.day, hour, tzinfo=UTC))
    return result


def _strike_text(strike: float) -> str:
    return f"{strike:.2f}".rstrip("0").rstrip(".")


def _instruments_concat(
    linear: InstrumentRows, options: InstrumentRows, *, price_instrument: IntArray
) -> InstrumentRows:
    columns: dict[str, Any] = {}
    for name in InstrumentRows.__dataclass_fields__:
        first, second = getattr(linear, name), getattr(options, name)
        columns[name] = first + second if isinstance(first, list) else np.concatenate([first, second])
    price_row = np.full(len(columns["symbol"]), -1, dtype=np.int64)
    price_row[price_instrument] = np.arange(len(price_instrument))
    columns["price_row"] = price_row
    columns["underlying"] = columns["underlying"].astype(np.int64)
    columns["asset_class"] = columns["asset_class"].astype(np.int64)
    return InstrumentRows(**columns)


def _lot_decimals(instruments: InstrumentRows, price_now: FloatArray) -> IntArray:
    """Order size steps: whole shares and US option contracts, 0.1 of a crypto option (Deribit's minimum),
    and coin lots worth a few dollars at most."""
    n = len(instruments.symbol)
    decimals = np.zeros(n, dtype=np.int64)
    crypto = instruments.asset_class == CLASS_CRYPTO
    is_option = np.array([kind == KIND_OPTION for kind in instruments.kind])
    coin_price = np.where(np.isnan(price_now), 1.0, price_now)
    coin_decimals = np.select([coin_price >= 10_000, coin_price >= 100, coin_price >= 1], [4, 3, 2], default=1)
    decimals[crypto & ~is_option] = coin_decimals[crypto & ~is_option]
    decimals[crypto & is_option] = 1
    return decimals


# --- Clients and groups ----------------------------------------------------------------------------------


def _clients_build(rng: np.random.Generator, *, accounts: int) -> tuple[GroupRows, ClientRows, IntArray]:
    """Clients with 1 to 4 accounts each; about 10% of clients in groups of 2 to 5."""
    per_client = rng.choice([1, 2, 3, 4], size=accounts, p=[0.82, 0.13, 0.04, 0.01])
    n_clients = int(np.searchsorted(np.cumsum(per_client), accounts) + 1)
    account_client = np.repeat(np.arange(n_clients, dtype=np.int64), per_client[:n_clients])[:accounts]

    group = np.full(n_clients, -1, dtype=np.int64)
    sizes = rng.integers(2, 6, size=max(1, n_clients // 10))
    sizes = sizes[np.cumsum(sizes) <= n_clients // 10]
    members = rng.permutation(n_clients)[: int(sizes.sum())]
    group[members] = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)

    first = rng.integers(0, len(_FIRST_NAMES), size=n_clients)
    last = rng.integers(0, len(_LAST_NAMES), size=n_clients)
    # A group is a family (or its companies) under one beneficial owner: its members share the surname.
    group_surname = rng.integers(0, len(_LAST_NAMES), size=len(sizes))
    last[members] = group_surname[group[members]]
    company = rng.random(n_clients) < 0.12
    suffix = rng.integers(0, len(_COMPANY_SUFFIXES), size=n_clients)
    names = [
        f"{_LAST_NAMES[j]} {_COMPANY_SUFFIXES[s]}" if c else f"{_FIRST_NAMES[i]} {_LAST_NAMES[j]}"
        for i, j, c, s in zip(first.tolist(), last.tolist(), company.tolist(), suffix.tolist(), strict=True)
    ]
    tier = rng.choice(len(CREDIT_TIERS), size=n_clients, p=_CREDIT_TIER_SHARES).astype(np.int64)
    declares = rng.random(n_clients) < 0.30
    capacity = np.where(declares, _round_to(rng.lognormal(np.log(100_000.0), 1.0, size=n_clients), 2), 0.0)

    group_suffix = rng.integers(0, len(_GROUP_SUFFIXES), size=len(sizes))
    groups = GroupRows(
        code=[f"GRP{k + 1:04d}" for k in range(len(sizes))],
        name=[
            f"{_LAST_NAMES[s]} {_GROUP_SUFFIXES[x]}"
            for s, x in zip(group_surname.tolist(), group_suffix.tolist(), strict=True)
        ],
    )
    clients = ClientRows(
        code=[f"CL{k + 1:06d}" for k in range(n_clients)],
        name=names,
        credit_tier=tier,
        group=group,
        external_capacity=capacity,
    )
    return groups, clients, account_client


# --- Accounts, positions and loans -----------------------------------------------------------------------


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


# --- Writing ---------------------------------------------------------------------------------------------

# Children before parents, so that no statement leaves a row pointing at a deleted one. Sweeps, their shards
# and the risk figures they wrote describe this book and go with it.
_BOOK_MODELS: Final[tuple[type[models.Model], ...]] = (
    RiskSnapshot,
    RiskState,
    SweepShard,
    Sweep,
    Position,
    MarginLoan,
    Price,
    MarginAccount,
    Client,
    ClientGroup,
    Instrument,
)
_WRITTEN_MODELS: Final[tuple[type[models.Model], ...]] = (
    ClientGroup,
    Client,
    Instrument,
    Price,
    MarginAccount,
    MarginLoan,
    Position,
)
_BULK_CREATE_BATCH: Final = 2000

Column: TypeAlias = list[str | None]


@dataclass(frozen=True)
class _Table:
    """Rows of one model as text columns (None is NULL): the same text goes to COPY and, through the
    field's own parser, to bulk_create, so both backends store exactly the same Decimals."""

    model: type[models.Model]
    columns: dict[str, Column]  # field name -> values

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))


def demo_book_write(*, book: DemoBook, replace: bool = True) -> dict[str, int]:
    """Write `book` in one transaction and return the counts written.

    With `replace`, the book already in the database is deleted first, with the sweeps (and their shards),
    risk states and snapshots that refer to it; rows of other apps that point into the book make this refuse
    (ConflictError) rather than delete them too. Without `replace`, the book tables must be empty.
    """
    postgres = connection.vendor == "postgresql"
    with transaction.atomic():
        if postgres:
            _book_tables_lock()
        # New ids continue after the old ones, so nothing cached under an old id can match a new row.
        id_base = {model: _max_id(model) for model in _WRITTEN_MODELS}
        if replace:
            _book_delete(postgres=postgres)
        else:
            _book_must_be_empty()
        for table in _book_tables(book, id_base=id_base, now=timezone.now()):
            if postgres:
                _copy(table)
            else:
                _bulk_create(table)
        _sequences_reset()
    if postgres:
        # Fresh statistics for the tables just replaced: planned on the old ones (or none), the sweep's joins
        # over a new book of 100,000 accounts sorted on disk. Autovacuum would get there, later or never.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE " + ", ".join(_quoted_table(model) for model in _WRITTEN_MODELS))
    return book.counts()


def _quoted_table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _book_tables_lock() -> None:
    """EXCLUSIVE: readers go on reading the old book until we commit; no one else writes meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {', '.join(_quoted_table(m) for m in _BOOK_MODELS)} IN EXCLUSIVE MODE")


def _max_id(model: type[models.Model]) -> int:
    result = model._default_manager.aggregate(top=models.Max("pk"))["top"]
    return int(result or 0)


def _foreign_relations() -> list[models.ForeignObjectRel]:
    """Relations from models outside the book (restructuring cases, say) to models of the book.

    Hidden ones too (related_name="+"): `_meta.related_objects` leaves them out, and a foreign key without
    a database constraint would not stop the DELETE either, so its rows would be left pointing at nothing.
    """
    book = set(_BOOK_MODELS)
    return [
        relation
        for model in _BOOK_MODELS
        for relation in model._meta.get_fields(include_hidden=True)
        if isinstance(relation, models.ForeignObjectRel) and relation.related_model not in book
    ]


def _book_delete(*, postgres: bool) -> None:
    foreign = _foreign_relations()
    for relation in foreign:
        referring = relation.related_model._default_manager.filter(**{f"{relation.field.name}__isnull": False})
        if referring.exists():
            label = relation.related_model._meta.label
            raise ConflictError(
                f"{label} rows refer to the book ({relation.field.name}); remove them before replacing the book",
                model=label,
            )
    with connection.cursor() as cursor:
        if postgres and not foreign:
            # TRUNCATE skips the per-row work of DELETE; it is only allowed when no other table refers here.
            # It is not MVCC-safe (a transaction whose snapshot predates the load sees empty tables
            # afterwards), which a demo or benchmark reload can live with. PostgreSQL also refuses it on a
            # table with foreign-key checks still deferred in this transaction (rows the caller's transaction
            # wrote into the book, say): run them now (SET CONSTRAINTS ALL IMMEDIATE, then back to deferred).
            connection.check_constraints()
            cursor.execute(f"TRUNCATE {', '.join(_quoted_table(m) for m in _BOOK_MODELS)}")
            return
        for model in _BOOK_MODELS:
            cursor.execute(f"DELETE FROM {_quoted_table(model)}")


def _book_must_be_empty() -> None:
    holding = [model._meta.label for model in _WRITTEN_MODELS if model._default_manager.exists()]
    if holding:
        raise ConflictError(f"a book is already loaded ({', '.join(holding)}); replace it instead", models=holding)


def _sequences_reset() -> None:
    """Explicit ids leave PostgreSQL's identity sequences behind; move them past the new rows."""
    statements = connection.ops.sequence_reset_sql(no_style(), list(_WRITTEN_MODELS))
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _fields(table: _Table) -> list[models.Field[Any, Any]]:
    fields = [table.model._meta.get_field(name) for name in table.columns]
    concrete = [field for field in fields if isinstance(field, models.Field)]
    if len(concrete) != len(fields):
        raise AssertionError(f"{table.model.__name__}: only concrete fields can be written")
    return concrete


def _copy(table: _Table) -> None:
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in _fields(table))
    sql = f"COPY {_quoted_table(table.model)} ({columns}) FROM STDIN"
    # cursor.cursor is the psycopg 3 cursor inside Django's wrapper.
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in zip(*table.columns.values(), strict=True):
            copy.write_row(row)


def _bulk_create(table: _Table) -> None:
    fields = _fields(table)
    parsed = [
        [None if text is None else field.to_python(text) for text in values]
        for field, values in zip(fields, table.columns.values(), strict=True)
    ]
    attnames = [field.attname for field in fields]
    objects = [table.model(**dict(zip(attnames, row, strict=True))) for row in zip(*parsed, strict=True)]
    table.model._default_manager.bulk_create(objects, batch_size=_BULK_CREATE_BATCH)


def _book_tables(book: DemoBook, *, id_base: dict[type[models.Model], int], now: datetime) -> list[_Table]:
    """The rows to write, parents first."""
    stamp = now.isoformat()
    groups, clients, instruments, prices = book.groups, book.clients, book.instruments, book.prices
    accounts, loans, positions = book.accounts, book.loans, book.positions
    n_clients, n_instruments, n_accounts = len(clients.code), len(instruments.symbol), len(accounts.code)
    n_prices, n_loans, n_positions = prices.count, len(loans.account), len(positions.account)
    n_days = len(prices.time)

    def ids(model: type[models.Model], count: int) -> Column:
        return [str(id_base[model] + k) for k in range(1, count + 1)]

    def refs(model: type[models.Model], rows: IntArray) -> Column:
        base = id_base[model] + 1
        return [None if row < 0 else str(base + row) for row in rows.tolist()]

    return [
        _Table(
            ClientGroup,
            {"id": ids(ClientGroup, len(groups.code)), "code": _text(groups.code), "name": _text(groups.name)},
        ),
        _Table(
            Client,
            {
                "id": ids(Client, n_clients),
                "code": _text(clients.code),
                "name": _text(clients.name),
                "credit_tier": [CREDIT_TIERS[k] for k in clients.credit_tier.tolist()],
                "group": refs(ClientGroup, clients.group),
                "external_capacity": _decimal_text(clients.external_capacity, 2),
                "created_at": [stamp] * n_clients,
            },
        ),
        _Table(
            Instrument,
            {
                "id": ids(Instrument, n_instruments),
                "symbol": _text(instruments.symbol),
                "kind": [str(kind) for kind in instruments.kind],
                "currency": ["USD"] * n_instruments,
                "underlying": refs(Instrument, instruments.underlying),
                "strike": _decimal_text(instruments.strike, 8),
                "expiry": [None if expiry is None else expiry.isoformat() for expiry in instruments.expiry],
                "option_type": [str(kind) for kind in instruments.option_type],
                "contract_size": _decimal_text(instruments.contract_size, 8),
                "initial_rate": _decimal_text(instruments.initial_rate, 8),
                "maintenance_rate": _decimal_text(instruments.maintenance_rate, 8),
                "haircut": _decimal_text(instruments.haircut, 8),
                "scenario_class": [str(name) for name in instruments.scenario_class],
                "average_daily_volume": _decimal_text(instruments.average_daily_volume, 8),
                "daily_volatility": _decimal_text(instruments.daily_volatility, 8),
                "carry_yield": _decimal_text(instruments.carry_yield, 8),
                "ewma_volatility": _float_text(instruments.ewma_volatility),
                "stressed_volatility": _float_text(instruments.stressed_volatility),
                "volatility_as_of": [
                    None if np.isnan(sigma) else book.as_of.isoformat()
                    for sigma in instruments.ewma_volatility.tolist()
                ],
            },
        ),
        _Table(
            Price,
            {
                "id": ids(Price, n_prices),
                "instrument": refs(Instrument, np.repeat(prices.instrument, n_days)),
                "time": _text([moment.isoformat() for moment in prices.time] * len(prices.instrument)),
                "price": _decimal_text(prices.price.ravel(), 8),
                "implied_volatility": _decimal_text(prices.implied_volatility.ravel(), 8),
            },
        ),
        _Table(
            MarginAccount,
            {
                "id": ids(MarginAccount, n_accounts),
                "code": _text(accounts.code),
                "client": refs(Client, accounts.client),
                "mode": [MarginMode.ISOLATED if flag else MarginMode.CROSS for flag in accounts.isolated.tolist()],
                "margin_model": [
                    MarginModel.PORTFOLIO if flag else MarginModel.STANDARD
                    for flag in accounts.portfolio_margin.tolist()
                ],
                "base_currency": ["USD"] * n_accounts,
                "cash": _decimal_text(accounts.cash, 2),
                "created_at": [stamp] * n_accounts,
                "updated_at": [stamp] * n_accounts,
            },
        ),
        _Table(
            MarginLoan,
            {
                "id": ids(MarginLoan, n_loans),
                "account": refs(MarginAccount, loans.account),
                "principal": _decimal_text(loans.principal, 2),
                "rate_annual": _decimal_text(loans.rate_annual, 8),
                "accrued_interest": _decimal_text(loans.accrued_interest, 2),
                "status": [str(LoanStatus.ACTIVE)] * n_loans,
                "opened_at": [stamp] * n_loans,
                "maturity_date": [None if day is None else day.isoformat() for day in loans.maturity_date],
            },
        ),
        _Table(
            Position,
            {
                "id": ids(Position, n_positions),
                "account": refs(MarginAccount, positions.account),
                "instrument": refs(Instrument, positions.instrument),
                "quantity": _decimal_text(positions.quantity, 8),
                "entry_price": _decimal_text(positions.entry_price, 8),
                "isolated_margin": _decimal_text(positions.isolated_margin, 2),
                "updated_at": [stamp] * n_positions,
            },
        ),
    ]


def _decimal_text(values: FloatArray, places: int) -> Column:
    """Float64 to decimal text rounded to `places` (NaN is NULL). The generator has already rounded money to
    cents and quantities to lots, so this rounding only removes binary noise."""
    text = f"{{:.{places}f}}".format
    # NaN is the only value not equal to itself.
    return [None if value != value else text(value + 0.0) for value in values.tolist()]


def _text(values: Sequence[str]) -> Column:
    return list(values)


def _float_text(values: FloatArray) -> Column:
    return [None if value != value else repr(value) for value in values.tolist()]
