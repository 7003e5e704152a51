"""Rebuild the search index from the task store (MySQL or SQLite), in bulk.

    python scripts/reindex.py [--env ENV] [--since YYYY-MM-DD] [--batch 500]

Indexes every completed task (of that env, created since that day), printing progress;
safe to re-run (documents are keyed by task id). With SEMANTIC_SEARCH=true it then fills
the passages' missing embeddings (as the `embeddings` job does) until they are all filled
or the embedding quota runs out (the job goes on later). Exit code 2 on bad arguments or
when ES_URL is not set.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from scripts.cli_args import day
from shared.app.embeddings import embeddings_job
from shared.config import get_settings
from shared.logs import setup_logging
from shared.services import build_services


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=get_settings().ENVS)
    parser.add_argument("--since", type=day, help="only tasks created since (YYYY-MM-DD)")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    settings = get_settings()
    setup_logging("WARNING", settings.logs.LOG_FORMAT)
    if not settings.search.ES_URL:
        parser.error("ES_URL is not set: there is no search index to rebuild")
    services = build_services(settings)
    assert services.index is not None
    since = datetime.combine(args.since, datetime.min.time()) if args.since else None
    total = services.queries.count_completed(env=args.env, since=since)
    started, done = time.perf_counter(), 0
    for batch in services.queries.iter_completed(env=args.env, since=since, batch=args.batch):
        indexed = services.index.bulk_index(batch, chunk_size=args.batch)
        services.followups.mark_indexed_many(indexed)
        done += len(indexed)
        rate = done / max(time.perf_counter() - started, 1e-6)
        print(f"indexed {done}/{total} ({rate:.0f} docs/s)", flush=True)
    services.index.refresh()
    print(f"done: {done} of {total} completed tasks indexed in "
          f"{time.perf_counter() - started:.1f} s")
    job = embeddings_job(services, max_passages=1_000_000)
    if job["enabled"]:
        print(f"embeddings: {job['embedded']} of {job['missing_before']} passages filled"
              + (f"; stopped ({job['stopped']}), the embeddings job goes on"
                 if job["stopped"] else ""))
    return 0 if done == total else 1


if __name__ == "__main__":
    sys.exit(main())
