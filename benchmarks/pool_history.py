"""What the key pool's history costs (issue 25): `report` with the history counters vs the
same script without them (the baseline, same run, same Redis), and reading the history.

    python -m benchmarks.pool_history [--reports 5000] [--keys 100]

Uses BENCH_REDIS_URL (default redis://127.0.0.1:6379/14; flushed). Prints reports per
second with and without history and their ratio, and the time of one
`GET /api/v1/accounts/history` worth of reading (35 days × every key, plus the last hour)
and of one key's 35 days.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import redis

from shared import redis_keys
from shared.accounts import history
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import (
    BOUNDARY_COOL_MS,
    BOUNDARY_SLACK_MS,
    FAILURE_BACKOFF_MS,
    LEARNED_LIMIT_MS,
    LIMIT_CHANGES_KEPT,
    MAX_FAILURE_BACKOFF_MS,
    PROBE_QUIET_MS,
    AccountPool,
    account_id,
)
from shared.redact import redact

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def reports_per_s(pool: AccountPool, ids: list[str], count: int, with_history: bool) -> float:
    """What `pool.report` does, with the history keys or with only the first five (the
    script skips its history block: the report before issue 25); same Python work."""
    started = time.perf_counter()
    for n in range(count):
        key_id = ids[n % len(ids)]
        day, next_day_ms = pool.quota_day()
        names = [redis_keys.account_info(key_id), redis_keys.account_window(key_id),
                 redis_keys.ACCOUNT_READY,
                 redis_keys.ACCOUNT_WAIT_REASON, redis_keys.account_limit_changes(key_id),
                 redis_keys.account_usage(key_id), redis_keys.pool_minute(int(time.time() // 60))]
        pool._report(keys=names if with_history else names[:5],
                     args=["success", -1, next_day_ms, redact(""), FAILURE_BACKOFF_MS,
                           MAX_FAILURE_BACKOFF_MS, key_id, pool.window_ms, LEARNED_LIMIT_MS,
                           "", BOUNDARY_SLACK_MS, PROBE_QUIET_MS, BOUNDARY_COOL_MS,
                           LIMIT_CHANGES_KEPT, day, redis_keys.HISTORY_TTL_S,
                           redis_keys.POOL_MINUTE_TTL_S])
    return count / (time.perf_counter() - started)


def timed_ms(call, repeat: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=5000)
    parser.add_argument("--keys", type=int, default=100)
    args = parser.parse_args()
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    entries = [AccountEntry(api_key=f"AIzaSyBENCH{n:024d}", daily_limit=10**6,
                            minute_limit=10**6, username=f"u{n}", password="pw", phone="",
                            email="") for n in range(args.keys)]
    import_accounts(client, entries)
    pool = AccountPool(client)
    ids = [account_id(e.api_key) for e in entries]
    rounds = {True: [], False: []}
    for _ in range(3):  # interleaved, so both see the same machine
        for with_history in (False, True):
            rounds[with_history].append(reports_per_s(pool, ids, args.reports // 3,
                                                      with_history))
    plain, counted = max(rounds[False]), max(rounds[True])
    for day in history.quota_days(pool, 35):  # a full history to read
        for key_id in ids:
            client.hset(redis_keys.account_usage(key_id), mapping={
                f"{day}:{name}": 7 for name in history.COUNTERS})
    pool_ms = timed_ms(lambda: history.pool_history(pool, 35), repeat=5)
    key_ms = timed_ms(lambda: history.key_history(pool, ids[0], 35))
    print(f"report without history: {plain:,.0f}/s")
    print(f"report with history:    {counted:,.0f}/s (ratio {counted / plain:.2f})")
    print(f"pool history, 35 days x {args.keys} keys + last hour: {pool_ms:.1f} ms")
    print(f"one key's history, 35 days: {key_ms:.2f} ms")
    client.flushdb()


if __name__ == "__main__":
    main()
