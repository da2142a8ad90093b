"""What every benchmark needs: the production-mode environment, a throwaway database, its own
Redis keys, enough file descriptors, and percentiles."""

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
BENCH_SECRET_KEY = "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789"


def production_env(
    *, database_url: str, redis_url: str, prefix: str, **overrides: str
) -> dict[str, str]:
    """Production's settings (DEBUG off, every deploy check) under MARKETPLACE_ENV=staging, on a
    bench database, with this benchmark's own channel, cache and queue prefixes so runs never
    see each other's keys. Staging, because production refuses to start without real partner
    credentials, which a benchmark has none of; staging is production on the sandbox (which
    these benchmarks never call but for payments in bench/orders.py)."""
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update(
        MARKETPLACE_ENV="staging",
        NUM_PROXIES="0",  # clients connect to the servers directly
        SECURE_SSL_REDIRECT="0",  # plain HTTP on the loopback: TLS ends at the proxy
        SECRET_KEY=BENCH_SECRET_KEY,
        DEBUG="0",
        SANDBOX_ENABLED="1",
        WECHAT_APPID="wxbench",
        WECHAT_SECRET="bench",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        CHANNELS_PREFIX=prefix,
        CACHE_PREFIX=prefix,
        HUEY_NAME=prefix,
        LOG_LEVEL="WARNING",
        MARKETPLACE_VAR_DIR="/tmp/marketplace-bench-var",
        DJANGO_SETTINGS_MODULE="project.settings",
    )
    env.setdefault("PAYOUT_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    env.update(overrides)
    return env


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def ensure_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clear_redis_keys(redis_url: str, prefix: str) -> None:
    """Only this benchmark's keys: user ids restart with the database, old groups must not."""
    import redis

    client = redis.Redis.from_url(redis_url)
    for pattern in (f"{prefix}*", f":1:{prefix}*", f"huey.*{prefix}*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


def raise_fd_limit(sockets: int) -> None:
    """Both ends of every socket live on this machine."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, sockets * 2 + 1000))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if wanted < sockets * 2 + 200:
        sys.exit(f"open-file limit {hard} is too low for {sockets} sockets on both ends")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def latency_summary(values: list[float]) -> str:
    """p50 / p99 / max of latencies in seconds, printed in milliseconds."""
    if not values:
        return "no samples"
    return (
        f"p50 {percentile(values, 0.50) * 1000:6.1f} ms   p99 {percentile(values, 0.99) * 1000:6.1f}"
        f" ms   max {max(values) * 1000:6.1f} ms   (n={len(values)})"
    )


def start_logged(log_name: str, args: list[str], env: dict) -> subprocess.Popen:
    """A server or worker in its own process group (stop_processes ends the whole group), its
    output in var/<log_name>.log."""
    log = open(ROOT / "var" / f"{log_name}.log", "wb")  # noqa: SIM115 - the child keeps it open
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port} after {timeout:.0f} s")


def stop_processes(processes: list[subprocess.Popen], timeout: float = 15) -> None:
    """Stops servers and workers a benchmark started with `start_new_session=True`: the whole
    process group (daphne's or gunicorn's children too), SIGKILL for what outlives `timeout`."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
