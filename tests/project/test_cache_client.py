"""The Redis cache builds one redis.Redis per connection pool (project/cache.py), not one per
call: building one cost more than the round trip of the call itself."""

from project.cache import FailOpenRedisCache


def test_every_call_shares_one_client():
    # Nothing listens on port 1: building clients never connects, so no Redis is needed.
    backend = FailOpenRedisCache("redis://127.0.0.1:1/0", {})
    first = backend._cache.get_client("a", write=True)
    assert backend._cache.get_client("b") is first
    assert backend._cache.get_client(None, write=True) is first


def test_redis_replies_are_parsed_by_hiredis():
    # redis-py falls back to its pure-Python parser without complaint; on the live path that
    # parser was a sixth of a daphne's CPU (docs/performance.md), so the lock must keep hiredis.
    from redis.utils import HIREDIS_AVAILABLE

    assert HIREDIS_AVAILABLE
