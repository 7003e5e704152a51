"""Reads at scale (issue 34): the task table built at 3,000 / 100,000 / 1,000,000 rows on
MariaDB, then every read the API and the dashboard make timed through the real api
function (functions-framework's test client, in this process), plus a create, the
reconciler's sweep, the rollups' recount and the cleanup job.

    python -m benchmarks.scale [--sizes 3000,100000,1000000] [--calls 15]
    python -m benchmarks.scale --migration-at 100000

The rows are the issue's mix: 90 % completed with a real-sized result (about 3 KB of
JSON, 20–30 tags from the taxonomy and a long tail of free tags), 4 % failed, 3 %
pending, 2 % processing, 1 % waiting_batch; 30,000 a day (a million rows is 33 days),
2,000 uids, two platforms, two envs. Unfinished rows have live leases and deliveries
due later (the reconciler's steady state). Bulk insert: multi-row INSERTs on the
project's own migrations, every index in place. Plus 10 batches of 100 items, 20 Gemini
batch jobs and 20 pool keys for the dashboard's reads.

Each figure is the median and the p95 (nearest rank) of `--calls` calls after one
warm-up, in ms; "growth" is the p95 at this size over the p95 at the first size. The
dashboard's refresh is its seven calls made one after the other (the page makes five of
them together, then its Gemini jobs card asks for the stats again, and every sixth
refresh the charts: this is that refresh). Runs on the code it is started with:
`PYTHONPATH=/other/checkout python benchmarks/scale.py` from that checkout measures
another version (one without the rollups skips the recount). Needs MariaDB on
127.0.0.1:3306 (BENCH_MYSQL_DB, dropped at the end) and Redis (BENCH_REDIS_URL,
flushed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa

MYSQL_ADMIN = os.environ.get("BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
BENCH_DB = os.environ.get("BENCH_MYSQL_DB", "vtt_scale_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PER_DAY = 30_000
UIDS = 2_000
MIX = (("completed", 0.90), ("failed", 0.04), ("pending", 0.03), ("processing", 0.02),
       ("waiting_batch", 0.01))
INSERT_CHUNK = 2_000
"""Rows per multi-row INSERT."""
STAGES = {"downloading": (400, 6_000), "probing": (40, 300), "extracting_frames": (300, 3_000),
          "checking_quota": (1, 50), "tagging": (2_500, 30_000), "saving": (5, 80)}
"""Stage → the range its latency (ms) is drawn from (log-uniform)."""
FREE_TAGS = 3_000
"""The long tail of free tags Gemini adds besides the taxonomy's (Zipf-like draw)."""


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def taxonomy_tags() -> list[str]:
    from shared.config import ROOT

    data = json.loads((ROOT / "shared" / "tagging" / "taxonomy.json").read_text())
    tags: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            tags.extend(key for key in node if key not in ("zh", "en"))
            for value in node.values():
                walk(value)
    walk(data)
    return sorted(set(tags)) or [f"tag{n}" for n in range(100)]


