"""The risk committee's first question: a big drop in one asset across the book; what does liquidating every
account that breaches cost (bad debt, market impact, as the sales feed on each other), against restructuring
them by the published rules (only the accounts the rules send to liquidation are sold)?

Both scenarios run restructuring.cascade on the whole book held in memory (accounts.services.live_book) from the
same shocked prices. For the rules, each account below maintenance right after the shock gets its facts from
the shocked risk figures and its client (rules/schema.py; facts that need a feasibility report are unknown,
so rules on them do not fire) and the published set decides: an account is sold when a package with
`liquidate` fires for it. The others are kept: their debt is carried, not crystallised, and the report says how
far under water they are at the scenario's final prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.utils.translation import gettext, gettext_noop

from accounts import risk
from accounts.models import Instrument, MarginAccount
from accounts.services.live_book import LiveBook
from core.errors import NotFoundError, ValidationError
from restructuring.cascade import CascadeOutcome, cascade, shocked_prices
from rules.actions import LIQUIDATE
from rules.engine import evaluate
from rules.expressions import columns_from_rows
from rules.schema import FACT_TYPES
from rules.services import published_rules


@dataclass(frozen=True)
class Scenario:
    name: str
    accounts_sold: int
    bad_debt: Decimal
    impact_cost: Decimal
    rounds: int
    price_path: list[float]  # the shocked asset after each round, from the shocked price
    accounts_kept: int  # breached but restructured instead of sold
    debt_kept: Decimal
    under_water_kept: Decimal  # how far the kept accounts' equity is below zero at the final prices


@dataclass(frozen=True)
class CascadeComparison:
    symbol: str
    drop: float
    price_before: float
    price_shocked: float
    accounts_breached: int  # below maintenance right after the shock
    liquidate_all: Scenario
    by_rules: Scenario
    rule_set_version: int | None

    def as_dict(self) -> dict[str, Any]:
        def scenario(s: Scenario) -> dict[str, Any]:
            return {
                "accounts_sold": s.accounts_sold,
                "bad_debt": str(s.bad_debt),
                "impact_cost": str(s.impact_cost),
                "rounds": s.rounds,
                "price_path": [round(p, 8) for p in s.price_path],
                "accounts_kept": s.accounts_kept,
                "debt_kept": str(s.debt_kept),
                "under_water_kept": str(s.under_water_kept),
            }

        return {
            "symbol": self.symbol,
            "drop": self.drop,
            "price_before": self.price_before,
            "price_shocked": self.price_shocked,
            "accounts_breached": self.accounts_breached,
            "rule_set_version": self.rule_set_version,
            "liquidate_all": scenario(self.liquidate_all),
            "by_rules": scenario(self.by_rules),
        }


def _money(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal("0.01"))


def cascade_compare(*, symbol: str, drop: float, live: LiveBook | None = None) -> CascadeComparison:
    if not (isinstance(drop, float | int) and 0 < drop < 1):
        raise ValidationError(
            gettext("drop %(drop)s: a fraction between 0 and 1 (0.3 is a 30%% fall)") % {"drop": drop}, field="drop"
        )
    instrument = Instrument.objects.filter(symbol=symbol).values_list("pk", flat=True).first()
    if instrument is None:
        raise NotFoundError(gettext("no instrument %(symbol)s") % {"symbol": repr(symbol)}, field="symbol")
    live = live or LiveBook.load(shards=1)
    loaded, book, market, params = live.loaded, live.loaded.book, live.market, live.params
    index = int(np.searchsorted(loaded.instrument_ids, instrument))
    root = int(book.instruments.root[index])
    volume = _daily_volume(loaded.instrument_ids, book)
    impact = settings.WORKOUT_IMPACT_COEFFICIENT
    run = dict(root=root, drop=float(drop), daily_volume=volume, impact_coefficient=impact)
    shocked = shocked_prices(book, market, root, float(drop))
    first = live.prepared.evaluate(replace(market, price=shocked), params)
    breached = first.band >= risk.BAND_MARGIN_CALL

    everyone = cascade(live.prepared, book, market, params, **run)
    sell, version = _rules_sellers(loaded, book, shocked, first, breached)
    by_rules = cascade(live.prepared, book, market, params, sellers=sell, **run)
    debt = book.accounts.debt
    return CascadeComparison(
        symbol=symbol,
        drop=float(drop),
        price_before=float(market.price[root]),
        price_shocked=float(shocked[root]),
        accounts_breached=int(breached.sum()),
        liquidate_all=_scenario(gettext_noop("liquidate every breached account"), everyone, float(shocked[root]), debt),
        by_rules=_scenario(gettext_noop("restructure by the published rules"), by_rules, float(shocked[root]), debt),
        rule_set_version=version,
    )


def _scenario(name: str, outcome: CascadeOutcome, start: float, debt: np.ndarray) -> Scenario:
    kept = outcome.final_breached & ~outcome.liquidated
    return Scenario(
        name=name,
        accounts_sold=outcome.accounts_liquidated,
        bad_debt=_money(outcome.bad_debt),
        impact_cost=_money(outcome.impact_cost),
        rounds=len(outcome.rounds),
        price_path=[start, *(r.shocked_price for r in outcome.rounds)],
        accounts_kept=int(kept.sum()),
        debt_kept=_money(float(debt[kept].sum())),
        under_water_kept=_money(float(np.maximum(-outcome.final_equity[kept], 0.0).sum())),
    )


def _daily_volume(instrument_ids: np.ndarray, book: risk.Book) -> np.ndarray:
    """Average daily volume per instrument in units (contract size applied), in the book's instrument order."""
    volumes = dict(Instrument.objects.filter(pk__in=instrument_ids.tolist()).values_list("pk", "average_daily_volume"))
    adv = np.array([float(volumes.get(int(i), 0)) for i in instrument_ids.tolist()])
    return np.asarray(adv * book.instruments.contract_size)


