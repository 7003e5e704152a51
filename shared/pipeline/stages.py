"""The pipeline: one task's video, from URL to stored result, as a list of stages.

Each stage reads and extends the `Job` and is timed; the worker records the stage name
on the task before running it, so a caller can watch progress.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from shared.errors import ErrorCode, PermanentError
from shared.pipeline import reuse
from shared.storage import InputBuckets, Storage, frame_key, video_key
from shared.tagging import moments, transcript
from shared.tagging.base import Tagger, TagRequest, fingerprint
from shared.tagging.result import FrameRef, TagResult, Usage, technical_of
from shared.tasks.models import Task
from shared.video.fetch import FetchLimits, streaming
from shared.video.frames import FrameSet, extract_frames
from shared.video.probe import MediaInfo, probe, sniff_container
from shared.video.safety import UrlPolicy
from shared.video.source import VideoSource
from shared.video.urls import split_gs, upload_id_of

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
    inputs: InputBuckets | None = None
    """The buckets `gs://` URLs may name (INPUT_BUCKETS)."""
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
    downloaded: StoredVideo | None = None
    source: VideoSource | None = None
    """The stored video, read in place (a signed URL or a local path)."""
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
    """The video streamed into storage (hashed on the way, never in the work folder or
    in memory: issue 35), then read in place by every later stage; a retry reuses the
    stored copy."""
    if _reuse_stored_video(job):
        return
    tools, task = job.tools, job.task
    if (gs := split_gs(task.url)) is not None:
        _from_bucket(job, *gs)
        return
    if (upload_id := upload_id_of(task.url)) is not None:
        _from_upload(job, upload_id)
        return
    with streaming(task.url, tools.fetch_limits, tools.url_policy) as incoming:
        ext = sniff_container(incoming.head()[:64]) or "bin"
        key = video_key(task.created_at, task.task_id, ext)
        uri = tools.storage.put_stream(key, incoming.chunks(), incoming.content_type)
    stored(job, key, uri, StoredVideo(incoming.sha256, incoming.size_bytes,
                                      incoming.content_type))


@dataclass(frozen=True)
class StoredVideo:
    """What is known of the attempt's video once it is stored."""

    sha256: str
    size_bytes: int
    content_type: str = ""


def stored(job: Job, key: str, uri: str, video: StoredVideo, *, record: bool = True) -> None:
    """The stored video becomes the job's source, read in place from now on."""
    storage = job.tools.storage
    job.downloaded, job.storage_uri = video, uri
    job.source = VideoSource(storage.media_url(key), video.size_bytes,
                             lambda: storage.open_read(key))
    if record:
        job.tools.record_source(
            job.task.task_id, job.task.attempts, storage_uri=uri,
            video_sha256=video.sha256, size_bytes=video.size_bytes,
        )


def _from_bucket(job: Job, bucket: str, name: str) -> None:
    """`gs://bucket/object` of an input bucket, read with the service's credentials:
    the service's own bucket is read in place (nothing copied), another one is streamed
    into storage like a download."""
    tools, url = job.tools, job.task.url
    inputs = tools.inputs
    if inputs is None or not inputs.allows(bucket):
        raise PermanentError(f"gs://{bucket}: not one of INPUT_BUCKETS",
                             error_code=ErrorCode.DOWNLOAD_FAILED)
    own_key = tools.storage.key_of(url)
    if own_key is not None:
        _check_size(tools.storage.size_of(own_key), url, tools.fetch_limits.max_bytes)
        stored(job, own_key, url, hashed(tools.storage, own_key))
        return
    try:
        size = inputs.size_of(bucket, name)
    except PermissionError:
        raise PermanentError(f"gs://{bucket}: the service's credentials may not read it",
                             error_code=ErrorCode.DOWNLOAD_FAILED) from None
    _check_size(size, url, tools.fetch_limits.max_bytes)
    try:
        reader = inputs.open_read(bucket, name)
    except FileNotFoundError:
        _check_size(None, url, 0)
        raise
    with reader:
        _copy_in(job, reader)


def _from_upload(job: Job, upload_id: str) -> None:
    """A task made from an upload has its file as `storage_uri` from its creation (read
    in place by `_reuse_stored_video`): here that file is gone."""
    raise PermanentError(f"upload {upload_id}: its file is gone (removed by the clean-up)",
                         error_code=ErrorCode.DOWNLOAD_FAILED)


def _check_size(size: int | None, url: str, max_bytes: int) -> None:
    if size is None:
        raise PermanentError(f"{url[:200]}: no such object", error_code=ErrorCode.DOWNLOAD_FAILED)
    if size > max_bytes:
        raise PermanentError(f"video is {size} bytes, over the limit of {max_bytes} "
                             f"(MAX_VIDEO_MB)", error_code=ErrorCode.VIDEO_TOO_LARGE)
    if size == 0:
        raise PermanentError("the object is empty", error_code=ErrorCode.VIDEO_UNREADABLE)


def _copy_in(job: Job, reader: BinaryIO) -> None:
    """Stream a reader into the task's storage key, hashing on the way."""
    digest, counted = hashlib.sha256(), [0]
    head = reader.read(64)
    key = video_key(job.task.created_at, job.task.task_id, sniff_container(head) or "bin")

    def chunks() -> Iterator[bytes]:
        chunk = head
        while chunk:
            digest.update(chunk)
            counted[0] += len(chunk)
            yield chunk
            chunk = reader.read(HASH_CHUNK)

    uri = job.tools.storage.put_stream(key, chunks())
    stored(job, key, uri, StoredVideo(digest.hexdigest(), counted[0]))


def hashed(storage: Storage, key: str) -> StoredVideo:
    """sha256 and size of a stored object, read chunk by chunk."""
    digest, size = hashlib.sha256(), 0
    with storage.open_read(key) as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return StoredVideo(digest.hexdigest(), size)


def _reuse_stored_video(job: Job) -> bool:
    storage, task = job.tools.storage, job.task
    key = storage.key_of(task.storage_uri) if task.storage_uri else None
    size = storage.size_of(key) if key else None
    if key is None or size is None or task.storage_uri is None:
        return False
    if task.video_sha256 and task.size_bytes == size:
        video = StoredVideo(task.video_sha256, size)
    else:
        try:
            video = hashed(storage, key)
        except FileNotFoundError:
            return False
    stored(job, key, task.storage_uri, video, record=False)
    return True


def probe_stage(job: Job) -> None:
    assert job.source is not None
    media = probe(job.source)
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
    assert job.source is not None and job.media is not None
    if not job.media.has_video:
        return
    with reuse.fingerprinting(job) as tap:  # from the key frames' decode where it can
        job.frames = extract_frames(job.source.location, job.workdir / "frames",
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
    assert job.source is not None and job.media is not None
    result = reused_result(job)
    if result is None:
        cuts = job.frames.cuts if job.frames else ()
        request = TagRequest(
            video_path=job.source,
            workdir=job.workdir,
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
