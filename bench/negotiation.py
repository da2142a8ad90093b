"""Bargaining benchmark: 1,000 sellers and 1,000 buyers on sockets, offers at 200/s.

    .venv/bin/python bench/negotiation.py                 # PostgreSQL and Redis on 127.0.0.1
    BENCH_RATE=100 BENCH_SECONDS=10 .venv/bin/python bench/negotiation.py

The production layout on one machine (docs/operations.md): MARKETPLACE_ENV=production, sandbox
off, two daphne processes (one per core; BENCH_DAPHNE_PER_SIDE=2 runs four) and one Huey
consumer, on a throwaway database (BENCH_DATABASE, dropped at the end) and Redis db 14 under a
bench prefix. Sellers connect to one side's daphne and buyers to the other's, so every event
crosses processes through Redis.

Each buyer socket sends `offer.make` at RATE offers/s in total (round robin over buyers, each
offer on a fresh listing); each seller answers `offer.created` at once with `offer.accept`.
Printed:

- offer-to-seller: buyer sends `offer.make` → seller receives `offer.created`;
- accept-to-buyer: seller sends `offer.accept` → buyer receives `offer.accepted`
  (the acceptance creates the order, reserves the listing, declines the rest: the whole step);

p50/p99/max, counts and error frames. Target: p99 <= 100 ms for both. The clients (this
process) share the two cores with the servers, PostgreSQL and Redis, so the figures include
their contention.
"""

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PG,
    clear_redis_keys,
    drop_database,
    latency_summary,
    production_env,
    raise_fd_limit,
    recreate_database,
    start_logged,
    stop_processes,
    wait_for_port,
)

SELLERS = int(os.environ.get("BENCH_SELLERS", "1000"))
BUYERS = int(os.environ.get("BENCH_BUYERS", "1000"))
RATE = int(os.environ.get("BENCH_RATE", "200"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "30"))
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "marketplace_negbench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
# Daphne processes per side (sellers' and buyers'): 1 is one per core on two cores; 2 measures
# whether more processes than cores pay (docs/performance.md).
PER_SIDE = int(os.environ.get("BENCH_DAPHNE_PER_SIDE", "1"))
_BASE_PORT = int(os.environ.get("BENCH_PORT", "8775"))
SELLER_PORTS = tuple(_BASE_PORT + 2 * n for n in range(PER_SIDE))
BUYER_PORTS = tuple(_BASE_PORT + 2 * n + 1 for n in range(PER_SIDE))
PORTS = SELLER_PORTS + BUYER_PORTS
PRICE = 10_000
ASGI_APP = "project.asgi:application"
OFFER = 8_000

ENV = production_env(
    database_url=f"{PG}/{BENCH_DATABASE}",
    redis_url=REDIS_URL,
    prefix="negbench",
    REALTIME_IDLE_TIMEOUT_SECONDS="3600",
)




# --- setup ------------------------------------------------------------------------------------


def seed(listings_per_seller: int):
    """Users, tokens, buyers' addresses and listings on sale, in bulk."""
    import secrets
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.actions.accounts import hash_token
    from marketplace.models import Address, ApiToken, Category, Listing, ListingStatus, User

    users = User.objects.bulk_create(
        [User(username=f"s{i}", openid=f"bench-s-{i}") for i in range(SELLERS)]
        + [User(username=f"b{i}", openid=f"bench-b-{i}") for i in range(BUYERS)]
    )
    sellers, buyers = users[:SELLERS], users[SELLERS:]
    raw = {user.pk: secrets.token_urlsafe(32) for user in users}
    expires = timezone.now() + timedelta(days=1)
    ApiToken.objects.bulk_create(
        [ApiToken(user=u, key_hash=hash_token(raw[u.pk]), expires_at=expires) for u in users]
    )
    Address.objects.bulk_create(
        [
            Address(
                user=b,
                name="买家",
                phone="13800138000",
                province="广东省",
                city="深圳市",
                district="南山区",
                detail="科技园",
                is_default=True,
            )
            for b in buyers
        ]
    )
    root = Category.objects.create(name="手机")
    leaf = Category.objects.create(name="苹果", parent=root)
    now = timezone.now()
    listings = Listing.objects.bulk_create(
        [
            Listing(
                seller=s,
                category=leaf,
                title=f"闲置 {s.pk}-{n}",
                description="bench",
                price_fen=PRICE,
                status=ListingStatus.ON_SALE,
                approved_at=now,
            )
            for s in sellers
            for n in range(listings_per_seller)
        ],
        batch_size=2000,
    )
    return (
        [(u.pk, raw[u.pk]) for u in sellers],
        [(u.pk, raw[u.pk]) for u in buyers],
        [(listing.pk, listing.seller_id) for listing in listings],
    )






# --- clients ----------------------------------------------------------------------------------