class Mix:
    """The rows of the benchmark's table, deterministic for a seed."""

    def __init__(self, seed: int = 34) -> None:
        self.rng = random.Random(seed)
        self.taxonomy = taxonomy_tags()
        self.free = [f"自由标签{n}" for n in range(FREE_TAGS)]

    def status(self) -> str:
        draw, total = self.rng.random(), 0.0
        for status, share in MIX:
            total += share
            if draw < total:
                return status
        return MIX[0][0]

    def timings(self) -> dict[str, int]:
        return {stage: round(math.exp(self.rng.uniform(math.log(low), math.log(high))))
                for stage, (low, high) in STAGES.items()}

    def result(self) -> dict[str, Any]:
        rng = self.rng
        tags = rng.sample(self.taxonomy, min(len(self.taxonomy), rng.randint(15, 22)))
        tags += [self.free[min(FREE_TAGS - 1, int(rng.paretovariate(1.2)) - 1)]
                 for _ in range(rng.randint(3, 8))]
        tags = list(dict.fromkeys(tags))
        fields = ("characters", "scene", "speech", "theme", "product", "emotion")
        dimensions = {"vision": {}, "audio": {}, "content": {}, "business": {}}
        for index, tag in enumerate(tags):
            dimension = list(dimensions)[index % 4]
            dimensions[dimension].setdefault(fields[index % len(fields)], []).append(
                {"tag": tag, "confidence": round(rng.uniform(0.5, 0.99), 2)})
        prompt, output = rng.randint(4_000, 12_000), rng.randint(300, 1_200)
        return {
            "tags": tags, "dimensions": dimensions,
            "key_moments": [{"start_s": k * 4.0, "end_s": k * 4.0 + 3, "description":
                             f"画面：产品特写与口播第{k}段", "tags": tags[k:k + 2]}
                            for k in range(5)],
            "summary": "竖屏短视频，主播口播介绍产品功能与价格，背景音乐轻快。" * 3,
            "technical": {"duration_s": round(rng.uniform(8, 90), 1), "width": 720,
                          "height": 1280, "orientation": "portrait", "fps": 30.0,
                          "has_audio": True, "container": "mp4", "scene_changes": 7},
            "frames": [{"t_s": k * 3.0, "uri": f"file:///videos/f/{k:03d}.jpg"}
                       for k in range(8)],
            "language": "zh", "provider": "gemini", "model": "gemini-2.5-flash",
            "prompt_version": "v7", "cached": False,
            "usage": {"requests": 1, "prompt_tokens": prompt, "cached_tokens": 0,
                      "output_tokens": output, "thinking_tokens": 0,
                      "cost_usd": round(prompt * 0.3e-6 + output * 2.5e-6, 6),
                      "batch_requests": 0},
            "safety": None, "warnings": []}

    def row(self, created: datetime, now: datetime, columns: set[str]) -> dict[str, Any]:
        rng, status = self.rng, self.status()
        row: dict[str, Any] = {
            "task_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "uid": f"u{rng.randrange(UIDS)}",
            "url": f"https://v.example.com/{rng.getrandbits(48):x}.mp4",
            "platform": rng.choice(("rpa", "miaobi")),
            "env": "production" if rng.random() < 0.9 else "develop",
            "dimensions": '["vision", "audio", "content", "business"]', "language": "zh",
            "status": status, "attempts": 1, "created_at": created, "updated_at": created,
            "delivery": "0", "mode": "batch" if status == "waiting_batch" else "interactive"}
        if status in ("completed", "failed"):
            ended = min(now, created + timedelta(seconds=rng.uniform(5, 120)))
            row.update(processed_start=created, processed_end=ended, updated_at=ended,
                       timings=json.dumps(self.timings()))
        if status == "completed":
            result = self.result()
            row["tags"] = json.dumps(result, ensure_ascii=False)
            row.update(usage_columns(result, columns))
        elif status == "failed":
            row.update(error_code="download_failed", message="HTTP 404 from the video host")
        elif status == "pending":
            row.update(attempts=0, next_attempt_at=now + timedelta(minutes=rng.uniform(60, 120)),
                       waiting_since=created)
        elif status == "processing":
            row.update(stage="tagging", processed_start=now,
                       lease_until=now + timedelta(minutes=rng.uniform(30, 60)))
        else:
            row.update(stage="waiting_batch", attempts=0, batch_token=uuid.uuid4().hex[:16],
                       batch_since=now - timedelta(minutes=rng.uniform(1, 60)))
        return row


def usage_columns(result: dict[str, Any], columns: set[str]) -> dict[str, int]:
    """The usage columns a version with them fills on completion (none otherwise)."""
    if "usage_cost_micro_usd" not in columns:
        return {}
    usage = result["usage"]
    values = {f"usage_{name}": int(usage[name]) for name in
              ("requests", "prompt_tokens", "cached_tokens", "output_tokens",
               "thinking_tokens", "batch_requests")}
    values["usage_cost_micro_usd"] = round(usage["cost_usd"] * 1_000_000)
    return values


