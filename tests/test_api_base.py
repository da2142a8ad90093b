"""The API base: one error body for every failure, request ids, size limits, health checks,
and production settings that refuse development conveniences."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError

from tests.conftest import assert_error

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


def test_malformed_json_is_400_with_code(client_of):
    response = client_of.post("/api/addresses", "{not json")
    assert_error(response, 400, "malformed_json")


def test_non_object_json_and_wrong_types_are_422(client_of):
    assert_error(client_of.post("/api/addresses", [1, 2]), 422, "validation_error")
    body = assert_error(client_of.patch("/api/me", {"nickname": 12}), 422, "validation_error")
    assert body["errors"][0]["loc"][-1] == "nickname"


def test_unknown_fields_are_refused(client_of):
    body = assert_error(client_of.patch("/api/me", {"nickname": "a", "phone": "1"}), 422)
    assert body["errors"][0]["type"] == "extra_forbidden"


def test_wrong_content_type_is_415(client_of):
    response = client_of.client.post(
        "/api/addresses",
        "name=x",
        content_type="application/x-www-form-urlencoded",
        headers={"Authorization": f"Bearer {client_of.token}"},
    )
    assert_error(response, 415, "unsupported_media_type")


def test_oversized_body_is_413_before_it_is_read(client_of, settings):
    huge = {"nickname": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)}
    assert_error(client_of.patch("/api/me", huge), 413, "payload_too_large")


def test_unknown_path_and_wrong_method_use_the_error_body(anon, client_of):
    assert_error(anon.get("/api/does-not-exist"), 404, "not_found")
    response = client_of.request("PUT", "/api/me", {})
    assert_error(response, 405, "method_not_allowed")


def test_unexpected_exception_is_a_500_error_body_and_logged(anon, user, monkeypatch, caplog):
    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("marketplace.api.accounts.public_user", explode)
    anon.client.raise_request_exception = False

    body = assert_error(anon.get(f"/api/users/{user.pk}"), 500, "internal_error")

    assert "boom" not in body["message"]
    assert any("Unhandled error" in r.message for r in caplog.records)


def test_request_id_is_generated_or_echoed(anon):
    generated = anon.get("/healthz")["X-Request-ID"]
    assert len(generated) == 32
    echoed = anon.get("/healthz", headers={"X-Request-ID": "client-req-12345"})
    assert echoed["X-Request-ID"] == "client-req-12345"
    sanitised = anon.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert sanitised["X-Request-ID"] != "bad id\nwith newline"


def test_health_and_readiness(anon):
    assert anon.get("/healthz").json() == {"status": "ok"}
    assert anon.get("/readyz").status_code == 200


def test_readiness_fails_when_the_database_is_unreachable(anon, monkeypatch):
    def unreachable(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("project.health.connection.cursor", unreachable)

    response = anon.get("/readyz")

    assert response.status_code == 503
    assert response.json()["code"] == "not_ready"
    assert "database" in response.json()["message"]


def test_openapi_document_and_docs_are_served(anon):
    spec = anon.get("/api/openapi.json").json()
    assert "/api/auth/wechat-login" in spec["paths"]
    assert anon.get("/api/docs").status_code == 200


def _django_in_subprocess(env_overrides: dict[str, str], code: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL"))}
    env.update({"DJANGO_SETTINGS_MODULE": "project.settings", **env_overrides})
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


PRODUCTION_ENV = {
    "MARKETPLACE_ENV": "production",
    "SECRET_KEY": "p" * 50,
    "DEBUG": "0",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "ALLOWED_HOSTS": "api.example.com",
    "NUM_PROXIES": "1",
    "WECHAT_APPID": "wx1234567890",
    "WECHAT_SECRET": "real-secret",
    "SANDBOX_ENABLED": "0",
    "PAYOUT_ENCRYPTION_KEYS": "hVUxKYGPqYMgZ1Dm6kq6YOHSCLh-x1HpXr7zQqKpGq4=",
}


def test_production_mode_starts_without_sandbox_routes():
    result = _django_in_subprocess(
        PRODUCTION_ENV,
        "from django.urls import resolve, Resolver404\n"
        "try:\n    resolve('/sandbox/wechat/login-code'); print('sandbox-present')\n"
        "except Resolver404:\n    print('sandbox-absent')\n"
        "resolve('/api/me'); print('api-present')",
    )
    assert result.returncode == 0, result.stderr
    assert "sandbox-absent" in result.stdout and "api-present" in result.stdout


def test_nul_characters_are_refused_everywhere_before_the_database(client_of, anon):
    """PostgreSQL cannot store NUL; it must be a 400, never a 500 from the driver."""
    assert_error(client_of.patch("/api/me", {"nickname": "a\x00b"}), 400, "invalid_characters")
    assert_error(client_of.get("/api/orders/M1%002"), 400, "invalid_characters")
    assert_error(anon.get("/api/listings", {"q": "x\x00"}), 400, "invalid_characters")
    form = anon.client.post(
        "/api/logistics/kuaidi100/notify?order=M1", {"param": "\x00", "sign": "x"}
    )
    assert_error(form, 400, "invalid_characters")
    assert client_of.get("/api/me").json()["nickname"] != "a\x00b"


def test_every_schema_of_the_api_has_its_own_name():
    """The OpenAPI document names a schema by its class name: two classes with one name (the
    conversations' and the notifications' `ReadIn`) made one operation document the other's
    body, and the SDK typed it wrongly."""
    from ninja import Schema

    from project.api import api

    api.get_openapi_schema()  # imports every router's module
    seen: dict[str, str] = {}
    clashes = []
    stack = list(Schema.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] not in {"marketplace", "negotiation", "realtime", "project"}:
            continue
        where = f"{cls.__module__}.{cls.__qualname__}"
        if cls.__name__ in seen and seen[cls.__name__] != where:
            clashes.append((seen[cls.__name__], where))
        seen.setdefault(cls.__name__, where)
    assert clashes == []
