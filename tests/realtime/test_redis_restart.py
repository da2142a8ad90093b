"""Redis restarting under a live server process (issue 20, finding 12): the first handshakes
after Redis came back answered HTTP 500, because the channel layer lent out connections that
Redis had closed. A private redis-server is restarted here, never the shared one."""

import asyncio
import json
import shutil
import socket as pysocket
import subprocess
import tempfile
import time

import pytest
from django.conf import settings
from websockets.asyncio.client import connect as ws_connect

from tests.realtime.test_redis import _free_port, _start_server, _wait_listening

REDIS_SERVER = shutil.which("redis-server")

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(REDIS_SERVER is None, reason="needs the redis-server binary"),
]


def _start_redis(port: int, directory: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            REDIS_SERVER,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            directory,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with pysocket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    raise AssertionError("redis-server did not start")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


async def _ping(url: str) -> dict:
    async with ws_connect(url) as websocket:
        await websocket.send(json.dumps({"action": "ping"}))
        return json.loads(await asyncio.wait_for(websocket.recv(), 10))


def _private_cache(url: str):
    """The cache as settings configure it, on the private Redis."""
    from django.core.cache.backends.base import BaseCache
    from django.utils.module_loading import import_string

    params = {**settings.CACHES["default"], "LOCATION": url, "KEY_PREFIX": "restart"}
    backend: BaseCache = import_string(params.pop("BACKEND"))(params.pop("LOCATION"), params)
    return backend


async def test_handshakes_after_redis_restarts_are_not_500(member, monkeypatch):
    _, token = member
    redis_port, server_port = _free_port(), _free_port()
    directory = tempfile.mkdtemp()
    redis = _start_redis(redis_port, directory)
    # The server process's whole Redis (layer, cache, Huey) is the private one.
    monkeypatch.setattr(
        "tests.realtime.test_redis.settings.REDIS_URL", f"redis://127.0.0.1:{redis_port}/0"
    )
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finally
    server = _start_server(server_port, log)
    url = f"ws://127.0.0.1:{server_port}/ws/?token={token}"
    try:
        await _wait_listening(server_port, server)
        # Several sockets, so the layer's pool holds several connections when Redis goes.
        for _ in range(3):
            assert await _ping(url) == {"type": "pong"}
        cache = _private_cache(f"redis://127.0.0.1:{redis_port}/0")
        assert cache.add("before", 1) is True
        _stop(redis)
        await asyncio.sleep(0.5)
        redis = _start_redis(redis_port, directory)
        answers = []
        for _ in range(6):
            try:
                answers.append((await _ping(url))["type"])
            except Exception as exc:  # noqa: BLE001 - the failure is the finding
                answers.append(repr(exc)[:120])
        assert answers == ["pong"] * 6
        # The cache's (sync) pool recovers by itself; a stale connection there would not be a
        # 500 (it fails open) but a rate limit silently not counted, so it is checked too.
        assert cache.add("after", 1) is True
    except BaseException:
        log.seek(0)
        print("--- server ---\n" + log.read().decode(errors="replace")[-6000:])
        raise
    finally:
        _stop(server)
        _stop(redis)
        log.close()
        shutil.rmtree(directory, ignore_errors=True)