def fill(engine: sa.Engine, count: int, *, seed: int = 34) -> float:
    """`count` rows of the mix, created over the last count / PER_DAY days, oldest
    first; returns the seconds it took."""
    columns = {column["name"] for column in sa.inspect(engine).get_columns("video_tasks")}
    mix, now = Mix(seed), utcnow()
    span = timedelta(days=count / PER_DAY)
    started = time.perf_counter()
    for start in range(0, count, INSERT_CHUNK):
        rows = [mix.row(now - span + span * ((start + n) / count), now, columns)
                for n in range(min(INSERT_CHUNK, count - start))]
        names = sorted({name for row in rows for name in row})
        table = sa.table("video_tasks", *(sa.column(name) for name in names))
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [{name: row.get(name) for name in names}
                                            for row in rows])
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE TABLE video_tasks"))
    return time.perf_counter() - started


def extras(engine: sa.Engine, client: redis.Redis) -> None:
    """What the dashboard shows besides tasks: 10 batches of 100 items (the newest
    tasks), 20 Gemini batch jobs, 20 pool keys."""
    from shared.accounts.importer import AccountEntry, import_accounts

    now = utcnow()
    with engine.begin() as conn:
        ids = [row[0] for row in conn.execute(sa.text(
            "SELECT task_id FROM video_tasks ORDER BY id DESC LIMIT 1000"))]
        for n in range(10):
            batch_id = str(uuid.uuid4())
            conn.execute(sa.text(
                "INSERT INTO batches (batch_id, name, state, total, accepted, rejected, "
                "request_sha256, created_at, updated_at) VALUES (:b, :n, 'open', 100, 100, 0, "
                "'x', :now, :now)"), {"b": batch_id, "n": f"batch {n}", "now": now})
            conn.execute(sa.text(
                "INSERT INTO batch_items (batch_id, item_index, task_id) VALUES (:b, :i, :t)"),
                [{"b": batch_id, "i": i, "t": task_id}
                 for i, task_id in enumerate(ids[n * 100:(n + 1) * 100])])
        conn.execute(sa.text(
            "INSERT INTO gemini_jobs (job_id, key_id, model, state, items, total, created_at, "
            "updated_at) VALUES (:j, 'k', 'gemini-2.5-flash', 'succeeded', '[]', 0, :now, :now)"),
            [{"j": uuid.uuid4().hex, "now": now} for _ in range(20)])
    import_accounts(client, [AccountEntry(api_key=f"AIzaSyBENCH{n:029d}", daily_limit=1500,
                                          minute_limit=15, username=f"u{n}", password="pw",
                                          phone="", email="") for n in range(20)])


def timed(call: Callable[[], Any], calls: int) -> dict[str, float]:
    """Median and p95 (nearest rank) of `calls` calls after one warm-up, in ms."""
    call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {"p50": statistics.median(samples),
            "p95": samples[max(1, math.ceil(0.95 * len(samples))) - 1]}


def getter(client: Any, path: str) -> Callable[[], Any]:
    """A GET that must answer 200 (the whole body read: exports stream)."""
    def get() -> Any:
        response = client.get(path)
        body = response.get_data()
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {body[:200]!r}")
        return response
    return get


