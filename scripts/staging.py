"""`make staging`: the production layout from deploy/, on this machine, behind a real nginx.

    python scripts/staging.py [--database-url postgres://postgres@127.0.0.1:5432/postgres]
                              [--redis-url redis://127.0.0.1:6379/15] [--keep]

Installs Debian's nginx when it is missing (as root), creates a scratch PostgreSQL database and
Redis prefixes of its own, writes an environment file from deploy/marketplace.env.example with
staging's values (MARKETPLACE_ENV=staging: production's checks on the sandbox), starts gunicorn,
daphne and the Huey consumer from the ExecStart lines of deploy/systemd/ (their paths and ports
replaced) and nginx from deploy/nginx/marketplace.conf.in on unprivileged loopback ports, then
plays the demo through nginx and checks what only a proxy shows:

* sign-in rate limits count the address nginx forwards, and a forged X-Forwarded-For from the
  client does not move them;
* a live socket works through the proxy (and a bad token still gets its close code);
* an image at the upload limit is accepted, one byte over is refused by the app, a body over
  the proxy's limit is refused by nginx, both with the API's error body;
* an order video's per-reader signed link is sent by nginx through X-Accel-Redirect, while the
  file is not under /media/ and a forged link is 404;
* /metrics through nginx sums the processes (gunicorn workers, daphne, Huey).

Everything it started is stopped, the database dropped and the Redis keys deleted, also when a
check fails. tests/deploy/test_staging.py runs it on the real stack.
"""

import argparse
import asyncio
import contextlib
import io
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(DEPLOY))

import render  # noqa: E402  (deploy/render.py: the same renderer production uses)

PRODUCTION_APP_DIR = "/srv/marketplace/app"
MB = 1024 * 1024
IMAGE_LIMIT = 10 * MB  # marketplace.actions.uploads.MAX_UPLOAD_BYTES
PROXY_LIMIT = 11 * MB  # MAX_REQUEST_BODY_BYTES here, so nginx's limit is cheap to pass
SIGN_IN_RATE = 8


class StagingFailed(Exception):
    pass


def say(text: str) -> None:
    print(f"[staging] {text}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ensure_nginx() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else "")
    if found:
        return found
    if os.geteuid() != 0:
        raise StagingFailed("nginx is missing and installing it needs root: apt-get install nginx")
    say("nginx is missing; installing Debian's nginx")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "nginx"], check=True, env=env)
    return shutil.which("nginx") or "/usr/sbin/nginx"


def exec_start(unit: str, *, instance: str = "") -> list[str]:
    """The unit's ExecStart, with the production paths pointing at this checkout."""
    for line in (DEPLOY / "systemd" / unit).read_text().splitlines():
        if line.startswith("ExecStart="):
            command = line.removeprefix("ExecStart=").replace(PRODUCTION_APP_DIR, str(ROOT))
            return shlex.split(command.replace("%i", instance))
    raise StagingFailed(f"{unit} has no ExecStart")


@dataclass
class Layout:
    database_url: str
    redis_url: str
    work: Path
    nginx_port: int = field(default_factory=free_port)
    gunicorn_port: int = field(default_factory=free_port)
    daphne_ports: list[int] = field(default_factory=lambda: [free_port(), free_port()])
    run: str = field(default_factory=lambda: secrets.token_hex(4))
    staff_password: str = field(default_factory=lambda: secrets.token_hex(12))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def database_name(self) -> str:
        return f"marketplace_staging_{self.run}"

    @property
    def metrics_token(self) -> str:
        return self.env["METRICS_TOKEN"]


# --- environment, database ---------------------------------------------------------------------


