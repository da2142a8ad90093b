"""Withdrawal throughput on PostgreSQL: the cost of the wallet row lock.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/marketplace .venv/bin/python bench/wallet.py

Creates a throwaway database (test_<name>_walletbench), then runs `request_withdrawal` from
THREADS threads: (a) all on ONE seller's wallet (every request queues on the same row lock),
(b) each thread on its own seller. Prints withdrawals/s and p50/p99 latency for both and the
ratio (a)/(b): how much a single hot wallet serialises. Drops the database at the end.
"""

import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_test")
os.environ.setdefault("TEST_RUN_ID", "walletbench")

THREADS = int(os.environ.get("BENCH_THREADS", "8"))
PER_THREAD = int(os.environ.get("BENCH_PER_THREAD", "100"))


def run(label: str, users, accounts) -> tuple[float, float, float]:
    from django.db import connections

    from marketplace.actions.wallet import request_withdrawal

    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        user, account = users[index % len(users)], accounts[index % len(users)]
        mine = []
        barrier.wait()
        for _ in range(PER_THREAD):
            started = time.perf_counter()
            request_withdrawal(user=user, amount_fen=100, account_id=account.pk)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)
        connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    rate = len(latencies) / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"{label:<28} {rate:8.0f} withdrawals/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    return rate, p50, p99


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    if not settings.IS_POSTGRES:
        sys.exit("Set DATABASE_URL to PostgreSQL: SQLite has one writer and no row locks.")
    from django.test.utils import setup_test_environment

    setup_test_environment()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        from marketplace.selectors import platform_settings
        from tests.factories import UserFactory
        from tests.marketplace.wallet_helpers import assert_ledger_invariant, credit, make_account

        platform_settings()
        total = THREADS * PER_THREAD * 100
        one = UserFactory()
        credit(one, total)
        one_account = make_account(one)
        many = [UserFactory() for _ in range(THREADS)]
        for user in many:
            credit(user, PER_THREAD * 100)
        many_accounts = [make_account(user) for user in many]
        print(f"{THREADS} threads x {PER_THREAD} withdrawals of 100 fen, PostgreSQL")
        hot, _, _ = run("one wallet (contended)", [one], [one_account])
        cold, _, _ = run("one wallet per thread", many, many_accounts)
        print(f"contended / independent throughput: {hot / cold:.2f}")
        for user in [one, *many]:
            wallet = assert_ledger_invariant(user)
            assert wallet.available_fen == 0, wallet.available_fen
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
