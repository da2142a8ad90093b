"""`make bench`: every benchmark under bench/ on the production-mode stack, one table at the end.

    bench/run.sh                  # bounded sizes (~10 minutes on 2 vCPUs)
    bench/run.sh --full           # the issues' full sizes (1M listings, 5,000 sockets, ...)
    bench/run.sh --only catalog --only servers

Each benchmark starts what it needs itself (production settings: PostgreSQL + Redis, DEBUG off,
no sandbox, several daphne processes, Huey consumers) in its own bench database, and prints its
own report, which is shown as it runs. This runner reads the figures from that output and prints
one table: each figure, its target, whether it met it, and its ratio to /healthz measured by
the same benchmark in the same run (the trivial endpoint: what the server does with no work).
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PG = os.environ.get("BENCH_DATABASE_URL_BASE", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")

# name -> (argv after the script, extra environment) for the bounded and the full run.
BENCHES = {
    "servers": (
        ["--listings", "100000", "--seconds", "3"],
        {},
        ["--listings", "1000000", "--seconds", "10"],
        {},
    ),
    "catalog": (["--listings", "100000", "--seconds", "3"], {}, [], {}),
    "deadlines": (["--orders", "10000"], {}, [], {}),
    "orders": (["--buyers", "100", "--flows", "80"], {}, [], {}),
    "wallet": (
        [],
        {"BENCH_PER_THREAD": "25", "LOG_LEVEL": "WARNING"},
        [],
        {"LOG_LEVEL": "WARNING"},
    ),
    "realtime": (
        [],
        {"BENCH_SOCKETS": "1000", "BENCH_SECONDS": "5", "BENCH_MISSED": "1000"},
        [],
        {},
    ),
    "negotiation": (
        [],
        {"BENCH_SELLERS": "200", "BENCH_BUYERS": "200", "BENCH_SECONDS": "5"},
        [],
        {},
    ),
    "live_actions": ([], {"BENCH_ACTIONS": "300"}, [], {"BENCH_ACTIONS": "1000"}),
    "conversations": (
        [],
        {"BENCH_PAIRS": "300", "BENCH_RATE": "200", "BENCH_SECONDS": "5"},
        [],
        {},
    ),
    # The sizes in both runs: 50,000 favouriters, 1,000 of them connected.
    "social": ([], {}, [], {}),
}
TIMEOUT_SECONDS = {"bounded": 600, "full": 3600}

NUM = r"([0-9][0-9,]*\.?[0-9]*)"


def num(text: str) -> float:
    return float(text.replace(",", ""))


class Row:
    def __init__(self, bench, figure, value, unit, target=None, better="lower", ratio=None):
        self.bench, self.figure, self.value, self.unit = bench, figure, value, unit
        self.target, self.better, self.ratio = target, better, ratio

    def verdict(self) -> str:
        if self.target is None or self.value is None:
            return ""
        ok = self.value <= self.target if self.better == "lower" else self.value >= self.target
        return "ok" if ok else "MISS"


def parse_catalog(out: str, name: str = "catalog") -> list[Row]:
    rows, found = [], {}
    for line in out.splitlines():
        m = re.match(
            rf"^(healthz \(trivial\)|home|category list|keyword search|detail"
            rf"|uncached [a-z0-9 -]+?)\s+{NUM}\s+{NUM}\s+{NUM}",
            line,
        )
        if m:
            found[m.group(1)] = (num(m.group(2)), num(m.group(3)), num(m.group(4)))
    base = found.get("healthz (trivial)")
    for endpoint, (rps, _p50, p99) in found.items():
        if endpoint.startswith("healthz"):
            rows.append(Row(name, "/healthz req/s", rps, "req/s"))
            rows.append(Row(name, "/healthz p99", p99, "ms"))
            continue
        uncached = endpoint.startswith("uncached")
        target = 150 if uncached else 100 if endpoint == "keyword search" else 50
        wanted = 0.15 if uncached else 0.5
        ratio = f"{p99 / base[2]:.1f}x p99" if base and base[2] else None
        rows.append(Row(name, f"{endpoint} p99", p99, "ms", target, "lower", ratio))
        share = rps / base[0] if base and base[0] else None
        rows.append(
            Row(name, f"{endpoint} req/s (target ≥ {wanted:.0%} of /healthz)", rps, "req/s",
                base[0] * wanted if base else None, "higher", f"{share:.0%}" if share else None)
        )  # fmt: skip
    return rows


def parse_servers(out: str) -> list[Row]:
    rows = []
    for line in out.splitlines():
        m = re.match(
            rf"^(.+?)\s+healthz\s+{NUM} req/s p99\s+{NUM} ms \| mix\s+{NUM} req/s p50\s+{NUM} ms p99\s+{NUM} ms",
            line,
        )
        if m:
            name = m.group(1).strip()
            healthz, mix = num(m.group(2)), num(m.group(4))
            ratio = f"{mix / healthz:.0%} of req/s" if healthz else None
            rows.append(Row("servers", f"{name}: /healthz req/s", healthz, "req/s"))
            rows.append(Row("servers", f"{name}: catalog mix req/s", mix, "req/s", ratio=ratio))
            rows.append(Row("servers", f"{name}: catalog mix p99", num(m.group(6)), "ms", 50))
    return rows


def parse_deadlines(out: str) -> list[Row]:
    rows = []
    m = re.search(rf"first sweep \((\d+) processes\), seconds\s+{NUM}\s+{NUM}", out)
    if m:
        rows.append(
            Row(
                "deadlines",
                f"first sweep ({m.group(1)} processes), s",
                num(m.group(2)),
                "s",
                num(m.group(3)),
            )
        )
    m = re.search(rf"orders per second\s+{NUM}", out)
    if m:
        rows.append(
            Row(
                "deadlines",
                "overdue orders handled per second",
                num(m.group(1)),
                "/s",
                100_000 / 30,  # issue 14: 100,000 in 30 s
                "higher",
            )
        )
    m = re.search(r"second sweep changed nothing\s+(\w+)", out)
    if m:
        rows.append(
            Row(
                "deadlines",
                "second sweep changed nothing",
                1.0 if m.group(1) == "True" else 0.0,
                "bool",
                1,
                "higher",
            )
        )
    return rows


def parse_orders(out: str) -> list[Row]:
    rows = []
    m = re.search(r"race: (\d+) buyers, one listing -> (\d+) winner", out)
    if m:
        rows.append(
            Row("orders", f"winners among {m.group(1)} racing buyers", num(m.group(2)), "", 1)
        )
    healthz = re.search(rf"/healthz \(same servers, same run\)\s+{NUM}\s+{NUM}", out)
    base_p50 = num(healthz.group(1)) if healthz else None
    for step in ("create", "pay", "notified", "flow"):
        m = re.search(rf"^{step}\s+{NUM}\s+{NUM}", out, re.M)
        if m:
            ratio = f"{num(m.group(1)) / base_p50:.0f}x p50" if base_p50 else None
            rows.append(Row("orders", f"{step} p99", num(m.group(2)), "ms", ratio=ratio))
    m = re.search(rf"= {NUM} flows/s", out)
    if m:
        rows.append(Row("orders", "create→pay→notify flows/s", num(m.group(1)), "/s"))
    if healthz:
        rows.append(Row("orders", "/healthz p50 (same servers)", base_p50, "ms"))
    return rows


def parse_wallet(out: str) -> list[Row]:
    rows = []
    for label in ("one wallet (contended)", "one wallet per thread"):
        m = re.search(
            rf"{re.escape(label)}\s+{NUM} withdrawals/s\s+p50\s+{NUM} ms\s+p99\s+{NUM} ms", out
        )
        if m:
            rows.append(Row("wallet", f"{label} withdrawals/s", num(m.group(1)), "/s"))
            rows.append(Row("wallet", f"{label} p99", num(m.group(3)), "ms"))
    return rows


def parse_realtime(out: str) -> list[Row]:
    rows = []
    m = re.search(rf"memory per connection:\s+{NUM} KiB", out)
    if m:
        rows.append(Row("realtime", "memory per idle socket", num(m.group(1)), "KiB", 50))
    m = re.search(rf"emit-to-receive latency: p50 {NUM} ms, p99 {NUM} ms", out)
    if m:
        rows.append(Row("realtime", "emit-to-receive p99", num(m.group(2)), "ms", 100))
    m = re.search(rf"events emitted/received: {NUM} / {NUM}", out)
    if m:
        rows.append(
            Row(
                "realtime",
                "events received / emitted",
                num(m.group(2)) / num(m.group(1)),
                "",
                1,
                "higher",
            )
        )
    m = re.search(rf"resume {NUM} missed events: {NUM} ms after the handshake, {NUM} ms", out)
    if m:
        rows.append(
            Row("realtime", f"resume {m.group(1)} missed events", num(m.group(3)), "ms", 1000)
        )
    return rows


def parse_negotiation(out: str) -> list[Row]:
    rows = []
    for label, key in (
        ("offer-to-seller", "offer → seller"),
        ("accept-to-buyer", "accept → buyer"),
    ):
        m = re.search(rf"{label}.*?p50\s+{NUM} ms\s+p99\s+{NUM} ms", out)
        if m:
            rows.append(Row("negotiation", f"{key} p99", num(m.group(2)), "ms", 100))
    m = re.search(rf"offers sent: {NUM} in {NUM} s \({NUM}/s\)", out)
    if m:
        rows.append(Row("negotiation", "offers sent per second", num(m.group(3)), "/s"))
    return rows


def parse_conversations(out: str) -> list[Row]:
    rows = []
    m = re.search(rf"send-to-receive.*?p50\s+{NUM} ms\s+p99\s+{NUM} ms", out)
    if m:
        rows.append(Row("conversations", "send → receive p99", num(m.group(2)), "ms", 100))
    m = re.search(r"delivery: missing (\d+), duplicated (\d+), out of order (\d+)", out)
    if m:
        wrong = sum(int(m.group(i)) for i in (1, 2, 3))
        rows.append(Row("conversations", "messages missing/duplicated/out of order", wrong, "", 0))
    m = re.search(rf"send\s+python {NUM} ms p50.*?round trips {NUM}", out)
    if m:
        rows.append(Row("conversations", "send: python", num(m.group(1)), "ms", 2))
        rows.append(Row("conversations", "send: round trips", num(m.group(2)), "", 4))
    return rows


def parse_live_actions(out: str) -> list[Row]:
    rows = []
    for name in ("offer", "accept"):
        m = re.search(
            rf"^{name}\s+python\s+{NUM} ms p50.*?target ≤ {NUM} ms.*?round trips {NUM} "
            rf"\(target ≤ {NUM}\)",
            out,
            re.M,
        )
        if m:
            rows.append(Row("live_actions", f"{name}: python", num(m.group(1)), "ms", num(m.group(2))))
            rows.append(
                Row("live_actions", f"{name}: round trips", num(m.group(3)), "", num(m.group(4)))
            )
    return rows


def parse_social(out: str) -> list[Row]:
    rows = []
    m = re.search(rf"last connected socket heard the drop after\s+{NUM} s", out)
    if m:
        rows.append(Row("social", "price drop → last of 1,000 sockets (50,000 fans)", num(m.group(1)), "s", 5))
    m = re.search(rf"seller PATCH p99 {NUM} ms, p50 {NUM} ms", out)
    if m:
        rows.append(Row("social", "seller PATCH p99 during fan-outs", num(m.group(1)), "ms", 100))
        rows.append(Row("social", "seller PATCH p50", num(m.group(2)), "ms"))
    return rows


PARSERS = {
    "servers": parse_servers,
    "catalog": parse_catalog,
    "deadlines": parse_deadlines,
    "orders": parse_orders,
    "wallet": parse_wallet,
    "realtime": parse_realtime,
    "negotiation": parse_negotiation,
    "conversations": parse_conversations,
    "live_actions": parse_live_actions,
    "social": parse_social,
}


def run_one(name: str, full: bool) -> tuple[str, int, float]:
    bounded_args, bounded_env, full_args, full_env = BENCHES[name]
    argv = full_args if full else bounded_args
    env = {**os.environ, **(full_env if full else bounded_env)}
    env.setdefault("BENCH_REDIS_URL", REDIS)
    if name == "wallet":
        # The wallet benchmark runs in-process on a throwaway test database.
        env.setdefault("DATABASE_URL", f"{PG}/marketplace_bench_wallet")
        env.setdefault("DJANGO_SETTINGS_MODULE", "project.settings_test")
        env.setdefault("REDIS_URL", REDIS)
    print(f"\n=== bench/{name}.py {' '.join(argv)}", flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(
        [PYTHON, "-u", str(ROOT / "bench" / f"{name}.py"), *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    deadline = started + TIMEOUT_SECONDS["full" if full else "bounded"]
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"  {line}")
        lines.append(line)
        if time.monotonic() > deadline:
            os.killpg(proc.pid, 15)
            lines.append("(stopped: over its time budget)\n")
            break
    code = proc.wait()
    return "".join(lines), code, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="the issues' full sizes")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES))
    args = parser.parse_args()
    check = subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "check_services.py"), f"{PG}/postgres", REDIS], check=False
    )
    if check.returncode:
        sys.exit("make bench needs PostgreSQL and Redis (see README).")
    names = [n for n in BENCHES if not args.only or n in args.only]
    rows: list[Row] = []
    summary = []
    for name in names:
        out, code, seconds = run_one(name, args.full)
        parsed = PARSERS[name](out)
        summary.append((name, code, seconds, len(parsed)))
        rows.extend(parsed)
        if not parsed:
            rows.append(Row(name, f"no figures (exit {code}; see its output above)", None, ""))

    size = "full sizes" if args.full else "bounded sizes (--full for the issues' sizes)"
    print(
        f"\n\nmake bench — production-mode stack, {size}, 2 vCPU, load generated on the same cores"
    )
    header = f"{'bench':<12}{'figure':<52}{'measured':>12} {'unit':<6}{'target':>9} {'':<5}{'vs /healthz':>14}"
    print(header)
    print("-" * len(header))
    for r in rows:
        value = (
            "" if r.value is None else (f"{r.value:,.1f}" if r.value < 1000 else f"{r.value:,.0f}")
        )
        target = (
            "" if r.target is None else (("≤" if r.better == "lower" else "≥") + f"{r.target:,.0f}")
        )
        print(
            f"{r.bench:<12}{r.figure[:51]:<52}{value:>12} {r.unit:<6}{target:>9} {r.verdict():<5}{r.ratio or '':>14}"
        )
    print()
    for name, code, seconds, count in summary:
        print(f"bench/{name}.py: exit {code}, {seconds:.0f} s, {count} figures")
    if any(code for _, code, _, _ in summary):
        sys.exit(1)


if __name__ == "__main__":
    main()