class Bench:
    def __init__(self) -> None:
        self.sockets: dict[int, object] = {}
        self.tasks: list[asyncio.Task] = []
        self.offer_sent: dict[tuple[int, int], float] = {}
        self.accept_sent: dict[int, float] = {}
        self.to_seller: list[float] = []
        self.to_buyer: list[float] = []
        self.errors: Counter = Counter()
        self.closed = 0

    async def open(self, user_id: int, token: str, port: int, role: str) -> None:
        from websockets.asyncio.client import connect

        websocket = await connect(
            f"ws://127.0.0.1:{port}/ws/?token={token}",
            compression=None,
            ping_interval=None,
            open_timeout=120,
            max_size=2**20,
        )
        self.sockets[user_id] = websocket
        reader = self.read_seller if role == "seller" else self.read_buyer
        self.tasks.append(asyncio.create_task(reader(websocket)))

    def _error(self, frame: dict) -> bool:
        if frame.get("type") == "error":
            self.errors[frame["data"]["code"]] += 1
            return True
        return False

    async def read_seller(self, websocket) -> None:
        try:
            async for text in websocket:
                received = time.perf_counter()
                frame = json.loads(text)
                if self._error(frame) or frame.get("type") != "offer.created":
                    continue
                data = frame["data"]
                sent = self.offer_sent.pop((data["listing_id"], data["buyer_id"]), None)
                if sent is not None:
                    self.to_seller.append(received - sent)
                self.accept_sent[data["id"]] = time.perf_counter()
                await websocket.send(
                    json.dumps({"action": "offer.accept", "id": data["id"], "offer_id": data["id"]})
                )
        except Exception:  # noqa: BLE001 - a dropped socket shows up as missing samples
            self.closed += 1

    async def read_buyer(self, websocket) -> None:
        try:
            async for text in websocket:
                received = time.perf_counter()
                frame = json.loads(text)
                if self._error(frame) or frame.get("type") != "offer.accepted":
                    continue
                sent = self.accept_sent.pop(frame["data"]["id"], None)
                if sent is not None:
                    self.to_buyer.append(received - sent)
        except Exception:  # noqa: BLE001
            self.closed += 1


async def run(sellers, buyers, listings) -> None:
    bench = Bench()
    gate = asyncio.Semaphore(100)

    async def one(user_id: int, token: str, port: int, role: str) -> None:
        async with gate:
            await bench.open(user_id, token, port, role)

    started = time.monotonic()
    await asyncio.gather(
        *(
            one(uid, tok, SELLER_PORTS[n % PER_SIDE], "seller")
            for n, (uid, tok) in enumerate(sellers)
        ),
        *(
            one(uid, tok, BUYER_PORTS[n % PER_SIDE], "buyer")
            for n, (uid, tok) in enumerate(buyers)
        ),
    )
    print(f"{len(bench.sockets)} sockets open in {time.monotonic() - started:.1f} s")
    await asyncio.sleep(1)

    random.shuffle(listings)
    total = min(RATE * SECONDS, len(listings))
    buyer_ids = [uid for uid, _ in buyers]
    interval = 1 / RATE
    next_at = time.perf_counter()
    load_started = time.perf_counter()
    for n in range(total):
        listing_id, _ = listings[n]
        buyer_id = buyer_ids[n % len(buyer_ids)]
        delay = next_at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        next_at += interval
        bench.offer_sent[(listing_id, buyer_id)] = time.perf_counter()
        frame = {"action": "offer.make", "id": n, "listing_id": listing_id, "price": OFFER}
        await bench.sockets[buyer_id].send(json.dumps(frame))
    load_seconds = time.perf_counter() - load_started
    # Let the last offers and acceptances land.
    for _ in range(50):
        if not bench.offer_sent and not bench.accept_sent:
            break
        await asyncio.sleep(0.2)

    print(f"offers sent: {total} in {load_seconds:.1f} s ({total / load_seconds:.0f}/s)")
    print(f"offer-to-seller  (offer.make → offer.created):    {latency_summary(bench.to_seller)}")
    print(f"accept-to-buyer  (offer.accept → offer.accepted): {latency_summary(bench.to_buyer)}")
    print(
        f"missing: {len(bench.offer_sent)} offers, {len(bench.accept_sent)} acceptances; "
        f"error frames: {dict(bench.errors) or 'none'}; sockets dropped: {bench.closed}"
    )
    for websocket in bench.sockets.values():
        websocket.transport.abort()
    for task in bench.tasks:
        task.cancel()


def main() -> None:
    raise_fd_limit(SELLERS + BUYERS)
    env = dict(ENV)
    os.environ.update(ENV)
    clear_redis_keys(REDIS_URL, ENV["CHANNELS_PREFIX"])
    recreate_database(BENCH_DATABASE)
    processes: list[subprocess.Popen] = []
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        import django

        django.setup()
        per_seller = -(-RATE * SECONDS // SELLERS) + 1
        sellers, buyers, listings = seed(per_seller)
        from django.db import connections

        connections.close_all()
        daphne = str(Path(sys.executable).parent / "daphne")
        for port in PORTS:
            processes.append(
                start_logged(
                    f"bench-negotiation-daphne-{port}",
                    [daphne, "-b", "127.0.0.1", "-p", str(port), ASGI_APP],
                    env,
                )
            )
        processes.append(
            start_logged(
                "bench-negotiation-huey",
                [sys.executable, "manage.py", "run_huey", "--workers", "4", "-k", "thread"],
                env,
            )
        )
        for port in PORTS:
            wait_for_port(port)
        print(
            f"production mode: {len(PORTS)} daphne (sellers on {SELLER_PORTS}, buyers on "
            f"{BUYER_PORTS}) + 1 Huey, "
            f"PostgreSQL + Redis; {SELLERS} sellers, {BUYERS} buyers, {len(listings)} listings, "
            f"{RATE} offers/s for {SECONDS} s; app {ASGI_APP}"
        )
        asyncio.run(run(sellers, buyers, listings))
    finally:
        stop_processes(processes)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        drop_database(BENCH_DATABASE)
        clear_redis_keys(REDIS_URL, ENV["CHANNELS_PREFIX"])


if __name__ == "__main__":
    main()
