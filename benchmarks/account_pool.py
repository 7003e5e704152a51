"""The key pool vs a naive read-check-write pool (like the original service's), same Redis,
same run: 100 keys of minute limit 10, 1/8/32 concurrent processes.

    python -m benchmarks.account_pool [--seconds 3] [--procs 1,8,32]

Uses Redis db 14 on 127.0.0.1:6379 (flushed). Reports acquisitions per second (granted or
refused), p99 latency, over-grants (grants beyond a key's minute limit) and the max/min
grants per key. A run is shorter than a minute, so every grant is in one window.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
import uuid
from pathlib import Path

import redis

from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool, Lease

ROOT = Path(__file__).resolve().parent.parent

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
KEYS, MINUTE_LIMIT = 100, 10


class NaivePool:
    """Reads the counters, checks them in Python, then writes: races under concurrency,
    and walks keys in order, draining one after another."""

    def __init__(self, client: redis.Redis, day: str) -> None:
        self.redis, self.day = client, day

    def acquire(self) -> str | None:
        now_ms = time.time() * 1000
        for key_id in sorted(self.redis.smembers(redis_keys.ACCOUNT_IDS)):
            info = self.redis.hgetall(redis_keys.account_info(key_id))
            if info.get("status") != "active":
                continue
            if int(self.redis.hget(redis_keys.account_daily(key_id), self.day) or 0) >= int(
                    info["quota_daily"]):
                continue
            window = redis_keys.account_window(key_id)
            if self.redis.zcount(window, now_ms - 60_000, "+inf") >= int(info["minute_limit"]):
                continue
            self.redis.zadd(window, {uuid.uuid4().hex: now_ms})
            self.redis.hincrby(redis_keys.account_daily(key_id), self.day, 1)
            return key_id
        return None


def worker(kind: str, seconds: float, start_at: float, out) -> None:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    pool = AccountPool(client)
    naive = NaivePool(client, pool.quota_day()[0])
    latencies, grants = [], []
    while time.time() < start_at:
        time.sleep(0.001)
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        if kind == "pool":
            lease = pool.acquire()
            key_id = lease.key_id if isinstance(lease, Lease) else None
        else:
            key_id = naive.acquire()
        latencies.append(time.perf_counter() - started)
        if key_id:
            grants.append(key_id)
    out.put((latencies, grants))


def measure(kind: str, procs: int, seconds: float) -> dict[str, float]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [
        AccountEntry(api_key=f"AIzaBENCH{n:031d}", daily_limit=10**6, minute_limit=MINUTE_LIMIT,
                     username=f"bench{n}", password="x" * 8, phone="", email="")
        for n in range(KEYS)])
    out = multiprocessing.Queue()
    start_at = time.time() + 0.5
    workers = [multiprocessing.Process(target=worker, args=(kind, seconds, start_at, out))
               for _ in range(procs)]
    for process in workers:
        process.start()
    results = [out.get() for _ in workers]
    for process in workers:
        process.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    per_key = {f"k{n}": 0 for n in range(KEYS)}
    per_key.clear()
    for _, grants in results:
        for key_id in grants:
            per_key[key_id] = per_key.get(key_id, 0) + 1
    counts = list(per_key.values())
    return {
        "ops": len(latencies) / seconds,
        "p99_ms": latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000,
        "grants": sum(counts),
        "over": sum(max(0, c - MINUTE_LIMIT) for c in counts),
        "spread": (max(counts) / min(counts)) if counts and len(counts) == KEYS else float("inf"),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--procs", default="1,8,32")
    args = parser.parse_args()
    print(f"{KEYS} keys × minute limit {MINUTE_LIMIT}; {args.seconds:g} s per point")
    print(f"{'procs':>5} {'pool':>6} | {'acq/s':>8} {'p99 ms':>7} {'grants':>6} {'over':>5} "
          f"{'max/min':>7}")
    for procs in [int(p) for p in args.procs.split(",")]:
        rows = {kind: measure(kind, procs, args.seconds) for kind in ("pool", "naive")}
        for kind, row in rows.items():
            print(f"{procs:>5} {kind:>6} | {row['ops']:>8.0f} {row['p99_ms']:>7.2f} "
                  f"{row['grants']:>6} {row['over']:>5} {row['spread']:>7.2f}")
        print(f"{'':>5} {'ratio':>6} | {rows['pool']['ops'] / rows['naive']['ops']:>7.0f}x")
    redis.Redis.from_url(REDIS_URL).flushdb()
    return 0


if __name__ == "__main__":
    sys.exit(main())
