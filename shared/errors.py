"""Error classes that decide what happens to a task when a stage fails.

A stage raises `PermanentError` when retrying cannot help (bad URL, HTTP 4xx, broken
video) and `TransientError` when it might (network, 5xx, no key free). The worker turns
the first into `failed` at once and the second into a retry (503 + Retry-After).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum


class ErrorCode(StrEnum):
    """Every `error_code` a task can fail or wait with (docs/api.md, "Task lifecycle and
    error codes"): stored on the row, sent in callbacks, answered by the API.
    `functions/http.py` gives each one its HTTP status for the synchronous API (shared/
    knows no HTTP)."""

    # the video
    URL_FORBIDDEN = "url_forbidden"
    DOWNLOAD_FAILED = "download_failed"
    DOWNLOAD_UNAVAILABLE = "download_unavailable"
    DOWNLOAD_TIMEOUT = "download_timeout"
    VIDEO_TOO_LARGE = "video_too_large"
    VIDEO_TOO_LONG = "video_too_long"
    UNSUPPORTED_FORMAT = "unsupported_format"
    VIDEO_UNREADABLE = "video_unreadable"
    NO_VIDEO_STREAM = "no_video_stream"
    # Gemini and the key pool
    BLOCKED_BY_SAFETY = "blocked_by_safety"
    REQUEST_TOO_LARGE = "request_too_large"
    GEMINI_BAD_REQUEST = "gemini_bad_request"
    GEMINI_FILE_FAILED = "gemini_file_failed"
    GEMINI_FILE_TIMEOUT = "gemini_file_timeout"
    GEMINI_UNAVAILABLE = "gemini_unavailable"
    GEMINI_KEY_GONE = "gemini_key_gone"
    INVALID_MODEL_OUTPUT = "invalid_model_output"
    NO_KEY_AVAILABLE = "no_key_available"
    GEMINI_OVERLOADED = "gemini_overloaded"
    GEMINI_REGION_REFUSED = "gemini_region_refused"
    REDIS_UNAVAILABLE = "redis_unavailable"
    # Gemini Batch mode
    GEMINI_BATCH_ITEM_FAILED = "gemini_batch_item_failed"
    GEMINI_QUOTA = "gemini_quota"
    BATCH_WAIT_EXCEEDED = "batch_wait_exceeded"
    BATCH_FALLBACK = "batch_fallback"
    # the task's delivery and lease
    WORKER_LOST = "worker_lost"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"
    DELIVERY_FAILED = "delivery_failed"
    LEASE_LOST = "lease_lost"
    HANDED_OFF = "handed_off"
    SERVICE_UNAVAILABLE = "service_unavailable"
    # the defaults of the error classes below
    INTERNAL_ERROR = "internal_error"
    PERMANENT_ERROR = "permanent_error"
    TRANSIENT_ERROR = "transient_error"


class TaskError(Exception):
    """A stage failure with a stable `error_code` and a human-readable message."""

    error_code = ErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, error_code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code:
            self.error_code = error_code


class PermanentError(TaskError):
    """Retrying will not help: the task fails now."""

    error_code = ErrorCode.PERMANENT_ERROR


class TransientError(TaskError):
    """Retrying may help; `retry_after_s` is a hint for the queue (None: use backoff)."""

    error_code = ErrorCode.TRANSIENT_ERROR

    def __init__(
        self, message: str, *, error_code: ErrorCode | None = None,
        retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.retry_after_s = retry_after_s


class Wait(TransientError):
    """The task cannot go on yet for a reason that is not its own (quota, an overloaded
    model, a refused region): it waits until `retry_after_s` without spending an attempt,
    at most MAX_QUOTA_WAIT_S in all."""


class WaitForKey(Wait):
    """No Gemini key is free."""

    error_code = ErrorCode.NO_KEY_AVAILABLE


class WaitForModel(Wait):
    """The model (and every fallback) is overloaded: a shared back-off is running."""

    error_code = ErrorCode.GEMINI_OVERLOADED


class WaitForRoute(Wait):
    """Every Gemini endpoint is refused (region) or unreachable."""

    error_code = ErrorCode.GEMINI_REGION_REFUSED


class ServiceUnavailable(Exception):
    """A backing service (database, Redis, queue) cannot be reached: the API answers 503."""

    def __init__(self, service: str, detail: str = "") -> None:
        super().__init__(f"{service} is unavailable" + (f": {detail}" if detail else ""))
        self.service = service


SERVICE_RETRY_S = 5
"""Retry-After when a backing service (database, Redis, queue) is down."""


@contextlib.contextmanager
def unavailable_on(service: str, *outages: type[BaseException]) -> Iterator[None]:
    """The one mapping from a backing service's connection failure (`outages`) to
    ServiceUnavailable: the API answers 503, a delivery is retried, nothing is half-done."""
    try:
        yield
    except outages as error:
        cause = getattr(error, "orig", None) or error  # SQLAlchemy wraps the driver's error
        raise ServiceUnavailable(service, type(cause).__name__) from error


class Rejected(Exception):
    """A request the service will not carry out as asked. Each kind below means one thing
    to a caller; `functions/http.py` maps kinds to HTTP statuses (shared/ knows no HTTP)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(Rejected):
    """A field's value cannot be used; the message starts with the field's name."""


class NotFound(Rejected):
    """The named thing (a task, a key) does not exist."""


class Conflict(Rejected):
    """The thing exists but its state does not allow the operation."""


class TooLarge(Rejected):
    """What was sent (or announced) is over a size limit."""


class NotConfigured(Rejected):
    """The operation needs a component this deployment has not configured."""


class Unauthenticated(Rejected):
    """No key came, or the key presented is unknown or revoked: who is calling is not known."""


class Forbidden(Rejected):
    """The caller is known but its key lacks the scope the operation needs."""


class TooManyAttempts(Rejected):
    """Too many wrong keys from one address lately: it waits `retry_after_s` seconds."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OverCap(TooManyAttempts):
    """A team reached one of its caps (tasks a day, tasks in flight): it waits
    `retry_after_s` seconds; the message names the cap."""
