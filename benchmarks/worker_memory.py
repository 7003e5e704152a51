"""Peak RSS of a worker process while it downloads, validates, frames and tags a ~50 MB
video, next to a naive worker that reads the whole response into memory, in the same run.

    python -m benchmarks.worker_memory

The worker runs as its own process (SQLite, Redis db 12 or BENCH_REDIS_URL), so its peak
RSS (`ru_maxrss`) is its own; the ffmpeg processes it starts are separate processes.
Rows: the production set-up (TAGGER=gemini against the Gemini stand-in on 127.0.0.1; the
video is over INLINE_MAX_MB, so it goes through the Files API upload), streamed and naive;
then the offline tagger (OCR, keywords, voice activity), whose models dominate its figure.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import redis

from shared.accounts.importer import AccountEntry, import_accounts
from shared.video.probe import ffmpeg_exe
from tests.gemini_standin import GeminiStandIn

ROOT = Path(__file__).resolve().parent.parent

BENCH_DIR = ROOT / "var" / "bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
KEY = "AIzaBENCHMEMORY" + "0" * 24

WORKER = r"""
import json, resource, sys
from shared.config import load_settings
from shared.services import build_services
from shared.tasks.models import CreateTaskRequest
from shared.app.tasks import create_task
from shared.pipeline.runner import handle_delivery
services = build_services(load_settings())
request = CreateTaskRequest.model_validate({"url": sys.argv[1], "platform": "rpa"},
                                           context={"platforms": ["rpa"]})
task_id = create_task(services, request)[0].task_id
if sys.argv[2] == "naive":
    import requests
    body = requests.get(sys.argv[1]).content          # the whole video in memory
    open("/dev/null", "wb").write(body)
reply = handle_delivery(task_id, services.worker)
task = services.store.get(task_id)
print(json.dumps({"status": task.status, "size": task.size_bytes, "frames": len(task.result.frames),
                  "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def make_video() -> Path:
    path = BENCH_DIR / "1080p_60s_50mb.mp4"
    if not path.exists():
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                        "-i", "testsrc2=size=1920x1080:rate=30:duration=60",
                        "-f", "lavfi", "-i", "sine=frequency=440:duration=60",
                        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "6400k",
                        "-maxrate", "6400k", "-bufsize", "12800k", "-g", "60",
                        "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def run_worker(url: str, mode: str, work: Path, tagger_env: dict[str, str]) -> dict:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'tasks.db'}",
           "REDIS_URL": REDIS_URL, "STORAGE_DIR": str(work / "storage"),
           "ALLOW_PRIVATE_URLS": "true", "LOG_LEVEL": "WARNING", **tagger_env}
    out = subprocess.run([sys.executable, "-c", WORKER, url, mode], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    video = make_video()
    handler = functools.partial(Quiet, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    print(f"video: {video.stat().st_size / 1024**2:.1f} MB")
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [AccountEntry(api_key=KEY, daily_limit=1000, minute_limit=100,
                                          username="bench", password="pw", phone="", email="")])
    standin = GeminiStandIn().start()
    gemini = {"TAGGER": "gemini", "GEMINI_BASE_URL": standin.base_url}
    runs = {"gemini streamed": ("streamed", gemini), "gemini naive": ("naive", gemini),
            "offline streamed": ("streamed", {"TAGGER": "local"})}
    rows = {}
    try:
        for name, (mode, tagger_env) in runs.items():
            with tempfile.TemporaryDirectory() as work:
                rows[name] = run_worker(url, mode, Path(work), tagger_env)
    finally:
        server.shutdown()
        standin.stop()
        client.flushdb()
    for name, row in rows.items():
        print(f"{name:<17} status={row['status']} frames={row['frames']} "
              f"worker peak RSS={row['self_kb'] / 1024:.0f} MB")
    ratio = rows["gemini streamed"]["self_kb"] / rows["gemini naive"]["self_kb"]
    print(f"streamed / naive worker RSS (gemini): {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