def reads(client: Any, engine: sa.Engine) -> dict[str, Callable[[], Any]]:
    """Every read the API and the dashboard make, as calls."""
    with engine.connect() as conn:
        task_id, uid = conn.execute(sa.text(
            "SELECT task_id, uid FROM video_tasks WHERE status = 'completed' "
            "ORDER BY id DESC LIMIT 1 OFFSET 500")).one()
    hour_ago = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dashboard = ["/api/v1/stats", "/api/v1/accounts", "/api/v1/tasks?limit=15",
                 "/api/v1/batches?limit=10", "/api/v1/accounts/history?days=30",
                 "/api/v1/stats", "/api/v1/stats/charts"]
    paths = {
        "GET /api/v1/stats": "/api/v1/stats",
        "GET /api/v1/stats/charts": "/api/v1/stats/charts",
        "GET /api/v1/tasks/export?since=1h": f"/api/v1/tasks/export?since={hour_ago}",
        "GET /api/v1/tasks/export?since=1h&status=failed":
            f"/api/v1/tasks/export?since={hour_ago}&status=failed",
        "GET /api/v1/tasks?uid=…": f"/api/v1/tasks?uid={uid}",
        "GET /api/v1/task/{id}": f"/api/v1/task/{task_id}",
        "GET /api/v1/tasks (newest)": "/api/v1/tasks",
        "GET /api/v1/tasks?status=failed": "/api/v1/tasks?status=failed",
        "GET /api/v1/tasks?status=waiting_batch": "/api/v1/tasks?status=waiting_batch",
        "GET /api/v1/tasks?platform=miaobi": "/api/v1/tasks?platform=miaobi",
        "GET /api/v1/accounts": "/api/v1/accounts",
        "GET /api/v1/batches?limit=10": "/api/v1/batches?limit=10",
        "GET /api/v1/accounts/history?days=30": "/api/v1/accounts/history?days=30",
        "GET /healthz": "/healthz",
    }
    paths["GET /api/v1/tasks page 20"] = f"/api/v1/tasks?limit=20&cursor={cursor_of(client, 20)}"
    calls = {name: getter(client, path) for name, path in paths.items()}
    calls["dashboard refresh (7 calls)"] = lambda: [getter(client, p)() for p in dashboard]
    return calls


def cursor_of(client: Any, page: int) -> str:
    """The cursor that asks for page `page` of the newest-first list (20 a page)."""
    cursor = ""
    for _ in range(page - 1):
        data = getter(client, f"/api/v1/tasks?limit=20{cursor}")().get_json()["data"]
        cursor = f"&cursor={data['next_cursor']}"
    return cursor.removeprefix("&cursor=")


def jobs(client: Any, engine: sa.Engine) -> dict[str, Callable[[], Any]]:
    """The writes and periodic jobs: a create, the reconciler's sweep, the recount, the
    cleanup function (its every-minute and its daily scope)."""
    from shared.pipeline.reaper import reconcile
    from shared.services import get_services

    services = get_services()
    body = {"url": "https://93.184.215.14/video.mp4", "platform": "rpa", "uid": 7}

    def create() -> None:
        response = client.post("/api/v1/task/create", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"create: {response.status_code}")

    found = {"POST /api/v1/task/create": create,
             "reconciler sweep": lambda: reconcile(services.worker)}
    if hasattr(services.store, "recount_rollups"):
        found["rollups recount (exact)"] = lambda: services.store.recount_rollups()
    cleanup = cleanup_client()
    found["cleanup ?scope=tasks"] = getter(cleanup, "/?scope=tasks")
    found["cleanup (daily: videos + sweep + keys)"] = getter(cleanup, "/")
    return found


def cleanup_client() -> Any:
    import functions_framework

    from shared.config import ROOT

    return functions_framework.create_app("cleanup", str(ROOT / "main.py")).test_client()


