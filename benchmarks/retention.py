"""Retention under load (issue 34): 100,000 expired finished tasks deleted by the
retention job while creates keep coming — no create may wait more than 100 ms for it.

    python -m benchmarks.retention [--expired 100000] [--recent 10000] [--baseline-s 30]
    python -m benchmarks.retention --gap-locks   # the delete at REPEATABLE READ, to compare

On MariaDB (BENCH_MYSQL_DB, dropped at the end) and Redis (BENCH_REDIS_URL, flushed):
the table is filled with `--expired` finished tasks of benchmarks/scale.py's mix (real
sized results, about 3 KB each) created 40–50 days ago, plus `--recent` tasks of the
mix from the last days; the rollups are recounted. Then POST /api/v1/task/create is
called one after the other through the real api function (functions-framework's test
client, in this process) for `--baseline-s` seconds without the job (the baseline),
and again while the retention job (TASK_RETENTION_DAYS=30, archive on, RETENTION_CHUNK
500) runs in a process of its own until every expired task is gone, and again for
`--baseline-s` after it. Printed: create latency p50 / p95 / p99 / max and creates over
100 ms in each phase, the ratio job / baseline, the server's row lock waits in each phase
(Innodb_row_lock_waits: server wide, so an upper bound), the lock waits seen on this
database while the job ran (sampled every 10 ms, with the statements), each chunk's
delete transaction time, and the job's own figures (tasks/s, archive size).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import redis
import sqlalchemy as sa

from benchmarks import scale
from benchmarks.scale import INSERT_CHUNK, Mix, database, environment, utcnow

scale.BENCH_DB = os.environ.get("BENCH_MYSQL_DB", "vtt_retention_bench")

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
RETENTION_DAYS = 30
LIMIT_MS = 100.0
FINISHED = ("completed", "failed")


def fill(engine: sa.Engine, expired: int, recent: int) -> None:
    """`expired` finished tasks created 40–50 days ago (unfinished draws of the mix are
    skipped there) and `recent` tasks of the whole mix from the last 3 days."""
    columns = {column["name"] for column in sa.inspect(engine).get_columns("video_tasks")}
    mix, now = Mix(34), utcnow()

    def rows() -> Iterator[dict[str, Any]]:
        made = 0
        while made < expired:
            row = mix.row(now - timedelta(days=50 - 10 * made / expired), now, columns)
            if row["status"] in FINISHED:
                made += 1
                yield row
        for n in range(recent):
            yield mix.row(now - timedelta(days=3 * (1 - n / recent)), now, columns)

    drawn = rows()
    while chunk := list(itertools.islice(drawn, INSERT_CHUNK)):
        names = sorted({name for row in chunk for name in row})
        table = sa.table("video_tasks", *(sa.column(name) for name in names))
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [{name: row.get(name) for name in names}
                                            for row in chunk])
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE TABLE video_tasks"))


def creates(client: Any, *, seconds: float | None = None,
            until: subprocess.Popen | None = None) -> list[float]:
    """Create latencies (ms), one create after the other, for `seconds` or until the
    process ends."""
    body = {"url": "https://93.184.215.14/video.mp4", "platform": "rpa", "uid": 7}
    latencies: list[float] = []
    deadline = time.monotonic() + (seconds or math.inf)
    while time.monotonic() < deadline and (until is None or until.poll() is None):
        started = time.perf_counter()
        response = client.post("/api/v1/task/create", json=body)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"create: {response.status_code} {response.get_json()}")
    return latencies


def lock_waits(engine: sa.Engine, since: dict[str, int] | None = None) -> dict[str, int]:
    """The server's row lock waits (count, total ms) — since `since` when given. Server
    wide: other databases on the server add to them, so they bound this run's."""
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SHOW GLOBAL STATUS WHERE Variable_name IN "
                                         "('Innodb_row_lock_waits', 'Innodb_row_lock_time')")
                                 ).all())
    now = {"waits": int(rows["Innodb_row_lock_waits"]),
           "ms": int(rows["Innodb_row_lock_time"])}
    return {name: value - (since or {}).get(name, 0) for name, value in now.items()}


