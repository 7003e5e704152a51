"""Whose problem a failed call is — the key's, the model's, the route's (endpoint), or the
request's — read from Google's documented error bodies and the HTTP client's errors. The
tagger reports each to its owner: the key to the pool, the model and the endpoint to their
shared back-offs."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from google.genai import errors

from shared.accounts.pool import Outcome
from shared.errors import ErrorCode, PermanentError
from shared.redact import redact


class KeyCoolingDown(Exception):
    """Gemini announced a wait for the lease's key after it was granted: the request is
    not sent (the lease is refunded) and the next key is tried."""


class ModelOverloaded(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RouteFailed(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class KeyFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


@dataclass(frozen=True)
class FailedOver:
    """A call that did not answer; `key_failed`: the key's own failure (the others are
    the model's or the endpoint's, or a key that was never sent)."""

    reason: str
    key_failed: bool = False


def failure_of(error: errors.APIError) -> Exception:
    """Whose problem an error is: the model's (503 UNAVAILABLE, 504 DEADLINE_EXCEEDED:
    overload), the route's (400 FAILED_PRECONDITION "User location is not supported"), or
    the key's / the request's (`classify`). 500 INTERNAL is nobody's fault in particular:
    no penalty for the key, the next try goes to another key."""
    status = f"HTTP {error.code} {error.status or ''}".strip()
    if error.code in (503, 504):
        return ModelOverloaded(status)
    if error.code == 400 and "location is not supported" in (error.message or "").lower():
        return RouteFailed("region", f"{status}: user location is not supported")
    if error.code == 500:
        return KeyFailed(Outcome("neutral", status))
    return KeyFailed(classify(error))


def cannot_connect(error: BaseException) -> bool:
    """The endpoint is not there (refused, no route, DNS): the HTTP client's ConnectError
    or an OSError about connecting somewhere in its causes."""
    seen: BaseException | None = error
    for _ in range(6):
        if seen is None:
            return False
        if type(seen).__name__ in ("ConnectError", "ConnectTimeout") or isinstance(
                seen, ConnectionRefusedError | socket.gaierror):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def classify(error: errors.APIError) -> Outcome:
    """What an error says about the key (Google's documented error bodies)."""
    details = _details(error)
    status = f"HTTP {error.code} {error.status or ''}".strip()
    if error.code == 429:
        quota_ids = [v.get("quotaId", "") for d in details
                     if d.get("@type", "").endswith("QuotaFailure")
                     for v in d.get("violations", []) if isinstance(v, dict)]
        scope = quota_scope(quota_ids)
        if any("PerDay" in q for q in quota_ids):
            return Outcome("day", f"{status}: daily quota exhausted", scope=scope)
        if any("Token" in q for q in quota_ids):  # tokens per minute: no request-count lesson
            return Outcome("tokens", f"{status}: per-minute input tokens",
                           retry_delay_s=_retry_delay_s(details), scope=scope)
        if quota_ids or _retry_delay_s(details) is not None:
            return Outcome("minute", f"{status}: per-minute quota",
                           retry_delay_s=_retry_delay_s(details), scope=scope)
        return Outcome("failure", f"{status}: Gemini out of capacity")
    if error.code == 400:
        if any(d.get("reason") == "API_KEY_INVALID" for d in details):
            return Outcome("disabled", "API_KEY_INVALID")
        raise PermanentError(f"Gemini refused the request: {_reason(error, details)}",
                             error_code=ErrorCode.GEMINI_BAD_REQUEST)
    if error.code in (401, 403):
        return Outcome("disabled", _reason(error, details))
    return Outcome("failure", status)


def quota_scope(quota_ids: list[str]) -> str:
    """`project` when the QuotaFailure names a per-project quota (or a per-model one:
    Gemini's model quotas, tokens per minute included, are the project's), else `key`: a
    quota about the key itself, or a 429 that named none."""
    if any("PerProject" in q or "PerModel" in q for q in quota_ids):
        return "project"
    return "key"


def _details(error: errors.APIError) -> list[dict]:
    body = error.details if isinstance(error.details, dict) else {}
    inner = body.get("error", body)
    details = inner.get("details") if isinstance(inner, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _retry_delay_s(details: list[dict]) -> float | None:
    """RetryInfo's `retryDelay` in seconds; None when there is none (or it is unreadable)."""
    for item in details:
        if item.get("@type", "").endswith("RetryInfo"):
            text = str(item.get("retryDelay", "")).rstrip("s")
            try:
                return max(0.0, float(text))
            except ValueError:
                return None
    return None


def _reason(error: errors.APIError, details: list[dict]) -> str:
    """Status and `ErrorInfo.reason` when Google gives one (the message then adds nothing),
    else the message — redacted either way: Google's messages can quote the key."""
    status = f"HTTP {error.code} {error.status or ''}".strip()
    reasons = [d["reason"] for d in details
               if d.get("@type", "").endswith("ErrorInfo") and d.get("reason")]
    if reasons:
        return f"{status} ({reasons[0]})"
    return f"{status}: {redact(error.message or 'no message')[:200]}"
