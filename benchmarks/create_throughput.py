"""Create-task throughput and latency through functions-framework (gunicorn), against
MariaDB + Redis, next to a do-nothing handler measured in the same run as the ceiling.

    python -m benchmarks.create_throughput [--seconds 5] [--clients 1,8,32]

Needs MariaDB on 127.0.0.1:3306 (root, no password) and Redis on 127.0.0.1:6379 (db 14
is flushed). Clients run in separate processes with keep-alive connections.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import redis
import requests
import sqlalchemy as sa

from scripts.stack import free_port

ROOT = Path(__file__).resolve().parent.parent

MYSQL_ADMIN = os.environ.get("BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
BENCH_DB = "vision_to_tag_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
HEADERS = {"Authorization": "Bearer bench"}
BODY = {"url": "https://93.184.215.14/video.mp4", "platform": "rpa", "uid": 7}
"""A public address written as one: create checks it without a DNS lookup (none here)."""


def client_worker(url: str, threads: int, seconds: float, out: multiprocessing.Queue) -> None:
    import threading

    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def loop() -> None:
        session = requests.Session()
        mine, bad = [], 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            response = session.post(url, json=BODY, headers=HEADERS, timeout=30)
            mine.append(time.perf_counter() - started)
            bad += response.status_code != 200
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put((latencies, errors[0]))


def measure(url: str, clients: int, seconds: float) -> dict[str, float]:
    processes = min(clients, 4)
    per_process = [clients // processes + (i < clients % processes) for i in range(processes)]
    out: multiprocessing.Queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=client_worker, args=(url, n, seconds, out))
               for n in per_process]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    results = [out.get() for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    errors = sum(e for _, e in results)
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": errors,
        "n": len(latencies),
    }


def serve(target: str, source: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """A function under functions-framework (gunicorn), once it answers /healthz with 200
    (the api's first call runs the migrations)."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "functions-framework"), "--target", target,
         "--source", source, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=10).status_code == 200:
                return process, base
        except requests.RequestException:
            time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"{target} did not start")


@contextlib.contextmanager
def bench_database(name: str) -> Iterator[str]:
    """A fresh MariaDB database `name` and the bench Redis db, both emptied again after;
    yields the DATABASE_URL."""
    admin = sa.create_engine(MYSQL_ADMIN)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    redis.Redis.from_url(REDIS_URL).flushdb()
    try:
        yield f"{MYSQL_ADMIN.rstrip('/')}/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        redis.Redis.from_url(REDIS_URL).flushdb()
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--workers", type=int, default=1,
                        help="gunicorn worker processes for both servers (WORKERS)")
    args = parser.parse_args()
    with bench_database(BENCH_DB) as database_url:
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
               "LOG_LEVEL": "WARNING", "API_TOKENS": "bench", "WORKERS": str(args.workers)}
        api, api_base = serve("api", "main.py", env)
        noop, noop_base = serve("noop", "benchmarks/noop_function.py", env)
        rows = []
        try:
            for clients in [int(c) for c in args.clients.split(",")]:
                ceiling = measure(f"{noop_base}/", clients, args.seconds)
                create = measure(f"{api_base}/api/v1/task/create", clients, args.seconds)
                rows.append((clients, ceiling, create))
        finally:
            for process in (api, noop):
                process.terminate()
                process.wait()
    print(f"gunicorn workers per server: {args.workers}")
    print(f"{'clients':>7} | {'noop rps':>9} {'p50 ms':>7} {'p99 ms':>7} | "
          f"{'create rps':>10} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} | ratio")
    for clients, ceiling, create in rows:
        print(f"{clients:>7} | {ceiling['rps']:>9.0f} {ceiling['p50_ms']:>7.2f} "
              f"{ceiling['p99_ms']:>7.2f} | {create['rps']:>10.0f} {create['p50_ms']:>7.2f} "
              f"{create['p99_ms']:>7.2f} {create['errors']:>6} | "
              f"{create['rps'] / ceiling['rps']:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
