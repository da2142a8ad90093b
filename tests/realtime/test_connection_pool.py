"""Sockets give their database connections back to the pool.

asgiref 3.10+ runs a sync_to_async function inside a copy of the caller's context, and Django's
connections live in that context: channels' database_sync_to_async closes connections outside
it, so each socket kept one pool slot for good. After a few dozen sockets the pool was empty and
every request answered 503 (a whole CI run failed on "couldn't get a connection")."""

import pytest
from django.db import connection

from tests.realtime.conftest import connected, receive, send

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def lent_connections() -> int:
    stats = connection.pool.get_stats()
    return stats["pool_size"] - stats["pool_available"]


async def test_sockets_that_authenticate_and_act_leave_no_connection_checked_out(member):
    _, token = member
    before = lent_connections()
    for _ in range(3):
        communicator = await connected(token)
        await send(communicator, {"action": "ping"})
        assert await receive(communicator) == {"type": "pong"}
        await send(communicator, {"action": "resume", "since": 0, "id": "r"})
        assert (await receive(communicator))["type"] == "ack"
        await communicator.disconnect()
    assert lent_connections() == before


async def test_http_requests_through_the_asgi_app_leave_no_connection_checked_out(member):
    from channels.testing import HttpCommunicator

    from project.asgi import application

    _, token = member
    before = lent_connections()
    for path in ("/api/listings", "/api/me", "/api/listings?q=abc"):
        communicator = HttpCommunicator(
            application, "GET", path, headers=[(b"authorization", f"Bearer {token}".encode())]
        )
        response = await communicator.get_response(timeout=15)
        assert response["status"] == 200, response
    assert lent_connections() == before