def staging_env(layout: Layout) -> dict[str, str]:
    from cryptography.fernet import Fernet

    template = render.read_env_file(DEPLOY / "marketplace.env.example")
    # Partner credentials stay out: staging runs on the sandbox (project/checks.py E040).
    env = {key: value for key, value in template.items() if "change-me" not in value}
    var = layout.work / "var"
    env.update(
        {
            "MARKETPLACE_ENV": "staging",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "PAYOUT_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PUBLIC_BASE_URL": layout.base_url,
            "CSRF_TRUSTED_ORIGINS": layout.base_url,
            "REALTIME_ALLOWED_ORIGINS": f"https://servicewechat.com,{layout.base_url}",
            # nginx here listens without TLS (check --deploy warns about each of these).
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "SECURE_HSTS_SECONDS": "0",
            "NUM_PROXIES": "1",
            "DATABASE_URL": _with_database(layout.database_url, layout.database_name),
            "DB_POOL_MIN": "1",
            "ASGI_THREADS": "4",
            "REDIS_URL": layout.redis_url,
            "CHANNELS_PREFIX": f"staging-{layout.run}-asgi",
            "CACHE_PREFIX": f"staging-{layout.run}-cache",
            "HUEY_NAME": f"staging-{layout.run}",
            "GUNICORN_BIND": f"127.0.0.1:{layout.gunicorn_port}",
            "GUNICORN_WORKERS": "2",
            "PROMETHEUS_MULTIPROC_DIR": str(layout.work / "metrics"),
            "MARKETPLACE_VAR_DIR": str(var),
            "MEDIA_ROOT": str(var / "media"),
            "PRIVATE_MEDIA_ROOT": str(var / "private-media"),
            "STATIC_ROOT": str(layout.work / "static"),
            "MAX_REQUEST_BODY_BYTES": str(PROXY_LIMIT),
            # The per-address ceiling is what shows the address nginx forwards (RATE_SIGN_IN
            # counts per openid, and every attempt below is a new one).
            "RATE_SIGN_IN_ADDRESS": f"{SIGN_IN_RATE}/m",
            "METRICS_TOKEN": secrets.token_urlsafe(24),
            "LOG_FORMAT": "json",
            # Sandbox WeChat Pay notifies at a hundredth of the real retry pace.
            "SANDBOX_NOTIFY_SCHEDULE_SCALE": "0.01",
        }
    )
    (layout.work / "metrics").mkdir(parents=True, exist_ok=True)
    (var / "media").mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in sorted(env.items())]
    (layout.work / "marketplace.env").write_text("\n".join(lines) + "\n")
    return env


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _admin_connection(layout: Layout):
    import psycopg

    return psycopg.connect(_with_database(layout.database_url, "postgres"), autocommit=True)


def create_database(layout: Layout) -> None:
    with _admin_connection(layout) as connection:
        connection.execute(f'CREATE DATABASE "{layout.database_name}"')


def drop_database(layout: Layout) -> None:
    with _admin_connection(layout) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{layout.database_name}" WITH (FORCE)')


