"""Error classes that decide what happens to a task when a stage fails.

A stage raises `PermanentError` when retrying cannot help (bad URL, HTTP 4xx, broken
video) and `TransientError` when it might (network, 5xx, no key free). The worker turns
the first into `failed` at once and the second into a retry (503 + Retry-After).
"""

from __future__ import annotations


class TaskError(Exception):
    """A stage failure with a stable `error_code` and a human-readable message."""

    error_code = "internal_error"

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if error_code:
            self.error_code = error_code


class PermanentError(TaskError):
    """Retrying will not help: the task fails now."""

    error_code = "permanent_error"


class TransientError(TaskError):
    """Retrying may help; `retry_after_s` is a hint for the queue (None: use backoff)."""

    error_code = "transient_error"

    def __init__(
        self, message: str, *, error_code: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.retry_after_s = retry_after_s


class Wait(TransientError):
    """The task cannot go on yet for a reason that is not its own (quota, an overloaded
    model, a refused region): it waits until `retry_after_s` without spending an attempt,
    at most MAX_QUOTA_WAIT_S in all."""


class WaitForKey(Wait):
    """No Gemini key is free."""

    error_code = "no_key_available"


class WaitForModel(Wait):
    """The model (and every fallback) is overloaded: a shared back-off is running."""

    error_code = "gemini_overloaded"


class WaitForRoute(Wait):
    """Every Gemini endpoint is refused (region) or unreachable."""

    error_code = "gemini_region_refused"


class ServiceUnavailable(Exception):
    """A backing service (database, Redis, queue) cannot be reached: the API answers 503."""

    def __init__(self, service: str, detail: str = "") -> None:
        super().__init__(f"{service} is unavailable" + (f": {detail}" if detail else ""))
        self.service = service


class ApiError(Exception):
    """A request that cannot be served as asked: `status` is the HTTP code to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
