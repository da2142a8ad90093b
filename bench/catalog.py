"""Catalog benchmark: 1,000,000 listings in PostgreSQL, concurrent clients on the storefront.

    .venv/bin/python bench/catalog.py                       # seed (once) + start servers + load
    .venv/bin/python bench/catalog.py --listings 200000     # a smaller catalog
    .venv/bin/python bench/catalog.py --url http://host:8000 --skip-seed   # an existing server

Seeds a separate database (default marketplace_bench; never the test database) with COPY,
in chunks, with a progress line; the trigram indexes are dropped during the load and rebuilt
after (faster than maintaining them row by row). Then starts production-mode daphne
processes (MARKETPLACE_ENV=production, DEBUG=0, no sandbox), and loads /healthz, home,
a category list, keyword searches and listing details with concurrent keep-alive clients,
printing p50/p99, req/s and the ratio of each to /healthz measured in the same run.
Targets (issue 3): p99 ≤ 50 ms for home, category and detail, ≤ 100 ms for search,
throughput ≥ 50% of /healthz.
"""

import argparse
import http.client
import io
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import production_env, stop_processes  # noqa: E402

PYTHON = str(ROOT / ".venv" / "bin" / "python")
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/marketplace_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"

BRANDS = ["苹果", "华为", "小米", "索尼", "任天堂", "耐克", "阿迪达斯", "联想", "戴尔", "佳能"]
THINGS = [
    "手机",
    "耳机",
    "平板",
    "笔记本电脑",
    "相机",
    "运动鞋",
    "双肩包",
    "外套",
    "游戏机",
    "手柄",
]
WORDS = ["九成新", "自用", "闲置", "全新未拆", "国行", "在保", "包邮", "急出", "低价", "可小刀"]
SEARCHES = ["笔记本电脑", "运动鞋", "任天堂", "九成新 相机", "全新未拆", "iPhone", "手机", "游戏机"]


def env_for(db_url: str, redis_url: str) -> dict:
    return production_env(database_url=db_url, redis_url=redis_url, prefix="bench")


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.monotonic() - started, 1e-6)
    sys.stdout.write(
        f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} ({rate:,.0f}/s)"
    )
    sys.stdout.flush()


def ensure_database(db_url: str) -> None:
    import psycopg

    parsed = urllib.parse.urlparse(db_url)
    name = parsed.path.lstrip("/")
    if name in {"marketplace", "test_marketplace", "postgres"}:
        raise SystemExit(f"refusing to seed {name!r}: use a dedicated benchmark database")
    admin_url = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def seed(db_url: str, env: dict, total: int) -> None:
    import psycopg

    ensure_database(db_url)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    subprocess.run([PYTHON, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True)
    with psycopg.connect(db_url, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM catalog_listing").fetchone()[0]
        if have >= total:
            print(f"{have:,} listings already seeded")
            return
        leaves = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM catalog_category WHERE parent_id IS NOT NULL"
            ).fetchall()
        ]
        conn.execute(
            "INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name,"
            " email, is_staff, is_active, date_joined, openid, nickname, avatar_url, phone,"
            " phone_country_code, is_banned, ban_reason, rating_count, rating_total)"
            " SELECT '!', false, 'bench_' || g, '', '', '', false, true, now(), 'bench-' || g,"
            " '卖家' || g, '', '', '', g % 500 = 0, '', 0, 0 FROM generate_series(1, 5000) g"
            " ON CONFLICT DO NOTHING"
        )
        sellers = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM accounts_user WHERE openid LIKE 'bench-%'"
            ).fetchall()
        ]
        conn.execute("DROP INDEX IF EXISTS listing_title_trgm")
        conn.execute("DROP INDEX IF EXISTS listing_description_trgm")
        rng = random.Random(42)
        remaining = total - have
        chunk = 50_000
        started = time.monotonic()
        done = 0
        columns = (
            "seller_id, category_id, title, description, features, price_fen, status, views,"
            " is_flagged, review_note, cover, created_at, updated_at, submitted_at, approved_at"
        )
        statuses = ["on_sale"] * 17 + ["sold", "pending_review", "off_shelf"]
        while done < remaining:
            n = min(chunk, remaining - done)
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY catalog_listing ({columns}) FROM STDIN") as copy,
            ):
                for i in range(n):
                    brand, thing = rng.choice(BRANDS), rng.choice(THINGS)
                    words = " ".join(rng.sample(WORDS, 2))
                    title = f"{brand}{thing} {words} #{have + done + i}"
                    description = (
                        f"{words}，{brand}{thing}，使用痕迹轻微，配件齐全。{rng.choice(WORDS)}"
                    )
                    minutes = rng.randrange(0, 60 * 24 * 365)
                    ts = time.strftime(
                        "%Y-%m-%d %H:%M:%S+00", time.gmtime(1735689600 + minutes * 60)
                    )
                    status = rng.choice(statuses)
                    copy.write_row(
                        (
                            rng.choice(sellers),
                            rng.choice(leaves),
                            title,
                            description,
                            '[{"name": "成色", "value": "九成新"}]',
                            rng.randrange(100, 1_000_000),
                            status,
                            rng.randrange(0, 5000),
                            False,
                            "",
                            "demo/listing-000_thumb.jpg",
                            ts,
                            ts,
                            ts,
                            ts if status != "pending_review" else None,
                        )
                    )
            done += n
            progress("seeding listings", done, remaining, started)
        print()
        print("building trigram indexes ...", flush=True)
        t0 = time.monotonic()
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(
            "CREATE INDEX IF NOT EXISTS listing_title_trgm ON catalog_listing "
            "USING gin (UPPER(title::text) gin_trgm_ops)"
        )
        conn.execute(
            "CREATE INDEX IF NOT EXISTS listing_description_trgm ON catalog_listing "
            "USING gin (UPPER(description) gin_trgm_ops)"
        )
        conn.execute("VACUUM ANALYZE catalog_listing")
        print(f"indexes built in {time.monotonic() - t0:.0f}s")


