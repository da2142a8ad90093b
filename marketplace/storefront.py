"""The storefront cache: the home page and the public listing pages, rendered once for everyone.

They are the same for every visitor and the most read responses of the product, so the API
serves them from the cache for a few seconds. Every change a public list shows (a listing
saved, moved by an order or a sweep, a seller banned or unbanned) bumps a generation number
once it commits, and the next read builds afresh; the few seconds only bound how long a change
that does not bump it (a view count, a seller's new nickname) can lag.

Single flight: when an entry goes stale, one reader (the one that wins a `cache.add` lock)
rebuilds it while the others keep serving the stale copy; when there is no copy at all (a new
generation, a first read), the others wait briefly for the one build instead of all running
the same query at once (at 64 connections an expiring search entry was rebuilt by dozens of
requests together, which made the cached search 4x slower than at 2 connections).
"""

import time
from collections.abc import Callable

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from marketplace.models import Listing

STOREFRONT_CACHE_SECONDS = 5
# A stale copy is kept this much longer, to be served while its one rebuild runs.
STALE_SECONDS = 30
# The rebuild lock outlives any sane build, so a crashed builder frees it by itself.
BUILD_LOCK_SECONDS = 10
# How long a reader with nothing to serve waits for another's build before building itself.
BUILD_WAIT_SECONDS = 1.0
GENERATION_KEY = "catalog:storefront:generation"


def generation() -> int:
    current = cache.get(GENERATION_KEY)
    if current is None:
        cache.add(GENERATION_KEY, 1, timeout=None)
        current = cache.get(GENERATION_KEY) or 1
    return int(current)


def cached(key: str, build: Callable[[], bytes]) -> bytes:
    """The entry under `key` (which holds the generation), built by `build()` at most once at a
    time across every process sharing the cache. An entry is fresh for
    STOREFRONT_CACHE_SECONDS; a stale one is served while one reader rebuilds it. Only the same
    key's copy is ever served stale: a generation bump changes the key, so a change a list shows
    is never hidden behind a stale copy."""
    entry = cache.get(key)
    if entry is not None:
        fresh_until, content = entry
        if time.time() < fresh_until:
            return content
        if cache.add(_lock_key(key), 1, BUILD_LOCK_SECONDS):
            return _build_and_store(key, build)
        return content
    if cache.add(_lock_key(key), 1, BUILD_LOCK_SECONDS):
        return _build_and_store(key, build)
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    pause = 0.005
    while time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
        entry = cache.get(key)
        if entry is not None:
            return entry[1]
    # The builder is slow or gone: answering late is worse than one more build.
    return build()


def _lock_key(key: str) -> str:
    return f"{key}:building"


def _build_and_store(key: str, build: Callable[[], bytes]) -> bytes:
    try:
        content = build()
        entry = (time.time() + STOREFRONT_CACHE_SECONDS, content)
        cache.set(key, entry, STOREFRONT_CACHE_SECONDS + STALE_SECONDS)
        return content
    finally:
        cache.delete(_lock_key(key))


def changed() -> None:
    """Call in the writer's transaction. Bumps now (the writer's own later reads, and tests,
    whose transaction never commits, see the change) and again once it commits: a reader that
    cached the old rows between the two bumps is superseded."""
    _bump()
    transaction.on_commit(_bump)


def _bump() -> None:
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:  # never read yet, or evicted: any new number will do
        cache.set(GENERATION_KEY, time.time_ns(), timeout=None)


@receiver(post_save, sender=Listing, dispatch_uid="storefront-listing-saved")
@receiver(post_delete, sender=Listing, dispatch_uid="storefront-listing-deleted")
def _listing_changed(sender, **kwargs) -> None:
    changed()
