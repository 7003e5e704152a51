"""The pipeline: one task's video, from URL to stored result, as a list of stages.

Each stage reads and extends the `Job` and is timed; the worker records the stage name
on the task before running it, so a caller can watch progress.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from shared.errors import PermanentError
from shared.services import Services
from shared.storage import video_key
from shared.tagging.base import TagRequest
from shared.tagging.result import TagResult
from shared.tasks.models import Task
from shared.video.fetch import Downloaded, FetchLimits, download
from shared.video.probe import MediaInfo, probe, sniff_container


@dataclass
class Job:
    """What the stages know about one attempt at one task."""

    task: Task
    workdir: Path
    services: Services
    downloaded: Downloaded | None = None
    storage_uri: str | None = None
    media: MediaInfo | None = None
    result: TagResult | None = None
    timings: dict[str, int] = field(default_factory=dict)


def download_stage(job: Job) -> None:
    settings = job.services.settings
    limits = FetchLimits(
        max_bytes=settings.max_video_bytes,
        connect_timeout_s=settings.DOWNLOAD_CONNECT_TIMEOUT_S,
        read_timeout_s=settings.DOWNLOAD_READ_TIMEOUT_S,
        total_timeout_s=settings.DOWNLOAD_TOTAL_TIMEOUT_S,
    )
    job.downloaded = download(job.task.url, job.workdir / "source", limits,
                              job.services.url_policy)
    with open(job.downloaded.path, "rb") as handle:
        ext = sniff_container(handle.read(64)) or "bin"
    key = video_key(job.task.created_at, job.task.task_id, ext)
    job.storage_uri = job.services.storage.put_file(
        key, job.downloaded.path, job.downloaded.content_type
    )


def probe_stage(job: Job) -> None:
    assert job.downloaded is not None
    media = probe(job.downloaded.path)
    limit = job.services.settings.MAX_VIDEO_SECONDS
    if media.duration_s > limit:
        raise PermanentError(
            f"video is {media.duration_s:g} s long, over the limit of {limit:g} s",
            error_code="video_too_long",
        )
    job.media = media


def tag_stage(job: Job) -> None:
    assert job.downloaded is not None and job.media is not None
    job.result = job.services.tagger.tag(
        TagRequest(
            video_path=job.downloaded.path,
            media=job.media,
            dimensions=job.task.dimensions,
            language=job.task.language,
        )
    )


STAGES: list[tuple[str, Callable[[Job], None]]] = [
    ("downloading", download_stage),
    ("probing", probe_stage),
    ("tagging", tag_stage),
]
"""In order. `saving` (the final database write) is done by the worker itself."""


def run_stages(job: Job, on_stage: Callable[[str], None]) -> None:
    for name, stage in STAGES:
        on_stage(name)
        started = time.perf_counter()
        try:
            stage(job)
        finally:
            job.timings[name] = int((time.perf_counter() - started) * 1000)
