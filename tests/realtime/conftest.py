"""Helpers for the realtime tests: sockets through the real ASGI app, emits in transactions."""

import json

import pytest
from channels.testing import WebsocketCommunicator
from django.db import transaction

from marketplace.actions.accounts import issue_token
from realtime.db import database_sync_to_async
from realtime.push import emit
from tests.factories import UserFactory
from tests.project.test_error_reporting import sentry  # noqa: F401 - Sentry with a capturing transport

# Generous: a reply that comes at all comes in milliseconds, but a loaded CI machine running two
# workers beside PostgreSQL and Redis has been seen to take more than 5 s.
TIMEOUT = 15


def emit_now(user_ids, type="message.read", data=None, **kwargs):
    """One committed emit, as an action would do it. By default of a type that makes no
    notification-centre entry, so a socket gets this one frame (an entry's type would be
    followed by a `notification.created` frame: tests/realtime/test_notification_push.py)."""
    with transaction.atomic():
        return emit(user_ids=user_ids, type=type, data=data or {"n": 1}, **kwargs)


aemit = database_sync_to_async(emit_now)


def socket(token: str | None = None, *, headers=None, subprotocols=None, path=None):
    from project.asgi import application

    if path is None:
        path = "/ws/" if token is None else f"/ws/?token={token}"
    return WebsocketCommunicator(
        application, path, headers=headers or [], subprotocols=subprotocols
    )


async def connected(token: str, **kwargs) -> WebsocketCommunicator:
    communicator = socket(token, **kwargs)
    ok, _ = await communicator.connect(timeout=TIMEOUT)
    assert ok
    return communicator


async def receive(communicator: WebsocketCommunicator) -> dict:
    return json.loads(await communicator.receive_from(timeout=TIMEOUT))


async def receive_close(communicator: WebsocketCommunicator) -> int:
    message = await communicator.receive_output(timeout=TIMEOUT)
    assert message["type"] == "websocket.close", message
    return message.get("code")


async def send(communicator: WebsocketCommunicator, frame) -> None:
    await communicator.send_to(text_data=json.dumps(frame))


@pytest.fixture
def member(transactional_db):
    """A user with a token: (user, raw token)."""
    user = UserFactory()
    return user, issue_token(user=user)


@pytest.fixture
def make_member(transactional_db):
    """Async: `user, token = await make_member(**fields)` inside async tests."""

    def make(**fields):
        user = UserFactory(**fields)
        return user, issue_token(user=user)

    return database_sync_to_async(make)