def _rules_sellers(
    loaded: Any, book: risk.Book, prices: np.ndarray, result: risk.RiskResult, breached: np.ndarray
) -> tuple[np.ndarray, int | None]:
    """The breached accounts the published rules send to liquidation, on their shocked facts."""
    sellers = np.zeros(len(book.accounts), dtype=np.bool_)
    published = published_rules()
    if published is None or not breached.any():
        return sellers, published[0].version if published else None
    rule_set, compiled = published
    rows_at = np.flatnonzero(breached)
    account_ids = loaded.account_ids[rows_at].tolist()
    clients = {
        a: (tier, float(capacity), mode)
        for a, tier, capacity, mode in MarginAccount.objects.filter(pk__in=account_ids).values_list(
            "pk", "client__credit_tier", "client__external_capacity", "mode"
        )
    }
    positions, instruments = book.positions, book.instruments
    # Options at their underlying's price (their notional), everything else at its own; no price, no weight.
    priced = np.where(instruments.kind == risk.KIND_OPTION, prices[instruments.root], prices)
    gross = np.nan_to_num(
        np.abs(positions.quantity * instruments.contract_size[positions.instrument] * priced[positions.instrument])
    )
    top = np.zeros(len(book.accounts))
    np.maximum.at(top, positions.account, gross)
    total = np.bincount(positions.account, weights=gross, minlength=len(book.accounts))
    count = np.bincount(positions.account, minlength=len(book.accounts))
    rows = []
    for k, account_id in zip(rows_at.tolist(), account_ids, strict=True):
        tier, capacity, mode = clients[account_id]
        debt = float(book.accounts.debt[k])
        shortfall = float(result.shortfall_initial[k])
        rows.append(
            {
                "shortfall": shortfall,
                "shortfall_pct": shortfall / debt if debt > 0 else math.nan,
                "margin_ratio": float(result.margin_ratio[k]),
                "equity": float(result.equity[k]),
                "debt": debt,
                "account_value": float(result.equity[k]) + debt,
                "concentration_top1": float(top[k] / total[k]) if total[k] > 0 else math.nan,
                "position_count": float(count[k]),
                "credit_tier": tier,
                "external_capacity": capacity,
                "is_isolated": mode == "isolated",
                "days_in_margin_call": 0.0,
                "prior_restructurings": 0.0,
                "group_exposure": debt,
            }
        )
    firings = evaluate(compiled, columns_from_rows(rows, FACT_TYPES), len(rows))
    for k, fired in zip(rows_at.tolist(), firings, strict=True):
        sellers[k] = any(f.action == LIQUIDATE and not f.problem for f in fired)
    return sellers, rule_set.version
