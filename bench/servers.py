"""Server configurations compared on the same load: which processes should serve the REST API?

    .venv/bin/python bench/servers.py                 # 100k-listing catalog, 4 s per measurement
    .venv/bin/python bench/servers.py --listings 1000000 --seconds 10   # the full catalog

Uses the catalog benchmark's database (seeded once by bench/catalog.py's seeder, production
mode: PostgreSQL + Redis, DEBUG off, no sandbox) and its closed-loop keep-alive load
generator. For each configuration it measures /healthz and a representative mix (home 20%,
category page 30%, keyword search 20%, listing detail 30%) and prints req/s, p50 and p99.
Configurations (2 vCPU machine, so two processes is "one per core"):

  daphne x1                       the embedded `make run` server
  daphne x2                       one per core, the client spreads connections over both ports
  uvicorn --workers 2             ASGI, uvicorn's own process manager
  gunicorn sync x4 (WSGI)         the REST API over WSGI (STACK_NOTES: ~1 ms less per request)
  gunicorn gthread 2x4 (WSGI)     WSGI with keep-alive: 2 processes x 4 threads

The last line of output is `BENCH_JSON {...}` with every figure, for bench/run.py.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import catalog  # noqa: E402  (the sibling benchmark: seeding, env, load generator)

from bench.common import stop_processes  # noqa: E402

ROOT = catalog.ROOT
BIN = ROOT / ".venv" / "bin"
PORT = int(os.environ.get("BENCH_SERVERS_PORT", "8410"))


def configurations(port: int) -> dict[str, tuple[list[list[str]], list[str]]]:
    """name -> (commands, base urls)."""
    app_asgi, app_wsgi = "project.asgi:application", "project.wsgi:application"
    here = "127.0.0.1"
    return {
        "daphne x1": (
            [[str(BIN / "daphne"), "-b", here, "-p", str(port), app_asgi]],
            [f"http://{here}:{port}"],
        ),
        "daphne x2": (
            [[str(BIN / "daphne"), "-b", here, "-p", str(port + i), app_asgi] for i in range(2)],
            [f"http://{here}:{port + i}" for i in range(2)],
        ),
        "uvicorn --workers 2": (
            [
                [
                    str(BIN / "uvicorn"),
                    "--host",
                    here,
                    "--port",
                    str(port),
                    "--workers",
                    "2",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                    app_asgi,
                ]
            ],
            [f"http://{here}:{port}"],
        ),
        "gunicorn sync x4 (WSGI)": (
            [
                [
                    str(BIN / "gunicorn"),
                    "-b",
                    f"{here}:{port}",
                    "-w",
                    "4",
                    "--log-level",
                    "warning",
                    app_wsgi,
                ]
            ],
            [f"http://{here}:{port}"],
        ),
        "gunicorn gthread 2x4 (WSGI)": (
            [
                [
                    str(BIN / "gunicorn"),
                    "-b",
                    f"{here}:{port}",
                    "-w",
                    "2",
                    "-k",
                    "gthread",
                    "--threads",
                    "4",
                    "--log-level",
                    "warning",
                    app_wsgi,
                ]
            ],
            [f"http://{here}:{port}"],
        ),
    }


def start(commands: list[list[str]], urls: list[str], env: dict) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for command in commands
    ]
    deadline = time.monotonic() + 60
    for url in urls:
        while True:
            try:
                if catalog.fetch(url, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                stop_processes(procs)
                raise SystemExit(f"{commands[0][0]} did not start within 60 s")
            time.sleep(0.3)
    return procs


def mix_for(url: str):
    tree = json.loads(catalog.fetch(url, "/api/categories")[1])
    roots = [c["id"] for c in tree]
    details = [
        i["id"] for i in json.loads(catalog.fetch(url, "/api/listings?limit=100")[1])["items"]
    ]
    searches = [urllib.parse.quote(q) for q in catalog.SEARCHES]

    def pick(rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.2:
            return "/api/home"
        if roll < 0.5:
            return f"/api/listings?category={rng.choice(roots)}"
        if roll < 0.7:
            return f"/api/listings?q={rng.choice(searches)}"
        return f"/api/listings/{rng.choice(details)}"

    return pick


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--db-url", default=os.environ.get("BENCH_DATABASE_URL", catalog.DEFAULT_DB)
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", catalog.DEFAULT_REDIS)
    )
    parser.add_argument("--listings", type=int, default=100_000)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--only", action="append", help="run only these configurations")
    args = parser.parse_args()

    env = catalog.env_for(args.db_url, args.redis_url)
    if not args.skip_seed:
        catalog.seed(args.db_url, env, args.listings)
    results = {}
    for name, (commands, urls) in configurations(PORT).items():
        if args.only and name not in args.only:
            continue
        procs = start(commands, urls, env)
        try:
            mix = mix_for(urls[0])
            catalog.load(urls, "/healthz", 1.0, args.clients)  # warm-up
            catalog.load(urls, mix, 1.0, args.clients)
            healthz = catalog.load(urls, "/healthz", args.seconds, args.clients)
            mixed = catalog.load(urls, mix, args.seconds, args.clients)
        finally:
            stop_processes(procs)
        results[name] = {"healthz": healthz, "mix": mixed}
        print(
            f"{name:<30} healthz {healthz['rps']:7.0f} req/s p99 {healthz['p99']:6.1f} ms | "
            f"mix {mixed['rps']:6.0f} req/s p50 {mixed['p50']:6.1f} ms p99 {mixed['p99']:6.1f} ms"
            f" errors {healthz['errors'] + mixed['errors']}",
            flush=True,
        )

    print(f"\nserver comparison: {args.clients} clients, {args.seconds:.0f}s per measurement")
    print(f"{'configuration':<30}{'mix req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'healthz/s':>11}")
    for name, r in results.items():
        m = r["mix"]
        print(
            f"{name:<30}{m['rps']:>10.0f}{m['p50']:>9.1f}{m['p99']:>9.1f}{r['healthz']['rps']:>11.0f}"
        )
    print("BENCH_JSON " + json.dumps({"bench": "servers", "results": results}))


if __name__ == "__main__":
    main()
