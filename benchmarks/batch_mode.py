"""Gemini Batch mode (issue 27): 200 waiting tasks → how many jobs, the time from the
first collection to the last task completed, and the cost per video against interactive
tagging of the same videos, measured in the same run.

    python -m benchmarks.batch_mode

Real worker code prepares the tasks (download, probe, key frames, request recorded),
real collector code submits, polls and finishes them, real google-genai client, against
the Gemini stand-in from tests/ on 127.0.0.1 (each job answers PENDING once, RUNNING
once, then its results). SQLite in a temporary folder, Redis at BENCH_REDIS_URL (db 14 by
default) for the key pool. To keep the CPU for the measured part, PREPARED tasks go
through the whole pipeline and the others are copies of their rows and request
documents (same videos, new task ids): the collector cannot tell them apart.
"""

from __future__ import annotations

import functools
import http.server
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
import sqlalchemy as sa

from shared.accounts.importer import AccountEntry, import_accounts
from shared.app.tasks import create_task
from shared.config import load_settings
from shared.pipeline import batch_wait
from shared.pipeline.batch_collector import collect
from shared.pipeline.runner import handle_delivery
from shared.services import Services, build_services, gemini_config
from shared.tagging.gemini import GeminiTagger
from shared.tasks.db import begin
from shared.tasks.gemini_jobs import GeminiJobStore
from shared.tasks.models import CreateTaskRequest
from shared.tasks.schema import video_tasks
from shared.video.probe import ffmpeg_exe
from tests.gemini_standin import GeminiStandIn

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
BENCH_DIR = ROOT / "var" / "bench"
TASKS = 200
PREPARED = 10
VIDEOS = 5
INTERACTIVE = 10


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def make_videos() -> list[Path]:
    """Five different 8 s clips with sound (320x240)."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(VIDEOS):
        path = BENCH_DIR / f"batch_{n}.mp4"
        if not path.exists():
            subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi", "-i",
                            f"testsrc2=size=320x240:rate=15:duration={6 + n}", "-f", "lavfi",
                            "-i", f"sine=frequency={300 + 100 * n}:duration={6 + n}",
                            "-c:v", "libx264", "-preset", "veryfast", "-crf", "35",
                            "-c:a", "aac", "-shortest", str(path)], check=True)
        paths.append(path)
    return paths


def build(work: Path, standin: GeminiStandIn) -> Services:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    client.flushdb()
    import_accounts(client, [AccountEntry(api_key=f"AIzaBATCHBENCH{n:026d}", daily_limit=10**6,
                                          minute_limit=10**4, username="b", password="x" * 8,
                                          phone="", email="") for n in range(2)])
    settings = load_settings(DATABASE_URL=f"sqlite:///{work / 'tasks.db'}", REDIS_URL=REDIS_URL,
                             STORAGE_DIR=work / "storage", ALLOW_PRIVATE_URLS=True,
                             TAGGER="gemini", GEMINI_BASE_URL=standin.base_url,
                             RESULT_CACHE=False)
    services = build_services(settings)
    services.tagger = GeminiTagger(services.pool, gemini_config(settings))
    return services


def create(services: Services, url: str, mode: str) -> str:
    request = CreateTaskRequest.model_validate({"url": url, "platform": "rpa", "mode": mode},
                                               context={"platforms": ["rpa"]})
    return create_task(services, request)[0].task_id


def copy_waiting(services: Services, source_id: str, work: Path) -> str:
    """A new waiting task: the source's row and request document under a new id."""
    source = services.store.get(source_id)
    with services.store.engine.connect() as conn:
        row = dict(conn.execute(sa.select(video_tasks).where(
            video_tasks.c.task_id == source_id)).mappings().one())
    task_id = str(uuid.uuid4())
    row.pop("id")
    row.update(task_id=task_id, batch_token=uuid.uuid4().hex, idempotency_key=None)
    with begin(services.store.engine) as conn:
        conn.execute(sa.insert(video_tasks), row)
    path = work / "copy.json"
    services.storage.get_file(batch_wait.request_key(source.created_at, source_id), path)
    services.storage.put_file(batch_wait.request_key(row["created_at"], task_id), path)
    return task_id


def main() -> int:
    videos = make_videos()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(BENCH_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{server.server_address[1]}/{v.name}" for v in videos]
    standin = GeminiStandIn().start()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        services = build(work, standin)
        started = time.perf_counter()
        prepared = [create(services, urls[n % VIDEOS], "batch") for n in range(PREPARED)]
        for task_id in prepared:
            assert handle_delivery(task_id, services.worker).task_status == "waiting_batch"
        prepare_s = (time.perf_counter() - started) / PREPARED
        ids = prepared + [copy_waiting(services, prepared[n % PREPARED], work)
                          for n in range(TASKS - PREPARED)]
        sweeps, started = [], time.perf_counter()
        while True:
            sweep_started = time.perf_counter()
            counts = collect(services.worker)
            sweeps.append((time.perf_counter() - sweep_started, counts))
            done = services.queries.count_by_status().get("completed", 0)
            if done == TASKS or len(sweeps) > 10:
                break
        collected_s = time.perf_counter() - started
        tasks = [services.store.get(task_id) for task_id in ids]
        assert all(t.status == "completed" for t in tasks), [t.status for t in tasks][:5]
        jobs = GeminiJobStore(services.store.engine).recent(100)
        batch_cost = statistics.mean(t.result.usage.cost_usd for t in tasks)
        interactive_ids = [create(services, urls[n % VIDEOS], "interactive")
                           for n in range(INTERACTIVE)]
        for task_id in interactive_ids:
            assert handle_delivery(task_id, services.worker).task_status == "completed"
        interactive = [services.store.get(task_id) for task_id in interactive_ids]
        interactive_cost = statistics.mean(t.result.usage.cost_usd for t in interactive)
        inputs = {"file" if j.input_file else "inline" for j in jobs}
        services.store.engine.dispose()
    standin.stop()
    server.shutdown()
    redis.Redis.from_url(REDIS_URL).flushdb()
    print(f"{TASKS} waiting tasks ({VIDEOS} clips of 6-10 s, 320x240 with sound; "
          f"preparing one: {prepare_s * 1000:.0f} ms)")
    print(f"jobs: {len(jobs)} ({', '.join(sorted(inputs))} input; "
          f"{', '.join(str(len(j.items)) for j in jobs)} tasks)")
    print(f"collection → all completed: {collected_s:.2f} s over {len(sweeps)} sweeps "
          f"(the stand-in answers PENDING, RUNNING, then the results)")
    for n, (seconds, counts) in enumerate(sweeps, 1):
        print(f"  sweep {n}: {seconds * 1000:7.0f} ms  {counts}")
    print(f"cost per video: batch ${batch_cost:.6f}, interactive ${interactive_cost:.6f} "
          f"→ {batch_cost / interactive_cost:.2f}× (target ≤ 0.5×)")
    return 0 if batch_cost <= 0.5 * interactive_cost + 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
