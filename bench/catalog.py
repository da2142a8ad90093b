"""Catalog benchmark: 1,000,000 listings in PostgreSQL, concurrent clients on the storefront.

    .venv/bin/python bench/catalog.py                       # seed (once) + start servers + load
    .venv/bin/python bench/catalog.py --listings 200000     # a smaller catalog
    .venv/bin/python bench/catalog.py --url http://host:8000 --skip-seed   # an existing server

Seeds a separate database (default marketplace_bench; never the test database) with COPY,
in chunks, with a progress line; the search index is dropped during the load and rebuilt
after (faster than maintaining it row by row). A seeded database is kept and reused (1M rows
stay 1M; run with --skip-seed to skip even the migration check). Then starts the production
REST server (--server: gunicorn gthread 2 x 4 by default, docs/performance.md; or daphne), in
production settings (MARKETPLACE_ENV=staging: the deploy checks, DEBUG=0, the sandbox on), and loads each endpoint
with concurrent keep-alive clients (64 by default), printing p50/p99, req/s, the ratio of each
to /healthz measured in the same run, and the target of each row.

Cached rows (the storefront cache answers most requests): home, a category list, keyword
searches from a short list, listing details. Uncached rows (every request a new query, so the
cache cannot answer): a random price window under a random sort, a random deep cursor under a
random sort, and random keyword pairs, 1-, 2- and 4-character words, each from a random deep
cursor.
Targets: uncached rows p99 ≤ 150 ms and ≥ 15 % of /healthz (issue 14); cached keyword search
≥ 80 % of the cached category list's req/s (issue 14); home, category and detail p99 ≤ 50 ms,
cached search ≤ 100 ms (issue 3).
"""

import argparse
import base64
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
# Words for the uncached searches, by length: every one occurs in the seeded titles or
# descriptions, at 1-35 % of the listings; pairs of them match 0.5-10 %.
VOCABULARY = sorted({*BRANDS, *THINGS, *WORDS})
ONE_CHARACTER = ["包", "新", "机", "鞋", "耳", "米", "相", "急"]
TWO_CHARACTERS = [w for w in VOCABULARY if len(w) == 2]
FOUR_CHARACTERS = ["全新未拆", "阿迪达斯", "笔记本电", "记本电脑", "耐克运动", "华为手机"]
SEEDED_FROM = 1735689600  # the seeded approved_at values cover one year from here
SEEDED_MINUTES = 60 * 24 * 365
# name -> (p99 target ms, minimum share of /healthz's req/s); None: no target.
TARGETS = {
    "home": (50, None),
    "category list": (50, None),
    "keyword search": (100, None),
    "detail": (50, None),
    "uncached list": (150, 0.15),
    "uncached deep cursor": (150, 0.15),
    "uncached search pair": (150, 0.15),
    "uncached search 1-char": (150, 0.15),
    "uncached search 2-char": (150, 0.15),
    "uncached search 4-char": (150, 0.15),
}
CACHED_SEARCH_VS_LIST = 0.80


