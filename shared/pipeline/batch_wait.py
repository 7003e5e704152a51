"""Batch mode, the worker's side (issue 27): a prepared task's request is written next to
its video in storage and the row says it waits for a Gemini batch job; the collector
(`batch_collector.py`) takes it from there.

The request document holds what finishing the task needs later, when the work folder is
long gone: the request itself (an `InlinedRequest` as JSON: video inline or as a Files
API reference), the key and endpoint that must send it, the uploaded file to delete, and
the facts the stages measured (media, dimensions, cuts, frames).
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.storage import Storage, video_prefix
from shared.tagging.base import TagRequest
from shared.tagging.result import FrameRef
from shared.tasks.models import Task
from shared.video.probe import MediaInfo

if TYPE_CHECKING:
    from shared.pipeline.stages import Job
    from shared.tasks.store import TaskStore


def request_key(created_at: datetime, task_id: str) -> str:
    return f"{video_prefix(created_at, task_id)}batch_request.json"


def park(job: Job, store: TaskStore, storage: Storage) -> bool:
    """Write the request document, then the row (`waiting_batch`, a fresh token); False
    when this attempt no longer owns the task."""
    entry, task = job.batch, job.task
    assert entry is not None and job.media is not None and job.downloaded is not None
    document = {
        "entry": dataclasses.asdict(entry),
        "media": dataclasses.asdict(job.media),
        "dimensions": job.dimensions,
        "cuts": list(job.frames.cuts) if job.frames else [],
        "scene_changes": job.frames.scene_changes if job.frames else None,
        "frames": [ref.model_dump(mode="json") for ref in job.frame_refs],
    }
    path = job.workdir / "batch_request.json"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    storage.put_file(request_key(task.created_at, task.task_id), path, "application/json")
    return store.wait_batch(
        task.task_id, task.attempts, token=uuid.uuid4().hex, key_id=entry.key_id,
        model=entry.model, timings=job.timings,
        video={"video_sha256": job.downloaded.sha256, "size_bytes": job.downloaded.size_bytes,
               "duration_s": job.media.duration_s, "storage_uri": job.storage_uri})


@dataclasses.dataclass(frozen=True)
class Recorded:
    """A waiting task's request document, read back."""

    request: dict[str, Any]
    key_id: str
    endpoint: str
    model: str
    uploaded_file: str | None
    media: MediaInfo
    dimensions: list[str]
    cuts: tuple[float, ...]
    scene_changes: int | None
    frames: list[FrameRef]

    def tag_request(self, task: Task) -> TagRequest:
        """The TagRequest finishing needs (no video file: the answer is in hand)."""
        return TagRequest(video_path=Path(), media=self.media, dimensions=self.dimensions,
                          language=task.language, cuts=self.cuts,
                          scene_changes=self.scene_changes, vocabulary=task.vocabulary,
                          translate_to=task.translate_to)


def load(storage: Storage, task: Task, workdir: Path) -> Recorded | None:
    """The task's request document; None when storage no longer has it."""
    path = workdir / f"{task.task_id}.json"
    try:
        storage.get_file(request_key(task.created_at, task.task_id), path)
    except FileNotFoundError:
        return None
    document = json.loads(path.read_text(encoding="utf-8"))
    path.unlink()
    entry = document["entry"]
    return Recorded(request=entry["request"], key_id=entry["key_id"], endpoint=entry["endpoint"],
                    model=entry["model"], uploaded_file=entry.get("uploaded_file"),
                    media=MediaInfo(**document["media"]), dimensions=document["dimensions"],
                    cuts=tuple(document["cuts"]), scene_changes=document["scene_changes"],
                    frames=[FrameRef.model_validate(f) for f in document["frames"]])
