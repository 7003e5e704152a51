"""The pipeline: one task's video, from URL to stored result, as a list of stages.

Each stage reads and extends the `Job` and is timed; the worker records the stage name
on the task before running it, so a caller can watch progress.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import ErrorCode, PermanentError
from shared.pipeline import reuse
from shared.storage import Storage, frame_key, video_key
from shared.tagging import moments, transcript
from shared.tagging.base import Tagger, TagRequest, fingerprint
from shared.tagging.result import FrameRef, TagResult, Usage, technical_of
from shared.tasks.models import Task
from shared.video.fetch import Downloaded, FetchLimits, download
from shared.video.frames import FrameSet, extract_frames
from shared.video.probe import MediaInfo, probe, sniff_container
from shared.video.safety import UrlPolicy

if TYPE_CHECKING:  # numpy behind them: imported when a video is fingerprinted
    from shared.tasks.fingerprints import FingerprintStore
    from shared.video.fingerprint import Outcome as FingerprintOutcome

HASH_CHUNK = 1024 * 1024
log = logging.getLogger("vision_to_tag.pipeline")


@dataclass(frozen=True)
class StageTools:
    """The collaborators the stages use, and nothing more; the application context
    (`Services.worker`) builds them. `record_source` remembers a task's stored video
    (`TaskStore.record_source`); `find_result` looks up the result cache
    (`TaskQueries.find_result`), None when the cache is off; within the task's team
    unless `share_results`."""

    tagger: Tagger
    storage: Storage
    url_policy: UrlPolicy
    fetch_limits: FetchLimits
    max_video_seconds: float
    record_source: Callable[..., bool]
    find_result: Callable[..., dict | None] | None
    record_windows: Callable[..., bool] | None = None
    share_results: bool = False
    fingerprints: FingerprintStore | None = None
    """Near-duplicate reuse (issue 40): every video's fingerprint is stored and indexed
    here; None = no fingerprints (and no `similar` reuse)."""
    default_reuse: str = "exact"
    """REUSE: what a task made before the `reuse` field gets."""


@dataclass
class Job:
    """What the stages know about one attempt at one task."""

    task: Task
    workdir: Path
    tools: StageTools
    downloaded: Downloaded | None = None
    storage_uri: str | None = None
    media: MediaInfo | None = None
    dimensions: list[str] = field(default_factory=list)
    frames: FrameSet | None = None
    frame_refs: list[FrameRef] = field(default_factory=list)
    result: TagResult | None = None
    timings: dict[str, int] = field(default_factory=dict)
    batch: Any = None
    """Batch mode: the request recorded for a Gemini batch job (`BatchEntry`) instead of
    a result (issue 27)."""
    fingerprint: FingerprintOutcome | None = None
    fingerprint_id: int | None = None
    reuse_notes: list[str] = field(default_factory=list)
    """Why a near-duplicate was not reused (the fresh result's warnings)."""


def quota_stage(job: Job) -> None:
    """Ask the key pool first: a task that would have to wait for a Gemini key learns it
    before any download (WaitForKey); one whose key frees within seconds goes on, and its
    download and frames overlap the wait."""
    job.tools.tagger.check_quota()


def download_stage(job: Job) -> None:
    """The video in the work folder and in storage; a retry reuses the stored copy."""
    if _reuse_stored_video(job):
        return
    tools = job.tools
    job.downloaded = download(job.task.url, job.workdir / "source", tools.fetch_limits,
                              tools.url_policy)
    with open(job.downloaded.path, "rb") as handle:
        ext = sniff_container(handle.read(64)) or "bin"
    key = video_key(job.task.created_at, job.task.task_id, ext)
    job.storage_uri = tools.storage.put_file(key, job.downloaded.path,
                                             job.downloaded.content_type)
    tools.record_source(
        job.task.task_id, job.task.attempts, storage_uri=job.storage_uri,
        video_sha256=job.downloaded.sha256, size_bytes=job.downloaded.size_bytes,
    )


def _reuse_stored_video(job: Job) -> bool:
    storage, uri = job.tools.storage, job.task.storage_uri
    key = storage.key_of(uri) if uri else None
    if not key or not storage.exists(key):
        return False
    path = job.workdir / "source"
    try:
        storage.get_file(key, path)
    except FileNotFoundError:
        return False
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    job.downloaded = Downloaded(path, size, digest.hexdigest(), "")
    job.storage_uri = uri
    return True


def probe_stage(job: Job) -> None:
    assert job.downloaded is not None
    media = probe(job.downloaded.path)
    limit = job.tools.max_video_seconds
    if media.duration_s > limit:
        raise PermanentError(
            f"video is {media.duration_s:g} s long, over the limit of {limit:g} s "
            f"(MAX_VIDEO_SECONDS)",
            error_code=ErrorCode.VIDEO_TOO_LONG,
        )
    job.media = media
    job.dimensions = runnable_dimensions(job.task.dimensions, media)


def runnable_dimensions(requested: list[str], media: MediaInfo) -> list[str]:
    """A wav has no picture: only the audio dimension can run. Other files need video."""
    if media.has_video:
        return list(requested)
    if media.container != "wav":
        raise PermanentError(
            f"{media.container} file has no video stream", error_code=ErrorCode.NO_VIDEO_STREAM
        )
    if "audio" not in requested:
        raise PermanentError(
            "audio-only file: only the audio dimension can run and it was not requested",
            error_code=ErrorCode.NO_VIDEO_STREAM,
        )
    return ["audio"]


def frames_stage(job: Job) -> None:
    """Key frames next to the video in storage (none for an audio-only file)."""
    assert job.downloaded is not None and job.media is not None
    if not job.media.has_video:
        return
    with reuse.fingerprinting(job) as tap:  # from the key frames' decode where it can
        job.frames = extract_frames(job.downloaded.path, job.workdir / "frames",
                                    job.media.duration_s, tap=tap)
    storage, task = job.tools.storage, job.task
    job.frame_refs = [
        FrameRef(t_s=round(frame.t_s, 3),
                 uri=storage.put_file(frame_key(task.created_at, task.task_id, index),
                                      frame.path, "image/jpeg"))
        for index, frame in enumerate(job.frames.frames, start=1)
    ]


def tag_stage(job: Job) -> None:
    """The cached result when this exact question was answered before, else the tagger
    (batch mode: the request recorded for a batch job instead, issue 27)."""
    assert job.downloaded is not None and job.media is not None
    result = reused_result(job)
    if result is None:
        cuts = job.frames.cuts if job.frames else ()
        request = TagRequest(
            video_path=job.downloaded.path,
            media=job.media,
            dimensions=job.dimensions,
            language=job.task.language,
            frames=tuple(job.frames.frames) if job.frames else (),
            scene_changes=job.frames.scene_changes if job.frames else None,
            cuts=cuts,
            vocabulary=job.task.vocabulary,
            translate_to=job.task.translate_to,
            windows_done=job.task.windows,
            on_window=_window_keeper(job),
        )
        if job.task.mode == "batch":
            job.batch = job.tools.tagger.prepare_batch(request)  # type: ignore[attr-defined]
            return
        result = fitted(job.tools.tagger.tag(request), job.media.duration_s, cuts)
        result.warnings = [*result.warnings, *job.reuse_notes]
    job.result = with_frames(result, job.frame_refs,
                             job.frames.scene_changes if job.frames else None)


def fitted(result: TagResult, duration_s: float, cuts: tuple[float, ...]) -> TagResult:
    """A tagger's answer with its key moments fitted to the video (an interactive answer
    and a batch job's alike)."""
    result.key_moments, warnings = moments.fit(result.key_moments, duration_s, cuts)
    result.transcript, heard = transcript.fit(result.transcript, duration_s)
    result.warnings = [*result.warnings, *warnings, *heard]
    return result


def with_frames(result: TagResult, frame_refs: list[FrameRef],
                scene_changes: int | None) -> TagResult:
    result.frames = frame_refs
    if scene_changes is not None:
        result.technical.scene_changes = scene_changes
    return result


def _window_keeper(job: Job) -> Callable[[dict], object] | None:
    record = job.tools.record_windows
    if record is None:
        return None
    return lambda done: record(job.task.task_id, job.task.attempts, done)


def reuse_mode(job: Job) -> str:
    """The task's `reuse` (exact | similar | none); REUSE for a task made before it."""
    return job.task.reuse or job.tools.default_reuse


def reused_result(job: Job) -> TagResult | None:
    """An earlier result: the exact video's, else (`similar`) a near-duplicate's."""
    mode = reuse_mode(job)
    if mode == "none":
        return None
    result = cached_result(job)
    if result is None and mode == "similar":
        result = reuse.similar_result(job)
    return result


def question(job: Job) -> dict[str, Any]:
    """What a stored result must have answered to serve this task (`same_question`)."""
    assert job.media is not None
    tagger = job.tools.tagger
    return {"dimensions": job.dimensions, "language": job.task.language,
            "provider": tagger.provider, "model": tagger.model,
            "prompt_version": tagger.prompt_version + fingerprint(
                job.task.vocabulary, job.task.translate_to, job.dimensions,
                job.media.has_audio)}


def cached_result(job: Job) -> TagResult | None:
    find_result = job.tools.find_result
    if find_result is None or job.downloaded is None:
        return None
    stored = find_result(job.downloaded.sha256, team=result_team(job), **question(job))
    return None if stored is None else as_reused(stored, job)


def result_team(job: Job) -> str | None:
    """Whose results may serve this task: its team's, or any team's (SHARE_RESULT_CACHE)."""
    return None if job.tools.share_results else job.task.team


def as_reused(stored: dict[str, Any], job: Job) -> TagResult:
    """A stored result for this video: no usage, this file's own technical facts."""
    assert job.media is not None
    result = TagResult.model_validate(stored)
    result.cached = True
    result.usage = Usage()
    measured = technical_of(job.media)  # this file's own facts; what the tagger measured
    kept = {name: value for name, value in result.technical.model_dump().items()
            if value is not None and getattr(measured, name) is None}
    result.technical = measured.model_copy(update=kept)  # (loudness, speech) is kept
    return result


STAGES: list[tuple[str, Callable[[Job], None]]] = [
    ("checking_quota", quota_stage),  # only for a tagger with a quota (Gemini)
    ("downloading", download_stage),
    ("probing", probe_stage),
    ("extracting_frames", frames_stage),
    ("tagging", tag_stage),
]
"""In order. `saving` (the final database write) is done by the worker itself."""


def run_stages(job: Job, on_stage: Callable[[str], None]) -> None:
    """Every stage leaves one log line with its duration, ok or not."""
    for name, stage in STAGES:
        if stage is quota_stage and (not job.tools.tagger.needs_quota
                                     or job.task.mode == "batch"):
            continue
        on_stage(name)
        started = time.perf_counter()
        outcome = "failed"
        try:
            stage(job)
            outcome = "done"
        finally:
            job.timings[name] = int((time.perf_counter() - started) * 1000)
            log.info("stage %s %s", name, outcome,
                     extra={"stage": name, "duration_ms": job.timings[name]})
