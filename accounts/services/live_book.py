"""The book held in a worker's memory and re-marked on every price tick.

Loading and preparing the book (the sparse structure of who holds what) is the expensive part of a sweep;
re-marking it at new prices is a few sparse products. A LiveBook keeps the prepared book and the last
market, takes price updates, and reports the accounts whose health band moved, so a price feed can drive
margin calls without a full sweep per tick. It must be reloaded when the book itself changes (positions,
cash, loans) and at least daily (options' time to expiry is fixed at load).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
from django.utils import timezone

from accounts import risk
from accounts.selectors import LoadedBook, book_arrays_load
from accounts.services.sweep import BandChanges, risk_params


@dataclass(frozen=True)
class Remark:
    result: risk.RiskResult
    changes: BandChanges


class LiveBook:
    def __init__(self, loaded: LoadedBook, *, params: risk.RiskParams | None = None, shards: int = 2) -> None:
        self.loaded = loaded
        self.params = params or risk_params()
        self.market = loaded.market
        self.prepared = risk.ShardedBook.prepare(loaded.book, shards)
        self._instrument_index = {int(i): k for k, i in enumerate(loaded.instrument_ids.tolist())}
        self.result = self.prepared.evaluate(self.market, self.params)

    @classmethod
    def load(cls, *, as_of: datetime | None = None, shards: int = 2) -> LiveBook:
        return cls(book_arrays_load(as_of=as_of or timezone.now()), shards=shards)

    def remark(self, *, prices: Mapping[int, float], implied_volatilities: Mapping[int, float] | None = None) -> Remark:
        """Apply new prices (and implied volatilities) by instrument id, re-evaluate the whole book, and
        return the new figures and the accounts whose band changed since the last mark."""
        price = self.market.price.copy()
        implied = self.market.implied_volatility.copy()
        for instrument_id, value in prices.items():
            if not (value > 0 and np.isfinite(value)):
                raise ValueError(f"instrument {instrument_id}: price {value!r} is not a positive finite number")
            price[self._instrument_index[instrument_id]] = value
        for instrument_id, value in (implied_volatilities or {}).items():
            if not (value > 0 and np.isfinite(value)):
                raise ValueError(f"instrument {instrument_id}: implied volatility {value!r} is not positive")
            implied[self._instrument_index[instrument_id]] = value
        market = replace(self.market, price=price, implied_volatility=implied)
        result = self.prepared.evaluate(market, self.params)
        changed = result.band != self.result.band
        changes = BandChanges(
            account_ids=self.loaded.account_ids[changed],
            previous=self.result.band[changed].astype(np.int16),
            current=result.band[changed].astype(np.int16),
        )
        self.market, self.result = market, result
        return Remark(result=result, changes=changes)
