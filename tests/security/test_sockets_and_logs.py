"""WebSocket floods and oversized frames; bearer tokens never reach a log line."""

import contextlib
import json
import logging
import os
import socket as net
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.test import override_settings

from marketplace.actions.accounts import issue_token
from realtime.db import database_sync_to_async
from tests.factories import UserFactory
from tests.realtime.conftest import connected, receive, send

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def make_member(transactional_db):
    def make():
        user = UserFactory()
        return user, issue_token(user=user)

    return database_sync_to_async(make)


async def test_a_flooding_socket_gets_error_frames_and_others_are_unaffected(make_member):
    _, flood_token = await make_member()
    _, calm_token = await make_member()
    flooder = await connected(flood_token)
    calm = await connected(calm_token)
    for n in range(300):
        await send(flooder, {"action": "ping", "id": n})
    replies = [await receive(flooder) for _ in range(300)]
    pongs = [r for r in replies if r == {"type": "pong"}]
    limited = [r for r in replies if r.get("type") == "error"]
    assert {r["data"]["code"] for r in limited} == {"rate_limited"}
    assert len(limited) >= 200 and len(pongs) + len(limited) == 300
    # The flood cost the flooder only: another user's socket answers at once.
    await send(calm, {"action": "ping"})
    assert await receive(calm) == {"type": "pong"}
    await calm.disconnect()
    await flooder.disconnect()


@override_settings(REALTIME_MAX_FRAME_BYTES=1024)
async def test_an_oversized_frame_is_refused_without_closing_the_socket(make_member):
    _, token = await make_member()
    communicator = await connected(token)
    await communicator.send_to(text_data=json.dumps({"action": "ping", "pad": "字" * 400}))
    reply = await receive(communicator)
    assert reply["type"] == "error" and reply["data"]["code"] == "frame_too_large"
    await send(communicator, {"action": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


@pytest.mark.django_db
def test_tokens_never_reach_the_application_logs(anon, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    code = anon.post("/sandbox/wechat/login-code", {"openid": "log-openid"}).json()["code"]
    signed_in = anon.post("/api/auth/wechat-login", {"code": code, "nickname": "日志"})
    assert signed_in.status_code == 200
    token = signed_in.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert anon.get("/api/me", headers=headers).status_code == 200
    assert anon.post("/api/addresses", {"name": "x"}, headers=headers).status_code == 422
    assert anon.get("/api/orders/NOPE", headers=headers).status_code == 404
    assert anon.get("/api/me", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    assert anon.post("/api/auth/logout", headers=headers).status_code == 204
    assert anon.get("/api/me", headers=headers).status_code == 401
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "/api/me" in logged or "Unauthorized" in logged  # the requests were logged
    assert token not in logged
    assert token[:16] not in logged


def _free_port() -> int:
    with net.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_daphne_access_log_never_carries_the_socket_token(tmp_path):
    """The socket may take its token in the query string; daphne's access log must not print it
    (it logs the path without the query). A real daphne process, its real access log."""
    secret = "tok" + "Z" * 40
    port = _free_port()
    access_log = tmp_path / "access.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(MARKETPLACE_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="project.settings")
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["--access-log", str(access_log), "project.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)  # noqa: S310
                break
            except OSError:
                assert time.monotonic() < deadline, "daphne did not start"
                time.sleep(0.2)
        from websockets.sync.client import connect

        for path in (f"/ws/?token={secret}", "/ws/"):
            # Refused or closed, either way daphne logged the attempt.
            with (
                contextlib.suppress(Exception),
                connect(
                    f"ws://127.0.0.1:{port}{path}",
                    subprotocols=None if "token" in path else [f"bearer.{secret}"],
                    open_timeout=5,
                ) as ws,
            ):
                ws.recv(timeout=5)
        request = urllib.request.Request(  # noqa: S310
            f"http://127.0.0.1:{port}/api/me", headers={"Authorization": f"Bearer {secret}"}
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=5)  # noqa: S310
    finally:
        server.terminate()
        output = server.communicate(timeout=15)[0].decode(errors="replace")
    logged = access_log.read_text()
    assert "/ws/" in logged and "/api/me" in logged, logged
    assert secret not in logged
    assert secret not in output