def delete_redis_keys(layout: Layout) -> None:
    import redis

    client = redis.Redis.from_url(layout.redis_url)
    try:
        # Huey drops the dash from its name ("huey.schedule.staging<run>").
        for pattern in (f"*staging*{layout.run}*",):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def manage(layout: Layout, *args: str, capture: bool = False, extra_env=None) -> str:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=ROOT,
        env={**layout.env, **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise StagingFailed(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# --- processes -----------------------------------------------------------------------------------


def base_process_env(layout: Layout) -> dict[str, str]:
    """What systemd gives a unit: its EnvironmentFile and little else (never this shell's)."""
    keep = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    return {**keep, **layout.env}


def start(layout: Layout, name: str, command: list[str]) -> None:
    log = open(layout.work / "logs" / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    layout.processes[name] = subprocess.Popen(
        command,
        cwd=ROOT,
        env=layout.env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    say(f"started {name} (pid {layout.processes[name].pid}): {' '.join(command)}")


def nginx_config(layout: Layout) -> Path:
    site = render.render(
        env=layout.env,
        listen=f"127.0.0.1:{layout.nginx_port}",
        server_name="127.0.0.1 localhost",
        daphne_ports=layout.daphne_ports,
        log_dir=str(layout.work / "logs"),
        static_root=layout.env["STATIC_ROOT"],
        metrics_allow=["127.0.0.1"],
    )
    (layout.work / "nginx").mkdir(exist_ok=True)
    (layout.work / "nginx" / "marketplace.conf").write_text(site)
    temp = layout.work / "nginx"
    # As root, nginx's workers would run as nobody and could not read the scratch directory.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = (
        f"{user}worker_processes 1;\npid {temp}/nginx.pid;\nerror_log {layout.work}/logs/nginx-main.log;\n"
        "events { worker_connections 512; }\n"
        "http {\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n"
        f"    client_body_temp_path {temp}/body;\n    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n    sendfile on;\n"
        f"    include {temp}/marketplace.conf;\n}}\n"
    )
    path = temp / "nginx.conf"
    path.write_text(main)
    return path


def start_layout(layout: Layout, nginx: str) -> None:
    (layout.work / "logs").mkdir(parents=True, exist_ok=True)
    layout.env = staging_env(layout)
    layout.env = base_process_env(layout)
    create_database(layout)
    say(f"database {layout.database_name}; migrating")
    manage(layout, "migrate", "--noinput")
    manage(layout, "collectstatic", "--noinput")
    manage(layout, "seed_demo")
    manage(
        layout,
        "createsuperuser",
        "--noinput",
        "--username",
        "staging-admin",
        "--email",
        "staging@example.test",
        extra_env={"DJANGO_SUPERUSER_PASSWORD": layout.staff_password},
    )
    start(layout, "gunicorn", exec_start("marketplace-gunicorn.service"))
    for port in layout.daphne_ports:
        start(
            layout, f"daphne-{port}", exec_start("marketplace-daphne@.service", instance=str(port))
        )
    start(layout, "huey", exec_start("marketplace-huey.service"))
    config = nginx_config(layout)
    test = subprocess.run(
        [nginx, "-t", "-c", str(config), "-p", str(config.parent)], capture_output=True, text=True
    )
    if test.returncode != 0:
        raise StagingFailed(f"nginx refused the rendered site:\n{test.stderr}")
    start(
        layout, "nginx", [nginx, "-c", str(config), "-p", str(config.parent), "-g", "daemon off;"]
    )
    wait_ready(layout)


def wait_ready(layout: Layout, timeout: float = 90) -> None:
    import requests

    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for name, process in layout.processes.items():
            if process.poll() is not None:
                raise StagingFailed(
                    f"{name} exited with {process.returncode}:\n{tail(layout, name)}"
                )
        try:
            ready = requests.get(layout.base_url + "/readyz", timeout=2)
            sockets = [_port_open(port) for port in layout.daphne_ports]
            if ready.status_code == 200 and all(sockets):
                say(f"ready at {layout.base_url}")
                return
            last = f"/readyz {ready.status_code}, daphne {sockets}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.5)
    raise StagingFailed(f"the layout did not become ready: {last}")


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def tail(layout: Layout, name: str, lines: int = 40) -> str:
    path = layout.work / "logs" / f"{name}.log"
    return (
        "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""
    )


def stop_layout(layout: Layout) -> None:
    # nginx first (no new requests), then the servers, the consumer last (it finishes tasks).
    order = ["nginx", *[n for n in layout.processes if n not in {"nginx", "huey"}], "huey"]
    for name in order:
        process = layout.processes.get(name)
        if process is None or process.poll() is not None:
            continue
        stop_signal = signal.SIGINT if name == "huey" else signal.SIGTERM  # as the units say
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, stop_signal)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        say(f"stopped {name} ({process.returncode})")


@contextlib.contextmanager
def running(*, database_url: str, redis_url: str, keep: bool = False) -> Iterator[Layout]:
    nginx = ensure_nginx()
    work = Path(tempfile.mkdtemp(prefix="marketplace-staging-"))
    work.chmod(0o755)
    layout = Layout(database_url=database_url, redis_url=redis_url, work=work)
    try:
        start_layout(layout, nginx)
        yield layout
    except BaseException:
        for name in layout.processes:
            say(f"--- {name} (last lines) ---\n{tail(layout, name)}")
        raise
    finally:
        stop_layout(layout)
        with contextlib.suppress(Exception):
            drop_database(layout)
        with contextlib.suppress(Exception):
            delete_redis_keys(layout)
        if keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# --- the play through nginx ------------------------------------------------------------------


def check(condition: bool, what: str) -> None:
    if not condition:
        raise StagingFailed(what)
    say(f"ok: {what}")


OTHER_CLIENT = "127.0.0.2"  # another loopback address: a second client as nginx sees it


class _Answer:
    """The little of a response the checks read (http.client, to choose the source address)."""

    def __init__(self, status_code: int, headers: dict[str, str], body: bytes) -> None:
        self.status_code, self.headers, self.body = status_code, headers, body

    def json(self):
        return json.loads(self.body)


def post_json(base_url: str, path: str, body: dict, *, headers=None, source: str = "127.0.0.1"):
    import http.client

    host = urlsplit(base_url)
    connection = http.client.HTTPConnection(
        host.hostname, host.port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})}
        )
        response = connection.getresponse()
        return _Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def sign_in(base_url: str, openid: str, forged_for: str | None = None, source: str = "127.0.0.1"):
    code = post_json(base_url, "/sandbox/wechat/login-code", {"openid": openid}, source=source)
    headers = {"X-Forwarded-For": forged_for} if forged_for else {}
    return post_json(
        base_url,
        "/api/auth/wechat-login",
        {"code": code.json()["code"]},
        headers=headers,
        source=source,
    )


