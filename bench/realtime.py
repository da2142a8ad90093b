"""Realtime benchmark: 5,000 sockets on ONE daphne process with the Redis channel layer.

    .venv/bin/python bench/realtime.py            # PostgreSQL and Redis on 127.0.0.1

Runs the production configuration (MARKETPLACE_ENV=production, sandbox off) against a
throwaway database (BENCH_DATABASE, dropped at the end) and Redis db 14. Prints:

- memory per connection: the server's RSS growth from 1 to N open sockets, divided by N
  (target <= 50 KiB);
- emit-to-receive latency p50/p99 while a separate process emits through `realtime.push.emit`
  (a real transaction, commit, channel layer) at RATE events/s to random connected users
  (target p99 <= 100 ms); the clock starts before the transaction;
- the time to resume 1,000 missed events on a fresh socket (target <= 1 s).

The clients (this process) and the emitter share the machine with the server, PostgreSQL and
Redis, so the figures include their contention.
"""

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PG,
    clear_redis_keys,
    drop_database,
    percentile,
    production_env,
    raise_fd_limit,
    recreate_database,
    stop_processes,
)

SOCKETS = int(os.environ.get("BENCH_SOCKETS", "5000"))
RATE = int(os.environ.get("BENCH_RATE", "200"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
MISSED = int(os.environ.get("BENCH_MISSED", "1000"))
BENCH_DATABASE = os.environ.get("BENCH_DATABASE", "marketplace_rtbench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PORT = int(os.environ.get("BENCH_PORT", "8765"))

ENV = production_env(
    database_url=f"{PG}/{BENCH_DATABASE}",
    redis_url=REDIS_URL,
    prefix="rtbench",
    REALTIME_IDLE_TIMEOUT_SECONDS="3600",
)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


# --- setup ------------------------------------------------------------------------------------


def seed_users(count: int) -> list[tuple[int, str]]:
    """count users with tokens, in bulk (issue_token one by one would dominate the run)."""
    import secrets
    from datetime import timedelta

    from django.utils import timezone

    from marketplace.actions.accounts import hash_token
    from marketplace.models import ApiToken, User

    users = User.objects.bulk_create(
        [User(username=f"bench{i}", openid=f"bench-openid-{i}") for i in range(count)]
    )
    raw = [secrets.token_urlsafe(32) for _ in users]
    expires = timezone.now() + timedelta(days=1)
    ApiToken.objects.bulk_create(
        [
            ApiToken(user=user, key_hash=hash_token(token), expires_at=expires)
            for user, token in zip(users, raw, strict=True)
        ]
    )
    return [(user.pk, token) for user, token in zip(users, raw, strict=True)]


def start_server(env: dict) -> subprocess.Popen:
    log = open(ROOT / "var" / "bench-realtime-daphne.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(PORT),
            "project.asgi:application",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


# --- clients ----------------------------------------------------------------------------------


class Clients:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.last_seq: dict[int, int] = {}
        self.sockets: dict[int, object] = {}
        self.tasks: list[asyncio.Task] = []

    async def open(self, user_id: int, token: str) -> None:
        from websockets.asyncio.client import connect

        websocket = await connect(
            f"ws://127.0.0.1:{PORT}/ws/?token={token}",
            compression=None,
            ping_interval=None,
            open_timeout=120,
            max_size=2**20,
        )
        self.sockets[user_id] = websocket
        self.tasks.append(asyncio.create_task(self.read(user_id, websocket)))

    async def read(self, user_id: int, websocket) -> None:
        try:
            async for text in websocket:
                received = time.time()
                frame = json.loads(text)
                seq = frame.get("seq")
                if seq is not None:
                    self.last_seq[user_id] = seq
                    sent = frame["data"].get("t")
                    if sent is not None:
                        self.latencies.append(received - sent)
        except Exception:  # noqa: BLE001 - a dropped socket shows up as missing events
            return


async def open_all(clients: Clients, members: list[tuple[int, str]]) -> None:
    gate = asyncio.Semaphore(50)

    async def one(user_id: int, token: str) -> None:
        async with gate:
            await clients.open(user_id, token)

    await asyncio.gather(*(one(user_id, token) for user_id, token in members))


async def resume_missed(members, env) -> tuple[float, float, int]:
    """Disconnected user, MISSED events, fresh socket + resume: (resume s, connect+resume s)."""
    from websockets.asyncio.client import connect

    user_id, token = members
    emitter = subprocess.run(
        [sys.executable, __file__, "--emit", str(user_id), "--count", str(MISSED), "--rate", "0"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if emitter.returncode:
        sys.exit(emitter.stderr)
    started = time.perf_counter()
    async with connect(
        f"ws://127.0.0.1:{PORT}/ws/?token={token}", compression=None, ping_interval=None
    ) as websocket:
        connected = time.perf_counter()
        await websocket.send(json.dumps({"action": "resume", "since": 0, "id": "bench"}))
        replayed = 0
        while True:
            frame = json.loads(await asyncio.wait_for(websocket.recv(), 30))
            if frame.get("type") == "ack":
                break
            replayed += 1
        done = time.perf_counter()
    return done - connected, done - started, replayed


# --- the emitter (a separate process, like a Huey worker or another server) --------------------


def emitter_main(user_ids: list[int], count: int, rate: int) -> None:
    import threading

    import django

    django.setup()
    from django.db import transaction

    from realtime import push

    # A persistent loop for the channel layer (one Redis pool), as `manage.py serve` binds.
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    push._server_loop = loop
    interval = 1 / rate if rate else 0
    started = time.perf_counter()
    for index in range(count):
        if interval:
            delay = started + index * interval - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        user_id = user_ids[index % len(user_ids)] if rate == 0 else random.choice(user_ids)
        data = {"t": time.time(), "i": index} if rate else {"i": index}
        with transaction.atomic():
            push.emit(user_ids=[user_id], type="order.status_changed", data=data, notify=False)
    time.sleep(0.5)  # let the last sends leave the loop


# --- main -------------------------------------------------------------------------------------


async def run(members, server, env) -> None:
    clients = Clients()
    await clients.open(*members[0])
    await asyncio.sleep(1)
    baseline = rss_kib(server.pid)
    started = time.perf_counter()
    await open_all(clients, members[1:SOCKETS])
    elapsed = time.perf_counter() - started
    # This process holds the 5,000 client sockets: its own full garbage collections (0.3-0.6 s
    # measured) would be counted as server latency. Freeze them, as the server does its own.
    gc.collect()
    gc.freeze()
    await asyncio.sleep(3)
    loaded = rss_kib(server.pid)
    per_connection = (loaded - baseline) / (SOCKETS - 1)
    print(f"sockets open:            {len(clients.sockets)} (connected in {elapsed:.1f} s)")
    print(f"server RSS:              {baseline / 1024:.0f} MiB -> {loaded / 1024:.0f} MiB")
    print(f"memory per connection:   {per_connection:.1f} KiB (target <= 50 KiB)")

    targets = [user_id for user_id, _ in members[1:SOCKETS]]
    ids_file = ROOT / "var" / "bench-realtime-users.json"
    ids_file.write_text(json.dumps(targets))
    expected = RATE * SECONDS
    emitter = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--emit-file",
        str(ids_file),
        "--count",
        str(expected),
        "--rate",
        str(RATE),
        env=env,
        cwd=ROOT,
    )
    await emitter.wait()
    await asyncio.sleep(2)
    latencies = [value * 1000 for value in clients.latencies]
    print(f"events emitted/received: {expected} / {len(latencies)} at {RATE} events/s")
    if latencies:
        print(
            f"emit-to-receive latency: p50 {statistics.median(latencies):.1f} ms, "
            f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms "
            "(target p99 <= 100 ms)"
        )

    # The resume user: its own socket is the first one; close it, miss MISSED events, resume.
    first_user = members[0][0]
    await clients.sockets.pop(first_user).close()
    resume_s, total_s, replayed = await resume_missed(members[0], env)
    print(
        f"resume {replayed} missed events: {resume_s * 1000:.0f} ms after the handshake, "
        f"{total_s * 1000:.0f} ms including connect (target <= 1 s)"
    )
    print(f"server RSS at the end:   {rss_kib(server.pid) / 1024:.0f} MiB")
    for websocket in clients.sockets.values():
        websocket.transport.abort()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emit", type=int)
    parser.add_argument("--emit-file")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--rate", type=int, default=0)
    args = parser.parse_args()
    if args.emit is not None:
        return emitter_main([args.emit], args.count, args.rate)
    if args.emit_file:
        return emitter_main(json.loads(Path(args.emit_file).read_text()), args.count, args.rate)

    raise_fd_limit(SOCKETS)
    env = dict(ENV)
    os.environ.update(ENV)
    clear_redis_keys(REDIS_URL, ENV["CHANNELS_PREFIX"])
    recreate_database(BENCH_DATABASE)
    server = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT,
            env=env,
            check=True,
        )
        import django

        django.setup()
        members = seed_users(SOCKETS)
        from django.db import connections

        connections.close_all()
        server = start_server(env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                import socket

                socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        print(f"daphne pid {server.pid}, {SOCKETS} sockets, Redis layer, PostgreSQL")
        asyncio.run(run(members, server, env))
    finally:
        if server is not None:
            stop_processes([server])
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django may not be set up yet
            pass
        drop_database(BENCH_DATABASE)


if __name__ == "__main__":
    main()
