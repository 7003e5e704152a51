"""A large video through the worker (issue 35): peak RSS of the worker process, peak size
of its temporary folder and time per stage, for the streamed path (this tree) and the
previous one (the tree at `git merge-base HEAD main`, or --old-rev), in the same run.

    python -m benchmarks.large_video                       # 2 h, ~1.5 GB, local folder
    python -m benchmarks.large_video --minutes 20 --storage gcs

The video: a 60 s 720p clip (x264 + AAC, ~1.8 Mbit/s) repeated with `-stream_loop` and
stream copy to the length asked for; ffmpeg writes the moov atom at the end, so probing
it in place needs seeking. It is served over HTTP from 127.0.0.1 and tagged with
TAGGER=gemini against the Gemini stand-in (tests/gemini_standin.py; over INLINE_MAX_MB,
so through the Files API upload, in GEMINI_WINDOW_S parts). Storage: the local folder, or
the GCS emulator (gcp-storage-emulator, its own process, in memory; its resumable upload
copies the whole object on every chunk, so it is quadratic in the size: keep --minutes
small there). The worker is its own process (SQLite, Redis db BENCH_REDIS_URL, default
db 11); its peak RSS (`ru_maxrss`) does not count the ffmpeg processes it starts.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

from shared.accounts.importer import AccountEntry, import_accounts
from shared.video.probe import ffmpeg_exe
from tests.gemini_standin import GeminiStandIn

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "var" / "bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
KEY = "AIzaBENCHLARGE" + "0" * 25
TARGET_RSS_MB, TARGET_TMP_MB = 300, 100

WORKER = r"""
import json, resource, sys, time
from shared.config import load_settings
from shared.services import build_services
from shared.tasks.models import CreateTaskRequest
from shared.app.tasks import create_task
from shared.pipeline.runner import handle_delivery
services = build_services(load_settings())
request = CreateTaskRequest.model_validate({"url": sys.argv[1], "platform": "rpa",
                                            "dimensions": ["vision", "audio"]},
                                           context={"platforms": ["rpa"]})
