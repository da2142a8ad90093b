"""Per-user rate limits that hold under concurrency.

ninja's own throttles read the request history from the cache, append and write it back: two
requests at once both read the same history and both pass. Here a fixed window is one counter
per user in the shared cache, created with `add` and counted with `incr` (both atomic in Redis),
so a burst of parallel uploads gets exactly the limit through. Throttles run after
authentication and before the body is parsed, so a refused upload is not read.
"""

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ninja.throttling import BaseThrottle

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UserRateThrottle(BaseThrottle):
    """`rate` like "20/h"; by default settings.RATE_LIMITS[scope], read on each request."""

    def __init__(self, scope: str, rate: str | None = None) -> None:
        self.scope = scope
        self.rate = rate

    def _limits(self) -> tuple[int, int]:
        # The same "10/m", "20/h" notation as ninja's throttles.
        count, period = (self.rate or settings.RATE_LIMITS[self.scope]).split("/", 1)
        return int(count), _PERIODS[period[:1]]

    def allow_request(self, request: HttpRequest) -> bool:
        user_id = getattr(getattr(request, "auth", None), "pk", None)
        if user_id is None:
            return True  # the operation's auth refuses it
        limit, period = self._limits()
        window = int(time.time() // period)
        key = f"throttle:{self.scope}:{user_id}:{window}"
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:
            # Redis is unreachable (project.cache fails open): limits are not enforced for that
            # time, as documented in docs/reliability.md.
            return True
        return count <= limit

    def wait(self) -> float:
        # Computed, not remembered: one throttle object serves every thread.
        period = self._limits()[1]
        return period - time.time() % period
