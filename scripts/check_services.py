"""Fail with a clear message when the real-stack test run cannot reach PostgreSQL or Redis, or
when PostgreSQL has too few free connection slots for it.

The suite's race tests hold up to 50 connections at once and the servers some tests start hold a
few each; when other clients on the same server already use most of `max_connections`, the run
would fail later with pool timeouts (503s and "couldn't get a connection") that look like bugs.
Idle connections to earlier runs' test databases (`test_marketplace_*`, left by an interrupted
run) are closed; anything else is reported with who holds it.
"""

import sys
import time

import psycopg
import redis

SLOTS_NEEDED = 70
WAIT_SECONDS = 60

_HOLDERS = """
    select coalesce(datname, '-'), coalesce(usename, '-'), coalesce(application_name, ''),
           coalesce(state, ''), count(*)
    from pg_stat_activity
    where backend_type = 'client backend' and pid <> pg_backend_pid()
    group by 1, 2, 3, 4 order by 5 desc
"""


def free_slots(conn: psycopg.Connection) -> int:
    row = conn.execute(
        """
        select current_setting('max_connections')::int
               - current_setting('superuser_reserved_connections')::int
               - (select count(*) from pg_stat_activity where backend_type = 'client backend')
        """
    ).fetchone()
    return int(row[0]) if row else 0


def close_stale_test_connections(conn: psycopg.Connection) -> int:
    """Idle sessions on earlier runs' test databases: an interrupted run's leftovers."""
    rows = conn.execute(
        """
        select pg_terminate_backend(pid) from pg_stat_activity
        where datname like 'test\\_marketplace\\_%' and state like 'idle%'
          and state_change < now() - interval '2 minutes'
        """
    ).fetchall()
    return len(rows)


def check_connection_slots(maintenance_url: str) -> str | None:
    with psycopg.connect(maintenance_url, connect_timeout=5, autocommit=True) as conn:
        closed = close_stale_test_connections(conn)
        if closed:
            print(f"closed {closed} idle connection(s) left by earlier test runs", file=sys.stderr)
        deadline = time.monotonic() + WAIT_SECONDS
        while (slots := free_slots(conn)) < SLOTS_NEEDED and time.monotonic() < deadline:
            time.sleep(2)
        if slots >= SLOTS_NEEDED:
            return None
        holders = "\n".join(
            f"    {count:>4}  db={db} user={user} app={app!r} state={state}"
            for db, user, app, state, count in conn.execute(_HOLDERS).fetchall()
        )
        return (
            f"PostgreSQL has {slots} free connection slots after waiting {WAIT_SECONDS}s; "
            f"the real-stack suite needs {SLOTS_NEEDED}. Current holders:\n{holders}"
        )


def main(database_url: str, redis_url: str) -> int:
    problems = []
    # The maintenance database: the test database is created by the test run.
    maintenance_url = database_url.rsplit("/", 1)[0] + "/postgres"
    try:
        if problem := check_connection_slots(maintenance_url):
            problems.append(problem)
    except psycopg.Error as exc:
        problems.append(f"PostgreSQL at {database_url} is unreachable: {exc}".strip())
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=5).ping()
    except redis.RedisError as exc:
        problems.append(f"Redis at {redis_url} is unreachable: {exc}")
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        print(
            "The real-stack half of `make test` needs both; .ci/run installs and starts them.",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
