"""Rate limits as atomic counters in the shared cache (Redis in production).

The library throttle kept a list of timestamps per key and wrote it back after reading it: two
processes (or threads) read the same list and both passed, so 20 concurrent withdrawals got
through a 10/h limit. Here every attempt is one atomic INCR on a per-window counter, so the
counters of all processes add up, and the window slides: the previous window's count is
weighted by how much of it still overlaps the last `period` seconds (no double burst at a
window edge). A refused attempt gives its unit back, so hammering a limit does not extend it.

While the cache is unreachable the limits fail open, as documented in docs/reliability.md.
"""

import contextlib
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from ninja.throttling import BaseThrottle

from project.client_address import client_address


@dataclass(frozen=True)
class Hit:
    allowed: bool
    retry_after: float | None = None


def hit(key: str, *, limit: int, period: int, now: float | None = None) -> Hit:
    """Counts one attempt against `limit` per `period` seconds for `key`."""
    now = time.time() if now is None else now
    window = int(now // period)
    current = f"rl:{key}:{window}"
    counted = _count(current, f"rl:{key}:{window - 1}", timeout=2 * period + 60)
    if counted is None:
        return Hit(True)  # the cache is down: let it through (fail open)
    count, previous = counted
    elapsed = (now - window * period) / period
    # No rounding: rounding the weighted part down gave one extra attempt at each window edge.
    if previous * (1 - elapsed) + count <= limit:
        return Hit(True)
    with contextlib.suppress(ValueError):
        cache.decr(current)
    return Hit(False, retry_after=max(1.0, (window + 1) * period - now))


def peek(key: str, *, limit: int, period: int, now: float | None = None) -> Hit:
    """Whether one more attempt for `key` would pass `hit`, without counting one: for a counter
    of failures that only failures add to."""
    now = time.time() if now is None else now
    window = int(now // period)
    try:
        counts = cache.get_many([f"rl:{key}:{window}", f"rl:{key}:{window - 1}"])
    except Exception:  # noqa: BLE001 - fail open, as `hit` does while the cache is down
        return Hit(True)
    count = int(counts.get(f"rl:{key}:{window}") or 0)
    previous = int(counts.get(f"rl:{key}:{window - 1}") or 0)
    elapsed = (now - window * period) / period
    if previous * (1 - elapsed) + count + 1 <= limit:
        return Hit(True)
    return Hit(False, retry_after=max(1.0, (window + 1) * period - now))


def count_scope(scope: str, ident: str) -> Hit:
    """One attempt against settings.RATE_LIMITS[scope] for `ident` (outside a Ninja throttle:
    a key the view learns while it runs, like the openid code2session returns)."""
    limit, period = parse_rate(settings.RATE_LIMITS[scope])
    return hit(f"{scope}:{ident}", limit=limit, period=period)


def peek_scope(scope: str, ident: str) -> Hit:
    limit, period = parse_rate(settings.RATE_LIMITS[scope])
    return peek(f"{scope}:{ident}", limit=limit, period=period)


def _count(current: str, previous: str, *, timeout: int) -> tuple[int, int] | None:
    """This attempt counted in the current window, and the previous window's count. The window
    is kept `timeout` seconds, so the next window can weigh it. On Redis one round trip (a
    script); elsewhere (the embedded cache) add, incr and get."""
    count_window = getattr(cache, "count_window", None)
    if count_window is not None:
        return count_window(current, previous, timeout)
    # Created before the increment, so it never expires between the two calls.
    cache.add(current, 0, timeout=timeout)
    try:
        count = cache.incr(current)
    except ValueError:  # evicted between add and incr
        return None
    return count, cache.get(previous) or 0


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/h' -> (10, 3600); '5/10m' -> (5, 600)."""
    count, _, per = rate.partition("/")
    unit = per[-1:]
    if unit not in _PERIODS or int(count) < 1:
        raise ValueError(f"invalid rate {rate!r}")
    multiple = int(per[:-1]) if per[:-1] else 1
    return int(count), multiple * _PERIODS[unit]


class RateLimit(BaseThrottle):
    """A Ninja throttle on `hit`: per user id when signed in (never the nickname, which anyone
    can copy or change), per client address otherwise or when `per="address"`."""

    def __init__(self, scope: str, rate: str | None = None, *, per: str = "user") -> None:
        """`rate` like "10/h"; None reads settings.RATE_LIMITS[scope] on each request (so an
        operator's setting, or a test's, applies without a restart)."""
        if per not in {"user", "address"}:
            raise ValueError(per)
        self.scope, self.per, self.rate = scope, per, rate
        if rate is not None:
            parse_rate(rate)  # a bad rate fails at start-up, not on the first request
        # One instance serves every request of its operation; Ninja asks wait() right after
        # allow_request() in the same thread.
        self._last = threading.local()

    @property
    def limit(self) -> int:
        return parse_rate(self.rate or settings.RATE_LIMITS[self.scope])[0]

    @property
    def period(self) -> int:
        return parse_rate(self.rate or settings.RATE_LIMITS[self.scope])[1]

    def ident(self, request: HttpRequest) -> str:
        user = getattr(request, "auth", None)
        user_id = getattr(user, "pk", None)
        if self.per == "user" and user_id is not None:
            return f"user:{user_id}"
        return f"ip:{client_address(request) or '-'}"

    def allow_request(self, request: HttpRequest) -> bool:
        result = hit(f"{self.scope}:{self.ident(request)}", limit=self.limit, period=self.period)
        self._last.retry_after = result.retry_after
        return result.allowed

    def wait(self) -> float | None:
        return getattr(self._last, "retry_after", None)
