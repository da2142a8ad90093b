"""Bodies that only a real ASGI server delivers: chunked (no Content-Length) and multipart
bodies that daphne's HTTP layer used to parse itself (issue 20, findings 7 and 11)."""

import http.client
import json
import os
import socket as net
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIB = 1024


def _free_port() -> int:
    with net.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def daphne_port(tmp_path_factory):
    """A daphne process on the embedded stack (its own SQLite database, migrated)."""
    var_dir = tmp_path_factory.mktemp("daphne")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(MARKETPLACE_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="project.settings")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        + ["project.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with net.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None, "daphne exited"
                assert time.monotonic() < deadline, "daphne did not start"
                time.sleep(0.2)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _post(port: int, path: str, headers: dict, body: bytes, *, chunked: bool):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest("POST", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        else:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        if chunked:
            for start in range(0, len(body), 64 * KIB):
                piece = body[start : start + 64 * KIB]
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            connection.send(b"0\r\n\r\n")
        else:
            connection.send(body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def _assert_error_body(status: int, content_type: str, body: bytes, expected: int, code=None):
    assert status == expected, (status, body[:300])
    assert content_type.startswith("application/json"), (content_type, body[:300])
    parsed = json.loads(body)
    assert set(parsed) >= {"code", "message"} and parsed["message"], parsed
    if code is not None:
        assert parsed["code"] == code, parsed


@pytest.mark.parametrize(
    "path", ["/api/payments/wechat/notify", "/api/payments/wechat/refund-notify"]
)
def test_a_chunked_notification_over_the_limit_is_413(daphne_port, path):
    body = b'{"x":"' + b"a" * (300 * KIB) + b'"}'
    status, content_type, reply = _post(
        daphne_port, path, {"Content-Type": "application/json"}, body, chunked=True
    )
    _assert_error_body(status, content_type, reply, 413, "payload_too_large")


@pytest.mark.parametrize("chunked", [False, True])
def test_multipart_without_a_boundary_gets_the_error_body(daphne_port, chunked):
    """daphne's HTTP layer (Twisted) parsed multipart bodies itself and answered a bare 400 to
    one it could not parse, before the application saw it."""
    status, content_type, reply = _post(
        daphne_port,
        "/api/payments/wechat/notify",
        {"Content-Type": "multipart/form-data"},
        b"--x\r\n",
        chunked=chunked,
    )
    assert 400 <= status < 500
    _assert_error_body(status, content_type, reply, status)


def test_a_chunked_multipart_body_over_the_limit_is_a_client_error(daphne_port):
    body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + b"v" * (300 * KIB)
    body += b"\r\n--b--\r\n"
    status, content_type, reply = _post(
        daphne_port,
        "/api/payments/wechat/notify",
        {"Content-Type": "multipart/form-data; boundary=b"},
        body,
        chunked=True,
    )
    assert 400 <= status < 500, (status, reply[:300])
    _assert_error_body(status, content_type, reply, status)
