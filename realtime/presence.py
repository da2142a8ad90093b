"""Who has an open socket, across server processes (the Django cache: Redis in production).

Each user's entry maps connection ids to an expiry time. Sockets refresh theirs while open, so
an entry left behind by a crashed process expires on its own. Two sockets of one user updating
at once may drop each other's entry until the next refresh: the cost is at worst one extra
subscribe message, never a lost event (events are durable).
"""

import time

from django.conf import settings
from django.core.cache import cache


def _key(user_id: int) -> str:
    return f"realtime:presence:{user_id}"


def _ttl() -> int:
    return settings.REALTIME_PRESENCE_TTL_SECONDS


def _live(entries: dict | None, now: float) -> dict:
    return {conn: expires for conn, expires in (entries or {}).items() if expires > now}


def mark_connected(user_id: int, conn_id: str) -> None:
    now = time.time()
    entries = _live(cache.get(_key(user_id)), now)
    entries[conn_id] = now + _ttl()
    cache.set(_key(user_id), entries, _ttl())


def mark_disconnected(user_id: int, conn_id: str) -> None:
    now = time.time()
    entries = _live(cache.get(_key(user_id)), now)
    entries.pop(conn_id, None)
    if entries:
        cache.set(_key(user_id), entries, _ttl())
    else:
        cache.delete(_key(user_id))


def is_online(user_id: int) -> bool:
    return bool(_live(cache.get(_key(user_id)), time.time()))


def refresh_many(connections: dict[int, list[str]]) -> None:
    """One process's periodic refresh: every local socket's entry, in two round trips."""
    if not connections:
        return
    now = time.time()
    keys = {user_id: _key(user_id) for user_id in connections}
    current = cache.get_many(list(keys.values()))
    updated = {}
    for user_id, conn_ids in connections.items():
        entries = _live(current.get(keys[user_id]), now)
        for conn_id in conn_ids:
            entries[conn_id] = now + _ttl()
        updated[keys[user_id]] = entries
    cache.set_many(updated, _ttl())


def online_among(user_ids: list[int]) -> list[int]:
    """Those of `user_ids` with a socket open now, in their order: one multi-get, for a fan-out
    that tells the people who are looking first."""
    if not user_ids:
        return []
    now = time.time()
    found = cache.get_many([_key(user_id) for user_id in user_ids])
    return [user_id for user_id in user_ids if _live(found.get(_key(user_id)), now)]