def env_for(db_url: str, redis_url: str) -> dict:
    """Production settings (DEBUG off, PostgreSQL + Redis) under MARKETPLACE_ENV=staging: the
    servers refuse to start in production without real partner credentials (project/checks.py),
    and staging is production's settings on the sandbox, which the catalog never calls."""
    return production_env(
        database_url=db_url,
        redis_url=redis_url,
        prefix="bench",
        MARKETPLACE_ENV="staging",
        SANDBOX_ENABLED="1",
        SECRET_KEY="bench-catalog-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        NUM_PROXIES="1",  # each client sends its own X-Forwarded-For, as behind one proxy
        SECURE_SSL_REDIRECT="0",  # plain HTTP on the loopback: TLS ends at the proxy
    )


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
            " phone_country_code, is_banned, ban_reason, rating_count, rating_total, avatar_file,"
            " follower_count, on_sale_count, sold_count)"
            " SELECT '!', false, 'bench_' || g, '', '', '', false, true, now(), 'bench-' || g,"
            " '卖家' || g, '', '', '', g % 500 = 0, '', 0, 0, '', 0, 0, 0"
            " FROM generate_series(1, 5000) g"
            " ON CONFLICT DO NOTHING"
        )
        sellers = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM accounts_user WHERE openid LIKE 'bench-%'"
            ).fetchall()
        ]
        conn.execute("DROP INDEX IF EXISTS listing_search_grams")
        rng = random.Random(42)
        remaining = total - have
        chunk = 50_000
        started = time.monotonic()
        done = 0
        columns = (
            "seller_id, category_id, title, description, features, price_fen, status, views,"
            " is_flagged, review_note, cover, created_at, updated_at, submitted_at, approved_at,"
            " city_code, condition, shipping_fee_fen, favorite_count"
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
                            "",
                            "",
                            0,
                            0,
                        )
                    )
            done += n
            progress("seeding listings", done, remaining, started)
        print()
        print("building the search index ...", flush=True)
        t0 = time.monotonic()
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute(  # as in migration 0009
            "CREATE INDEX IF NOT EXISTS listing_search_grams ON catalog_listing USING gin "
            "(catalog_grams(catalog_search_text(title::text, description), 3))"
        )
        conn.execute("VACUUM ANALYZE catalog_listing")
        # The sellers too: without statistics the banned-seller set (every public page reads
        # it) was a sequential scan of the users.
        conn.execute("ANALYZE accounts_user")
        print(f"index built in {time.monotonic() - t0:.0f}s")


def server_commands(server: str, workers: int, port: int) -> tuple[list[list[str]], list[str]]:
    """`gthread`: the production REST server as measured in docs/performance.md (gunicorn,
    `workers` processes x 4 threads, keep-alive); `sync`: gunicorn sync workers (2 x cores, the
    documented production configuration; no keep-alive); `daphne`: one daphne per worker."""
    here = "127.0.0.1"
    if server == "daphne":
        commands = [
            [PYTHON, "-m", "daphne", "-b", here, "-p", str(port + i), "project.asgi:application"]
            for i in range(workers)
        ]
        return commands, [f"http://{here}:{port + i}" for i in range(workers)]
    gunicorn = [PYTHON, "-m", "gunicorn", "-b", f"{here}:{port}", "--log-level", "warning"]
    if server == "gthread":
        gunicorn += ["-w", str(workers), "-k", "gthread", "--threads", "4"]
    else:
        gunicorn += ["-w", str(workers * 2)]
    return [[*gunicorn, "project.wsgi:application"]], [f"http://{here}:{port}"]


def start_servers(
    env: dict, workers: int, port: int, server: str = "gthread"
) -> tuple[list[subprocess.Popen], list[str]]:
    commands, urls = server_commands(server, workers, port)
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


def quote(q: str) -> str:
    return urllib.parse.quote(q)


def random_sort_and_cursor(rng: random.Random) -> tuple[str, str]:
    """A random sort and a cursor at a random depth in it: the same token the API hands out
    (base64url JSON of the ordering and the last row's key, marketplace/pagination.py)."""
    sort = rng.choice(["newest", "hot", "price_asc", "price_desc"])
    if sort == "newest":
        minute = SEEDED_FROM + rng.randrange(SEEDED_MINUTES) * 60
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(minute))
        tag, key = "-approved_at,-id", [stamp, rng.randrange(1, 10**6)]
    elif sort == "hot":
        tag, key = "-views,-id", [rng.randrange(0, 5000), rng.randrange(1, 10**6)]
    else:
        desc = sort == "price_desc"
        tag = "-price_fen,-id" if desc else "price_fen,id"
        key = [rng.randrange(100, 1_000_000), rng.randrange(1, 10**6)]
    raw = json.dumps([tag, key], separators=(",", ":")).encode()
    return sort, base64.urlsafe_b64encode(raw).decode().rstrip("=")


