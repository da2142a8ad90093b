"""The live path in process: Python time and database round trips per offer and per acceptance.

    .venv/bin/python bench/live_actions.py              # PostgreSQL and Redis on 127.0.0.1
    BENCH_ACTIONS=1000 .venv/bin/python bench/live_actions.py
    BENCH_ACTIONS=200 BENCH_PROFILE=accept .venv/bin/python bench/live_actions.py  # + cProfile

Production settings (MARKETPLACE_ENV=staging: every deploy check, the sandbox never called) on a
throwaway database. Each
offer is made on a fresh listing by a buyer with an address, each acceptance is the seller's
and declines RIVALS other live offers. Printed per action: the calling thread's CPU time
(`time.thread_time`: the Python the action costs, without the live sends that run on the
sender thread after commit), the wall time, and the round trips to PostgreSQL inside its
transaction (BEGIN/COMMIT not counted), against the issue's targets (issue 14): ≤ 2 ms and ≤ 6
round trips per offer, ≤ 3 ms and ≤ 10 + 1 per rival per acceptance. A counter (on another
listing's open offer) and a text message into the accepted buyer's conversation are printed
too (the WeChat text check before the message's transaction is a network call, stubbed out).
BENCH_PROFILE=offer|counter|accept|message prints that action's cProfile (cumulative, top 40);
BENCH_SHOW=<the same names> prints the statements of its first call.
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
DATABASE = os.environ.get("BENCH_DATABASE", "marketplace_bench_live")
PROFILE = os.environ.get("BENCH_PROFILE", "")
SHOW = os.environ.get("BENCH_SHOW", "")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/14")
ENV = production_env(database_url=f"{PG}/{DATABASE}", redis_url=REDIS_URL, prefix="livebench")
TARGETS = {"offer": (2.0, 6), "accept": (3.0, 10 + RIVALS), "counter": (None, None),
           "message": (None, None)}
SKIPPED = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


class RoundTrips:
    """Counts statements sent to the database (an execute wrapper, as Django documents): the
    action's transaction and what it reads before it, not the work that runs after commit
    (a seller's listing recount, tasks), as tests/negotiation/test_round_trips.py counts."""

    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []
        self.in_transaction = self.committed = False

    def __call__(self, execute, sql, params, many, context):
        atomic = context["connection"].in_atomic_block
        self.committed = self.committed or (self.in_transaction and not atomic)
        self.in_transaction = self.in_transaction or atomic
        if not self.committed and not sql.lstrip().upper().startswith(SKIPPED):
            self.count += 1
            self.statements.append(sql)
        return execute(sql, params, many, context)


def seed():
    from django.utils import timezone

    from marketplace.models import Address, Category, Listing, ListingStatus, User

    sellers = User.objects.bulk_create(  # one listing to accept on, one to counter on, each
        [User(username=f"ls{i}", openid=f"live-s-{i}") for i in range(2 * ACTIONS)]
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
    import cProfile
    import pstats

    from django.db import connection

    cpu, wall, trips = [], [], []
    profile = cProfile.Profile() if name == PROFILE else None  # wall time: waits show too
    for call in calls:
        counter = RoundTrips()
        with connection.execute_wrapper(counter):
            started_cpu, started = time.thread_time(), time.perf_counter()
            if profile is not None:
                profile.enable()
            call()
            if profile is not None:
                profile.disable()
            cpu.append((time.thread_time() - started_cpu) * 1000)
            wall.append((time.perf_counter() - started) * 1000)
        trips.append(counter.count)
        if name == SHOW and len(trips) == 1:  # the first call's statements, abridged
            print("\n".join(f"    {sql[:110]}" for sql in counter.statements))
    target_ms, target_trips = TARGETS[name]
    cpu_p50 = statistics.median(cpu)
    against = f"(target ≤ {target_ms} ms, ratio {cpu_p50 / target_ms:4.2f})" if target_ms else ""
    print(
        f"{name:7s} python {cpu_p50:5.2f} ms p50 / {statistics.mean(cpu):5.2f} mean "
        f"{against:30s} wall {statistics.median(wall):5.2f} ms p50   round trips {max(trips)}"
        + (f" (p50 {statistics.median(trips):.0f})" if min(trips) != max(trips) else "")
        + (f" (target ≤ {target_trips})" if target_trips else "")
        + f"   n={len(cpu)}"
    )
    if profile is not None:
        stats = pstats.Stats(profile).sort_stats("cumulative")
        stats.print_stats(40)
        if os.environ.get("BENCH_CALLEES"):
            stats.print_callees(os.environ["BENCH_CALLEES"])
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
        from negotiation import actions, conversations
        from negotiation.models import MessageKind
        from realtime import push

        sellers, buyers, all_listings = seed()
        sellers, countering_sellers = sellers[:ACTIONS], sellers[ACTIONS:]
        listings, countered_listings = all_listings[:ACTIONS], all_listings[ACTIONS:]
        platform_settings()
        bargainers, rivals = buyers[:ACTIONS], buyers[ACTIONS:]
        to_counter = [  # the rivals bargain on the second listings too (no second flood window)
            actions.make_offer(buyer=rival, listing_id=listing.pk, price_fen=6_000)
            for rival, listing in zip(rivals, countered_listings, strict=False)
        ]
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
        measure(
            "counter",
            [
                (lambda s=s, o=o: actions.counter_offer(seller=s, offer_id=o.pk, price_fen=8_000))
                for s, o in zip(countering_sellers, to_counter, strict=False)
            ],
        )
        conversations.check_text = lambda **_: False  # WeChat's check: a network call, not ours
        threads = {
            t.buyer_id: t.pk
            for t in conversations.Conversation.objects.filter(listing__in=listings)
        }
        measure(
            "message",
            [
                (lambda b=b, i=i: conversations.send_message(
                    sender=b, conversation_id=threads[b.pk], kind=MessageKind.TEXT,
                    text="什么时候发货？", client_id=f"bench-{i}",
                ))
                for i, b in enumerate(bargainers)
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
