"""Throttling per token: at most N requests per period (REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"],
e.g. "1200/minute"), counted in fixed windows with one atomic increment in the cache (WORKOUT_API_THROTTLE_CACHE).
With a shared cache (Redis) the limit holds across processes; with the local-memory default, per process.
Requests without a token are refused before they are counted (401), so they need no limit of their own."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from accounts.models import ApiToken

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rate_parse(rate: str) -> tuple[int, int]:
    """Parse a rate: "1200/minute" is (1200, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0].lower()]


class TokenRateThrottle(BaseThrottle):
    scope = "token"

    def __init__(self) -> None:
        self.limit, self.period = rate_parse(str(api_settings.DEFAULT_THROTTLE_RATES[self.scope]))
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        now = time.time()
        window = int(now // self.period)
        key = f"api-throttle:{token.pk}:{window}"
        cache = caches[settings.WORKOUT_API_THROTTLE_CACHE]
        cache.add(key, 0, timeout=self.period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # evicted between add and incr
            cache.set(key, 1, timeout=self.period + 1)
            count = 1
        if count > self.limit:
            self._wait = (window + 1) * self.period - now
            return False
        return True

    def wait(self) -> float | None:
        return self._wait
