"""The market of the demo book: its instruments (crypto, equities, indexes, perpetuals, options) and their
price history, simulated from a factor model (see the package's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np

from accounts import risk
from accounts.models import InstrumentKind, OptionType, ScenarioClass
from accounts.services.volatility import log_returns
from demo.book.rows import BoolArray, FloatArray, InstrumentRows, IntArray, PriceRows

# Same default as settings.WORKOUT_RISK_FREE_RATE; the generator reads no settings so that it stays pure.
RISK_FREE_RATE: Final = 0.04
EWMA_LAMBDA: Final = 0.94

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
