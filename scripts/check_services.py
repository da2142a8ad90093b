"""Fail with a clear message when the real-stack test run cannot reach PostgreSQL or Redis."""

import sys

import psycopg
import redis


def main(database_url: str, redis_url: str) -> int:
    problems = []
    try:
        # Connect to the maintenance database: the test database is created by the test run.
        with psycopg.connect(database_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=5):
            pass
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
