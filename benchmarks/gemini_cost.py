"""What one video costs in Gemini requests and input tokens, by input mode, against the
original service's four calls per video (one per dimension, each sending the video); and
the pipeline's own overhead around the model call, per stage (stand-in answering at once).

    python -m benchmarks.gemini_cost

Runs against the Gemini stand-in from tests/ on 127.0.0.1, real google-genai client,
Redis db 14 for the key pool. Token estimates use Google's published rates: ~258 tokens
per image or per second of video frames at 1 fps, 32 tokens per second of audio, and
~4 characters per token of English text / 1 token per CJK character.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import redis

from shared.accounts.importer import AccountEntry, import_accounts
from shared.app.tasks import create_task
from shared.config import load_settings
from shared.pipeline.runner import handle_delivery
from shared.services import build_services, gemini_config
from shared.tagging.gemini import FRAME_TOKENS, GeminiTagger
from shared.tasks.models import CreateTaskRequest
from shared.video.probe import ffmpeg_exe
from tests.gemini_standin import GeminiStandIn

ROOT = Path(__file__).resolve().parent.parent

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BENCH_DIR = ROOT / "var" / "bench"
AUDIO_TOKENS_PER_S = 32


def make_video() -> Path:
    path = BENCH_DIR / "720p_60s_audio.mp4"
    if not path.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                        "-i", "testsrc2=size=1280x720:rate=30:duration=60", "-f", "lavfi",
                        "-i", "sine=frequency=440:duration=60", "-c:v", "libx264",
                        "-preset", "veryfast", "-crf", "32", "-g", "60", "-c:a", "aac",
                        "-shortest", str(path)], check=True)
    return path


def text_tokens(text: str) -> int:
    cjk = sum(1 for ch in text if ord(ch) > 0x2E80)
    return cjk + (len(text) - cjk) // 4


def estimate(body: dict, duration_s: float) -> int:
    config = body.get("generationConfig", {})
    resolution = str(config.get("mediaResolution") or config.get("media_resolution")
                     or "MEDIA_RESOLUTION_MEDIUM").removeprefix("MEDIA_RESOLUTION_").lower()
    frame_tokens = FRAME_TOKENS.get(resolution, 258)
    tokens = 0
    for part in body["contents"][0]["parts"]:
        if "text" in part:
            tokens += text_tokens(part["text"])
        inline = part.get("inlineData") or part.get("fileData") or {}
        mime = inline.get("mimeType") or inline.get("mime_type") or ""
        if mime.startswith("video/"):
            tokens += int((frame_tokens + AUDIO_TOKENS_PER_S) * duration_s)
        elif mime.startswith("image/"):
            tokens += frame_tokens
        elif mime.startswith("audio/"):
            tokens += int(AUDIO_TOKENS_PER_S * duration_s)
    system = body.get("systemInstruction", {}).get("parts", [{}])[0].get("text", "")
    return tokens + text_tokens(system)


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def run(mode: str, per_dimension: bool, video_url: str, standin: GeminiStandIn,
        work: Path, resolution: str = "medium") -> tuple[int, int, dict[str, int]]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [AccountEntry(api_key=f"AIzaBENCH{n:031d}", daily_limit=10**6,
                                          minute_limit=10**4, username="b", password="x" * 8,
                                          phone="", email="") for n in range(4)])
    database = work / f"{mode}{per_dimension}{resolution}.db"
    settings = load_settings(DATABASE_URL=f"sqlite:///{database}",
                             GEMINI_MEDIA_RESOLUTION=resolution,
                             REDIS_URL=REDIS_URL, STORAGE_DIR=work / "storage",
                             ALLOW_PRIVATE_URLS=True, TAGGER="gemini", TAG_INPUT=mode,
                             GEMINI_BASE_URL=standin.base_url, RESULT_CACHE=False)
    services = build_services(settings)
    services.tagger = GeminiTagger(services.pool, gemini_config(settings))
    standin.requests.clear()
    groups = [["vision"], ["audio"], ["content"], ["business"]] if per_dimension else [
        ["vision", "audio", "content", "business"]]
    timings: dict[str, int] = {}
    for dims in groups:
        request = CreateTaskRequest.model_validate(
            {"url": video_url, "platform": "rpa", "dimensions": dims},
            context={"platforms": ["rpa"]})
        task_id = create_task(services, request)[0].task_id
        handle_delivery(task_id, services.worker)
        for stage, ms in (services.store.get(task_id).timings or {}).items():
            timings[stage] = timings.get(stage, 0) + ms
    calls = standin.generate_calls()
    tokens = sum(estimate(call.body, 60.0) for call in calls)
    services.store.engine.dispose()
    return len(calls), tokens, timings


def main() -> int:
    video = make_video()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(video.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    standin = GeminiStandIn().start()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for label, mode, per_dim, resolution in [
                ("original: 4 calls, video", "video", True, "medium"),
                ("ours: TAG_INPUT=video", "video", False, "medium"),
                ("ours: video, low resolution", "video", False, "low"),
                ("ours: TAG_INPUT=frames", "frames", False, "medium"),
                ("ours: frames, low resolution", "frames", False, "low")]:
            rows.append((label, *run(mode, per_dim, url, standin, Path(work), resolution)))
    standin.stop()
    server.shutdown()
    redis.Redis.from_url(REDIS_URL).flushdb()
    print(f"60 s 1280x720 video ({video.stat().st_size / 1024**2:.1f} MB), dimensions=all")
    print(f"{'mode':<28} {'requests':>8} {'input tokens (est.)':>20}  stage ms")
    base_tokens = rows[0][2]
    for label, calls, tokens, timings in rows:
        stages = ", ".join(f"{k} {v}" for k, v in timings.items())
        print(f"{label:<28} {calls:>8} {tokens:>20,} ({tokens / base_tokens:.2f}x)  {stages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
