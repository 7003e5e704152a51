"""A backlog against a Gemini stand-in that enforces its own per-window limit, through the
real local stack (api + worker under functions-framework + consumer), SQLite and Redis.

    python -m benchmarks.quota_backlog [--limit 6] [--window 6] [--backlog-windows 10]

3 keys × `limit` calls per window; the stand-in answers the real 429 + RetryInfo above
it. A backlog of `backlog-windows` × capacity tasks is created at once. Gemini's window is
a minute; `--window` shrinks it (default 6 s, ×10 faster, same ratios) through
GEMINI_RATE_WINDOW_S. Three runs in one go:

- baseline: the consumer delivers ids as they come (`--no-key-gate`); tasks that find no
  key wait for a promised slot;
- flow control: fresh ids wait for a key slot of their own before delivery (the default);
- over-limit: flow control, with the pool told `limit + 3` while the stand-in allows `limit`.

Per run: failed tasks, 429s (all self-inflicted: the pool knows the limit, except in the
third run), utilisation (the time the calls need at the
ideal pace: the n-th call at n // capacity windows after the first, ÷ the real time to
the last call), bounces per successful call (deliveries that found no key), and the delay
between a slot freeing (a call leaving the window) and the call that took it (p50, p90).
Uses Redis db 13 on 127.0.0.1:6379 (flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests

from scripts.sample_video import make_video
from scripts.stack import LocalStack
from shared.accounts.importer import AccountEntry, import_accounts
from tests.gemini_standin import GeminiStandIn
from tests.helpers import MediaServer

ROOT = Path(__file__).resolve().parent.parent

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
KEYS = [f"AIzaSyBENCH{n:029d}" for n in range(3)]


def run(name: str, *, limit: int, pool_limit: int, window: float, backlog: int,
        gate: bool, media: MediaServer, folder: Path) -> dict[str, object]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [AccountEntry(api_key=key, daily_limit=100_000,
                                          minute_limit=pool_limit, username=f"u{n}",
                                          password="pw", phone="", email="")
                             for n, key in enumerate(KEYS)])
    standin = GeminiStandIn(rate_limit=limit, window_s=window).start()
    env = {"DATABASE_URL": f"sqlite:///{folder / (name + '.db')}", "REDIS_URL": REDIS_URL,
           "STORAGE_DIR": str(folder / name), "ALLOW_PRIVATE_URLS": "true", "API_TOKENS": "",
           "TAGGER": "gemini", "GEMINI_BASE_URL": standin.base_url, "RESULT_CACHE": "false",
           "GEMINI_RATE_WINDOW_S": str(window), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    stack = LocalStack(env, log_dir=folder / f"logs-{name}")
    args = ["--concurrency", "4"] + ([] if gate else ["--no-key-gate"])
    stack.start(consumer_args=args)
    try:
        session = requests.Session()
        ids = [session.post(f"{stack.api_url}/api/v1/task/create", timeout=10, json={
            "url": media.url("files/clip.mp4"), "platform": "rpa"}).json()["task_id"]
            for _ in range(backlog)]
        deadline = time.monotonic() + window * (backlog / (3 * limit) + 6)
        while time.monotonic() < deadline:
            counts = session.get(f"{stack.api_url}/api/v1/stats", timeout=10).json()[
                "data"]["tasks"]
            if counts.get("completed", 0) + counts.get("failed", 0) >= len(ids):
                break
            time.sleep(0.5)
    finally:
        stack.stop()
        standin.stop()
    return measure(counts, standin, window, limit, folder / f"logs-{name}" / "worker.log")


def measure(counts: dict, standin: GeminiStandIn, window: float, limit: int,
            worker_log: Path) -> dict[str, object]:
    accepted = sorted(t for times in standin.accepted.values() for t in times)
    refused = sorted(t for times in standin.refused.values() for t in times)
    start, end = accepted[0], accepted[-1]
    capacity = 3 * limit
    # the n-th call can go at (n // capacity) windows after the first at the earliest
    ideal = (len(accepted) - 1) // capacity * window
    delays = []
    for times in standin.accepted.values():
        for i in range(len(times) - limit):
            frees = times[i] + window
            if start + window <= frees < end - window:
                delays.append(max(0.0, times[i + limit] - frees))
    bounces = 0
    for line in worker_log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            bounces += (record.get("error_code") == "no_key_available"
                        and record.get("message", "").startswith("next try"))
    delays.sort()
    return {
        "completed": counts.get("completed", 0), "failed": counts.get("failed", 0),
        "pending": counts.get("pending", 0) + counts.get("processing", 0),
        "calls": len(accepted), "429s": len(refused),
        "429s_after_first_window": sum(1 for t in refused if t >= start + window),
        "utilisation": round(ideal / (end - start), 3) if end > start else None,
        "bounces_per_call": round(bounces / max(1, len(accepted)), 3),
        "slot_to_call_p50_ms": round(statistics.median(delays) * 1000) if delays else None,
        "slot_to_call_p90_ms": round(delays[int(0.9 * (len(delays) - 1))] * 1000)
        if delays else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6, help="calls per key per window")
    parser.add_argument("--window", type=float, default=6.0, help="window length, seconds")
    parser.add_argument("--backlog-windows", type=int, default=10)
    args = parser.parse_args()
    backlog = args.backlog_windows * 3 * args.limit
    with tempfile.TemporaryDirectory(prefix="vtt-bench-") as tmp:
        folder = Path(tmp)
        make_video(folder / "media" / "clip.mp4", seconds=2, size="320x240")
        media = MediaServer(folder / "media").start()
        results = {}
        for name, gate, pool_limit in [("baseline", False, args.limit),
                                       ("flow_control", True, args.limit),
                                       ("over_limit", True, args.limit + 3)]:
            results[name] = run(name, limit=args.limit, pool_limit=pool_limit,
                                window=args.window, backlog=backlog, gate=gate,
                                media=media, folder=folder)
            print(name, json.dumps(results[name]), flush=True)
        media.stop()
    base, flow = results["baseline"], results["flow_control"]
    print(f"3 keys × {args.limit}/window of {args.window:g} s, backlog {backlog} tasks")
    print(f"bounces per call: baseline {base['bounces_per_call']} → flow control "
          f"{flow['bounces_per_call']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