def environment(database_url: str, storage: str) -> None:
    os.environ.update({
        "DATABASE_URL": database_url, "REDIS_URL": REDIS_URL, "STORAGE_DIR": storage,
        "API_TOKENS": "", "WORKER_TOKEN": "", "ALLOW_PRIVATE_URLS": "false",
        "ROLLUP_RECOUNT_S": "86400", "LOG_LEVEL": "WARNING", "DB_POOL_SIZE": "5"})
    from shared.config import get_settings
    from shared.services import get_services

    get_settings.cache_clear()
    get_services.cache_clear()


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh BENCH_MYSQL_DB, dropped again after."""
    admin = sa.create_engine(MYSQL_ADMIN)
    with admin.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {BENCH_DB}"))
        conn.execute(sa.text(f"CREATE DATABASE {BENCH_DB} CHARACTER SET utf8mb4"))
    try:
        yield f"{MYSQL_ADMIN.rstrip('/')}/{BENCH_DB}?charset=utf8mb4"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {BENCH_DB}"))
        admin.dispose()


def run_size(size: int, calls: int, storage: str) -> dict[str, dict[str, float]]:
    """Build the table at `size` rows and time everything; returns name → figures."""
    import functions_framework

    from shared.config import ROOT, load_settings
    from shared.services import get_services
    from shared.tasks.db import create_db_engine, migrate

    figures: dict[str, dict[str, float]] = {}
    with database() as url:
        environment(url, storage)
        engine = create_db_engine(load_settings(DATABASE_URL=url), read_timeout_s=600)
        migrate(engine)
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        figures["bulk insert (s)"] = {"p50": fill(engine, size), "p95": 0.0}
        extras(engine, client)
        store = get_services().store
        if hasattr(store, "recount_rollups"):  # the first recount fills the windows
            started = time.perf_counter()
            store.recount_rollups()
            figures["first recount after the fill"] = {
                "p50": (time.perf_counter() - started) * 1000, "p95": 0.0}
        api = functions_framework.create_app("api", str(ROOT / "main.py")).test_client()
        for name, call in {**reads(api, engine), **jobs(api, engine)}.items():
            figures[name] = measure(call, calls)
            print(f"  {size:>9,} {name:<48} {figures[name]['p50']:>9.1f} "
                  f"{figures[name]['p95']:>9.1f}", flush=True)
        engine.dispose()
        get_services().store.engine.dispose()
        client.flushdb()
    return figures


def measure(call: Callable[[], Any], calls: int) -> dict[str, float]:
    """Timed figures, or the failure (e.g. a 503 after the database's read limit)."""
    try:
        return timed(call, calls)
    except RuntimeError as error:
        started = time.perf_counter()
        try:
            call()
        except RuntimeError:
            pass
        return {"p50": math.nan, "p95": (time.perf_counter() - started) * 1000,
                "error": str(error)[:80]}


def report(results: dict[int, dict[str, dict[str, float]]]) -> None:
    sizes = sorted(results)
    first = sizes[0]
    print("\n| read | " + " | ".join(f"{s:,} p50 / p95 ms" for s in sizes) + " | growth |")
    print("|---|" + "---:|" * len(sizes) + "---:|")
    for name in results[first]:
        cells = []
        for size in sizes:
            value = results[size].get(name, {})
            cell = f"{value.get('p50', math.nan):.1f} / {value.get('p95', math.nan):.1f}"
            cells.append(cell + (f" ({value['error']})" if "error" in value else ""))
        base = results[first].get(name, {}).get("p95") or math.nan
        growth = results[sizes[-1]].get(name, {}).get("p95", math.nan) / base
        print(f"| {name} | " + " | ".join(cells) + f" | {growth:.2f}× |")


def time_migration(size: int) -> None:
    """Migration 0009 on a table of `size` rows of the mix built at 0008 (the usage
    backfill, the indexes, the counts)."""
    from shared.config import load_settings
    from shared.tasks.db import create_db_engine, migrate

    with database() as url:
        engine = create_db_engine(load_settings(DATABASE_URL=url), read_timeout_s=3600)
        migrate(engine, "0008")
        print(f"{size:,} rows at 0008 in {fill(engine, size):.0f} s", flush=True)
        started = time.perf_counter()
        migrate(engine)
        print(f"migration 0009: {time.perf_counter() - started:.1f} s")
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3000,100000,1000000")
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--migration-at", type=int, default=0,
                        help="only time migration 0009 on a table of this many rows")
    args = parser.parse_args()
    if args.migration_at:
        time_migration(args.migration_at)
        return 0
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as storage:
        for size in (int(s) for s in args.sizes.split(",")):
            print(f"building {size:,} rows …", flush=True)
            results[size] = run_size(size, args.calls, storage)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
