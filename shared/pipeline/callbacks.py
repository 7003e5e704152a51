"""Completion callbacks: when a task ends, POST its final JSON to the caller's URL.

The body is exactly what `GET /api/v1/task/{id}` answers. `X-Signature: sha256=<hex>` is
the HMAC-SHA256 of the body keyed by CALLBACK_SECRET; `X-Task-Id` names the task. 5xx
answers and timeouts are retried with exponential backoff (tenacity), up to
CALLBACK_MAX_ATTEMPTS; 4xx and 3xx are not. The same URL safety rules as for videos
apply on every connection. The outcome is stored on the task; a failing callback never
changes the task's own status.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from shared.errors import ServiceUnavailable
from shared.pipeline.worker import Worker
from shared.tasks.models import Envelope, Task, TaskStatus
from shared.video.fetch import USER_AGENT, safe_session
from shared.video.safety import UrlForbidden, UrlPolicy

log = logging.getLogger("vision_to_tag.callbacks")


class _Retry(Exception):
    """A delivery worth trying again (5xx, timeout, connection error)."""


@dataclass(frozen=True)
class CallbackOutcome:
    status: str  # delivered | failed
    attempts: int
    error: str | None = None


def task_body(task: Task) -> bytes:
    """The same JSON as GET /api/v1/task/{id}."""
    envelope = Envelope(code=200, message="success", task_id=task.task_id,
                        data=task.model_dump(mode="json"))
    return json.dumps(envelope.model_dump(mode="json"), ensure_ascii=False).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_callback(url: str, body: bytes, *, ids: dict[str, str], secret: str,
                  policy: UrlPolicy, timeout_s: float, max_attempts: int,
                  wait_max_s: float = 30.0) -> CallbackOutcome:
    """`ids`: the header naming what the callback is about (`X-Task-Id`, `X-Batch-Id`)."""
    return post_signed(url, body, ids, secret=secret, policy=policy, timeout_s=timeout_s,
                       max_attempts=max_attempts, wait_max_s=wait_max_s)


def post_signed(url: str, body: bytes, extra_headers: dict[str, str], *, secret: str,
                policy: UrlPolicy, timeout_s: float, max_attempts: int,
                wait_max_s: float = 30.0) -> CallbackOutcome:
    """POST `body` signed with `secret` under the callbacks' rules (public addresses
    only, no redirect, 5xx and timeouts retried): task and batch callbacks, pool alerts."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **extra_headers}
    if secret:
        headers["X-Signature"] = sign(body, secret)
    attempts = 0

    def attempt() -> CallbackOutcome:
        nonlocal attempts
        attempts += 1
        try:
            with safe_session(policy, timeout_s) as safe:
                response = safe.http.post(url, data=body, headers=headers, timeout=timeout_s,
                                          allow_redirects=False)
        except UrlForbidden as error:
            return CallbackOutcome("failed", attempts, error.message)
        except requests.RequestException as error:
            raise _Retry(type(error).__name__) from error
        if 200 <= response.status_code < 300:
            return CallbackOutcome("delivered", attempts)
        if response.status_code >= 500:
            raise _Retry(f"HTTP {response.status_code}")
        return CallbackOutcome("failed", attempts, f"HTTP {response.status_code} (not retried)")

    retrying = Retrying(stop=stop_after_attempt(max_attempts),
                        wait=wait_exponential(multiplier=0.5, max=wait_max_s),
                        retry=retry_if_exception_type(_Retry), reraise=True)
    try:
        return retrying(attempt)
    except _Retry as error:
        return CallbackOutcome("failed", attempts, f"{error} after {attempts} attempts")


def _post(worker: Worker, url: str, body: bytes, ids: dict[str, str]) -> CallbackOutcome:
    """A task's or a batch's callback, under the deployment's secret and limits."""
    config = worker.config
    return post_callback(url, body, ids=ids, secret=config.callback_secret,
                         policy=worker.tools.url_policy, timeout_s=config.callback_timeout_s,
                         max_attempts=config.callback_max_attempts)


def notify(task_id: str, worker: Worker) -> CallbackOutcome | None:
    """Deliver the callback of a task that has ended, and record the outcome."""
    task = worker.store.get(task_id)
    if (task is None or not task.callback_url
            or task.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED)):
        return None
    outcome = _post(worker, task.callback_url, task_body(task), {"X-Task-Id": task_id})
    worker.followups.record_callback(task_id, status=outcome.status,
                                     attempts=outcome.attempts, error=outcome.error)
    log.info("callback %s after %d attempt(s)", outcome.status, outcome.attempts,
             extra={"task_id": task_id})
    return outcome


def notify_batches(task_id: str, worker: Worker) -> None:
    """After a task ended: each batch it belongs to that has now finished (exactly one
    caller sees that, BatchStore.finish_for_task) gets its callback — the body of
    GET /api/v1/batches/{id}, signed like a task's, with `X-Batch-Id`."""
    try:
        finished = worker.batches.finish_for_task(task_id)
    except ServiceUnavailable:  # the reconciler's sweep finishes the batch later
        log.warning("could not check the task's batch", extra={"task_id": task_id})
        return
    for batch_id in finished:
        notify_batch(batch_id, worker)


def notify_batch(batch_id: str, worker: Worker) -> CallbackOutcome | None:
    batch = worker.batches.get(batch_id)
    if batch is None or not batch.callback_url:
        return None
    envelope = Envelope(code=200, message="success", data=batch.model_dump(mode="json"))
    body = json.dumps(envelope.model_dump(mode="json"), ensure_ascii=False).encode()
    outcome = _post(worker, batch.callback_url, body, {"X-Batch-Id": batch_id})
    worker.batches.record_callback(batch_id, status=outcome.status,
                                   attempts=outcome.attempts, error=outcome.error)
    log.info("batch callback %s after %d attempt(s)", outcome.status, outcome.attempts,
             extra={"batch_id": batch_id})
    return outcome
