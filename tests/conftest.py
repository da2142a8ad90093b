"""Shared fixtures: an API client that speaks JSON, users with tokens, stack markers."""

import json
import os
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client

from marketplace.actions.accounts import issue_token
from tests.factories import UserFactory

REAL_STACK_REQUIRED = os.environ.get("MARKETPLACE_REQUIRE_REAL_STACK") == "1"
_LEAKED_BEFORE = pytest.StashKey[int | None]()


def pytest_configure(config: pytest.Config) -> None:
    if REAL_STACK_REQUIRED and not (settings.IS_POSTGRES and settings.REDIS_URL):
        raise pytest.UsageError(
            "MARKETPLACE_REQUIRE_REAL_STACK=1 but DATABASE_URL is not PostgreSQL or REDIS_URL "
            "is unset: refusing to run the real-stack suite on the embedded defaults."
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_pg = pytest.mark.skip(reason="needs PostgreSQL (runs in the real-stack half of make test)")
    skip_redis = pytest.mark.skip(reason="needs Redis (runs in the real-stack half of make test)")
    skip_s3 = pytest.mark.skip(reason="object storage on moto (runs in the real-stack half)")
    for item in items:
        if "postgres" in item.keywords and not settings.IS_POSTGRES:
            item.add_marker(skip_pg)
        if "redis" in item.keywords and not settings.REDIS_URL:
            item.add_marker(skip_redis)
        if "s3" in item.keywords and not REAL_STACK_REQUIRED:
            item.add_marker(skip_s3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """A test that could not get a database connection says who held PostgreSQL's slots: on a
    shared server the cause is usually another client, not the code under test."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None and _is_pool_timeout(call.excinfo.value):
        report.sections.append(("PostgreSQL connection holders", _connection_holders()))


def _leaked_pool_connections() -> int | None:
    """Connections of this process's pool lent out but not held by the main thread: a thread or
    context that opened one and never closed it. psycopg's pool never gets such a slot back, so
    each leak shrinks the pool for the rest of the run, until a much later test fails on a pool
    timeout (twice in CI). None off PostgreSQL or before the pool exists."""
    from django.db import connections

    connection = connections["default"]
    pool = getattr(type(connection), "_connection_pools", {}).get(connection.alias)
    if pool is None:
        return None
    stats = pool.get_stats()
    lent = stats.get("pool_size", 0) - stats.get("pool_available", 0)
    return lent - (1 if connection.connection is not None else 0)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    item.stash[_LEAKED_BEFORE] = _leaked_pool_connections()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Fails the test that leaked a pool connection, where the cause is, not the later one that
    finds the pool empty. A live server's thread holds its connection for the session."""
    yield
    after = _leaked_pool_connections()
    if after is None or "live_server" in getattr(item, "fixturenames", ()):
        return
    before = item.stash.get(_LEAKED_BEFORE, None) or 0  # None: the pool opened in this test
    if after > before:
        pytest.fail(
            f"{after - before} database connection(s) left checked out of the pool: a thread or "
            "async context opened one and never closed it (close it in a finally, or use "
            "realtime.db.database_sync_to_async)",
            pytrace=False,
        )


def _is_pool_timeout(exc: BaseException | None) -> bool:
    from psycopg_pool import PoolTimeout

    while exc is not None:
        if isinstance(exc, PoolTimeout) or "couldn't get a connection" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _connection_holders() -> str:
    import psycopg

    params = settings.DATABASES["default"]
    try:
        with psycopg.connect(
            host=params["HOST"],
            port=params["PORT"] or 5432,
            user=params["USER"],
            dbname="postgres",
            connect_timeout=5,
        ) as conn:
            rows = conn.execute(
                "select coalesce(datname, '-'), coalesce(application_name, ''), state, count(*)"
                " from pg_stat_activity where backend_type = 'client backend'"
                " group by 1, 2, 3 order by 4 desc"
            ).fetchall()
    except psycopg.Error as exc:
        return f"could not ask PostgreSQL: {exc}"
    return "\n".join(f"{n:>4} db={db} app={app!r} state={state}" for db, app, state, n in rows)


def _clear_cache() -> None:
    """Forget this run's cached values only: on Redis, clear() would flush the whole database,
    including the keys of another run or a developer's server sharing it."""
    from marketplace.selectors import forget_platform_settings

    forget_platform_settings()  # the process copy too: its version check is amortised
    if settings.REDIS_URL:
        client = cache._cache.get_client(write=True)
        keys = list(client.scan_iter(match=f"{cache.key_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        cache.clear()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, given back cleanly: without this the pool's connections
    (and any a test's server process left) made dropping it fail, and every run left a
    test_marketplace_<run> database behind on the PostgreSQL server."""
    yield
    with django_db_blocker.unblock():
        _release_test_database()


def _release_test_database() -> None:
    from django.db import connection, connections

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    for each in connections.all(initialized_only=True):
        each.close()
        if hasattr(each, "close_pool"):
            each.close_pool()


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    """A new channel layer object per test. Each async test runs its own event loop, and a
    channels-redis layer keeps per-loop receive state: reusing one across loops can leave a
    receive waiting on a closed loop, which hung the next test's teardown."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Throttles and cached lookups must not leak between tests."""
    _clear_cache()
    yield
    _clear_cache()


class ApiClient:
    """Django's test client with JSON bodies and an optional bearer token."""

    def __init__(self, token: str | None = None) -> None:
        self.client = Client()
        self.token = token

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        merged = dict(headers or {})
        if self.token and "Authorization" not in merged:
            merged["Authorization"] = f"Bearer {self.token}"
        return merged

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None, **kw):
        call = getattr(self.client, method.lower())
        if body is not None and not isinstance(body, (str, bytes)):
            body = json.dumps(body)
        if body is None and method.upper() in {"POST", "PUT", "PATCH"}:
            body = ""  # what wx.request sends without data: no body, JSON content type
        if body is not None:
            kw.setdefault("content_type", "application/json")
            return call(path, body, headers=self._headers(headers), **kw)
        return call(path, headers=self._headers(headers), **kw)

    def get(self, path: str, params: dict | None = None, headers: dict | None = None):
        return self.client.get(path, params or {}, headers=self._headers(headers))

    def post(self, path: str, body: Any = None, **kw):
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw):
        return self.request("PATCH", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw):
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture
def anon() -> ApiClient:
    return ApiClient()


@pytest.fixture
def make_client():
    def make(user=None) -> ApiClient:
        user = user or UserFactory()
        client = ApiClient(issue_token(user=user))
        client.user = user
        return client

    return make


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def client_of(make_client, user) -> ApiClient:
    """An authenticated client for `user`."""
    return make_client(user)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is an API error body with this status (and code)."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) >= {"code", "message"}, body
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code, body
    return body
