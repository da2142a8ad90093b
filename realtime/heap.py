"""Keeps Python's full garbage collection from stalling a server process that holds thousands
of sockets.

Each open socket is a few hundred long-lived objects. Python 3.11's collector walks every
tracked object in a full (generation 2) collection, and it runs one whenever the old
generation has grown by a quarter: measured with 5,000 sockets on one daphne process, 1.3M
objects and a 1.0-1.1 s pause every 10-20 s, during which no frame moves (the realtime
benchmark's p99 of ~1 s). Open sockets' objects live as long as the socket, so the socket sweep
freezes them (`gc.freeze()` moves every object to a permanent generation the collector skips)
after collecting the young generations, which is cheap. Frozen objects are never collected,
so garbage cycles left by closed sockets wait in that generation: every
REALTIME_FULL_COLLECT_SECONDS the process unfreezes, runs one full collection and freezes
again, which bounds that memory to what a few minutes of reconnects leave behind.
"""

import gc
import logging
import time

from django.conf import settings

logger = logging.getLogger("realtime.heap")


class LongLivedHeap:
    def __init__(self) -> None:
        self.last_full = time.monotonic()

    def tend(self) -> None:
        """Called by the socket sweep (every few tens of seconds while sockets are open)."""
        interval = settings.REALTIME_FULL_COLLECT_SECONDS
        if interval <= 0:  # switched off: Python's own thresholds decide
            return
        now = time.monotonic()
        if now - self.last_full >= interval:
            self.last_full = now
            gc.unfreeze()
            started = time.perf_counter()
            freed = gc.collect()
            logger.info(
                "full collection: %d objects freed in %.0f ms",
                freed,
                (time.perf_counter() - started) * 1000,
            )
        else:
            # Garbage cycles among the young objects go now, before they would be frozen.
            gc.collect(1)
        gc.freeze()

    def release(self) -> None:
        """No sockets left on this process: Python's own policy applies again."""
        gc.unfreeze()


heap = LongLivedHeap()
