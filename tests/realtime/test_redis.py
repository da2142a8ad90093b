"""The production layer: Redis between real server processes, and sockets that outlive the
redis-py 5-second socket timeout (STACK_NOTES pitfall)."""

import asyncio
import json
import os
import socket as pysocket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import connect as ws_connect

from tests.realtime.conftest import aemit, connected, receive, send

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BASE_DIR = Path(settings.BASE_DIR)
START_TIMEOUT = 30
FRAME_TIMEOUT = 10


async def test_socket_survives_past_the_redis_socket_timeout(member):
    user, token = member
    communicator = await connected(token)
    await aemit([user.pk], data={"n": 1})
    assert (await receive(communicator))["seq"] == 1
    # redis-py 8 defaults (socket_timeout=5) kill the layer's 5 s blocking reads: stay past it.
    await asyncio.sleep(6.5)
    await send(communicator, {"action": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await aemit([user.pk], data={"n": 2})
    assert (await receive(communicator))["seq"] == 2
    await communicator.disconnect()


def _free_port() -> int:
    with pysocket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _database_url() -> str:
    """The test database (pytest-django's test_<name>) as a URL for the server processes."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "postgres")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _start_server(port: int, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CHANNELS_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        "DB_POOL_MIN": "1",
        "DB_POOL_MAX": "4",
        "LOG_LEVEL": "WARNING",
    }
    daphne = Path(sys.executable).parent / "daphne"
    return subprocess.Popen(
        [str(daphne), "-b", "127.0.0.1", "-p", str(port), "project.asgi:application"],
        cwd=BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _wait_listening(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server process exited"
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"server on {port} did not start")


async def _frame(websocket) -> dict:
    return json.loads(await asyncio.wait_for(websocket.recv(), FRAME_TIMEOUT))


@pytest.mark.postgres
async def test_events_cross_server_processes_and_resume_on_another(member):
    """Two daphne processes on one Redis: an event emitted by a third process (this one)
    reaches sockets held by both; a client that drops from B resumes on A and misses nothing."""
    user, token = member
    ports = [_free_port(), _free_port()]
    logs = [tempfile.TemporaryFile() for _ in ports]  # noqa: SIM115 - closed in finally
    processes = [_start_server(port, log) for port, log in zip(ports, logs, strict=True)]
    try:
        for port, process in zip(ports, processes, strict=True):
            await _wait_listening(port, process)
        url_a, url_b = (f"ws://127.0.0.1:{port}/ws/?token={token}" for port in ports)
        async with ws_connect(url_a) as on_a, ws_connect(url_b) as on_b:
            await asyncio.sleep(0.3)  # both have joined the user's group
            await aemit([user.pk], type="offer.created", data={"id": 1})
            assert [(await _frame(on_a))["seq"], (await _frame(on_b))["seq"]] == [1, 1]
            # Its notification-centre entry follows on both, in each server's own rendering.
            pushed = [await _frame(on_a), await _frame(on_b)]
            assert [frame["type"] for frame in pushed] == ["notification.created"] * 2
            assert pushed[0] == pushed[1]
            # Past redis-py's 5 s socket timeout, inside real servers.
            await asyncio.sleep(6)
            await aemit([user.pk], type="message.read", data={"id": 1})
            frame_b = await _frame(on_b)
            assert (frame_b["seq"], frame_b["type"]) == (2, "message.read")
            assert (await _frame(on_a))["seq"] == 2
        await aemit([user.pk], data={"n": 3})
        await aemit([user.pk], data={"n": 4})
        async with ws_connect(url_a, subprotocols=["marketplace.v1"]) as again:
            assert again.subprotocol == "marketplace.v1"
            await again.send(json.dumps({"action": "resume", "since": 2, "id": "r"}))
            frames = [await _frame(again) for _ in range(3)]
            assert [frame.get("seq") for frame in frames[:2]] == [3, 4]
            assert frames[2]["type"] == "ack" and frames[2]["data"]["seq"] == 4
    except BaseException:
        for port, log in zip(ports, logs, strict=True):
            log.seek(0)
            print(f"--- server {port} ---\n" + log.read().decode(errors="replace")[-4000:])
        raise
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in logs:
            log.close()


async def test_a_large_batch_is_sent_only_to_users_with_a_socket(member, make_member, monkeypatch):
    """A sweep tells thousands, mostly offline: their empty groups are found in one pipelined
    round trip and skipped; a user with a socket still gets every frame, in order."""
    from channels.layers import get_channel_layer
    from channels_redis.core import RedisChannelLayer

    from realtime import push

    user, token = member
    offline = [(await make_member())[0] for _ in range(4)]
    communicator = await connected(token)
    sent_to: list[str] = []
    real_group_send = RedisChannelLayer.group_send

    async def counting(self, group, message):
        sent_to.append(group)
        return await real_group_send(self, group, message)

    monkeypatch.setattr(RedisChannelLayer, "group_send", counting)
    messages = [
        (who, {"type": push.MESSAGE_TYPE, "seq": n, "text": json.dumps({"seq": n, "type": "x"})})
        for n, who in enumerate([user.pk, *(u.pk for u in offline), user.pk], start=1)
    ]
    await push._group_send_all(get_channel_layer(), messages)
    assert sent_to == [push.group_for(user.pk)] * 2
    assert [(await receive(communicator))["seq"] for _ in range(2)] == [1, 6]
    await communicator.disconnect()
