"""Dynamic margin's inputs: each priced instrument's EWMA volatility of daily returns and its stressed
(largest) EWMA volatility over the lookback, computed from the stored prices and kept on the instrument."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts import risk
from accounts.models import Instrument, InstrumentKind, Price
from core.bulk import fetch_columns, is_postgresql

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class VolatilityRefresh:
    instruments: int
    as_of: datetime


def daily_closes(
    *, instrument_ids: np.ndarray, epoch_seconds: np.ndarray, prices: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The last price of each instrument on each UTC day, as a (instruments x days) matrix with NaN where
    an instrument has no price that day. Returns (unique instrument ids, closes)."""
    day = np.floor(epoch_seconds / SECONDS_PER_DAY).astype(np.int64)
    order = np.lexsort((epoch_seconds, day, instrument_ids))
    ids, day, prices = instrument_ids[order], day[order], prices[order]
    last_of_day = np.ones(len(ids), dtype=np.bool_)
    last_of_day[:-1] = (ids[1:] != ids[:-1]) | (day[1:] != day[:-1])
    ids, day, prices = ids[last_of_day], day[last_of_day], prices[last_of_day]
    unique_ids, row = np.unique(ids, return_inverse=True)
    first_day = day.min() if len(day) else 0
    closes = np.full((len(unique_ids), (day.max() - first_day + 1) if len(day) else 0), np.nan)
    closes[row, day - first_day] = prices
    return unique_ids, closes


def log_returns(closes: np.ndarray) -> np.ndarray:
    """Log return of each close over the previous observed close of the same instrument (gaps span days)."""
    returns = np.full(closes.shape, np.nan)
    for i, series in enumerate(closes):  # one row per instrument: a few hundred, each a vector op
        observed = np.flatnonzero(np.isfinite(series))
        if len(observed) > 1:
            returns[i, observed[1:]] = np.diff(np.log(series[observed]))
    return returns


def instrument_volatility_refresh(
    *, instrument_ids: Iterable[int] | None = None, as_of: datetime | None = None
) -> VolatilityRefresh:
    """Recompute EWMA and stressed volatility for the given instruments (all priced ones by default) from
    their daily closes over WORKOUT_VOLATILITY_LOOKBACK_DAYS up to `as_of`. Options are model-priced and
    have no series of their own."""
    as_of = as_of or timezone.now()
    since = as_of - timedelta(days=settings.WORKOUT_VOLATILITY_LOOKBACK_DAYS)
    wanted = Instrument.objects.exclude(kind=InstrumentKind.OPTION)
    if instrument_ids is not None:
        wanted = wanted.filter(id__in=list(instrument_ids))
    id_list = list(wanted.values_list("id", flat=True))
    if not id_list:
        return VolatilityRefresh(instruments=0, as_of=as_of)
    epoch = "EXTRACT(EPOCH FROM time)" if is_postgresql() else "strftime('%%s', time)"
    ids, seconds, prices = fetch_columns(
        f"""
        SELECT instrument_id, CAST({epoch} AS float8), CAST(price AS float8) FROM accounts_price
        WHERE time > %s AND time <= %s AND instrument_id IN ({", ".join(["%s"] * len(id_list))})
        """,
        [since, as_of, *id_list],
        ["int8", "float8", "float8"],
    )
    series_ids, closes = daily_closes(instrument_ids=ids, epoch_seconds=seconds, prices=prices)
    ewma, stressed = risk.ewma_volatility(log_returns(closes), lam=settings.WORKOUT_EWMA_LAMBDA)
    by_id = {int(i): (ewma[k], stressed[k]) for k, i in enumerate(series_ids.tolist())}
    instruments = list(Instrument.objects.filter(id__in=id_list).only("id"))
    for instrument in instruments:
        latest, worst = by_id.get(instrument.pk, (np.nan, np.nan))
        instrument.ewma_volatility = float(latest) if np.isfinite(latest) else None
        instrument.stressed_volatility = float(worst) if np.isfinite(worst) else None
        instrument.volatility_as_of = as_of
    with transaction.atomic():
        Instrument.objects.bulk_update(
            instruments, ["ewma_volatility", "stressed_volatility", "volatility_as_of"], batch_size=1000
        )
    return VolatilityRefresh(instruments=len(instruments), as_of=as_of)


def volatility_due_instrument_ids(*, now: datetime | None = None) -> list[int]:
    """Instruments with a price newer than their volatility (up to `now`): the refresh a price import queued on
    commit was lost (the broker down then). The beat re-drives them; the refresh is idempotent. A lost refresh
    after an import that only rewrote prices older than the last refresh is not seen here: the next import's
    refresh covers it."""
    now = now or timezone.now()
    newer = Price.objects.filter(instrument=OuterRef("pk"), time__lte=now).filter(
        Q(instrument__volatility_as_of__isnull=True) | Q(time__gt=OuterRef("volatility_as_of"))
    )
    due = Instrument.objects.exclude(kind=InstrumentKind.OPTION).filter(Exists(newer))
    return list(due.order_by("pk").values_list("pk", flat=True))