def start_servers(env: dict, workers: int, port: int) -> tuple[list[subprocess.Popen], list[str]]:
    procs, urls = [], []
    for i in range(workers):
        p = port + i
        procs.append(
            subprocess.Popen(
                [
                    PYTHON,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(p),
                    "project.asgi:application",
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        urls.append(f"http://127.0.0.1:{p}")
    deadline = time.monotonic() + 60
    for url in urls:
        while True:
            try:
                status, _ = fetch(url, "/healthz")
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                stop_processes(procs)
                raise SystemExit("the server did not start within 60 s")
            time.sleep(0.3)
    return procs, urls


def fetch(base: str, path: str) -> tuple[int, bytes]:
    parsed = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port or 80, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def load(urls: list[str], paths, seconds: float, clients: int) -> dict:
    """Closed-loop load: `clients` keep-alive connections, each sending its next request as
    soon as the previous one answered, for `seconds`."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(index: int) -> None:
        parsed = urllib.parse.urlparse(urls[index % len(urls)])
        rng = random.Random(index)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        mine = []
        while time.monotonic() < stop_at:
            path = paths(rng) if callable(paths) else paths
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, headers={"X-Forwarded-For": f"10.0.{index}.1"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
            elapsed = time.perf_counter() - t0
            if ok:
                mine.append(elapsed)
            else:
                with lock:
                    errors[0] += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "n": 0, "errors": errors[0]}
    return {
        "rps": len(latencies) / wall,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "n": len(latencies),
        "errors": errors[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="load this running server instead of starting one")
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--workers", type=int, default=2, help="daphne processes to start")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint")
    args = parser.parse_args()

    env = env_for(args.db_url, args.redis_url)
    if not args.skip_seed:
        seed(args.db_url, env, args.listings)

    procs: list[subprocess.Popen] = []
    if args.url:
        urls = [args.url.rstrip("/")]
    else:
        procs, urls = start_servers(env, args.workers, args.port)
    try:
        status, body = fetch(urls[0], "/api/categories")
        tree = json.loads(body)
        root_ids = [c["id"] for c in tree]
        status, body = fetch(urls[0], "/api/listings?limit=100")
        detail_ids = [item["id"] for item in json.loads(body)["items"]]
        status, body = fetch(urls[0], "/api/listings?limit=100&sort=price_asc")
        detail_ids += [item["id"] for item in json.loads(body)["items"]]
        status, body = fetch(urls[0], "/api/listings?limit=100&sort=hot")
        detail_ids += [item["id"] for item in json.loads(body)["items"]]

        def quote(q: str) -> str:
            return urllib.parse.quote(q)

        scenarios = [
            ("healthz (trivial)", "/healthz"),
            ("home", "/api/home"),
            ("category list", lambda r: f"/api/listings?category={r.choice(root_ids)}"),
            ("keyword search", lambda r: f"/api/listings?q={quote(r.choice(SEARCHES))}"),
            ("detail", lambda r: f"/api/listings/{r.choice(detail_ids)}"),
        ]
        for _name, paths in scenarios:  # warm-up: connections, caches, plans
            load(urls, paths, 1.0, args.clients)
        results = {}
        for name, paths in scenarios:
            results[name] = load(urls, paths, args.seconds, args.clients)
        base = results["healthz (trivial)"]["rps"] or 1
        out = io.StringIO()
        served_by = args.url if args.url else f"{len(urls)} daphne process(es)"
        out.write(
            f"\ncatalog benchmark: {served_by}, {args.clients} clients, "
            f"{args.seconds:.0f}s per endpoint\n"
        )
        out.write(
            f"{'endpoint':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs healthz':>12}{'errors':>8}\n"
        )
        for name, r in results.items():
            out.write(
                f"{name:<20}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
                f"{r['rps'] / base:>11.0%}{r['errors']:>8}\n"
            )
        print(out.getvalue())
    finally:
        stop_processes(procs)


if __name__ == "__main__":
    main()