def play_demo(layout: Layout) -> None:
    result = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "python"),
            "scripts/demo.py",
            "--base-url",
            layout.base_url,
            "--staff-user",
            "staging-admin",
            f"--staff-password={layout.staff_password}",
        ],
        cwd=ROOT,
        # The demo's last step runs `manage.py reconcile` on the server's side: it must see the
        # layout's database and settings, not the caller's.
        env=layout.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (layout.work / "logs" / "demo.log").write_text(result.stdout + result.stderr)
    check(
        result.returncode == 0,
        "the demo ran through nginx (sign-in, sockets, admin, payment, "
        "video, shipping, wallet)"
        + (
            "" if result.returncode == 0 else f":\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
        ),
    )


async def _socket_checks(layout: Layout, token: str) -> None:
    import websockets

    ws_url = layout.base_url.replace("http", "ws", 1) + "/ws/"
    async with websockets.connect(f"{ws_url}?token={token}", open_timeout=10) as live:
        pong = await live.ping()
        await asyncio.wait_for(pong, 10)
        check(True, "a signed-in socket opened through nginx's /ws/ (Upgrade passed on)")
    async with websockets.connect(
        f"{ws_url}?token=not-a-token",
        open_timeout=10,
        local_addr=(OTHER_CLIENT, 0),
        additional_headers={"X-Forwarded-For": "203.0.113.77"},
    ) as refused:
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(refused.recv(), 10)
        await asyncio.sleep(0.5)  # the refusal's log line
        daphne_logs = "".join(
            tail(layout, name, 400) for name in layout.processes if name.startswith("daphne")
        )
        check(
            f"no valid token, client {OTHER_CLIENT}" in daphne_logs
            and "203.0.113.77" not in daphne_logs,
            f"the socket sees the client address nginx forwards ({OTHER_CLIENT}), not a forged one",
        )
        check(
            refused.close_code == 4401,
            f"a bad token still closes with 4401 through nginx (got {refused.close_code})",
        )


