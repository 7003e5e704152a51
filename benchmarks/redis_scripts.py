"""The slowest Redis calls of the key pool at 1,000 keys, against the socket timeout
(REDIS_SOCKET_TIMEOUT_S): a script or pipeline that runs longer than it would read as a
hanging Redis (503) although Redis is fine — and Redis serves nobody else meanwhile.

    python -m benchmarks.redis_scripts [--keys 1000] [--minute-limit 10] [--runs 5]

Uses BENCH_REDIS_URL (default Redis db 14 on 127.0.0.1:6379; flushed). Worst cases, each
timed `--runs` times (the slowest run is reported):
  acquire (full walk)  every key saturated, a new quota day and the resync due: the script
                       re-checks and parks every key in one run (what a pool that ran dry
                       overnight does on its first call of the day)
  promise_slot         slot.lua: every key's next slots listed and sorted (keys x limit)
  stats                the pipeline behind GET /api/v1/accounts (4 commands per key)
  import               the whole set swapped in, one MULTI
The baseline is the same call at 10 keys, same run: the ratio is how the call grows.
"""

from __future__ import annotations

import argparse
import os
import time

import redis

from shared import redis_keys
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool
from shared.config import Settings

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def entries(count: int, minute_limit: int) -> list[AccountEntry]:
    return [AccountEntry(api_key=f"AIzaSyBENCH{n:029d}", daily_limit=100_000,
                         minute_limit=minute_limit, username=f"u{n}", password="pw",
                         phone="", email="") for n in range(count)]


def slowest(call, runs: int, before=None) -> float:
    worst = 0.0
    for _ in range(runs):
        if before:
            before()
        started = time.perf_counter()
        call()
        worst = max(worst, time.perf_counter() - started)
    return worst


def measure(client: redis.Redis, count: int, minute_limit: int, runs: int) -> dict[str, float]:
    client.flushdb()
    batch = entries(count, minute_limit)
    figures = {"import": slowest(lambda: import_accounts(client, batch), runs)}
    pool = AccountPool(client)
    for _ in range(count * minute_limit):  # every key at its minute limit
        pool.acquire()

    def new_day_and_resync() -> None:
        pool._last_day = None  # the first call of a quota day (or of a process)
        client.delete(redis_keys.ACCOUNT_RESYNC, redis_keys.ACCOUNT_READY_DAY)

    figures["acquire (full walk)"] = slowest(pool.acquire, runs, before=new_day_and_resync)
    figures["promise_slot"] = slowest(pool.promise_slot, runs,
                                      before=lambda: client.delete(redis_keys.ACCOUNT_PROMISED))
    figures["stats"] = slowest(pool.stats, runs)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--minute-limit", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    socket_s = Settings.model_fields["REDIS_SOCKET_TIMEOUT_S"].default
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        base = measure(client, 10, args.minute_limit, args.runs)
        big = measure(client, args.keys, args.minute_limit, args.runs)
    finally:
        client.flushdb()
    print(f"{args.keys} keys, minute limit {args.minute_limit}, slowest of {args.runs} runs; "
          f"REDIS_SOCKET_TIMEOUT_S default {socket_s:g} s")
    print(f"{'call':<22}{'10 keys ms':>12}{f'{args.keys} keys ms':>15}{'ratio':>8}"
          f"{'of timeout':>12}")
    for name, seconds in big.items():
        print(f"{name:<22}{base[name] * 1000:>12.1f}{seconds * 1000:>15.1f}"
              f"{seconds / base[name]:>8.0f}{seconds / socket_s:>11.1%}")
    worst = max(big, key=big.get)
    print(f"slowest: {worst} {big[worst] * 1000:.0f} ms = {big[worst] / socket_s:.0%} of the "
          f"socket timeout")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