def uncached_list(rng: random.Random) -> str:
    """A price window of 1-30 % of the seeded range under a random sort."""
    sort = rng.choice(["newest", "hot", "price_asc", "price_desc"])
    low = rng.randrange(100, 900_000)
    high = low + rng.randrange(10_000, 300_000)
    return f"/api/listings?min_price={low}&max_price={high}&sort={sort}"


def deep_cursor(rng: random.Random) -> str:
    sort, cursor = random_sort_and_cursor(rng)
    return f"/api/listings?sort={sort}&cursor={cursor}"


def searching(words):
    def path(rng: random.Random) -> str:
        sort, cursor = random_sort_and_cursor(rng)
        return f"/api/listings?q={quote(words(rng))}&sort={sort}&cursor={cursor}"

    return path


def report(results: dict, served_by: str, clients: int, seconds: float) -> str:
    base = results["healthz (trivial)"]["rps"] or 1
    out = io.StringIO()
    out.write(f"\ncatalog benchmark: {served_by}, {clients} clients, {seconds:.0f}s per endpoint\n")
    out.write(
        f"{'endpoint':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'vs healthz':>12}{'errors':>8}"
        "  target\n"
    )
    for name, r in results.items():
        verdict = ""
        if name in TARGETS:
            p99_target, share_target = TARGETS[name]
            share = r["rps"] / base
            ok = r["p99"] <= p99_target and (share_target is None or share >= share_target)
            wanted = f"p99 ≤ {p99_target} ms" + (
                f", ≥ {share_target:.0%}" if share_target is not None else ""
            )
            verdict = f"{wanted}: {'ok' if ok else 'MISS'}"
        out.write(
            f"{name:<24}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
            f"{r['rps'] / base:>11.0%}{r['errors']:>8}  {verdict}\n"
        )
    if "keyword search" in results and "category list" in results:
        ratio = results["keyword search"]["rps"] / (results["category list"]["rps"] or 1)
        verdict = "ok" if ratio >= CACHED_SEARCH_VS_LIST else "MISS"
        out.write(
            f"cached search vs cached list: {ratio:.0%} (target ≥ {CACHED_SEARCH_VS_LIST:.0%}:"
            f" {verdict})\n"
        )
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="load this running server instead of starting one")
    parser.add_argument("--db-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS))
    parser.add_argument("--listings", type=int, default=1_000_000)
    parser.add_argument("--skip-seed", action="store_true")
    parser.add_argument("--server", choices=["gthread", "sync", "daphne"], default="gthread")
    parser.add_argument("--workers", type=int, default=2, help="server processes (cores)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0, help="per endpoint")
    parser.add_argument("--only", action="append", help="run only these rows (and /healthz)")
    args = parser.parse_args()

    env = env_for(args.db_url, args.redis_url)
    if not args.skip_seed:
        seed(args.db_url, env, args.listings)

    procs: list[subprocess.Popen] = []
    if args.url:
        urls = [args.url.rstrip("/")]
    else:
        procs, urls = start_servers(env, args.workers, args.port, args.server)
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
            ("uncached list", uncached_list),
            ("uncached deep cursor", deep_cursor),
            ("uncached search pair", searching(lambda r: " ".join(r.sample(VOCABULARY, 2)))),
            ("uncached search 1-char", searching(lambda r: r.choice(ONE_CHARACTER))),
            ("uncached search 2-char", searching(lambda r: r.choice(TWO_CHARACTERS))),
            ("uncached search 4-char", searching(lambda r: r.choice(FOUR_CHARACTERS))),
        ]
        if args.only:
            scenarios = [s for s in scenarios if s[0] in {"healthz (trivial)", *args.only}]
        for _name, paths in scenarios:  # warm-up: connections, caches, plans
            load(urls, paths, 1.0, args.clients)
        results = {}
        for name, paths in scenarios:
            results[name] = load(urls, paths, args.seconds, args.clients)
        served_by = args.url if args.url else f"{args.server}, {args.workers} process(es)"
        print(report(results, served_by, args.clients, args.seconds))
    finally:
        stop_processes(procs)


if __name__ == "__main__":
    main()
