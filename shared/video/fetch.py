"""Download a video to a local file: streamed, size-capped, timed out, hashed on the way.

HTTP 4xx is permanent (the URL is wrong or gone), 5xx and network errors are transient.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from shared.errors import PermanentError, TransientError

CHUNK_BYTES = 256 * 1024
"""Read size while streaming: small enough to keep memory flat, big enough to be fast."""


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size_bytes: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    connect_timeout_s: float = 10
    read_timeout_s: float = 30
    total_timeout_s: float = 300


def download(
    url: str, dest: Path, limits: FetchLimits, session: requests.Session | None = None
) -> Downloaded:
    """Stream `url` into `dest`; never holds the whole file in memory."""
    http = session or requests.Session()
    deadline = time.monotonic() + limits.total_timeout_s
    try:
        response = http.get(
            url, stream=True, timeout=(limits.connect_timeout_s, limits.read_timeout_s),
            headers={"User-Agent": "vision-to-tag/0.1"},
        )
    except requests.RequestException as error:
        raise TransientError(
            f"download failed: {type(error).__name__}", error_code="download_unavailable"
        ) from error
    with response:
        _check_status(response)
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limits.max_bytes:
            raise PermanentError(
                f"video is {int(declared)} bytes, over the limit of {limits.max_bytes}",
                error_code="video_too_large",
            )
        digest = hashlib.sha256()
        size = 0
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(dest, "wb") as out:
                for chunk in response.iter_content(CHUNK_BYTES):
                    size += len(chunk)
                    if size > limits.max_bytes:
                        raise PermanentError(
                            f"video is over the limit of {limits.max_bytes} bytes",
                            error_code="video_too_large",
                        )
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"download took over {limits.total_timeout_s:g} s",
                            error_code="download_timeout",
                        )
                    digest.update(chunk)
                    out.write(chunk)
        except requests.RequestException as error:
            dest.unlink(missing_ok=True)
            raise TransientError(
                f"download interrupted: {type(error).__name__}", error_code="download_unavailable"
            ) from error
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
    if size == 0:
        dest.unlink(missing_ok=True)
        raise PermanentError("the URL answered an empty body", error_code="video_unreadable")
    return Downloaded(dest, size, digest.hexdigest(), response.headers.get("Content-Type", ""))


def _check_status(response: requests.Response) -> None:
    code = response.status_code
    if 400 <= code < 500 and code not in (408, 429):
        raise PermanentError(f"download failed: HTTP {code}", error_code="download_failed")
    if code >= 400:
        raise TransientError(f"download failed: HTTP {code}", error_code="download_unavailable")
