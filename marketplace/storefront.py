"""The storefront cache: the home page and the public listing pages, rendered once for everyone.

They are the same for every visitor and the most read responses of the product, so the API
serves them from the cache for a few seconds. Every change a public list shows (a listing
saved, moved by an order or a sweep, a seller banned or unbanned) bumps a generation number
once it commits, and the next read builds afresh; the few seconds only bound how long a change
that does not bump it (a view count, a seller's new nickname) can lag.
"""

import time

from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from marketplace.models import Listing

STOREFRONT_CACHE_SECONDS = 5
GENERATION_KEY = "catalog:storefront:generation"


def generation() -> int:
    current = cache.get(GENERATION_KEY)
    if current is None:
        cache.add(GENERATION_KEY, 1, timeout=None)
        current = cache.get(GENERATION_KEY) or 1
    return int(current)


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