WAITS = """
SELECT r.trx_id, p.db, r.trx_query, TIMESTAMPDIFF(MICROSECOND, r.trx_wait_started, NOW(6)),
       b.trx_query
FROM information_schema.INNODB_LOCK_WAITS w
JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id
JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id
LEFT JOIN information_schema.PROCESSLIST p ON p.id = r.trx_mysql_thread_id"""


def watch_waits() -> None:
    """In a process of its own until stdin closes: every 10 ms, the row lock waits in
    progress on this benchmark's database; prints each wait's longest observed time."""
    import select

    engine = sa.create_engine(os.environ["DATABASE_URL"])
    seen: dict[str, dict[str, Any]] = {}
    with engine.connect() as conn:
        while not select.select([sys.stdin], [], [], 0.01)[0]:
            for trx, db, query, waited_us, blocker in conn.execute(sa.text(WAITS)):
                if db != scale.BENCH_DB:
                    continue
                entry = seen.setdefault(str(trx), {"query": (query or "")[:60],
                                                   "blocker": (blocker or "")[:60]})
                entry["ms"] = max(entry.get("ms", 0), (waited_us or 0) / 1000)
            conn.rollback()
    print(json.dumps(list(seen.values())), flush=True)


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def rank(fraction: float) -> float:
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    return {"creates": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99),
            "max": ordered[-1], "over_100ms": sum(1 for v in ordered if v > LIMIT_MS)}


def job() -> None:
    """The retention job in its own process (the cleanup function's call), to the end;
    each chunk's delete transaction (the only time it holds row locks) is timed."""
    from shared.app.retention import run_retention
    from shared.services import get_services
    from shared.tasks.removal import TaskRemoval

    held: list[float] = []
    delete = TaskRemoval.delete

    def timed_delete(self: TaskRemoval, *args: Any, **kwargs: Any) -> list[str]:
        started = time.perf_counter()
        try:
            return delete(self, *args, **kwargs)
        finally:
            held.append((time.perf_counter() - started) * 1000)

    TaskRemoval.delete = timed_delete  # type: ignore[method-assign]
    if os.environ.get("BENCH_GAP_LOCKS"):  # the delete as first written: REPEATABLE READ
        from shared.tasks import db, removal

        removal.begin_without_gaps = db.begin
    started = time.perf_counter()
    report = run_retention(get_services(), budget_s=3600)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["delete_tx"] = summary(held) if held else None
    print(json.dumps(report), flush=True)


