"""Database work from async code that gives its connection back to the pool.

channels' `database_sync_to_async` calls `close_old_connections()` around the function, but since
asgiref 3.10 the function runs inside a *copy* of the caller's context (`context.run`), and
Django's connections live in that context: the close ran outside it, saw no connection, and
every socket kept one pool slot until the pool was empty (tests/realtime/test_connection_pool.py).
Closing inside the function's own context is what Django's request cycle does for views."""

import functools
from collections.abc import Callable

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def closing_connections[**P, R](function: Callable[P, R]) -> Callable[P, R]:
    """`function`, closing the connections it opened (or found obsolete) when it returns."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return run


def database_sync_to_async[**P, R](function: Callable[P, R], *, thread_sensitive: bool = True):
    """Drop-in for channels.db.database_sync_to_async that really closes the connection."""
    return sync_to_async(closing_connections(function), thread_sensitive=thread_sensitive)
