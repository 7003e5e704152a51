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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024
"""A resumable upload's chunk (a multiple of 256 KiB): what one video costs in memory."""

READ_CHUNK_BYTES = 8 * 1024 * 1024
"""A stored video read back in place (the Gemini upload): one chunk in memory at a time."""

MEDIA_URL_TTL = timedelta(hours=6)
"""How long a signed URL ffmpeg reads a stored video from stays valid (one attempt)."""


def video_prefix(created_at: datetime, task_id: str) -> str:
    return f"videos/{created_at:%Y/%m/%d}/{task_id}/"


def video_key(created_at: datetime, task_id: str, ext: str) -> str:
    return f"{video_prefix(created_at, task_id)}source.{ext}"


def upload_key(created_at: datetime, upload_id: str) -> str:
    """Where an upload's file lands (POST /api/v1/uploads); a task reads it in place. Under
    the day's videos/ prefix: once used, the daily clean-up removes it with the others."""
    return f"videos/{created_at:%Y/%m/%d}/uploads/{upload_id}/source"


def frame_key(created_at: datetime, task_id: str, index: int) -> str:
    return f"{video_prefix(created_at, task_id)}frames/{index:03d}.jpg"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size_bytes: int


class Storage(Protocol):
    def put_file(self, key: str, path: Path, content_type: str = "") -> str:
        """Store the file under `key`; return its URI."""

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str = "") -> str:
        """Store the chunks under `key` as they come, one chunk in memory at a time; when
        the iterable raises, nothing is stored (the error goes on). Return the URI."""

    def get_file(self, key: str, dest: Path) -> None:
        """Copy the object to `dest`; FileNotFoundError when it is missing."""

    def open_read(self, key: str) -> BinaryIO:
        """A seekable reader of the object that fetches it chunk by chunk;
        FileNotFoundError when it is missing."""

    def media_url(self, key: str) -> str:
        """Where ffmpeg reads the object in place: a local path, or a signed URL it can
        send range requests to (a moov atom at the end needs seeking)."""

    def size_of(self, key: str) -> int | None:
        """The object's size in bytes, None when it is missing."""

    def upload_session(self, key: str, size_bytes: int, content_type: str) -> str | None:
        """A URL a client PUTs the object's bytes to directly (a GCS resumable session for
        exactly `size_bytes`), or None when the API receives them itself (local folder)."""

    def exists(self, key: str) -> bool: ...

    def key_of(self, uri: str) -> str | None:
        """The key of a URI this storage returned, or None when it is not one of ours."""

    def uri_of(self, key: str) -> str:
        """The URI of the object at `key` (what `put_file` returns)."""

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

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str = "") -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        try:
            with open(partial, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target.as_uri()

    def get_file(self, key: str, dest: Path) -> None:
        shutil.copyfile(self._path(key), dest)

    def open_read(self, key: str) -> BinaryIO:
        return open(self._path(key), "rb")

    def media_url(self, key: str) -> str:
        return str(self._path(key))

    def size_of(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def upload_session(self, key: str, size_bytes: int, content_type: str) -> str | None:
        return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def uri_of(self, key: str) -> str:
        return self._path(key).as_uri()

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

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str = "") -> str:
        """A resumable upload in UPLOAD_CHUNK_BYTES chunks; an error cancels the session,
        so no object (and no half of one) is left."""
        blob = self.bucket.blob(key)
        with blob.open("wb", chunk_size=UPLOAD_CHUNK_BYTES, ignore_flush=True,
                       content_type=content_type or None, timeout=self.timeout_s,
                       retry=self.retry) as writer:
            for chunk in chunks:
                writer.write(chunk)
        return f"gs://{self.bucket.name}/{key}"

    def open_read(self, key: str) -> BinaryIO:
        from google.api_core.exceptions import NotFound

        blob = self.bucket.blob(key)
        try:
            blob.reload(timeout=self.timeout_s, retry=self.retry)
        except NotFound:
            raise FileNotFoundError(key) from None
        return blob.open("rb", chunk_size=READ_CHUNK_BYTES, timeout=self.timeout_s,
                         retry=self.retry)

    def media_url(self, key: str) -> str:
        return signed_url(self.client, self.bucket.blob(key), "GET")

    def size_of(self, key: str) -> int | None:
        blob = self.bucket.get_blob(key, timeout=self.timeout_s, retry=self.retry)
        return int(blob.size or 0) if blob is not None else None

    def upload_session(self, key: str, size_bytes: int, content_type: str) -> str | None:
        """A resumable session started here with this service's credentials: the URL is
        the client's authority to upload this one object of exactly `size_bytes` (GCS
        refuses more or fewer) for a week; the API key never goes to Google."""
        return self.bucket.blob(key).create_resumable_upload_session(
            content_type=content_type, size=size_bytes, timeout=self.timeout_s)

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

    def uri_of(self, key: str) -> str:
        return f"gs://{self.bucket.name}/{key}"

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


def signed_url(client, blob, method: str, *, ttl: timedelta = MEDIA_URL_TTL,
               headers: dict[str, str] | None = None) -> str:
    """A V4 signed URL for `blob`. Against the emulator (STORAGE_EMULATOR_HOST) the plain
    object URL, which it serves without a signature. Credentials without a private key
    (Cloud Functions' metadata server) sign through IAM signBlob with their own token."""
    from urllib.parse import quote

    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    if emulator:
        base = emulator.rstrip("/")
        if method == "GET":
            return f"{base}/{blob.bucket.name}/{quote(blob.name, safe='/')}"
        return f"{base}/upload/storage/v1/b/{blob.bucket.name}/o?uploadType=resumable" \
               f"&name={quote(blob.name, safe='')}"
    credentials = client._credentials
    extra: dict = {}
    if not hasattr(credentials, "sign_bytes") or not getattr(credentials, "signer", None):
        import google.auth.transport.requests

        credentials.refresh(google.auth.transport.requests.Request())
        extra = {"service_account_email": credentials.service_account_email,
                 "access_token": credentials.token}
    return blob.generate_signed_url(version="v4", expiration=ttl, method=method,
                                    headers=headers, credentials=credentials, **extra)


class InputBuckets:
    """Objects of the buckets a task may name as `gs://bucket/object` (INPUT_BUCKETS),
    read with the service's own credentials; the client is made on first use, so a
    deployment without input buckets never needs one."""

    def __init__(self, names: Iterable[str], client=None, *, timeout_s: float = 30,
                 retry_deadline_s: float = 60) -> None:
        self.names = frozenset(names)
        self._client = client
        self.timeout_s = timeout_s
        self.retry_deadline_s = retry_deadline_s

    def allows(self, bucket: str) -> bool:
        return bucket in self.names

    @property
    def client(self):
        if self._client is None:
            from google.cloud import storage

            self._client = storage.Client()
        return self._client

    def _retry(self):
        from google.cloud.storage.retry import DEFAULT_RETRY

        return DEFAULT_RETRY.with_timeout(self.retry_deadline_s)

    def size_of(self, bucket: str, name: str) -> int | None:
        """The object's size, None when it does not exist; PermissionError when the
        service's credentials may not read it."""
        from google.api_core.exceptions import Forbidden

        try:
            blob = self.client.bucket(bucket).get_blob(name, timeout=self.timeout_s,
                                                       retry=self._retry())
        except Forbidden:
            raise PermissionError(f"gs://{bucket}") from None
        return int(blob.size or 0) if blob is not None else None

    def open_read(self, bucket: str, name: str) -> BinaryIO:
        """A reader fetching the object chunk by chunk; FileNotFoundError when missing."""
        from google.api_core.exceptions import NotFound

        blob = self.client.bucket(bucket).blob(name)
        try:
            blob.reload(timeout=self.timeout_s, retry=self._retry())
        except NotFound:
            raise FileNotFoundError(name) from None
        return blob.open("rb", chunk_size=READ_CHUNK_BYTES, timeout=self.timeout_s,
                         retry=self._retry())
