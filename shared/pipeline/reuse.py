"""Near-duplicate reuse (issue 40): the video's fingerprint is taken during the frames
stage (from what the key frames' ffmpeg decodes), stored and indexed; with `reuse: similar`
the tag stage completes the task from the result of an earlier copy of the same video
(re-encoded, resized, cropped, letterboxed, watermarked or trimmed) without a model call.

numpy (and what needs it) is imported on first use: a Gemini worker starts without it.

A candidate must be the same team's (unless SHARE_RESULT_CACHE, as the exact cache), answer
the same question (dimensions, language, vocabulary, prompt
version, model: `same_question`) and match as a whole (`similarity.compare`); its key
moments and transcript are shifted by the measured offset and fitted to this video. The
result is copied into this task, so deleting the source later changes nothing here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from shared.pipeline import stages
from shared.tagging.result import ReusedFrom, TagResult
from shared.tasks.models import TaskStatus
from shared.tasks.queries import same_question
from shared.video.frames import Tap

if TYPE_CHECKING:
    from shared.pipeline.stages import Job
    from shared.tasks.fingerprints import StoredFingerprint
    from shared.video.similarity import Comparison

log = logging.getLogger("vision_to_tag.reuse")


@contextlib.contextmanager
def fingerprinting(job: Job) -> Iterator[Tap | None]:
    """The body (the key frames) gets the `Tap` its decode feeds: every frame at the
    fingerprint's rate, or every key frame. Only a video with too few key frames (or
    none taken) gets a decode of its own afterwards. Then it is stored and indexed.
    Never fails the task: a video without one is just never reused."""
    store, media = job.tools.fingerprints, job.media
    if store is None or job.source is None or media is None:
        yield None
        return
    from shared.video import fingerprint as fingerprints  # numpy: only once it is needed
    folder = job.workdir / "fingerprint"
    tap = fingerprints.tap(folder, media)
    yield tap
    outcome = None
    if job.frames is not None and job.frames.tapped:
        outcome = fingerprints.read(tap, media, keyframes=job.frames.method == "keyframes")
    if outcome is None or outcome.decode:
        outcome = fingerprints.start(job.source.location, folder, media).finish()
    job.fingerprint = outcome
    if outcome.fingerprint is not None:
        job.fingerprint_id = store.save(job.task.task_id, outcome.fingerprint)


def similar_result(job: Job) -> TagResult | None:
    """The result of the most similar earlier video that matches (among the index's
    candidates), or None (why not: in `job.reuse_notes`)."""
    store, outcome = job.tools.fingerprints, job.fingerprint
    if store is None or outcome is None:
        return None
    if outcome.fingerprint is None:
        job.reuse_notes.append(outcome.problem or "no fingerprint; never reused")
        return None
    from shared.video.similarity import compare  # numpy: only once it is needed

    wanted = stages.question(job)
    best: tuple[StoredFingerprint, Comparison] | None = None
    candidates = store.candidates(outcome.fingerprint, before_id=job.fingerprint_id)
    for candidate in store.load(candidates, team=stages.result_team(job)):
        if (candidate.task_id == job.task.task_id or candidate.status != TaskStatus.COMPLETED
                or not same_question(candidate.tags, **wanted)):
            continue
        verdict = compare(outcome.fingerprint, candidate.fingerprint)
        if verdict.match and (best is None or verdict.similarity > best[1].similarity):
            best = candidate, verdict
        if verdict.reason == "the offset is ambiguous":
            job.reuse_notes.append(f"a similar video (task {candidate.task_id}) was not "
                                   "reused: its offset from this one is ambiguous")
    return None if best is None else reused(job, *best)


def reused(job: Job, source: StoredFingerprint, verdict: Comparison) -> TagResult:
    """The source's result for this video: moments and speech moved to this timeline."""
    assert source.tags is not None and job.media is not None
    result = stages.as_reused(source.tags, job)
    shift = verdict.offset_s
    for moment in result.key_moments:
        moment.start_s, moment.end_s = moment.start_s - shift, moment.end_s - shift
    result.key_moments = [m for m in result.key_moments if m.end_s > 0]
    for moment in result.key_moments:
        moment.start_s = max(0.0, moment.start_s)
    for segment in result.transcript:
        segment.start_s, segment.end_s = segment.start_s - shift, segment.end_s - shift
    result.transcript = [s for s in result.transcript if s.end_s > 0]
    for segment in result.transcript:
        segment.start_s = max(0.0, segment.start_s)
    if result.safety is not None:
        for judgement in result.safety.categories.values():
            if judgement.at_s is not None:
                judgement.at_s = max(0.0, judgement.at_s - shift)
    result.warnings = [f"reused the result of task {source.task_id} (a similar video, "
                       f"similarity {verdict.similarity:g})"]
    result.reused_from = ReusedFrom(
        task_id=source.task_id, similarity=verdict.similarity, offset_s=verdict.offset_s,
        scale=verdict.scale, duration_delta_s=verdict.duration_delta_s)
    cuts = job.frames.cuts if job.frames else ()
    log.info("reused a similar video's result", extra={"task_id": job.task.task_id})
    return stages.fitted(result, job.media.duration_s, cuts)
