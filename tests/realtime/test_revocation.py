"""Sockets do not outlive their token (issue 20, finding 2): a logout closes the sockets of that
token with 4401, a ban every socket of the user with 4403, in every server process, as soon as
the change commits; a token revoked behind the sockets' back (a lost close message, a deleted
token) stops acting at the next frame and is closed by the next sweep."""

import asyncio
import tempfile

import pytest
from django.test import override_settings
from django.utils import timezone
from websockets.asyncio.client import connect as ws_connect

from marketplace.actions import accounts as account_actions
from marketplace.actions.accounts import issue_token
from marketplace.models import ApiToken
from realtime.db import database_sync_to_async
from tests.conftest import ApiClient
from tests.realtime.conftest import aemit, connected, receive, receive_close, send
from tests.realtime.test_redis import _free_port, _start_server, _wait_listening

pytestmark = pytest.mark.django_db(transaction=True)

CLOSE_TIMEOUT = 10


def _logout(token: str) -> int:
    return ApiClient(token).post("/api/auth/logout").status_code


alogout = database_sync_to_async(_logout)


@database_sync_to_async
def aissue(user) -> str:
    return issue_token(user=user)


@database_sync_to_async
def aban(user) -> None:
    account_actions.ban_user(user=user, reason="fraud")


@database_sync_to_async
def _revoke_silently(token: str) -> None:
    """Revoked with no close message, as if the message was lost (Redis away at that moment)."""
    ApiToken.objects.filter(key_hash=account_actions.hash_token(token)).update(
        revoked_at=timezone.now()
    )


async def test_logout_closes_every_socket_of_that_token_and_only_those(member):
    user, token = member
    other_device = await aissue(user)
    first, second = await connected(token), await connected(token)
    elsewhere = await connected(other_device)
    assert await alogout(token) == 204
    assert await receive_close(first) == 4401
    assert await receive_close(second) == 4401
    # The user's other device keeps its socket and its events.
    await aemit([user.pk], data={"n": 1})
    assert (await receive(elsewhere))["seq"] == 1
    await elsewhere.disconnect()


async def test_a_ban_closes_every_socket_of_the_user_4403(member, make_member):
    user, token = member
    bystander, bystander_token = await make_member()
    phone, tablet = await connected(token), await connected(await aissue(user))
    unrelated = await connected(bystander_token)
    await aban(user)
    assert await receive_close(phone) == 4403
    assert await receive_close(tablet) == 4403
    await aemit([bystander.pk], data={"n": 1})
    assert (await receive(unrelated))["seq"] == 1
    await unrelated.disconnect()


async def test_a_revoked_token_cannot_act_even_when_the_close_was_lost(member, echo_action):
    _, token = member
    communicator = await connected(token)
    await _revoke_silently(token)
    await send(communicator, {"action": "test.echo", "id": "after-logout", "price": 5})
    reply = await receive(communicator)
    assert reply["type"] == "error" and reply["ref"] == "after-logout"
    assert reply["data"]["code"] == "unauthorized"
    assert await receive_close(communicator) == 4401


@override_settings(REALTIME_PRESENCE_TTL_SECONDS=1)
async def test_the_sweep_closes_sockets_whose_token_lapsed_without_a_message(member):
    _, token = member
    communicator = await connected(token)
    await _revoke_silently(token)
    message = await communicator.receive_output(timeout=CLOSE_TIMEOUT)
    assert message == {"type": "websocket.close", "code": 4401}


@pytest.fixture
def echo_action():
    from realtime import dispatch

    def handler(*, user, frame):
        return {"user_id": user.pk}

    dispatch.socket_action("test.echo")(handler)
    yield
    dispatch._registry.pop("test.echo", None)


# --- across server processes, on Redis -------------------------------------------------------


async def _closed_with(websocket) -> int:
    await asyncio.wait_for(websocket.wait_closed(), CLOSE_TIMEOUT)
    return websocket.close_code


@pytest.mark.redis
@pytest.mark.postgres
async def test_logout_and_ban_close_sockets_held_by_other_server_processes(member, make_member):
    user, token = member
    banned, banned_token = await make_member()
    ports = [_free_port(), _free_port()]
    logs = [tempfile.TemporaryFile() for _ in ports]  # noqa: SIM115 - closed in finally
    processes = [_start_server(port, log) for port, log in zip(ports, logs, strict=True)]
    try:
        for port, process in zip(ports, processes, strict=True):
            await _wait_listening(port, process)
        urls = [f"ws://127.0.0.1:{port}/ws/?token=" for port in ports]
        async with (
            ws_connect(urls[0] + token) as on_a,
            ws_connect(urls[1] + token) as on_b,
            ws_connect(urls[0] + banned_token) as banned_a,
            ws_connect(urls[1] + banned_token) as banned_b,
        ):
            await asyncio.sleep(0.3)  # every socket has joined its user's group
            assert await alogout(token) == 204
            assert [await _closed_with(on_a), await _closed_with(on_b)] == [4401, 4401]
            await aban(banned)
            assert [await _closed_with(banned_a), await _closed_with(banned_b)] == [4403, 4403]
    except BaseException:
        for port, log in zip(ports, logs, strict=True):
            log.seek(0)
            print(f"--- server {port} ---\n" + log.read().decode(errors="replace")[-4000:])
        raise
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
        for log in logs:
            log.close()


@database_sync_to_async
def _close_account(token: str) -> int:
    return ApiClient(token).post("/api/me/deletion").status_code


async def test_closing_the_account_closes_every_socket_of_the_user(member):
    """注销 (docs/privacy.md): the account closes at once, its sockets with it."""
    user, token = member
    other_device = await aissue(user)
    first, second = await connected(token), await connected(other_device)
    assert await _close_account(token) == 200
    assert await receive_close(first) == 4401
    assert await receive_close(second) == 4401
