"""`make staging` on the real stack: the layout from deploy/ behind nginx serves the demo and
stops cleanly (scripts/staging.py holds the checks; each raises with what went wrong)."""

import importlib.util
import os
import socket
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import REAL_STACK_REQUIRED

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    # Heavy (a dozen processes, the whole demo): the real-stack half of `make test` only.
    pytest.mark.skipif(not REAL_STACK_REQUIRED, reason="runs on the real stack only (heavy)"),
    pytest.mark.timeout(900),
]


def _staging():
    spec = importlib.util.spec_from_file_location("staging", ROOT / "scripts" / "staging.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_the_deploy_files_serve_the_demo_through_nginx_and_stop_cleanly():
    staging = _staging()
    database_url, redis_url = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    with staging.running(database_url=database_url, redis_url=redis_url) as layout:
        assert _listening(layout.nginx_port)
        staging.play(layout)  # raises StagingFailed naming the first check that failed
        processes = dict(layout.processes)
        ports = [layout.nginx_port, layout.gunicorn_port, *layout.daphne_ports]
        database, run, work = layout.database_name, layout.run, layout.work
    assert set(processes) >= {"nginx", "gunicorn", "huey"}
    assert all(process.poll() is not None for process in processes.values())
    assert not [port for port in ports if _listening(port)]
    assert not work.exists()
    admin = staging._with_database(database_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        left = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [database]
        ).fetchall()
    assert left == []
    client = redis.Redis.from_url(redis_url)
    try:
        assert list(client.scan_iter(match=f"*staging*{run}*")) == []
    finally:
        client.close()
