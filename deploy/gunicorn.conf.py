"""gunicorn settings for the REST API and the admin (deploy/systemd/marketplace-gunicorn.service).

Everything comes from the environment file so one file serves production and `make staging`."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: 2 × cores (docs/performance.md); each has its own small psycopg pool.
workers = int(os.environ.get("GUNICORN_WORKERS", str(2 * (os.cpu_count() or 1))))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# nginx keeps upstream connections alive (keepalive 16).
keepalive = 75
# Access lines: one per request from the app itself (LOG_FORMAT=json, project/logging.py);
# gunicorn's own access log only when asked.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
# nginx is the only client: trust its X-Forwarded-Proto (NUM_PROXIES covers the address).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
proc_name = "marketplace-gunicorn"


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    # Prometheus multi-process mode: a dead worker's live gauges (open connections) must stop
    # counting; its counters stay summed in (docs/operations.md, "Metrics").
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