def _jpeg(size: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(out, "JPEG")
    data = out.getvalue()
    # Bytes after the end-of-image marker are ignored by decoders: a real photo of this size.
    return data + b"\x00" * (size - len(data))


def play_uploads(layout: Layout, token: str) -> None:
    import requests

    url = layout.base_url + "/api/uploads/images"
    headers = {"Authorization": f"Bearer {token}"}

    def upload(size: int):
        files = {"file": ("photo.jpg", _jpeg(size), "image/jpeg")}
        return requests.post(url, files=files, headers=headers, timeout=60)

    at_limit = upload(IMAGE_LIMIT)
    check(
        at_limit.status_code == 201,
        f"an image of exactly 10 MB is accepted ({at_limit.status_code})",
    )
    over = upload(IMAGE_LIMIT + 1)
    check(
        over.status_code == 413 and over.json()["code"] == "payload_too_large",
        f"one byte over is refused by the app with the API's error body ({over.status_code})",
    )
    too_big = upload(PROXY_LIMIT + MB)
    body = (
        too_big.json()
        if too_big.headers.get("Content-Type", "").startswith("application/json")
        else {}
    )
    check(
        too_big.status_code == 413
        and body.get("code") == "payload_too_large"
        and "X-Environment" not in too_big.headers,  # nginx answered: the app labels staging
        f"a body over the proxy's limit is refused by nginx with the API's error body ({too_big.status_code})",
    )


def play_private_video(layout: Layout) -> None:
    import requests

    url = (
        manage(
            layout,
            "shell",
            "-c",
            "from marketplace.models import Order; from marketplace.media import private_url; "
            "o = Order.objects.exclude(video='').latest('id'); "
            "print(private_url(o.video.name, reader_id=o.buyer_id))",
            capture=True,
        )
        .strip()
        .splitlines()[-1]
    )
    check(
        url.startswith(layout.base_url + "/api/private-media/"),
        f"the order video's URL is the buyer's signed link ({url[:80]}…)",
    )
    served = requests.get(url, timeout=10)
    stored = (
        manage(
            layout,
            "shell",
            "-c",
            "from marketplace.models import Order; o = Order.objects.exclude(video='').latest('id'); "
            "print(o.video.size, o.video.name)",
            capture=True,
        )
        .strip()
        .splitlines()[-1]
    )
    check(
        served.status_code == 200
        and len(served.content) == int(stored.split()[0])
        and served.headers.get("Content-Type") == "video/mp4"
        and "X-Accel-Redirect" not in served.headers,
        "nginx sent the video through X-Accel-Redirect (the header consumed, the bytes served)",
    )
    name = stored.split()[1]
    plain = requests.get(f"{layout.base_url}/media/{name}", timeout=10)
    check(plain.status_code == 404, "the video is not under /media/")
    token = url.rsplit("/", 2)[-2]
    forged = requests.get(url.replace(token, token[:-4] + "AAAA"), timeout=10)
    check(
        forged.status_code == 404 and forged.json()["code"] == "link_expired",
        "a forged link is the API's 404",
    )
    internal = requests.get(layout.base_url + "/protected-media/" + name, timeout=10)
    check(internal.status_code == 404, "nginx's internal location cannot be asked for directly")


def play_metrics(layout: Layout) -> None:
    import requests

    # From loopback through nginx (allowed there), with the token the app asks of others.
    text = requests.get(
        layout.base_url + "/metrics",
        headers={"Authorization": f"Bearer {layout.metrics_token}"},
        timeout=10,
    ).text
    requests_total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("marketplace_http_requests_total{")
    )
    check(
        requests_total > 20,
        f"/metrics through nginx counts the requests of every worker ({requests_total:.0f})",
    )
    check(
        "marketplace_tasks_total{" in text and 'outcome="complete"' in text,
        "/metrics sees the Huey consumer's task runs (one directory for every process)",
    )
    lag_count = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("marketplace_event_send_lag_seconds_count")
    )
    check(
        lag_count > 0, f"/metrics has the emit→send lag of the frames daphne sent ({lag_count:.0f})"
    )
    socket_series = [
        line for line in text.splitlines() if line.startswith("marketplace_open_sockets{")
    ]
    pids = {line.split('pid="')[1].split('"')[0] for line in socket_series}
    daphnes = {str(p.pid) for name, p in layout.processes.items() if name.startswith("daphne")}
    check(daphnes <= pids, f"open sockets are reported per daphne process ({sorted(daphnes)})")
    check(
        "marketplace_huey_queue_depth" in text and "marketplace_deadline_lag_seconds" in text,
        "/metrics reads the queue and the deadline lag",
    )
    outsider = requests.get(
        layout.base_url + "/metrics", headers={"X-Forwarded-For": "127.0.0.1"}, timeout=10
    )
    check(outsider.status_code == 200, "loopback is on the allow-list through nginx")


