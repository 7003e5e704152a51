"""Search: bulk reindex of 10,000 generated results from the task store, next to indexing
them one request per document (what the worker does per task) as the baseline, then
search latency for a two-tag filter with facets.

    python -m benchmarks.search_index [--docs 10000] [--queries 300]

Runs osmem-server (in-memory, OpenSearch-compatible) on 127.0.0.1 and a SQLite store in
a temporary folder; the elasticsearch client sends plain JSON (ES_COMPAT_HEADERS=false).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from shared.config import load_settings
from shared.search.client import build_search_client
from shared.search.index import TagIndex
from shared.search.query import SearchQuery
from shared.tasks.db import create_db_engine, migrate
from shared.tasks.queries import TaskQueries
from shared.tasks.schema import video_tasks

ROOT = Path(__file__).resolve().parent.parent

VOCABULARY = ["女性", "男性", "美妆", "口播", "美食", "探店", "户外", "室内", "竖屏", "横屏",
              "教程", "测评", "开箱", "宠物", "旅行", "健身", "穿搭", "家居", "数码", "母婴",
              "搞笑", "剧情", "音乐", "舞蹈", "汽车", "游戏", "知识", "情感", "亲子", "护肤"]


def generated_rows(count: int) -> list[dict]:
    rng = random.Random(7)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = []
    for n in range(count):
        tags = rng.sample(VOCABULARY, 6)
        result = {
            "tags": tags, "summary": f"{tags[0]}{tags[1]}视频，{tags[2]}风格",
            "dimensions": {"vision": {"characters": [{"tag": t, "confidence": 0.9}
                                                     for t in tags[:3]], "scene": [],
                                      "cinematography": []},
                           "content": {"theme": [{"tag": t, "confidence": 0.8}
                                                 for t in tags[3:]], "narrative": [],
                                       "emotion": [], "on_screen_text": []}},
            "technical": {"duration_s": rng.uniform(5, 120), "has_audio": True,
                          "container": "mp4", "orientation": "portrait"},
            "language": "zh", "provider": "gemini", "model": "gemini-2.5-flash",
        }
        created = now - timedelta(minutes=n)
        rows.append({"task_id": uuid.uuid4().hex, "url": f"https://cdn.example.com/{n}.mp4",
                     "platform": rng.choice(["rpa", "miaobi"]), "env": "develop",
                     "dimensions": ["vision", "content"], "language": "zh",
                     "status": "completed", "attempts": 1, "tags": result,
                     "created_at": created, "updated_at": created})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--baseline-docs", type=int, default=1000,
                        help="documents indexed one by one for the baseline rate")
    args = parser.parse_args()
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False, addr="127.0.0.1:0")
    with tempfile.TemporaryDirectory() as work:
        engine = create_db_engine(load_settings(DATABASE_URL=f"sqlite:///{work}/t.db"))
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(sa.insert(video_tasks), generated_rows(args.docs))
        queries = TaskQueries(engine)
        client = build_search_client(server.url, compat_headers=False)

        single = TagIndex(client, "bench-single")
        tasks = next(queries.iter_completed(batch=args.baseline_docs))
        started = time.perf_counter()
        for task in tasks:
            single.index_task(task)
        single_rate = len(tasks) / (time.perf_counter() - started)

        bulk = TagIndex(client, "bench-bulk")
        started, done = time.perf_counter(), 0
        for batch in queries.iter_completed(batch=500):
            done += len(bulk.bulk_index(batch))
        bulk_seconds = time.perf_counter() - started
        bulk.refresh()

        rng = random.Random(3)
        latencies, totals = [], []
        for _ in range(args.queries):
            query = SearchQuery(tags=rng.sample(VOCABULARY, 2), limit=20)
            started = time.perf_counter()
            page = bulk.search(query)
            latencies.append((time.perf_counter() - started) * 1000)
            totals.append(page.total)
        engine.dispose()
    server.close()
    latencies.sort()
    print(f"bulk reindex: {done} docs in {bulk_seconds:.2f} s = {done / bulk_seconds:.0f} docs/s"
          f" (one request per doc: {single_rate:.0f} docs/s; bulk is "
          f"{done / bulk_seconds / single_rate:.1f}x)")
    print(f"search, two-tag filter + top-20 tag facets, {args.queries} queries: "
          f"p50 {statistics.median(latencies):.1f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99) - 1]:.1f} ms "
          f"(median {statistics.median(totals):.0f} hits)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
