"""The Redis cache, failing open: a Redis outage must not turn requests into 500s.

The cache holds nothing that is the truth (the database is): cached lookups, rate-limit
windows and buffered view counts. While Redis is unreachable, reads miss, writes are dropped and
`incr` reports a missing key, so pages are served from the database and rate limits let requests
through; one warning per process every 30 s says so (docs/reliability.md).
"""

import logging
import time
from typing import Any

import redis
from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

logger = logging.getLogger("project.cache")
WARN_EVERY_SECONDS = 30
_last_warning = [0.0]


def _unavailable(operation: str, exc: Exception) -> None:
    now = time.monotonic()
    if now - _last_warning[0] >= WARN_EVERY_SECONDS:
        _last_warning[0] = now
        logger.warning("cache unavailable (%s failed: %s); serving without it", operation, exc)


# One round trip for a rate-limit window (project/ratelimit.py): count this attempt in the
# current window (expiring with it), and read the previous window's count. Values are the raw
# integers Django's Redis serializer stores for ints, so incr/get elsewhere read them as usual.
_COUNT_WINDOW = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {count, tonumber(redis.call('GET', KEYS[2]) or '0') or 0}
"""


class ReusedClientRedisCacheClient(RedisCacheClient):
    """Django's client builds a new `redis.Redis` for every cache call, and building one copies
    redis-py's ~170 response callbacks into a case-insensitive dict: 0.1-0.4 ms a call, more than
    the round trip itself, five times per uncached catalog page. A `redis.Redis` is thread-safe
    (commands borrow a connection from the shared pool), so one per pool serves every call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[redis.ConnectionPool, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)  # type: ignore[attr-defined]  # untyped base
        client = self._clients.get(pool)
        if client is None:
            # Two threads racing here build one client each; either is fine to keep.
            client = self._clients[pool] = self._client(connection_pool=pool)  # type: ignore[attr-defined]
        return client


class FailOpenRedisCache(RedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ReusedClientRedisCacheClient  # RedisCache sets its own in __init__

    def count_window(self, current: str, previous: str, timeout: int) -> tuple[int, int] | None:
        """(attempts in `current` including this one, attempts in `previous`), or None while
        Redis is unreachable (the caller fails open)."""
        keys = [self.make_and_validate_key(current), self.make_and_validate_key(previous)]
        try:
            client = self._cache.get_client(keys[0], write=True)  # type: ignore[attr-defined]
            script = getattr(self, "_count_window_script", None)
            if script is None:
                script = self._count_window_script = client.register_script(_COUNT_WINDOW)
            count, earlier = script(keys=keys, args=[timeout], client=client)
        except redis.RedisError as exc:
            _unavailable("count_window", exc)
            return None
        return int(count), int(earlier)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().add(key, value, timeout, version)
        except redis.RedisError as exc:
            _unavailable("add", exc)
            return False

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except redis.RedisError as exc:
            _unavailable("get", exc)
            return default

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            super().set(key, value, timeout, version)
        except redis.RedisError as exc:
            _unavailable("set", exc)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().touch(key, timeout, version)
        except redis.RedisError as exc:
            _unavailable("touch", exc)
            return False

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except redis.RedisError as exc:
            _unavailable("delete", exc)
            return False

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except redis.RedisError as exc:
            _unavailable("get_many", exc)
            return {}

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except redis.RedisError as exc:
            _unavailable("has_key", exc)
            return False

    def incr(self, key, delta=1, version=None):
        try:
            return super().incr(key, delta, version)
        except redis.RedisError as exc:
            _unavailable("incr", exc)
            # What Django raises for a missing key: callers already handle it.
            raise ValueError(f"Key {key!r} not found (cache unavailable)") from exc

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        try:
            return super().set_many(data, timeout, version)
        except redis.RedisError as exc:
            _unavailable("set_many", exc)
            return list(data)

    def delete_many(self, keys, version=None):
        try:
            super().delete_many(keys, version)
        except redis.RedisError as exc:
            _unavailable("delete_many", exc)
