"""Orders benchmark: a 200-buyer race for one listing, then create → pay → notify throughput.

    .venv/bin/python bench/orders.py
    .venv/bin/python bench/orders.py --buyers 200 --flows 300 --servers 2

Runs the production stack (PostgreSQL, Redis, several daphne processes, a Huey consumer,
DEBUG off) on a separate database (marketplace_bench_orders). WeChat Pay is the sandbox, the
one difference from production mode: the real wechatpayv3 client signs and verifies every call,
and the sandbox delivers its signed, encrypted notification over HTTP to the notify endpoint,
as WeChat would.

Prints: the race (must be exactly 1 winner, the rest 409), then for N complete flows
(POST /api/orders, POST /pay, the user paying in WeChat, the notification applied) the
throughput and the p50/p99 of each step and of the whole flow, against /healthz measured in
the same run.
"""

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PG,
    percentile,
    production_env,
    recreate_database,
    stop_processes,
)

PYTHON = str(ROOT / ".venv" / "bin" / "python")
DB_NAME = "marketplace_bench_orders"
DB_URL = f"{PG}/{DB_NAME}"
REDIS_URL = "redis://127.0.0.1:6379/10"
BASE_PORT = 8301


def server_env(public_base: str) -> dict:
    """Production settings, except that WeChat Pay is the sandbox (see the module docstring)."""
    env = production_env(
        database_url=DB_URL,
        redis_url=REDIS_URL,
        prefix="bench-orders",
        SANDBOX_ENABLED="1",
        SANDBOX_CALLBACK_TRANSPORT="http",
        PUBLIC_BASE_URL=public_base,
        RATE_SIGN_IN="100000/m",
        PYTHONPATH=str(ROOT),
    )
    env.pop("MARKETPLACE_ENV")  # production mode refuses the sandbox
    return env