def play_rate_limit(layout: Layout) -> None:
    """Last: it uses up sign-ins from this machine for a minute."""
    statuses = []
    for attempt in range(SIGN_IN_RATE + 3):
        # A different forged address every time: were it believed, no limit would ever trip.
        response = sign_in(
            layout.base_url, f"staging-rl-{layout.run}-{attempt}", f"198.51.100.{attempt + 1}"
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            break
    check(
        statuses[-1] == 429 and len(statuses) <= SIGN_IN_RATE + 1,
        f"sign-in is limited per client address despite forged X-Forwarded-For ({statuses})",
    )
    limited = sign_in(layout.base_url, f"staging-rl-{layout.run}-last")
    check(
        limited.status_code == 429 and limited.json()["code"] == "rate_limited",
        "the address nginx forwarded stays limited, with the API's error body",
    )
    # Another client (another source address, which only nginx's X-Forwarded-For entry tells
    # the app: every request reaches gunicorn from nginx's own 127.0.0.1) has its own budget.
    other = sign_in(layout.base_url, f"staging-rl-{layout.run}-other", source=OTHER_CLIENT)
    check(
        other.status_code == 200,
        f"a client from {OTHER_CLIENT} is not limited: the app counts the address nginx forwards"
        f" ({other.status_code})",
    )


def play(layout: Layout) -> None:
    play_demo(layout)
    login = sign_in(layout.base_url, f"staging-user-{layout.run}")
    check(
        login.status_code == 200 and login.headers.get("X-Environment") == "staging",
        "sign-in through nginx; the response is labelled staging",
    )
    token = login.json()["token"]
    asyncio.run(_socket_checks(layout, token))
    play_uploads(layout, token)
    play_private_video(layout)
    play_metrics(layout)
    play_rate_limit(layout)
    lines = (layout.work / "logs" / "gunicorn.log").read_text(errors="replace").splitlines()
    access = [
        json.loads(line)
        for line in lines
        if line.startswith("{") and '"marketplace.access"' in line
    ]
    check(
        bool(access) and all("request_id" in line and "route" in line for line in access),
        f"gunicorn wrote one JSON line per request ({len(access)})",
    )
    check(not any(token in line for line in lines), "no token in the server's log")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "STAGING_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("STAGING_REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    parser.add_argument("--serve", action="store_true", help="after the checks, serve until Ctrl-C")
    args = parser.parse_args()
    try:
        with running(
            database_url=args.database_url, redis_url=args.redis_url, keep=args.keep
        ) as layout:
            play(layout)
            say(f"the demo ran through nginx at {layout.base_url}; every check passed")
            if args.serve:
                say("serving until Ctrl-C")
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(1)
    except StagingFailed as exc:
        say(f"FAILED: {exc}")
        sys.exit(1)
    say("stopped everything it started")


if __name__ == "__main__":
    main()