def run(expired: int, recent: int, baseline_s: float, gap_locks: bool = False
        ) -> dict[str, Any]:
    import functions_framework

    from shared.config import ROOT, load_settings
    from shared.services import get_services
    from shared.tasks.db import create_db_engine, migrate

    figures: dict[str, Any] = {}
    with database() as url, tempfile.TemporaryDirectory() as storage:
        environment(url, storage)
        os.environ.update({"REDIS_URL": REDIS_URL, "TASK_RETENTION_DAYS": str(RETENTION_DAYS),
                           "ARCHIVE_BEFORE_DELETE": "true", "RETENTION_CHUNK": "500"})
        engine = create_db_engine(load_settings(DATABASE_URL=url), read_timeout_s=600)
        migrate(engine)
        redis.Redis.from_url(REDIS_URL).flushdb()
        started = time.perf_counter()
        fill(engine, expired, recent)
        print(f"filled {expired:,} + {recent:,} rows in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        get_services().store.recount_rollups()
        api = functions_framework.create_app("api", str(ROOT / "main.py")).test_client()
        creates(api, seconds=2)  # warm-up
        waits = lock_waits(engine)
        figures["baseline"] = summary(creates(api, seconds=baseline_s))
        figures["baseline"]["lock_waits"] = lock_waits(engine, since=waits)
        print(f"baseline: {figures['baseline']}", flush=True)
        waits = lock_waits(engine)
        watcher = subprocess.Popen([sys.executable, "-c", "from benchmarks.retention import "
                                    "watch_waits; watch_waits()"], cwd=ROOT,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
        process = subprocess.Popen([sys.executable, "-c",
                                    "from benchmarks.retention import job; job()"],
                                   cwd=ROOT, stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": str(ROOT),
                                        "BENCH_GAP_LOCKS": "1" if gap_locks else ""})
        figures["during"] = summary(creates(api, until=process))
        figures["during"]["lock_waits"] = lock_waits(engine, since=waits)
        out, _ = process.communicate(timeout=3600)
        seen, _ = watcher.communicate("stop\n", timeout=60)
        figures["waits_seen"] = json.loads(seen.strip().splitlines()[-1])
        waits = lock_waits(engine)
        figures["after"] = summary(creates(api, seconds=baseline_s))
        figures["after"]["lock_waits"] = lock_waits(engine, since=waits)
        figures["job"] = json.loads(out.strip().splitlines()[-1])
        figures["archive_bytes"] = sum(path.stat().st_size
                                       for path in Path(storage, "archive").rglob("*.gz"))
        with engine.connect() as conn:
            figures["left"] = conn.execute(sa.text(
                "SELECT COUNT(*) FROM video_tasks WHERE status IN ('completed','failed') "
                "AND created_at < :cut"), {"cut": utcnow() - timedelta(days=30)}).scalar()
        engine.dispose()
        get_services().store.engine.dispose()
    return figures


def report(figures: dict[str, Any]) -> None:
    base, during, job_ = figures["baseline"], figures["during"], figures["job"]
    print("\n| create latency (ms) | creates | p50 | p95 | p99 | max | over 100 ms | "
          "row lock waits (server) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in (("baseline (no job)", base), ("while the job runs", during),
                      ("after the job (no job)", figures["after"])):
        waits = row["lock_waits"]
        print(f"| {name} | {row['creates']} | {row['p50']:.1f} | {row['p95']:.1f} | "
              f"{row['p99']:.1f} | {row['max']:.1f} | {row['over_100ms']} | "
              f"{waits['waits']} ({waits['ms']} ms) |")
    print(f"| ratio during / baseline | | {during['p50'] / base['p50']:.2f}× | "
          f"{during['p95'] / base['p95']:.2f}× | {during['p99'] / base['p99']:.2f}× | "
          f"{during['max'] / base['max']:.2f}× | | |")
    rate = job_["deleted"] / job_["seconds"] if job_["seconds"] else math.nan
    seen = figures["waits_seen"]
    longest = max((wait["ms"] for wait in seen), default=0.0)
    print(f"\nrow lock waits on this database while the job ran (sampled every 10 ms): "
          f"{len(seen)}, longest {longest:.0f} ms")
    for wait in sorted(seen, key=lambda wait: -wait["ms"])[:5]:
        print(f"  {wait['ms']:.0f} ms: {wait['query']!r} behind {wait['blocker']!r}")
    tx = job_.get("delete_tx") or {}
    if tx:
        print(f"\neach chunk's delete transaction (row locks held), ms: p50 {tx['p50']:.1f}, "
              f"p95 {tx['p95']:.1f}, max {tx['max']:.1f} over {tx['creates']} chunks")
    print(f"\njob: {job_['deleted']:,} deleted ({job_['archived']:,} archived) in "
          f"{job_['chunks']} chunks, {job_['seconds']} s ({rate:,.0f} tasks/s); archive "
          f"{figures['archive_bytes'] / 1e6:.1f} MB; expired left: {figures['left']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expired", type=int, default=100_000)
    parser.add_argument("--recent", type=int, default=10_000)
    parser.add_argument("--baseline-s", type=float, default=30)
    parser.add_argument("--gap-locks", action="store_true",
                        help="delete at REPEATABLE READ, as first written (for comparison)")
    args = parser.parse_args()
    report(run(args.expired, args.recent, args.baseline_s, args.gap_locks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