task_id = create_task(services, request)[0].task_id
started = time.perf_counter()
handle_delivery(task_id, services.worker)
took = time.perf_counter() - started
task = services.store.get(task_id)
print(json.dumps({"status": task.status, "message": task.message, "size": task.size_bytes,
                  "timings": task.timings, "seconds": took,
                  "self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


EMULATOR = r"""
import http.server, logging, sys, threading
from gcp_storage_emulator import server
# one thread per connection, as GCS serves them: ffmpeg seeking (moov at the end) opens a
# second range request before it closes the first, which a one-at-a-time server deadlocks on
server.server.HTTPServer = http.server.ThreadingHTTPServer
logging.disable(logging.CRITICAL)
server.create_server("127.0.0.1", int(sys.argv[1]), in_memory=True,
                     default_bucket="vtt-bench").start()
threading.Event().wait()
"""


def make_video(minutes: int) -> Path:
    """`minutes` of 720p at ~1.8 Mbit/s: 2 h is ~1.5 GB."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    clip = BENCH_DIR / "720p_60s.mp4"
    if not clip.exists():
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
                        "-i", "testsrc2=size=1280x720:rate=30:duration=60",
                        "-f", "lavfi", "-i", "sine=frequency=440:duration=60",
                        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "1650k",
                        "-maxrate", "1650k", "-bufsize", "3300k", "-g", "60",
                        "-c:a", "aac", "-b:a", "128k", "-shortest", str(clip)], check=True)
    path = BENCH_DIR / f"720p_{minutes}min.mp4"
    if not path.exists():
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop",
                        str(minutes - 1), "-i", str(clip), "-c", "copy",
                        "-t", str(minutes * 60), str(path)], check=True)
    return path


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_emulator() -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", EMULATOR, str(port)],
                               stderr=subprocess.DEVNULL)  # a closed range request is noise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the GCS emulator did not start")


def folder_bytes(folder: Path) -> int:
    total = 0
    for base, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.stat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def run_worker(tree: Path, url: str, work: Path, env_extra: dict[str, str]) -> dict:
    """The worker in its own process in `tree`; its TMPDIR watched for its peak size."""
    tmp = work / "tmp"
    tmp.mkdir(parents=True)
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'tasks.db'}",
           "REDIS_URL": REDIS_URL, "STORAGE_DIR": str(work / "storage"), "TMPDIR": str(tmp),
           "ALLOW_PRIVATE_URLS": "true", "LOG_LEVEL": "WARNING", "TAGGER": "gemini",
           "DOWNLOAD_TOTAL_TIMEOUT_S": "3600", "TASK_TIMEOUT_S": "600",
           "GEMINI_FILE_TIMEOUT_S": "600", "PYTHONPATH": str(tree), **env_extra}
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], folder_bytes(tmp))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = subprocess.run([sys.executable, "-c", WORKER, url], cwd=tree, env=env,
                             capture_output=True, text=True)
    finally:
        done.set()
        watcher.join()
    if out.returncode != 0:
        raise RuntimeError(f"worker failed in {tree}:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["tmp_peak"] = peak[0]
    return row


def old_tree(rev: str, into: Path) -> Path:
    """The previous path: the repository at `rev`, unpacked next to this one."""
    base = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", base], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def report(name: str, row: dict, size: int) -> None:
    stages = " ".join(f"{stage}={ms / 1000:.1f}s" for stage, ms in row["timings"].items())
    print(f"{name:<22} status={row['status']} worker peak RSS={row['self_kb'] / 1024:.0f} MB "
          f"tmp peak={row['tmp_peak'] / 1024**2:.1f} MB total={row['seconds']:.0f}s "
          f"({size / 1024**2 / max(row['seconds'], 0.001):.0f} MB/s)")
    print(f"{'':<22} {stages}")
    if row["status"] != "completed":
        print(f"{'':<22} message: {row['message']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--storage", choices=("local", "gcs"), default="local")
    parser.add_argument("--old-rev", default="",
                        help="the previous path's revision (default: merge-base with main)")
    parser.add_argument("--no-old", action="store_true", help="measure the new path only")
    args = parser.parse_args()
    video = make_video(args.minutes)
    size = video.stat().st_size
    print(f"video: {args.minutes} min 720p, {size / 1024**2:.0f} MB, storage={args.storage}")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(video.parent)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [AccountEntry(api_key=KEY, daily_limit=10000, minute_limit=1000,
                                          username="bench", password="pw", phone="", email="")])
    standin = GeminiStandIn().start()
    emulator = None
    env = {"GEMINI_BASE_URL": standin.base_url}
    if args.storage == "gcs":
        emulator, host = start_emulator()
        env.update(STORAGE="gcs", GCS_BUCKET="vtt-bench", STORAGE_EMULATOR_HOST=host)
    work = Path(tempfile.mkdtemp(prefix="vtt-large-", dir=BENCH_DIR))
    rows = {}
    try:
        trees = {"streamed (this tree)": ROOT}
        if not args.no_old:
            rev = args.old_rev or subprocess.run(
                ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True,
                text=True, check=True).stdout.strip()
            trees[f"previous ({rev[:8]})"] = old_tree(rev, work / "old")
        for index, (name, tree) in enumerate(trees.items()):
            standin.files.clear()
            rows[name] = run_worker(tree, url, work / f"run{index}", env)
            report(name, rows[name], size)
    finally:
        server.shutdown()
        standin.stop()
        if emulator is not None:
            emulator.kill()
        client.flushdb()
        shutil.rmtree(work, ignore_errors=True)
    new = rows["streamed (this tree)"]
    ok = new["self_kb"] / 1024 <= TARGET_RSS_MB and new["tmp_peak"] / 1024**2 <= TARGET_TMP_MB
    print(f"targets (RSS <= {TARGET_RSS_MB} MB, tmp <= {TARGET_TMP_MB} MB): "
          f"{'met' if ok else 'MISSED'}")
    if len(rows) == 2:
        old = rows[next(name for name in rows if name.startswith("previous"))]
        print(f"streamed / previous: RSS {new['self_kb'] / old['self_kb']:.2f}, tmp peak "
              f"{new['tmp_peak'] / max(old['tmp_peak'], 1):.3f}, time "
              f"{new['seconds'] / old['seconds']:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
