"""A request that cannot get a database connection within the pool's wait (DB_POOL_TIMEOUT)
has already failed for its user: it answers 503 in the API's error body, telling the client to
retry, rather than a 500 that reads as a bug."""

from unittest import mock

import pytest
from django.db import connection
from psycopg_pool import PoolTimeout

from tests.conftest import assert_error


def _pool_exhausted(*args, **kwargs):
    # What Django raises when psycopg's pool gives up: its OperationalError, caused by PoolTimeout.
    with connection.wrap_database_errors:
        raise PoolTimeout("couldn't get a connection after 5.00 sec")


@pytest.mark.django_db
def test_an_exhausted_connection_pool_is_a_503_with_retry_after(anon):
    with mock.patch("marketplace.api.auth.user_for_token", _pool_exhausted):
        response = anon.get("/api/me", headers={"Authorization": "Bearer some-token"})

    body = assert_error(response, 503, "database_busy")
    assert response["Retry-After"] == "1"
    assert "PoolTimeout" not in body["message"]


@pytest.mark.django_db
def test_other_database_errors_stay_500s(anon):
    def broken(*args, **kwargs):
        with connection.wrap_database_errors:
            raise connection.Database.OperationalError("disk I/O error")

    with mock.patch("marketplace.api.auth.user_for_token", broken):
        response = anon.get("/api/me", headers={"Authorization": "Bearer some-token"})

    assert_error(response, 500, "internal_error")
