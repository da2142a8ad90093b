"""Huey tasks of the marketplace app: thin, idempotent, each calls one action."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from marketplace.actions import catalog as catalog_actions

# Upper bound per run, so one run stays short even after the worker was down a while.
MAX_FLUSH_ROUNDS = 20


@db_periodic_task(crontab(minute="*"))
def flush_listing_views() -> int:
    """Folds buffered detail views into Listing.views (the "hot" order) once a minute."""
    total = 0
    for _ in range(MAX_FLUSH_ROUNDS):
        folded = catalog_actions.flush_listing_views()
        total += folded
        if folded < catalog_actions.FLUSH_BATCH:
            break
    return total
