"""Memory of the api while it streams a large export: 10,000 completed tasks with full
results (about 6 KB of JSON each), as JSON Lines and as CSV, through functions-framework
(gunicorn) against MariaDB.

    python -m benchmarks.export_memory [--tasks 10000]

Prints the resident memory of the api's gunicorn worker (sampled every 20 ms) when idle
after a warm-up request — the baseline, same run — and at its peak during each export,
with the bytes sent. The export reads EXPORT_CHUNK (200) rows per query and writes them
before reading more, so the peak does not grow with the number of tasks (compare
`--tasks 2000`). Target: the export adds under 100 MB to the api (the idle worker alone
is about 100 MB of imported libraries). Needs MariaDB on 127.0.0.1:3306 and Redis
(BENCH_REDIS_URL, flushed); the database is BENCH_MYSQL_DB.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid

import psutil
import requests
import sqlalchemy as sa

from benchmarks.create_throughput import HEADERS, REDIS_URL, bench_database, serve
from shared.config import load_settings
from shared.tagging.result import KeyMoment, Tag, TagResult, Technical, Usage
from shared.tasks.db import create_db_engine, migrate, utcnow
from shared.tasks.schema import video_tasks

BENCH_DB = os.environ.get("BENCH_MYSQL_DB", "vision_to_tag_bench_export")


def result(n: int) -> dict:
    fields = {"vision": ("characters", "scene", "cinematography"),
              "audio": ("speech", "music", "sound_effects"),
              "content": ("theme", "narrative", "emotion", "on_screen_text"),
              "business": ("product", "marketing", "audience")}
    dimensions = {name: {field: [Tag(tag=f"{field}标签{n % 50}-{k}", confidence=0.9 - k / 10)
                                 for k in range(3)] for field in names}
                  for name, names in fields.items()}
    tags = [tag.tag for groups in dimensions.values() for items in groups.values()
            for tag in items]
    return TagResult(
        tags=tags, dimensions=dimensions,
        key_moments=[KeyMoment(start_s=k, end_s=k + 2, description=f"画面文字：限时优惠{k}")
                     for k in range(8)],
        summary="6秒竖屏视频，720p高清，有声，口播，画面文字：限时优惠¥99包邮" * 2,
        technical=Technical(duration_s=30.0, has_audio=True, container="mp4", width=720,
                            height=1280, orientation="portrait"),
        language="zh", provider="gemini", model="gemini-2.5-flash",
        usage=Usage(requests=1, prompt_tokens=9000, output_tokens=800, cost_usd=0.0047),
    ).model_dump(mode="json")


def fill(database_url: str, count: int) -> int:
    engine = create_db_engine(load_settings(DATABASE_URL=database_url))
    migrate(engine)
    now = utcnow()
    size = 0
    with engine.begin() as conn:
        for start in range(0, count, 1000):
            rows = []
            for n in range(start, min(count, start + 1000)):
                tags = result(n)
                size += len(str(tags))
                rows.append({"task_id": str(uuid.uuid4()), "url": f"https://cdn.example.com/{n}.mp4",
                             "platform": "rpa", "env": "develop",
                             "dimensions": ["vision", "audio", "content", "business"],
                             "language": "zh", "status": "completed", "attempts": 1,
                             "tags": tags, "duration_s": 30.0, "created_at": now,
                             "updated_at": now})
            conn.execute(sa.insert(video_tasks), rows)
    engine.dispose()
    return size


def tree_rss(pid: int) -> int:
    process = psutil.Process(pid)
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def worker_rss(pid: int) -> int:
    """The largest process of the tree: the gunicorn worker that serves the request."""
    process = psutil.Process(pid)
    return max(member.memory_info().rss for member in [process, *process.children(True)])


def export(base: str, pid: int, kind: str) -> tuple[int, int, int, float]:
    """(bytes, rows, peak worker RSS, seconds) of one export."""
    peak = [worker_rss(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], worker_rss(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    size = rows = 0
    with requests.get(f"{base}/api/v1/tasks/export?format={kind}", headers=HEADERS,
                      stream=True, timeout=300) as response:
        assert response.status_code == 200, response.text[:300]
        for piece in response.iter_content(65536):
            size += len(piece)
            rows += piece.count(b"\n")
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return size, rows, peak[0], elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    with bench_database(BENCH_DB) as database_url:
        stored = fill(database_url, args.tasks)
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL,
               "LOG_LEVEL": "WARNING", "API_TOKENS": "bench"}
        api, base = serve("api", "main.py", env)
        try:
            requests.get(f"{base}/api/v1/tasks?limit=100", headers=HEADERS, timeout=30)
            idle = worker_rss(api.pid)
            figures = {kind: export(base, api.pid, kind) for kind in ("jsonl", "csv")}
            tree = tree_rss(api.pid)
        finally:
            api.terminate()
            api.wait()
    mb = 1024 * 1024
    print(f"{args.tasks} completed tasks, {stored / mb:.1f} MB of results in the database")
    print(f"api worker RSS idle (baseline): {idle / mb:.1f} MB; whole gunicorn tree after: "
          f"{tree / mb:.1f} MB")
    print(f"{'format':<6} {'rows':>7} {'MB sent':>8} {'seconds':>8} {'peak RSS MB':>12} "
          f"{'over idle':>10}")
    for kind, (size, rows, peak, seconds) in figures.items():
        print(f"{kind:<6} {rows:>7} {size / mb:>8.1f} {seconds:>8.1f} {peak / mb:>12.1f} "
              f"{(peak - idle) / mb:>+10.1f}")
    growth = max(peak for _, _, peak, _ in figures.values()) - idle
    print(f"target: the export adds under 100 MB to the api: "
          f"{'met' if growth < 100 * mb else 'MISSED'} ({growth / mb:+.1f} MB; the idle "
          f"worker itself is {idle / mb:.0f} MB of imported libraries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
