"""Uploads (issue 35): a caller sends a local file itself, then creates a task (or a batch
item) with `url: "upload:<upload_id>"`.

POST /api/v1/uploads announces the size and gets an `upload_url`: on GCS a resumable
session for exactly that many bytes, started with the service's credentials (the client
PUTs to Google directly; the API key never goes there); locally the API's own PUT route
(the same API key), which streams the body into the storage folder. Either way the file
lands at `upload_key`, under the day's videos/ prefix, and appears only once complete.

A create takes the upload for its task (`claim`: one task per upload, HSETNX) and the
task's `storage_uri` is the file from the start, so the worker reads it in place. The
clean-up job removes uploads no task took within UPLOAD_TTL_S; a used one goes with the
task's other cached files (CACHE_DAYS).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from shared import redis_keys
from shared.app.context import Services
from shared.errors import Conflict, InvalidInput, NotFound, TooLarge
from shared.redis_conn import redis_outage
from shared.storage import upload_key

READ_BYTES = 1024 * 1024
"""The PUT route's read size: one chunk of the body in memory at a time."""

EXPIRED = "(expired)"
"""`used_by` of an upload the clean-up took."""


class CreateUploadRequest(BaseModel):
    """Body of POST /api/v1/uploads."""

    model_config = ConfigDict(extra="forbid")

    size_bytes: StrictInt = Field(gt=0, description="the file's exact size; at most "
                                  "MAX_VIDEO_MB (413 above)")
    content_type: str = Field(default="video/mp4", max_length=100,
                              pattern=r"^[A-Za-z0-9.+-]+/[A-Za-z0-9.+-]+$",
                              description="the file's media type")


class UploadStored(BaseModel):
    """PUT /api/v1/uploads/{upload_id}: the file is stored; `url` goes in a create."""

    upload_id: str
    size_bytes: int
    url: str = Field(description="`upload:<upload_id>`, for a create or a batch item")


class UploadCreated(BaseModel):
    upload_id: str
    upload_url: str = Field(description="PUT the file's bytes here (one request, or "
                            "resumable chunks with Content-Range on GCS)")
    expires_at: datetime = Field(description="finish the upload and create the task by then")
    needs_api_key: bool = Field(description="true: the API's own route, send the API key "
                                "as for any call; false: a storage URL, send no key")


def create_upload(services: Services, request: CreateUploadRequest, team: str,
                  api_base: str) -> UploadCreated:
    """A new upload: its record (expiring) and where to PUT the file."""
    limit = services.settings.intake.max_video_bytes
    if request.size_bytes > limit:
        raise TooLarge(f"size_bytes: {request.size_bytes} is over the limit of {limit} bytes "
                       f"(MAX_VIDEO_MB)")
    upload_id = uuid.uuid4().hex
    now = time.time()
    key = upload_key(datetime.fromtimestamp(now, UTC), upload_id)
    session = services.storage.upload_session(key, request.size_bytes, request.content_type)
    ttl = services.settings.storage.UPLOAD_TTL_S
    with redis_outage():
        pipe = services.redis.pipeline()
        pipe.hset(redis_keys.upload(upload_id), mapping={
            "key": key, "size_bytes": request.size_bytes, "content_type": request.content_type,
            "team": team, "expires_at": now + ttl})
        pipe.expire(redis_keys.upload(upload_id), ttl + 86400)  # the clean-up reads it
        pipe.zadd(redis_keys.UPLOADS_EXPIRING, {upload_id: now + ttl})
        pipe.execute()
    return UploadCreated(
        upload_id=upload_id, upload_url=session or f"{api_base}/api/v1/uploads/{upload_id}",
        expires_at=datetime.fromtimestamp(now + ttl, UTC), needs_api_key=session is None)


def _record(services: Services, upload_id: str, field: str,
            team: str | None = None) -> dict[str, str]:
    """The upload's record while it is usable; a missing or expired one is refused, and
    so is another team's (as if it did not exist)."""
    with redis_outage():
        record = services.redis.hgetall(redis_keys.upload(upload_id))
    if not record or (not record.get("used_by")
                      and float(record["expires_at"]) < time.time()) or (
            team is not None and record.get("team") != team):
        message = (f"{field}: upload {upload_id} does not exist or has expired "
                   f"(UPLOAD_TTL_S)")
        raise NotFound(message) if field == "upload_id" else InvalidInput(message)
    return record