def prepare_database(env: dict) -> None:
    recreate_database(DB_NAME)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def seed(env: dict, buyers: int, flows: int) -> dict:
    """Users with tokens and addresses, one contested listing and one listing per flow."""
    script = f"""
import json
import django
django.setup()
from django.utils import timezone
from marketplace.actions.accounts import issue_token
from marketplace.models import Address, Category, Listing, ListingStatus, User
root = Category.objects.create(name="bench")
leaf = Category.objects.create(name="leaf", parent=root)
seller = User.objects.create(username="seller", openid="bench-seller-openid")
def buyer(i):
    user = User.objects.create(username=f"b{{i}}", openid=f"bench-buyer-openid-{{i}}")
    address = Address.objects.create(user=user, name="张三", phone="13800138000", province="广东省",
        city="深圳市", district="南山区", detail="1 号", is_default=True)
    return {{"token": issue_token(user=user), "address_id": address.pk}}
people = [buyer(i) for i in range({max(buyers, flows)})]
def listing(title):
    return Listing.objects.create(seller=seller, category=leaf, title=title, description="bench",
        price_fen=9900, status=ListingStatus.ON_SALE, approved_at=timezone.now()).pk
print(json.dumps({{"buyers": people, "contested": listing("contested"),
    "listings": [listing(f"item {{i}}") for i in range({flows})]}}))
"""
    out = subprocess.run(
        [PYTHON, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_processes(env: dict, servers: int) -> list[subprocess.Popen]:
    processes = [
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(BASE_PORT + i),
                "project.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for i in range(servers)
    ]
    processes.append(
        subprocess.Popen(
            [PYTHON, "manage.py", "run_huey", "--workers", "4", "--worker-type", "thread"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    )
    for i in range(servers):
        wait_ready(f"http://127.0.0.1:{BASE_PORT + i}/healthz")
    return processes


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server at {url} did not start")


def call(
    base: str, method: str, path: str, body=None, token: str | None = None
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else b""
    request = urllib.request.Request(
        base + path, data=data if method != "GET" else None, method=method
    )
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else {}


def ms(values: list[float], q: float) -> float:
    return percentile(values, q) * 1000


def race(
    bases: list[str], people: list[dict], listing_id: int, buyers: int
) -> tuple[int, int, dict]:
    barrier = threading.Barrier(buyers)

    def attempt(i: int) -> int:
        person = people[i]
        barrier.wait()
        status, _ = call(
            bases[i % len(bases)],
            "POST",
            "/api/orders",
            {"listing_id": listing_id, "address_id": person["address_id"]},
            person["token"],
        )
        return status

    with ThreadPoolExecutor(max_workers=buyers) as pool:
        statuses = list(pool.map(attempt, range(buyers)))
    counts: dict = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts.get(201, 0), counts.get(409, 0), counts


def flow(base: str, person: dict, listing_id: int, timings: dict) -> bool:
    token = person["token"]
    started = time.monotonic()
    status, order = call(
        base,
        "POST",
        "/api/orders",
        {"listing_id": listing_id, "address_id": person["address_id"]},
        token,
    )
    created = time.monotonic()
    if status != 201:
        return False
    status, pay = call(base, "POST", f"/api/orders/{order['order_no']}/pay", None, token)
    prepaid = time.monotonic()
    if status != 200:
        return False
    prepay_id = pay["pay_params"]["package"].removeprefix("prepay_id=")
    status, _ = call(base, "POST", "/sandbox/wechat/pay", {"prepay_id": prepay_id})
    paid = time.monotonic()
    if status != 200:
        return False
    deadline = paid + 30
    while time.monotonic() < deadline:
        status, current = call(base, "GET", f"/api/orders/{order['order_no']}", None, token)
        if current.get("status") == "awaiting_video":
            break
        time.sleep(0.02)
    else:
        return False
    done = time.monotonic()
    timings["create"].append(created - started)
    timings["pay"].append(prepaid - created)
    timings["wechat_pay"].append(paid - prepaid)
    timings["notified"].append(done - paid)
    timings["flow"].append(done - started)
    return True


def healthz_load(
    bases: list[str], requests_total: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []

    def one(i: int) -> None:
        started = time.monotonic()
        call(bases[i % len(bases)], "GET", "/healthz")
        latencies.append(time.monotonic() - started)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(requests_total)))
    return requests_total / (time.monotonic() - started), latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--flows", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--servers", type=int, default=2)
    args = parser.parse_args()

    bases = [f"http://127.0.0.1:{BASE_PORT + i}" for i in range(args.servers)]
    env = server_env(public_base=bases[0])
    print("preparing the database ...")
    prepare_database(env)
    data = seed(env, args.buyers, args.flows)
    processes = start_processes(env, args.servers)
    try:
        winners, conflicts, counts = race(bases, data["buyers"], data["contested"], args.buyers)
        print(
            f"race: {args.buyers} buyers, one listing -> {winners} winner(s), {conflicts} x 409, all statuses {counts}"
        )

        timings: dict[str, list[float]] = {
            k: [] for k in ("create", "pay", "wechat_pay", "notified", "flow")
        }
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(
                pool.map(
                    lambda i: flow(
                        bases[i % len(bases)], data["buyers"][i], data["listings"][i], timings
                    ),
                    range(args.flows),
                )
            )
        elapsed = time.monotonic() - started
        trivial_rps, trivial = healthz_load(bases, 2000, args.concurrency)
    finally:
        stop_processes(processes)

    ok = sum(results)
    print()
    print(f"{'figure':<40}{'p50 ms':>10}{'p99 ms':>10}")
    for step in ("create", "pay", "wechat_pay", "notified", "flow"):
        print(f"{step:<40}{ms(timings[step], 0.5):>10.1f}{ms(timings[step], 0.99):>10.1f}")
    print(
        f"{'/healthz (same servers, same run)':<40}{ms(trivial, 0.5):>10.1f}{ms(trivial, 0.99):>10.1f}"
    )
    print()
    print(
        f"complete flows: {ok}/{args.flows} in {elapsed:.1f}s = {ok / elapsed:.1f} flows/s "
        f"({args.servers} daphne + 1 Huey consumer, {args.concurrency} clients)"
    )
    print(
        f"/healthz: {trivial_rps:.0f} req/s; a flow is 4+ requests, so flows/s x 4 / healthz = "
        f"{ok / elapsed * 4 / trivial_rps:.2f}"
    )
    print(
        f"median flow / median /healthz = {statistics.median(timings['flow']) / statistics.median(trivial):.0f}x"
    )
    print(
        "race:",
        "PASS (exactly one winner)" if winners == 1 and conflicts == args.buyers - 1 else "FAIL",
    )
    if winners != 1:
        sys.exit(1)


if __name__ == "__main__":
    main()
