"""A backlog against a Gemini stand-in that enforces a real sliding window per key, through
the real local stack (api + worker under functions-framework + consumer), SQLite and Redis.

    python -m benchmarks.quota_backlog [--limit 6] [--window 60] [--tasks 45] [--no-burn]

The conditions of issue 21: 3 keys, the stand-in accepts `limit` generate calls per key per
window (counted on arrival; a refused call is not counted; the 429 carries QuotaFailure
PerMinute and RetryInfo with the whole seconds until that key's window frees a slot), a
backlog of `tasks` distinct ~0.6 MB clips sent inline, consumer concurrency 2 × keys (what
infra/setup.sh gives Cloud Tasks), and a process burning one of this box's two cores
beside it. Three runs, the pool told:

- equal: the real limit;
- higher: limit + 2 (the pool must learn the real limit from Gemini's 429s);
- lower: limit - 2 (the pool's own limit is the ceiling).

Issue 37 adds two cases where the stand-in counts per Google Cloud project and model, as
Gemini does:

- projects: 4 keys in 2 projects (3 share one), each imported with its project and
  minute_limit = the project's limit: the capacity is 2 × limit, not 4 × limit;
- fallback: the same keys, the main model overloaded (503) for the first 2 windows and
  `FALLBACK_MODEL` answering meanwhile with its own, lower limit (`limits` in the file).

Per run: calls accepted per minute (from the first call) against the limit that binds
(the real one, or the pool's when it is lower), the 429s — each with how long before
the key's window freed it arrived — and calls that reached a key inside a cooldown
Gemini had announced, the keys' effective limits at the end and the pool's send margin.
A minute counts as *full* when calls were still waiting at its end. Uses Redis db 13 on
127.0.0.1:6379 (flushed).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests

from scripts.sample_video import make_video
from scripts.stack import LocalStack
from shared.accounts.importer import AccountEntry, import_accounts
from shared.tagging.health import MODEL_BACKOFF_S
from tests.gemini_standin import GeminiStandIn
from tests.helpers import MediaServer

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
KEYS = [f"AIzaSyBENCH{n:029d}" for n in range(3)]
PROJECT_KEYS = {f"AIzaSyBENCH{n:029d}": project
                for n, project in enumerate(["shared", "shared", "shared", "alone"])}
"""The issue-37 case: 3 keys of one project, 1 of another."""
MAIN_MODEL, FALLBACK_MODEL = "gemini-2.5-flash", "gemini-2.0-flash"
FALLBACK_SHARE = 0.5
"""The fallback model's limit, as a share of the main model's (its own, lower quota)."""
ANSWER_GRACE_S = 0.5
"""A call arriving this soon after a 429 was sent left before the pool could know of it."""


def burn() -> None:
    """Keeps one core busy: the production worker does not own the machine."""
    while True:
        pass


def run(name: str, *, limit: int, pool_limit: int, window: float, clips: list[Path],
        media: MediaServer, folder: Path) -> dict[str, object]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    projects = name in ("projects", "fallback")
    keys = list(PROJECT_KEYS) if projects else KEYS
    fallback = max(1, int(limit * FALLBACK_SHARE))
    import_accounts(client, [AccountEntry(
        api_key=key, daily_limit=100_000, minute_limit=pool_limit, username=f"u{n}",
        password="pw", phone="", email="", project=PROJECT_KEYS[key] if projects else None,
        limits={FALLBACK_MODEL: {"minute_limit": fallback}} if name == "fallback" else None)
        for n, key in enumerate(keys)])
    standin = GeminiStandIn(rate_limit=limit, window_s=window, whole_second_delays=True,
                            projects=PROJECT_KEYS if projects else {},
                            model_rate_limits={FALLBACK_MODEL: fallback},
                            overloaded_models=(MAIN_MODEL,)).start()
    if name == "fallback":
        standin.overloaded_until = time.monotonic() + 2 * window
    env = {"DATABASE_URL": f"sqlite:///{folder / (name + '.db')}", "REDIS_URL": REDIS_URL,
           "STORAGE_DIR": str(folder / name), "ALLOW_PRIVATE_URLS": "true", "API_TOKENS": "",
           "TAGGER": "gemini", "GEMINI_BASE_URL": standin.base_url, "RESULT_CACHE": "false",
           "GEMINI_RATE_WINDOW_S": str(window), "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
           "GEMINI_MODEL": MAIN_MODEL,
           "GEMINI_FALLBACK_MODELS": FALLBACK_MODEL if name == "fallback" else ""}
    stack = LocalStack(env, log_dir=folder / f"logs-{name}")
    stack.start(consumer_args=["--concurrency", str(2 * len(keys) if not projects else 6)])
    owners = len(set(PROJECT_KEYS.values())) if projects else len(keys)
    binding = owners * min(limit, pool_limit)
    try:
        session = requests.Session()
        ids = [session.post(f"{stack.api_url}/api/v1/task/create", timeout=10, json={
            "url": media.url(f"files/{clip.name}"), "platform": "rpa"}).json()["task_id"]
            for clip in clips]
        # the fallback case waits for the main model's shared back-off to end too
        deadline = time.monotonic() + window * (len(ids) / binding + 4) + (
            MODEL_BACKOFF_S[1] if name == "fallback" else 0)
        while time.monotonic() < deadline:
            counts = session.get(f"{stack.api_url}/api/v1/stats", timeout=10).json()[
                "data"]["tasks"]
            if counts.get("completed", 0) + counts.get("failed", 0) >= len(ids):
                break
            time.sleep(0.5)
        pool = session.get(f"{stack.api_url}/api/v1/accounts", timeout=10).json()["data"]
    finally:
        stack.stop()
        standin.stop()
    result = measure(counts, standin, window, binding, len(ids), pool, keys)
    if projects:
        result |= per_project(standin, window, keys)
    return result


def per_project(standin: GeminiStandIn, window: float, keys: list[str]) -> dict[str, object]:
    """429s per project, calls per key of the shared project, and each model's calls per
    window against its limit (the figures issue 37 asks for)."""
    refused: dict[str, int] = {}
    for key, times in standin.refused.items():
        refused[standin.project_of(key)] = refused.get(standin.project_of(key), 0) + len(times)
    start = min(t for times in standin.accepted.values() for t in times)
    models = {}
    for model, times in standin.model_accepted.items():
        counts = [0] * (int((max(times) - start) // window) + 1)
        for t in times:
            counts[int((t - start) // window)] += 1
        models[model] = counts
    return {"429s_per_project": refused,
            "calls_per_key": {key[-2:]: len(standin.accepted.get(key, [])) for key in keys},
            "calls_per_model_window": models,
            "max_per_project_model_in_any_window": max_in_window(standin, window)}


def max_in_window(standin: GeminiStandIn, window: float) -> dict[str, int]:
    """The most calls any sliding window held per (project, model): never above its limit."""
    calls: dict[str, list[float]] = {}
    for project, model, t in standin.accepted_calls:
        calls.setdefault(f"{project}/{model}", []).append(t)
    return {owner: max(sum(1 for u in times if t <= u < t + window) for t in times)
            for owner, times in calls.items()}


def measure(counts: dict, standin: GeminiStandIn, window: float, binding: int, total: int,
            pool: dict, keys: list[str]) -> dict[str, object]:
    accepted = sorted(t for times in standin.accepted.values() for t in times)
    start = accepted[0]
    per_minute = [0] * (int((accepted[-1] - start) // window) + 1)
    for t in accepted:
        per_minute[int((t - start) // window)] += 1
    full = [n for i, n in enumerate(per_minute) if sum(per_minute[: i + 1]) < total]
    early_ms, inside_cooldown = [], 0
    for key, refusals in standin.refused.items():
        calls = sorted(standin.accepted.get(key, []) + refusals)
        for t in refusals:
            window_holds = [a for a in standin.accepted.get(key, []) if t - window < a <= t]
            frees = window_holds[0] + window if window_holds else t
            early_ms.append(round((frees - t) * 1000))
            # Gemini said "wait until `frees`"; a call already on its way when the 429
            # was answered (within ANSWER_GRACE_S) could not have known
            inside_cooldown += sum(1 for c in calls if t + ANSWER_GRACE_S < c < frees - 0.001)
    timeline = {key[-2:]: {"accepted": [round(t - start, 1) for t in standin.accepted.get(key, [])],
                           "refused": [round(t - start, 1) for t in standin.refused.get(key, [])]}
                for key in keys}
    return {
        "timeline": timeline,
        "completed": counts.get("completed", 0), "failed": counts.get("failed", 0),
        "per_minute": per_minute,
        "per_minute_of_binding": [round(n / binding, 2) for n in per_minute],
        "steady_full_minutes": [round(n / binding, 2) for n in full[1:]],
        "429s": len(early_ms), "429_ms_before_window_freed": sorted(early_ms),
        "calls_inside_announced_cooldown": inside_cooldown,
        "effective_limits": [a["effective_minute_limit"] for a in pool["accounts"]],
        "project_limits": {p["project"] or p["keys"][0]: {
            m: u["effective_minute_limit"] for m, u in p["models"].items()}
            for p in pool.get("projects", [])},
        "limit_changes": sum(len(a.get("limit_changes", [])) for a in pool["accounts"]),
        "send_margin_ms": pool.get("send_margin_ms"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6, help="real calls per key per window")
    parser.add_argument("--window", type=float, default=60.0, help="window length, seconds")
    parser.add_argument("--tasks", type=int, default=45)
    parser.add_argument("--cases", default="equal,higher,lower")
    parser.add_argument("--no-burn", action="store_true", help="no CPU-burning process")
    parser.add_argument("--keep", type=Path, help="keep the logs and databases here")
    args = parser.parse_args()
    pool_limits = {"equal": args.limit, "higher": args.limit + 2, "lower": args.limit - 2,
                   "projects": args.limit, "fallback": args.limit}
    burner = None
    if not args.no_burn:
        burner = multiprocessing.Process(target=burn, daemon=True)
        burner.start()
    try:
        with tempfile.TemporaryDirectory(prefix="vtt-bench-") as tmp:
            folder = args.keep or Path(tmp)
            clips = [make_video(folder / "media" / f"clip{n:03d}.mp4", seconds=2 + n / 100,
                                size="640x360", extra=["-b:v", "2400k"])
                     for n in range(args.tasks)]
            size_mb = sum(c.stat().st_size for c in clips) / len(clips) / 1e6
            media = MediaServer(folder / "media").start()
            print(f"3 keys × {args.limit}/window of {args.window:g} s, {args.tasks} clips of "
                  f"{size_mb:.2f} MB inline, consumer concurrency {2 * len(KEYS)}, "
                  f"CPU burner {'off' if args.no_burn else 'on'}", flush=True)
            for case in args.cases.split(","):
                result = run(case, limit=args.limit, pool_limit=pool_limits[case],
                             window=args.window, clips=clips, media=media, folder=folder)
                print(f"{case} (pool told {pool_limits[case]}, real {args.limit})",
                      json.dumps(result), flush=True)
            media.stop()
    finally:
        if burner is not None:
            burner.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