def receive(services: Services, upload_id: str, body: BinaryIO,
            content_length: int | None, team: str | None = None) -> int:
    """The local PUT route: the body streamed into storage, exactly the announced size
    (more is 413, less is 400; nothing is stored either way). Returns the bytes stored."""
    record = _record(services, upload_id, "upload_id", team)
    size, key = int(record["size_bytes"]), record["key"]
    if record.get("used_by") or services.storage.size_of(key) is not None:
        raise Conflict(f"upload_id: upload {upload_id} is already finished")
    if content_length is not None and content_length > size:
        raise TooLarge(f"body: {content_length} bytes, over the {size} announced (size_bytes)")
    with redis_outage():
        if not services.redis.hsetnx(redis_keys.upload(upload_id), "receiving", "1"):
            raise Conflict(f"upload_id: a PUT of upload {upload_id} is under way")
    try:
        services.storage.put_stream(key, _exactly(body, size), record["content_type"])
    finally:
        with redis_outage():
            services.redis.hdel(redis_keys.upload(upload_id), "receiving")
    return size


def _exactly(body: BinaryIO, size: int) -> Iterator[bytes]:
    got = 0
    while chunk := body.read(READ_BYTES):
        got += len(chunk)
        if got > size:
            raise TooLarge(f"body: over the {size} bytes announced (size_bytes)")
        yield chunk
    if got < size:
        raise InvalidInput(f"body: ended after {got} of the {size} bytes announced "
                           f"(size_bytes); PUT the whole file again")


def check_usable(services: Services, upload_id: str) -> None:
    """A create's `upload:` URL names a finished upload (taking it is `claim`'s)."""
    record = _record(services, upload_id, "url")
    stored = services.storage.size_of(record["key"])
    if stored is None or stored != int(record["size_bytes"]):
        raise InvalidInput(f"url: upload {upload_id} is not finished: PUT the file to its "
                           f"upload_url first")


def claim(services: Services, upload_id: str, task_id: str, team: str) -> str:
    """The upload taken for `task_id` of `team` (one task per upload, of the team that
    made the upload); returns its file's URI."""
    record = _record(services, upload_id, "url", team)
    name = redis_keys.upload(upload_id)
    with redis_outage():
        if not services.redis.hsetnx(name, "used_by", task_id):
            used_by = services.redis.hget(name, "used_by")
            if used_by != task_id:
                raise Conflict(f"url: upload {upload_id} is already used by task {used_by}")
        pipe = services.redis.pipeline()
        pipe.expire(name, (services.settings.housekeeping.CACHE_DAYS + 1) * 86400)
        pipe.zrem(redis_keys.UPLOADS_EXPIRING, upload_id)
        pipe.execute()
    return services.storage.uri_of(record["key"])


def release(services: Services, upload_id: str, task_id: str) -> None:
    """Give back an upload a create took but could not keep (its insert or enqueue failed)."""
    name = redis_keys.upload(upload_id)
    with redis_outage():
        if services.redis.hget(name, "used_by") != task_id:
            return
        services.redis.hdel(name, "used_by")
        expires_at = float(services.redis.hget(name, "expires_at") or 0)
        services.redis.zadd(redis_keys.UPLOADS_EXPIRING, {upload_id: expires_at})
        services.redis.expire(name, services.settings.storage.UPLOAD_TTL_S + 86400)


def clean_uploads(services: Services, *, dry_run: bool = False,
                  now: float | None = None) -> dict[str, int]:
    """Remove the uploads no task took within UPLOAD_TTL_S: their file (if any) and
    record. The clean-up takes each one as a create would (HSETNX), so a create racing
    it either gets the upload or a clear refusal."""
    moment = time.time() if now is None else now
    removed = 0
    with redis_outage():
        due = services.redis.zrangebyscore(redis_keys.UPLOADS_EXPIRING, 0, moment)
    for upload_id in due:
        if dry_run:
            removed += 1
            continue
        name = redis_keys.upload(upload_id)
        with redis_outage():
            key = services.redis.hget(name, "key")
            taken = services.redis.hsetnx(name, "used_by", EXPIRED) if key else True
        if taken and key:
            services.storage.delete(key)
            removed += 1
        with redis_outage():
            services.redis.zrem(redis_keys.UPLOADS_EXPIRING, upload_id)
            if taken:
                services.redis.delete(name)
    return {"removed": removed, "due": len(due)}
