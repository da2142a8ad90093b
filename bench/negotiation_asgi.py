"""Benchmark-only ASGI entry point: the production app with socket actions run on a thread pool
(`thread_sensitive=False`) instead of the one per-process sync thread, to measure what that
change to realtime/consumers.py would buy. `BENCH_PARALLEL_ACTIONS=1 bench/negotiation.py`."""

from channels.db import DatabaseSyncToAsync

from project.asgi import application  # noqa: F401 - sets Django up first
from realtime import consumers


def _parallel(func, **_ignored):
    return DatabaseSyncToAsync(func, thread_sensitive=False)


consumers.database_sync_to_async = _parallel
