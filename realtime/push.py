"""The one way events leave the server (issue 4 completes this module)."""

import asyncio

_server_loop: asyncio.AbstractEventLoop | None = None


def bind_server_loop() -> None:
    """Called by `manage.py serve` once daphne listens: remembers the server's event loop so
    sends from worker threads of the same process reach the in-memory channel layer."""
    global _server_loop
    _server_loop = asyncio.get_event_loop()
