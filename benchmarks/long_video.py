"""Tokens and cost of a 2-hour video tagged in windows vs one request at low resolution.

    python -m benchmarks.long_video [--hours 2] [--window 1200]

The tagger runs for real against the Gemini stand-in (tests/) with the video's length set
to `hours` (the clip sent is short: what is measured is the plan, the calls and the
accounting, not Gemini's speed); the stand-in reports the input tokens the tagger
estimated for each call (Google's per-second rates), so the figures are those a real
video of that length is billed at. Baseline in the same run: one request for the whole
video at low resolution. Uses Redis db 14 on 127.0.0.1:6379 (flushed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import redis

from scripts.sample_video import make_video
from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool
from shared.config import load_settings
from shared.services import gemini_config
from shared.tagging.base import TagRequest
from shared.tagging.gemini import GeminiTagger, estimate_tokens
from shared.video.probe import probe
from tests.gemini_standin import GeminiStandIn

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def run(request: TagRequest, window_s: float, standin: GeminiStandIn) -> dict[str, object]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [AccountEntry(api_key=f"AIzaSyBENCHLONG{n:026d}", daily_limit=10_000,
                                          minute_limit=1000, username="u", password="p",
                                          phone="", email="") for n in range(3)])
    settings = load_settings(TAGGER="gemini", GEMINI_BASE_URL=standin.base_url,
                             GEMINI_WINDOW_S=window_s, GEMINI_MEDIA_RESOLUTION="low")
    tagger = GeminiTagger(AccountPool(client), gemini_config(settings))
    calls_before = len(standin.generate_calls())
    started = time.perf_counter()
    result = tagger.tag(request)
    return {"requests": result.usage.requests, "input_tokens": result.usage.prompt_tokens,
            "output_tokens": result.usage.output_tokens,
            "cost_usd": round(result.usage.cost_usd, 4),
            "calls": len(standin.generate_calls()) - calls_before,
            "moments": len(result.key_moments), "seconds": round(time.perf_counter() - started, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--window", type=float, default=1200.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vtt-bench-") as tmp:
        clip = make_video(Path(tmp) / "clip.mp4", seconds=2, size="320x240")
        media = dataclasses.replace(probe(clip), duration_s=args.hours * 3600)
        request = TagRequest(clip, media, ["vision", "audio", "content", "business"], "zh")
        standin = GeminiStandIn().start()
        try:
            whole_tokens = estimate_tokens(request, "low", False)
            standin.prompt_tokens = whole_tokens
            baseline = run(request, args.hours * 3600 + 1, standin)
            standin.prompt_tokens = estimate_tokens(request, "low", False,
                                                    seconds=args.window)
            windowed = run(request, args.window, standin)
        finally:
            standin.stop()
    print(f"{args.hours:g} h video, windows of {args.window:g} s, low resolution")
    print("one request:", baseline)
    print("windows:    ", windowed)
    print(f"input tokens × {windowed['input_tokens'] / baseline['input_tokens']:.3f}, "
          f"cost × {windowed['cost_usd'] / baseline['cost_usd']:.3f} "
          "(the output of each window is billed too)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
