"""HTTP helpers the three handlers share: the reply envelope, JSON bodies, tokens."""

from __future__ import annotations

import functools
import hmac
import json
import math
import re
from collections.abc import Callable
from typing import Any

import flask
from pydantic import ValidationError

from shared.errors import (
    SERVICE_RETRY_S,
    Conflict,
    ErrorCode,
    Forbidden,
    InvalidInput,
    NotConfigured,
    NotFound,
    Rejected,
    ServiceUnavailable,
    TooLarge,
    TooManyAttempts,
    Unauthenticated,
)
from shared.redact import redact
from shared.teams.keys import Caller
from shared.validation import validation_problem

MAX_BODY_BYTES = 64 * 1024
"""A create request is a URL and a few fields; anything bigger is a mistake or abuse."""

class ApiError(Rejected):
    """A refusal a handler decides itself (method, token, body), with its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


REJECTION_STATUS: dict[type[Rejected], int] = {
    InvalidInput: 400, Unauthenticated: 401, Forbidden: 403, NotFound: 404, Conflict: 409,
    TooLarge: 413, TooManyAttempts: 429, NotConfigured: 501,
}
"""The HTTP status of each kind of refusal from shared/."""


E = ErrorCode
ERROR_STATUS: dict[ErrorCode, int] = {
    E.URL_FORBIDDEN: 400, E.DOWNLOAD_FAILED: 400, E.VIDEO_TOO_LARGE: 413,
    E.VIDEO_TOO_LONG: 413, E.REQUEST_TOO_LARGE: 413, E.UNSUPPORTED_FORMAT: 415,
    E.VIDEO_UNREADABLE: 422, E.NO_VIDEO_STREAM: 422, E.BLOCKED_BY_SAFETY: 422,
    E.GEMINI_FILE_FAILED: 422, E.NO_KEY_AVAILABLE: 429, E.GEMINI_BAD_REQUEST: 502,
    E.INVALID_MODEL_OUTPUT: 502, E.DOWNLOAD_TIMEOUT: 504,
    # the service could not do it now; the task waits or was handed to the queue
    E.GEMINI_UNAVAILABLE: 503, E.GEMINI_FILE_TIMEOUT: 503, E.GEMINI_KEY_GONE: 503,
    E.GEMINI_OVERLOADED: 503, E.GEMINI_REGION_REFUSED: 503, E.DOWNLOAD_UNAVAILABLE: 503,
    E.REDIS_UNAVAILABLE: 503, E.SERVICE_UNAVAILABLE: 503, E.INTERNAL_ERROR: 503,
    E.ATTEMPTS_EXHAUSTED: 503, E.WORKER_LOST: 503, E.DELIVERY_FAILED: 503,
    E.LEASE_LOST: 503, E.HANDED_OFF: 503, E.PERMANENT_ERROR: 503, E.TRANSIENT_ERROR: 503,
    # Gemini Batch mode only: the synchronous API never runs in it
    E.GEMINI_BATCH_ITEM_FAILED: 503, E.GEMINI_QUOTA: 503, E.BATCH_WAIT_EXCEEDED: 503,
    E.BATCH_FALLBACK: 503,
}
"""The synchronous API's HTTP status for a task that ended (or waits) with this
error_code: never 500 — the service did not crash, the task could not be done. Every
code has one (tests/test_layers.py)."""
del E


def sync_status(error_code: str | None) -> int:
    """The status for a stored error_code; a code this version does not know (a row
    written by another version) is 503, like every task that could not be done now."""
    try:
        return ERROR_STATUS[ErrorCode(error_code or "")]
    except ValueError:
        return 503


def rejection_reply(error: Rejected) -> flask.Response:
    """The envelope for a refused request, with the status its kind means."""
    status = error.status if isinstance(error, ApiError) else next(
        code for kind, code in REJECTION_STATUS.items() if isinstance(error, kind))
    wait_s = error.retry_after_s if isinstance(error, TooManyAttempts) else None
    return reply(status, error.message, headers=retry_after(wait_s))


def unavailable_reply(error: ServiceUnavailable, *, retry_after_s: float = SERVICE_RETRY_S,
                      message: str | None = None) -> flask.Response:
    """503 + Retry-After: a backing service is down; the caller (or the queue) retries."""
    return reply(503, message or str(error), headers=retry_after(retry_after_s))


FIELD_FIRST = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]-]{0,99}): ")
"""An error message about one field starts with its name (`url: …`, `items[3].url: …`)."""


def reply(
    code: int, message: str = "success", *, task_id: str | None = None,
    data: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
) -> flask.Response:
    """The original envelope; the HTTP status always equals `code`. The message is
    redacted: it can carry an upstream service's words."""
    body = {"code": code, "message": redact(message), "task_id": task_id, "data": data or {}}
    if code >= 400 and (named := FIELD_FIRST.match(message)):
        body["field"] = named["field"]
    response = flask.Response(
        json.dumps(body, ensure_ascii=False, default=str),
        status=code, mimetype="application/json",
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def retry_after(seconds: float | None) -> dict[str, str]:
    """The Retry-After header for a wait in (fractional) seconds: whole seconds, ≥ 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))} if seconds else {}


def framework_error(error: Exception) -> flask.Response:
    """What functions-framework itself answers (its router refuses a path with a control
    character, a crash) as the envelope, like everything else."""
    code = getattr(error, "code", None) or 500
    message = {404: "no route", 405: "method not allowed", 413: "body too large"}.get(
        code, "internal error" if code >= 500 else "bad request")
    response = reply(code, f"{message} ({flask.request.path[:200]!r})" if code == 404
                     else message)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def single_valued(request: flask.Request, *, multi: tuple[str, ...] = ()) -> dict[str, str]:
    """The query string as one value per name; a name given twice is 400 naming it
    (silently keeping one of them would answer a question nobody asked)."""
    values = request.args.to_dict(flat=False)
    for name, given in values.items():
        if len(given) > 1 and name not in multi:
            raise ApiError(400, f"{name[:64]}: given {len(given)} times; give it once")
    return {name: given[0] for name, given in values.items()}


def nosniff(handler: Callable[[flask.Request], flask.Response]
            ) -> Callable[[flask.Request], flask.Response]:
    """Every answer of a function says `X-Content-Type-Options: nosniff`: a browser never
    guesses a type (an error message rendered as HTML) from the bytes."""

    @functools.wraps(handler)
    def wrapped(request: flask.Request) -> flask.Response:
        response = handler(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return wrapped


def json_object(request: flask.Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object, or ApiError 400/413/415 saying what is wrong with it.

    Only `application/json` (any charset parameter) is read: browsers send text/plain and
    form bodies cross-site without a preflight, so accepting them would let any web page
    create tasks on a deployment without API tokens."""
    if request.mimetype != "application/json":
        shown = request.mimetype or "none"
        raise ApiError(415, f"Content-Type: must be application/json (got {shown})")
    if (request.content_length or 0) > limit:
        raise ApiError(413, f"body: larger than {limit // 1024} KB")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise ApiError(413, f"body: larger than {limit // 1024} KB")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "body: not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "body: nested too deeply") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body: must be a JSON object")
    return body


