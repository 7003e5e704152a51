"""What the fingerprint (issue 40) adds to the intake as the worker runs it: the
pipeline's own download, probe and frames stages (`shared.pipeline.stages`) on a task
whose URL a 127.0.0.1 server answers, into local storage, with the fingerprint (taken
from the key frames' decode, stored in SQLite and indexed in Redis) and without it
(`StageTools.fingerprints` None), alternated, medians. Wall time and CPU time (this
process and the ffmpeg processes it waited for).

    python -m benchmarks.intake_stages [--repeat 7] [--clips 10]

The clips are `benchmarks.reuse`'s (generated there once): its first `--clips` sources
(8 s, 320×180), the 60 s 720p clip with a key frame every 2 s and one of `--long` seconds
like it (generated on first use). A download from
127.0.0.1 is faster than any real one, so the shares here are upper bounds of the
service's.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as shared/ sets it (numpy first here)

from benchmarks.reuse import BENCH_DIR, cpu_seconds, long_clip
from shared.config import load_settings
from shared.pipeline.stages import Job, StageTools, download_stage, frames_stage, probe_stage
from shared.services import build_services
from shared.tasks.models import Task


def serve(folder: Path) -> str:
    """A quiet HTTP server on 127.0.0.1 for the clips; its base URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def task_for(url: str) -> Task:
    now = datetime.now(UTC)
    return Task(task_id=uuid.uuid4().hex, status="processing", attempts=1, url=url,
                platform="rpa", env="prod", dimensions=["visual", "audio"], language="zh",
                created_at=now, updated_at=now)


def intake(tools: StageTools, url: str, workdir: Path) -> Job:
    job = Job(task=task_for(url), workdir=workdir, tools=tools)
    for stage in (download_stage, probe_stage, frames_stage):
        stage(job)
    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--long", type=int, default=600,
                        help="seconds of a second, longer 720p video (0: none)")
    parser.add_argument("--redis-url", default=os.environ.get(
        "BENCH_REDIS_URL", "redis://127.0.0.1:6379/10"))
    args = parser.parse_args()
    clips = sorted(BENCH_DIR.glob("src[0-9][0-9][0-9].mp4"))[: args.clips]
    if len(clips) < args.clips:
        sys.exit("generate the clips first: python -m benchmarks.reuse --parts intake")
    clips.append(long_clip())
    if args.long:
        clips.append(long_clip(args.long))
    base_url = serve(BENCH_DIR)
    with tempfile.TemporaryDirectory() as folder:
        services = build_services(load_settings(
            DATABASE_URL=f"sqlite:///{folder}/tasks.db", REDIS_URL=args.redis_url,
            STORAGE="local", STORAGE_DIR=f"{folder}/storage", TAGGER="local",
            ALLOW_PRIVATE_URLS=True))
        tools = services.worker.tools
        kinds = {"without": dataclasses.replace(tools, fingerprints=None), "with": tools}
        rows = [measure(kinds, f"{base_url}/{clip.name}", Path(folder), args.repeat)
                for clip in clips]
    report([(clip.name, row) for clip, row in zip(clips, rows, strict=True)])


def measure(kinds: dict[str, StageTools], url: str, folder: Path,
            repeat: int) -> dict[str, tuple[float, float]]:
    """kind → (median wall s, median CPU s) of the three stages."""
    runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    for _ in range(repeat):
        for kind, tools in kinds.items():
            with tempfile.TemporaryDirectory(dir=folder) as workdir:
                started, spent = time.perf_counter(), cpu_seconds()
                job = intake(tools, url, Path(workdir))
                runs[kind].append((time.perf_counter() - started, cpu_seconds() - spent))
                assert kind == "without" or (job.fingerprint and job.fingerprint.fingerprint)
    return {kind: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
            for kind, r in runs.items()}


def report(rows: list[tuple[str, dict[str, tuple[float, float]]]]) -> None:
    short = [row for row in rows if not row[0].startswith("long_")]
    groups = [("8 s clips", short), *((row[0], [row]) for row in rows if row not in short)]
    for label, chosen in groups:
        for measure_at, name in ((0, "wall"), (1, "CPU")):
            base, fingerprinted = (sum(row[kind][measure_at] for _, row in chosen) * 1000
                                   / len(chosen) for kind in ("without", "with"))
            print(f"intake stages (download, probe, frames), {label}, {name}: "
                  f"{base:.0f} ms without the fingerprint, {fingerprinted:.0f} ms with it "
                  f"(+{100 * (fingerprinted - base) / base:.1f} %; target <= 10 %)")


if __name__ == "__main__":
    sys.exit(main())
