"""Black-Scholes-Merton prices from QuantLib, the independent reference for option values.

Flat continuously compounded curves and a constant volatility on Actual/365 Fixed; the expiry is a whole
number of days after the evaluation date, so the year fraction QuantLib sees is exactly days / 365, the
float the tests hand the kernel as `expiry_years`.
"""

from __future__ import annotations

import QuantLib as ql

EVALUATION_DATE = ql.Date(15, ql.January, 2025)
DAY_COUNT = ql.Actual365Fixed()


def years(days: int) -> float:
    """The year fraction QuantLib uses for an expiry `days` after the evaluation date (days / 365)."""
    fraction = DAY_COUNT.yearFraction(EVALUATION_DATE, EVALUATION_DATE + days)
    assert fraction == days / 365
    return float(fraction)


def option_price(
    *, spot: float, strike: float, days: int, rate: float, carry: float, volatility: float, is_call: bool
) -> float:
    """QuantLib's AnalyticEuropeanEngine price of one European option on a BlackScholesMertonProcess."""
    settings = ql.Settings.instance()
    saved = settings.evaluationDate
    settings.evaluationDate = EVALUATION_DATE
    try:
        today = EVALUATION_DATE
        process = ql.BlackScholesMertonProcess(
            ql.QuoteHandle(ql.SimpleQuote(spot)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, carry, DAY_COUNT)),
            ql.YieldTermStructureHandle(ql.FlatForward(today, rate, DAY_COUNT)),
            ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), volatility, DAY_COUNT)),
        )
        option = ql.EuropeanOption(
            ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike),
            ql.EuropeanExercise(today + days),
        )
        option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
        return float(option.NPV())
    finally:
        settings.evaluationDate = saved