def describe_validation(error: ValidationError) -> str:
    """First problem, as `field: reason` (the field named the way the caller sent it)."""
    field, reason = validation_problem(error)
    return f"{field}: {reason}"


def check_token(presented: str | None, accepted: list[str], header: str) -> None:
    """401 when a token is needed and none came; 403 when it is not one we accept."""
    if not accepted:
        return
    if not presented:
        raise ApiError(401, f"{header}: a token is required")
    if not any(hmac.compare_digest(presented.encode(), token.encode()) for token in accepted):
        raise ApiError(403, f"{header}: token not accepted")


def api_token(request: flask.Request) -> str | None:
    """The caller's token from `Authorization: Bearer …` or `X-API-Key`."""
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.headers.get("X-API-Key") or None


KEY_PARAMETERS = ("api_key", "apikey", "token", "access_token", "key")
"""Query parameters a client might put a key in. A URL is written to access logs, proxies'
logs and browser histories, so a key there is refused, never read."""


def refuse_key_in_query(request: flask.Request) -> None:
    """400 naming the parameter when the query string carries something like a key; the
    value is neither read into the answer nor logged."""
    for name in KEY_PARAMETERS:
        if name in request.args:
            raise ApiError(400, f"{name}: API keys are not accepted in the query string (it "
                                "is logged along the way); send it as `Authorization: Bearer "
                                "…` or `X-API-Key`, and revoke a key that was sent in a URL")


def client_address(request: flask.Request, trusted_hops: int) -> str:
    """The caller's address: the peer's, or with `trusted_hops` proxies in front (Cloud
    Run's front end is one) the entry the nearest of them appended to X-Forwarded-For. The
    entries before it are whatever the client wrote, so they are not believed."""
    forwarded = [part.strip() for part in
                 request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    if trusted_hops and len(forwarded) >= trusted_hops:
        return forwarded[-trusted_hops]
    return request.remote_addr or "unknown"


CALLER = "vision_to_tag.caller"
"""Where the authenticated caller is kept in the request's WSGI environ."""


def caller_of(request: flask.Request) -> Caller:
    """The `Caller` authentication attached to this request (team and scopes)."""
    return request.environ[CALLER]


def check_worker_token(request: flask.Request, expected: str) -> None:
    """The private functions' shared secret (besides IAM in GCP), when WORKER_TOKEN is set."""
    check_token(request.headers.get("X-Worker-Token"), [expected] if expected else [],
                "X-Worker-Token")
