"""Test settings: the same stack as the environment says (SQLite or PostgreSQL + Redis),
with tasks run eagerly and cheap password hashing."""

import os

os.environ.setdefault("SANDBOX_ENABLED", "1")
# One channel-layer prefix per test run: runs sharing a Redis database would otherwise deliver
# each other's frames to users with the same id (ids restart in every test database). Set in the
# environment so that server processes a test starts use the same prefix.
os.environ.setdefault("CHANNELS_PREFIX", f"asgi-test-{os.environ.get('TEST_RUN_ID', os.getpid())}")

from project.settings import *  # noqa: E402,F403
from project.settings import DATABASES, HUEY, REDIS_URL, STORAGES, VAR_DIR  # noqa: E402

# One test database per test run, so two runs on one machine (a developer's and CI's, or
# several engineers') never drop each other's database.
_run = os.environ.get("TEST_RUN_ID", str(os.getpid()))
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{_run}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{_run}"}
    # Race tests run up to 50 threads at once, each holding a connection. Several engineers'
    # runs sharing one PostgreSQL (100 connection slots) set TEST_DB_POOL_MAX lower.
    DATABASES["default"]["OPTIONS"]["pool"]["max_size"] = int(os.environ.get("TEST_DB_POOL_MAX", 60))
    # ... and gives them back soon after, so the server processes later tests start find
    # PostgreSQL's connection slots free.
    DATABASES["default"]["OPTIONS"]["pool"]["max_idle"] = 10

DEBUG = False
# Freezing the heap (realtime/heap.py) is for server processes; in the test process it would
# keep closed sockets' objects across tests. tests/realtime/test_heap.py switches it on.
REALTIME_FULL_COLLECT_SECONDS = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tasks run in the calling thread at enqueue time; deadlines are driven by the tests.
HUEY = {**HUEY, "immediate": True}
# Sandbox notifications reach the notify URLs in-process (no server runs during tests).
SANDBOX_CALLBACK_TRANSPORT = "django"
# One directory per xdist worker: each worker has its own database, so ids (and the paths
# named after them, such as chat-images/<upload id>/) repeat across workers.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
MEDIA_ROOT = VAR_DIR / "test-media" / _WORKER
PRIVATE_MEDIA_ROOT = VAR_DIR / "test-private-media" / _WORKER
if STORAGES["private"]["BACKEND"].endswith("FileSystemStorage"):
    STORAGES = {
        **STORAGES,
        "private": {
            **STORAGES["private"],
            "OPTIONS": {**STORAGES["private"]["OPTIONS"], "location": str(PRIVATE_MEDIA_ROOT)},
        },
    }
if REDIS_URL:
    # Keep test keys away from a developer's running server.
    CACHES = {  # noqa: F811
        "default": {
            "BACKEND": "project.cache.FailOpenRedisCache",  # a Redis outage is not a 500
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"test-{os.getpid()}",
        }
    }
REALTIME_STRICT_LOCK_ORDER = True  # a late counter lock (a deadlock in waiting) fails the test
