"""Where videos and frames are kept: one interface, a local folder or a GCS bucket.

Object keys follow docs/architecture.md ("Storage keys") and derive from the task, so a
rerun overwrites instead of piling up copies, and cleanup can find a day's objects by
their key:
`videos/YYYY/MM/DD/{task_id}/source.{ext}` and `.../frames/NNN.jpg`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


def video_prefix(created_at: datetime, task_id: str) -> str:
    return f"videos/{created_at:%Y/%m/%d}/{task_id}/"


def video_key(created_at: datetime, task_id: str, ext: str) -> str:
    return f"{video_prefix(created_at, task_id)}source.{ext}"


def frame_key(created_at: datetime, task_id: str, index: int) -> str:
    return f"{video_prefix(created_at, task_id)}frames/{index:03d}.jpg"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int


class Storage(Protocol):
    def put_file(self, key: str, path: Path, content_type: str = "") -> str:
        """Store the file under `key`; return its URI."""

    def get_file(self, key: str, dest: Path) -> None:
        """Copy the object to `dest`; FileNotFoundError when it is missing."""

    def exists(self, key: str) -> bool: ...

    def key_of(self, uri: str) -> str | None:
        """The key of a URI this storage returned, or None when it is not one of ours."""

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def delete(self, key: str) -> None:
        """Remove the object; missing objects are fine."""

    def append(self, key: str, data: bytes) -> None:
        """Add `data` at the end of the object (created when missing): the retention
        archive's gzip members. One writer at a time (the retention job's lock)."""

    def ping(self) -> None:
        """Raise when the storage cannot be reached."""


class LocalStorage:
    """Objects as files under a root folder (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"storage key escapes the root: {key!r}")
        return path

    def put_file(self, key: str, path: Path, content_type: str = "") -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(path, partial)
        partial.replace(target)
        return target.as_uri()

    def get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def key_of(self, uri: str) -> str | None:
        prefix = self.root.as_uri() + "/"
        return uri[len(prefix):] if uri.startswith(prefix) else None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for folder, _dirs, files in os.walk(base):
            for name in sorted(files):
                path = Path(folder) / name
                yield StoredObject(path.relative_to(self.root).as_posix(), path.stat().st_size)

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        for parent in path.parents:  # drop folders left empty, up to the root
            if parent == self.root:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def append(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())

    def ping(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / ".healthz"
        probe.write_text("ok")
        probe.unlink()


class GcsStorage:
    """Objects in a Google Cloud Storage bucket (google-cloud-storage; the emulator in
    tests via STORAGE_EMULATOR_HOST)."""

    def __init__(self, bucket: str, client=None, *, timeout_s: float = 30,
                 retry_deadline_s: float = 60) -> None:
        from google.cloud import storage
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.client = client or storage.Client()
        self.bucket = self.client.bucket(bucket)
        self.timeout_s = timeout_s
        """Each HTTP request (GCS_TIMEOUT_S)."""
        self.retry = DEFAULT_RETRY.with_timeout(retry_deadline_s)
        """A call with its retries (GCS_RETRY_DEADLINE_S)."""

    def put_file(self, key: str, path: Path, content_type: str = "") -> str:
        blob = self.bucket.blob(key)
        blob.upload_from_filename(str(path), content_type=content_type or None,
                                  timeout=self.timeout_s, retry=self.retry)
        return f"gs://{self.bucket.name}/{key}"

    def get_file(self, key: str, dest: Path) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(key).download_to_filename(str(dest), timeout=self.timeout_s,
                                                       retry=self.retry)
        except NotFound:
            dest.unlink(missing_ok=True)
            raise FileNotFoundError(key) from None

    def exists(self, key: str) -> bool:
        return self.bucket.blob(key).exists(timeout=self.timeout_s, retry=self.retry)

    def key_of(self, uri: str) -> str | None:
        prefix = f"gs://{self.bucket.name}/"
        return uri[len(prefix):] if uri.startswith(prefix) else None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        for blob in self.client.list_blobs(self.bucket, prefix=prefix, timeout=self.timeout_s,
                                           retry=self.retry):
            yield StoredObject(blob.name, int(blob.size or 0))

    def delete(self, key: str) -> None:
        from google.api_core.exceptions import NotFound

        try:
            self.bucket.blob(key).delete(timeout=self.timeout_s, retry=self.retry)
        except NotFound:
            pass

    def append(self, key: str, data: bytes) -> None:
        """GCS objects cannot grow: the new part is uploaded beside the object and both
        are composed into it (no download of what is there)."""
        blob = self.bucket.blob(key)
        if not blob.exists(timeout=self.timeout_s, retry=self.retry):
            blob.upload_from_string(data, timeout=self.timeout_s, retry=self.retry)
            return
        part = self.bucket.blob(f"{key}.part-{uuid.uuid4().hex}")
        part.upload_from_string(data, timeout=self.timeout_s, retry=self.retry)
        try:
            blob.compose([blob, part], timeout=self.timeout_s, retry=self.retry)
        finally:
            self.delete(part.name)

    def ping(self) -> None:
        next(iter(self.client.list_blobs(self.bucket, max_results=1, timeout=self.timeout_s,
                                         retry=self.retry)), None)
