"""A bounded retry of a whole action when PostgreSQL aborts its transaction as a deadlock victim
or for a serialization failure: the last line behind one lock order everywhere (the actions take
their locks in a documented order; this covers an order nobody foresaw). The action re-runs from
its first read, so nothing of the aborted attempt survives, and a caller sees a 500 only if every
attempt fails the same way."""

import functools
import logging
import random
import time
from collections.abc import Callable

from django.db import OperationalError, connection
from psycopg import errors as pg_errors

logger = logging.getLogger("project.transactions")

RETRYABLE = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
ATTEMPTS = 3


def caused_by(exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]) -> bool:
    """Whether `exc` or an error it was raised from is one of `kinds` (Django re-raises the
    driver's error as its own, chained)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__
    return False


def is_retryable(exc: BaseException) -> bool:
    return caused_by(exc, RETRYABLE)


def retry_on_deadlock[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Runs `func` (a top-level action with its own durable transaction) up to ATTEMPTS times
    while it dies as a deadlock victim, with a short random pause between attempts."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return func(*args, **kwargs)
            except OperationalError as exc:
                # Inside someone else's transaction the whole of it is lost: theirs to retry.
                if attempt == ATTEMPTS or connection.in_atomic_block or not is_retryable(exc):
                    raise
                logger.warning("%s: %s; retrying (attempt %d)", func.__qualname__, exc, attempt + 1)
                time.sleep(random.uniform(0.005, 0.05) * attempt)  # noqa: S311 - jitter only
        raise AssertionError("unreachable")

    return wrapper
