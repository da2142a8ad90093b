"""The live path in process: Python time and database round trips per offer and per acceptance.

    .venv/bin/python bench/live_actions.py              # PostgreSQL and Redis on 127.0.0.1
    BENCH_ACTIONS=1000 .venv/bin/python bench/live_actions.py

Production settings (MARKETPLACE_ENV=staging: every deploy check, the sandbox never called) on a
throwaway database. Each
offer is made on a fresh listing by a buyer with an address, each acceptance is the seller's
and declines RIVALS other live offers. Printed per action: the calling thread's CPU time
(`time.thread_time`: the Python the action costs, without the live sends that run on the
sender thread after commit), the wall time, and the round trips to PostgreSQL inside its
transaction (BEGIN/COMMIT not counted), against the issue's targets (issue 14): ≤ 2 ms and ≤ 6
round trips per offer, ≤ 3 ms and ≤ 10 + 1 per rival per acceptance.
"""

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PG,
    clear_redis_keys,
    drop_database,
    production_env,
    recreate_database,
)

ACTIONS = int(os.environ.get("BENCH_ACTIONS", "500"))
RIVALS = int(os.environ.get("BENCH_RIVALS", "2"))
DATABASE = "marketplace_bench_live"
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")
ENV = production_env(database_url=f"{PG}/{DATABASE}", redis_url=REDIS_URL, prefix="livebench")
TARGETS = {"offer": (2.0, 6), "accept": (3.0, 10 + RIVALS)}
SKIPPED = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


class RoundTrips:
    """Counts statements sent to the database (an execute wrapper, as Django documents)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        if not sql.lstrip().upper().startswith(SKIPPED):
            self.count += 1
        return execute(sql, params, many, context)


def seed():
    from django.utils import timezone

    from marketplace.models import Address, Category, Listing, ListingStatus, User

    sellers = User.objects.bulk_create(
        [User(username=f"ls{i}", openid=f"live-s-{i}") for i in range(ACTIONS)]
    )
    buyers = User.objects.bulk_create(
        [User(username=f"lb{i}", openid=f"live-b-{i}") for i in range(ACTIONS * (1 + RIVALS))]
    )
    Address.objects.bulk_create(
        Address(
            user=b, name="买家", phone="13800138000", province="广东省", city="深圳市",
            district="南山区", detail="科技园", is_default=True,
        )
        for b in buyers
    )
    leaf = Category.objects.create(name="苹果", parent=Category.objects.create(name="手机"))
    listings = Listing.objects.bulk_create(
        Listing(
            seller=s, category=leaf, title=f"闲置 {s.pk}", description="bench", price_fen=10_000,
            status=ListingStatus.ON_SALE, approved_at=timezone.now(),
        )
        for s in sellers
    )
    return sellers, buyers, listings


def measure(name: str, calls) -> dict:
    from django.db import connection

    cpu, wall, trips = [], [], []
    for call in calls:
        counter = RoundTrips()
        with connection.execute_wrapper(counter):
            started_cpu, started = time.thread_time(), time.perf_counter()
            call()
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
        trips.append(counter.count)
    target_ms, target_trips = TARGETS[name]
    cpu_p50 = statistics.median(cpu)
    print(
        f"{name:7s} python {cpu_p50:5.2f} ms p50 / {statistics.mean(cpu):5.2f} mean "
        f"(target ≤ {target_ms} ms, ratio {cpu_p50 / target_ms:4.2f})   wall "
        f"{statistics.median(wall):5.2f} ms p50   round trips {max(trips)} "
        f"(target ≤ {target_trips})   n={len(cpu)}"
    )
    return {"python_ms": cpu_p50, "round_trips": max(trips)}


def main() -> None:
    print(f"load average before the run: {Path('/proc/loadavg').read_text().strip()}")
    os.environ.update(ENV)
    clear_redis_keys(REDIS_URL, ENV["CHANNELS_PREFIX"])
    recreate_database(DATABASE)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from marketplace.selectors import platform_settings
        from negotiation import actions
        from realtime import push

        sellers, buyers, listings = seed()
        platform_settings()
        bargainers, rivals = buyers[:ACTIONS], buyers[ACTIONS:]
        for index, listing in enumerate(listings):  # the rivals an acceptance declines
            for rival in rivals[index * RIVALS : (index + 1) * RIVALS]:
                actions.make_offer(buyer=rival, listing_id=listing.pk, price_fen=6_000)
        offers = []
        measure(
            "offer",
            [
                (lambda b=b, li=li: offers.append(
                    actions.make_offer(buyer=b, listing_id=li.pk, price_fen=7_000)
                ))
                for b, li in zip(bargainers, listings, strict=True)
            ],
        )
        measure(
            "accept",
            [
                (lambda s=s, o=o: actions.accept_offer(user=s, offer_id=o.pk))
                for s, o in zip(sellers, offers, strict=True)
            ],
        )
        push.drain_sends()
    finally:
        from django.db import connections

        connections.close_all()
        drop_database(DATABASE)
        clear_redis_keys(REDIS_URL, ENV["CHANNELS_PREFIX"])


if __name__ == "__main__":
    main()
