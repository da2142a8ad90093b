"""The database dropping connections: the next request still works. Requests go through the
real WSGI handler (Django's test client skips the connection housekeeping that matters here)."""

import psycopg
import pytest
from django.db import connection
from werkzeug.test import Client

from marketplace.actions.accounts import issue_token
from project.wsgi import application
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _me(client: Client, token: str) -> int:
    return client.get("/api/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_connection_closed_between_requests_is_reopened():
    token = issue_token(user=UserFactory())
    client = Client(application)
    assert _me(client, token) == 200
    connection.close()
    assert _me(client, token) == 200
    # Closed under Django's feet (the server went away), not by Django.
    connection.ensure_connection()
    connection.connection.close()
    assert _me(client, token) == 200


@pytest.mark.postgres
def test_terminated_backends_do_not_fail_the_next_request():
    """pg_terminate_backend on every connection of the app (a failover, an idle-connection
    reaper, a restarted PgBouncer): the pooled connections are dead; the next request works."""
    token = issue_token(user=UserFactory())
    client = Client(application)
    for _ in range(3):
        assert _me(client, token) == 200
    settings_dict = connection.settings_dict
    with psycopg.connect(
        host=settings_dict["HOST"] or "127.0.0.1",
        port=settings_dict["PORT"] or 5432,
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        dbname="postgres",
        autocommit=True,
    ) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [settings_dict["NAME"]],
        ).fetchone()[0]
    assert killed >= 1
    assert [_me(client, token) for _ in range(5)] == [200] * 5
