"""deploy/: the files production starts from are complete and nginx accepts the site."""

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(DEPLOY))

import render  # noqa: E402

# Read by the code but not a deployment's business: development, tests and the sandbox's knobs.
NOT_FOR_DEPLOYMENTS = {
    "DEMO_STAFF_USER",
    "DEMO_STAFF_PASSWORD",
    "TEST_RUN_ID",
    "TEST_DB_POOL_MAX",
    "PYTEST_XDIST_WORKER",
    "SANDBOX_ENABLED",
    "SANDBOX_CALLBACK_TRANSPORT",
    "SANDBOX_NOTIFY_SCHEDULE_SCALE",
    "SANDBOX_REFUND_SETTLE_SECONDS",
    "SANDBOX_TRANSFER_OUTCOME",
    "SANDBOX_TRANSFER_CONFIRM_SECONDS",
    "SANDBOX_BILL_DROP",
    "SANDBOX_BILL_ALTER",
    "DB_APPLICATION_NAME",
}
_READ = re.compile(
    r"(?:os\.environ(?:\.get)?\(|os\.environ\[|env_(?:bool|int|float|list)\()\s*\"([A-Z0-9_]+)\""
)


def _variables_the_code_reads() -> set[str]:
    names = set()
    for package in ("project", "marketplace", "realtime", "negotiation"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                names |= set(_READ.findall(path.read_text()))
    return names


def _template_names() -> set[str]:
    text = (DEPLOY / "marketplace.env.example").read_text()
    return set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_the_environment_template_names_every_variable_production_reads():
    missing = _variables_the_code_reads() - NOT_FOR_DEPLOYMENTS - _template_names()
    assert missing == set()


def test_the_environment_template_is_a_production_one():
    env = render.read_env_file(DEPLOY / "marketplace.env.example")
    assert env["MARKETPLACE_ENV"] == "production"
    assert env["NUM_PROXIES"] == "1"  # nginx appends one X-Forwarded-For entry
    assert env["PRIVATE_MEDIA_ACCEL_REDIRECT"] == "/protected-media/"
    assert env["LOG_FORMAT"] == "json"
    # Secrets are placeholders that the checks refuse, never usable values.
    for secret in ("SECRET_KEY", "PAYOUT_ENCRYPTION_KEYS", "WECHATPAY_APIV3_KEY", "METRICS_TOKEN"):
        assert "change-me" in env[secret]


@pytest.mark.parametrize("unit", sorted(p.name for p in (DEPLOY / "systemd").glob("*.service")))
def test_every_unit_runs_a_program_of_this_repository_with_the_environment_file(unit):
    text = (DEPLOY / "systemd" / unit).read_text()
    assert "EnvironmentFile=/etc/marketplace/marketplace.env" in text
    (command,) = [
        line.removeprefix("ExecStart=")
        for line in text.splitlines()
        if line.startswith("ExecStart=")
    ]
    argv = shlex.split(command.replace("/srv/marketplace/app", str(ROOT)))
    assert Path(argv[0]).name in {"gunicorn", "daphne", "python"}
    assert (ROOT / ".venv" / "bin" / Path(argv[0]).name).exists() or Path(argv[0]).name == "python"
    for part in argv[1:]:
        if part.startswith(str(ROOT)):
            assert Path(part).exists(), part
    if "run_huey" in argv:
        # Exactly one consumer runs the periodic tasks.
        assert ("--no-periodic" in argv) == unit.startswith("marketplace-huey-worker@")


def test_the_site_sends_what_the_issue_asks():
    site = render.render(
        env=render.read_env_file(DEPLOY / "marketplace.env.example"),
        listen="443",
        server_name="api.example.com",
        daphne_ports=[8001, 8002],
        log_dir="/var/log/nginx",
        static_root="/srv/marketplace/app/staticfiles",
        tls=("/etc/ssl/cert.pem", "/etc/ssl/key.pem"),
    )
    assert "listen 443 ssl" in site and "return 301 https://" in site
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in site
    assert "proxy_set_header Upgrade $http_upgrade;" in site and "proxy_read_timeout 1h;" in site
    # nginx gives a location that sets any proxy_set_header none of the server's: the socket
    # must still get the forwarded address, the scheme and the host.
    for block in re.findall(r"location [^{]+\{(?:[^{}]|\{[^{}]*\})*\}", site):
        if "proxy_set_header" in block:
            for header in ("Host", "X-Forwarded-For", "X-Forwarded-Proto", "X-Request-ID"):
                assert f"proxy_set_header {header} " in block, (header, block[:60])
    assert f"client_max_body_size {110 * 1024 * 1024};" in site  # MAX_REQUEST_BODY_BYTES
    assert '"code":"payload_too_large"' in site
    # Private files are outside /media/; only the app's X-Accel-Redirect reaches them.
    assert "internal;" in site and "alias /srv/marketplace/var/private-media/;" in site
    assert "server 127.0.0.1:8001;" in site and "server 127.0.0.1:8002;" in site
    assert not re.search(r"@[A-Z_]+@", site)


@pytest.mark.skipif(
    not shutil.which("nginx"), reason="nginx is not installed (make staging installs it)"
)
def test_nginx_accepts_the_rendered_production_site(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=api.example.com",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    site = render.render(
        env=render.read_env_file(DEPLOY / "marketplace.env.example"),
        listen="127.0.0.1:8443",
        server_name="api.example.com",
        daphne_ports=[8001],
        log_dir=str(tmp_path),
        static_root=str(tmp_path / "static"),
        tls=(str(cert), str(key)),
    )
    (tmp_path / "site.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ include /etc/nginx/mime.types; {temp} include {tmp_path}/site.conf; }}\n"
    )
    result = subprocess.run(
        ["nginx", "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
