"""Creating 1,000 tasks as one batch vs 1,000 single creates, through functions-framework
(gunicorn) against MariaDB + Redis, both measured in the same run.

    python -m benchmarks.batch_create [--items 1000] [--rounds 3]

A batch is validated item by item, written in one transaction per 200 items and queued
with one Redis pipeline; the baseline is the same 1,000 items as `POST /api/v1/task/create`
one after the other over a keep-alive connection (one commit and one Redis call each).
Needs MariaDB on 127.0.0.1:3306 (root, no password) and Redis (BENCH_REDIS_URL, default
db 14, flushed). The database is BENCH_MYSQL_DB (default vision_to_tag_bench_batches).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import redis
import requests

from benchmarks.create_throughput import HEADERS, REDIS_URL, bench_database, serve

BENCH_DB = os.environ.get("BENCH_MYSQL_DB", "vision_to_tag_bench_batches")


def items(count: int, round_: int) -> list[dict]:
    return [{"url": f"https://93.184.215.14/r{round_}/video-{n}.mp4", "platform": "rpa",
             "uid": n} for n in range(count)]


def singles(base: str, body: list[dict]) -> float:
    session = requests.Session()
    started = time.perf_counter()
    for item in body:
        response = session.post(f"{base}/api/v1/task/create", json=item, headers=HEADERS,
                                timeout=30)
        assert response.status_code == 200, response.text
    return time.perf_counter() - started


def batch(base: str, body: list[dict]) -> float:
    started = time.perf_counter()
    response = requests.post(f"{base}/api/v1/batches", json={"name": "bench", "items": body},
                             headers=HEADERS, timeout=60)
    elapsed = time.perf_counter() - started
    data = response.json()["data"]
    assert response.status_code == 200 and data["accepted"] == len(body), response.text[:500]
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with bench_database(BENCH_DB) as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
               "LOG_LEVEL": "WARNING", "API_TOKENS": "bench"}
        api, base = serve("api", "main.py", env)
        single_s, batch_s = [], []
        try:
            for round_ in range(args.rounds):
                single_s.append(singles(base, items(args.items, 2 * round_)))
                batch_s.append(batch(base, items(args.items, 2 * round_ + 1)))
            queued = redis.Redis.from_url(REDIS_URL).llen("task_queue")
        finally:
            api.terminate()
            api.wait()
    single, batched = statistics.median(single_s), statistics.median(batch_s)
    print(f"{args.items} items, median of {args.rounds} rounds "
          f"({2 * args.rounds * args.items} tasks created, {queued} queued)")
    print(f"{'way':<22} {'seconds':>8} {'tasks/s':>8}")
    print(f"{'single creates':<22} {single:>8.2f} {args.items / single:>8.0f}")
    print(f"{'one batch':<22} {batched:>8.2f} {args.items / batched:>8.0f}")
    print(f"batch / singles time: {batched / single:.1%} ({single / batched:.1f}x faster); "
          f"target < 5 s: {'met' if batched < 5 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
