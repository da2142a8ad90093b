"""Production and staging boot checks (project/checks.py), run as an operator would: `manage.py
check --deploy` in a subprocess with the environment varied one piece at a time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import override_settings

from project import checks
from project.settings import _pool_size_for, _server_kind
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parents[2]
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

PRODUCTION_ENV = {
    "MARKETPLACE_ENV": "production",
    "SECRET_KEY": "k3y-" + "Zq8xV2mN7pL4wR9tY6uB1cE5" * 3,
    "ALLOWED_HOSTS": "api.example.com",
    "NUM_PROXIES": "1",
    # Never connected to by `check --deploy`: only its scheme matters.
    "DATABASE_URL": "postgres://app@127.0.0.1:5432/unused",
    "REDIS_URL": "redis://127.0.0.1:6379/14",
    "PUBLIC_BASE_URL": "https://api.example.com",
    "WECHAT_APPID": "wx1234567890abcdef",
    "WECHAT_SECRET": "real-secret",
    "WECHATPAY_MCHID": "1900000109",
    "WECHATPAY_PRIVATE_KEY": _KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode(),
    "WECHATPAY_CERT_SERIAL_NO": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
    "WECHATPAY_APIV3_KEY": "0123456789abcdef0123456789abcdef",
    "WECHATPAY_PUBLIC_KEY": _KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode(),
    "WECHATPAY_PUBLIC_KEY_ID": "PUB_KEY_ID_0114232134912410000000000000",
    "KUAIDI100_CUSTOMER": "CUSTOMER0000000000000000000000001",
    "KUAIDI100_KEY": "kuaidi100-key",
    "PAYOUT_ENCRYPTION_KEYS": "hVUxKYGPqYMgZ1Dm6kq6YOHSCLh-x1HpXr7zQqKpGq4=",
}
STAGING_ENV = {
    **{k: v for k, v in PRODUCTION_ENV.items() if not k.startswith(("WECHAT", "KUAIDI100"))},
    "MARKETPLACE_ENV": "staging",
    "ALLOWED_HOSTS": "127.0.0.1,10.0.3.7,market.staging.internal,shop.test",
    "PUBLIC_BASE_URL": "http://10.0.3.7:8000",
}


def _run(env: dict[str, str], *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "SANDBOX", "DJANGO_", "MARKETPLACE_"))
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**inherited, "MARKETPLACE_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _check(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return _run(env, "manage.py", "check", "--deploy", tmp_path=tmp_path)


@pytest.mark.parametrize("env", [PRODUCTION_ENV, STAGING_ENV], ids=["production", "staging"])
def test_a_complete_deployment_passes_every_check_silently(env, tmp_path):
    result = _check(env, tmp_path)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


MISSING = [
    ({"SECRET_KEY": None}, "marketplace.E001", "get_random_secret_key"),
    ({"SECRET_KEY": "short-key"}, "marketplace.E001", "SECRET_KEY"),
    ({"DEBUG": "1"}, "marketplace.E002", "DEBUG"),
    ({"ALLOWED_HOSTS": None}, "marketplace.E003", "ALLOWED_HOSTS"),
    ({"ALLOWED_HOSTS": "*"}, "marketplace.E003", "ALLOWED_HOSTS"),
    ({"NUM_PROXIES": None}, "marketplace.E004", "NUM_PROXIES"),
    ({"DATABASE_URL": None}, "marketplace.E010", "postgres://"),
    ({"REDIS_URL": None}, "marketplace.E011", "REDIS_URL"),
    ({"PAYOUT_ENCRYPTION_KEYS": None}, "marketplace.E020", "Fernet.generate_key"),
    ({"PAYOUT_ENCRYPTION_KEYS": "not-a-key"}, "marketplace.E021", "PAYOUT_ENCRYPTION_KEYS"),
    ({"SANDBOX_ENABLED": "1"}, "marketplace.E030", "MARKETPLACE_ENV=staging"),
    ({"WECHAT_SECRET": None, "SANDBOX_ENABLED": "0"}, "marketplace.E031", "WECHAT_SECRET"),
    ({"WECHATPAY_PRIVATE_KEY": None}, "marketplace.E032", "WECHATPAY_PRIVATE_KEY"),
    ({"WECHATPAY_APIV3_KEY": None}, "marketplace.E032", "WECHATPAY_APIV3_KEY"),
    ({"WECHATPAY_PUBLIC_KEY_ID": None}, "marketplace.E032", "WECHATPAY_PUBLIC_KEY_ID"),
    ({"KUAIDI100_KEY": None}, "marketplace.E033", "KUAIDI100_KEY"),
    ({"PUBLIC_BASE_URL": "http://api.example.com"}, "marketplace.E035", "HTTPS"),
    ({"WECHATPAY_PRIVATE_KEY": "/no/such/key.pem"}, "marketplace.E036", "PEM"),
    ({"WECHATPAY_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nxx\n"}, "marketplace.E037", "pub_key"),
    ({"WECHATPAY_APIV3_KEY": "too-short"}, "marketplace.E038", "32"),
    ({"SHARE_CARD_FONT": "/no/such/font.ttc"}, "marketplace.W001", "fonts-noto-cjk"),
    ({"SECURE_HSTS_SECONDS": "0"}, "security.W004", "SECURE_HSTS_SECONDS"),
    ({"SECURE_SSL_REDIRECT": "0"}, "security.W008", "SECURE_SSL_REDIRECT"),
    ({"SESSION_COOKIE_SECURE": "0"}, "security.W012", "SESSION_COOKIE_SECURE"),
    ({"CSRF_COOKIE_SECURE": "0"}, "security.W016", "CSRF_COOKIE_SECURE"),
]


@pytest.mark.parametrize(("change", "check_id", "hint"), MISSING)
def test_each_missing_piece_is_reported_with_a_hint(change, check_id, hint, tmp_path):
    env = {**PRODUCTION_ENV, **{k: v for k, v in change.items() if v is not None}}
    for name in [k for k, v in change.items() if v is None]:
        env.pop(name)

    result = _check(env, tmp_path)

    output = result.stdout + result.stderr
    assert check_id in output, output
    assert hint in output, output
    if check_id.startswith("marketplace.E"):
        assert result.returncode != 0


@pytest.mark.parametrize(
    ("change", "check_id"),
    [
        ({"ALLOWED_HOSTS": "127.0.0.1,staging.example.com"}, "marketplace.E041"),
        ({"ALLOWED_HOSTS": "8.8.8.8"}, "marketplace.E041"),
        ({"SANDBOX_ENABLED": "0"}, "marketplace.E040"),
        ({"NUM_PROXIES": None}, "marketplace.E004"),
        ({"PAYOUT_ENCRYPTION_KEYS": None}, "marketplace.E020"),
    ],
)
def test_staging_keeps_production_checks_and_stays_off_public_hosts(change, check_id, tmp_path):
    env = {**STAGING_ENV, **{k: v for k, v in change.items() if v is not None}}
    for name in [k for k, v in change.items() if v is None]:
        env.pop(name)

    result = _check(env, tmp_path)

    assert result.returncode != 0
    assert check_id in result.stderr, result.stderr


def test_servers_refuse_to_start_on_a_check_error(tmp_path):
    env = {**PRODUCTION_ENV}
    env.pop("WECHATPAY_PRIVATE_KEY")
    for module in ("project.wsgi", "project.asgi"):
        result = _run(
            {**env, "DJANGO_SETTINGS_MODULE": "project.settings"},
            "-c",
            f"import {module}; print('serving')",
            tmp_path=tmp_path,
        )
        assert result.returncode != 0, module
        assert "Production mode refuses to start" in result.stderr
        assert "marketplace.E032" in result.stderr
        assert "serving" not in result.stdout


def test_a_misspelt_environment_name_refuses_rather_than_means_development(tmp_path):
    result = _check({**PRODUCTION_ENV, "MARKETPLACE_ENV": "prod"}, tmp_path)

    assert result.returncode != 0
    assert "MARKETPLACE_ENV='prod'" in result.stderr


def test_staging_is_labelled_in_the_admin(tmp_path):
    result = _run(
        {**STAGING_ENV, "DJANGO_SETTINGS_MODULE": "project.settings"},
        "-c",
        "import django; django.setup(); from django.contrib import admin; "
        "print(admin.site.site_header)",
        tmp_path=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert "测试环境" in result.stdout and "STAGING" in result.stdout


def test_staging_responses_carry_the_environment_header(client):
    with override_settings(IS_STAGING=True):
        labelled = client.get("/healthz")
    unlabelled = client.get("/healthz")

    assert labelled["X-Environment"] == "staging"
    assert "X-Environment" not in unlabelled


@pytest.mark.parametrize(
    ("host", "private"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("10.1.2.3", True),
        ("192.168.0.5", True),
        ("[::1]", True),
        ("shop.internal", True),
        ("box.local", True),
        ("shop.test", True),
        ("api.example.com", False),
        ("8.8.8.8", False),
        (".example.com", False),
    ],
)
def test_private_hosts(host, private):
    assert checks.is_private_host(host) is private


@pytest.mark.django_db
def test_the_first_staff_user_hint_until_there_is_one():
    with override_settings(IS_DEPLOYED=True):
        assert checks.check_first_staff_user(None) == []  # no database asked for: no query
        [info] = checks.check_first_staff_user(None, databases=["default"])
        assert "manage.py createsuperuser" in info.msg
        UserFactory(is_staff=True, is_superuser=True)
        assert checks.check_first_staff_user(None, databases=["default"]) == []
    assert checks.first_staff_user_hint() is None  # development: never


@pytest.mark.django_db
def test_migrate_tells_how_to_create_the_first_staff_user():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    with override_settings(IS_DEPLOYED=True):
        call_command("migrate", verbosity=1, stdout=out)
    assert "manage.py createsuperuser" in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "kind", "max_size"),
    [
        (["/srv/.venv/bin/gunicorn", "-w", "4", "project.wsgi"], "wsgi", 2),
        (["/srv/.venv/lib/python3.12/site-packages/gunicorn/__main__.py"], "wsgi", 2),
        (["manage.py", "run_huey", "--workers", "4"], "huey", 5),
    ],
)
def test_pool_defaults_follow_the_server_kind(argv, kind, max_size, monkeypatch):
    monkeypatch.setattr(sys, "argv", argv)
    assert _server_kind(argv) == kind
    assert _pool_size_for(kind)[1] == max_size


def test_asgi_pools_match_the_thread_pool(monkeypatch):
    assert _server_kind(["/srv/.venv/bin/daphne", "project.asgi:application"]) == "asgi"
    monkeypatch.setenv("ASGI_THREADS", "12")
    assert _pool_size_for("asgi")[1] == 12
    monkeypatch.delenv("ASGI_THREADS")
    assert _pool_size_for("asgi")[1] == min(32, (os.cpu_count() or 1) + 4)
