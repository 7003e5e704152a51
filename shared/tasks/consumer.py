"""The local Cloud Tasks stand-in: deliver queued ids to the worker over HTTP.

Like Cloud Tasks it POSTs `{"task_id": …}` with `X-CloudTasks-*` headers, treats any 2xx
as done, honours `Retry-After`, otherwise backs off exponentially with jitter, and after
`max_retries` parks the id on `task_queue_failed`. Ids in flight when a consumer dies are
put back on the queue when the next one starts (`recover_in_flight`); a duplicate
delivery is harmless because the worker's claim is idempotent. Run one consumer per
queue; raise `concurrency` for more parallel deliveries.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from shared.tasks.queue import RedisQueue

log = logging.getLogger("vision_to_tag.consumer")


@dataclass(frozen=True)
class ConsumerConfig:
    worker_url: str
    worker_token: str = ""
    concurrency: int = 4
    """Deliveries in flight at once."""
    max_retries: int = 10
    """Failed deliveries before an id is parked on task_queue_failed."""
    min_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    request_timeout_s: float = 900.0
    """How long one delivery may take: the worker runs the whole pipeline inside it."""
    reap_interval_s: float = 30.0
    queue_name: str = "local"


def backoff_delay(retry: int, config: ConsumerConfig) -> float:
    """Exponential backoff with jitter: uniform in [½·d, d], d = min·2^retry, capped."""
    ceiling = min(config.max_backoff_s, config.min_backoff_s * 2**retry)
    return random.uniform(ceiling / 2, ceiling)


def retry_after_s(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class Consumer:
    def __init__(
        self,
        queue: RedisQueue,
        config: ConsumerConfig,
        reaper: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.queue = queue
        self.config = config
        self.reaper = reaper
        self.stop_event = threading.Event()
        self.http = requests.Session()
        self._slots = threading.Semaphore(config.concurrency)

    def run(self) -> None:
        """Deliver until `stop()`; in-flight deliveries finish before returning."""
        recovered = self.queue.recover_in_flight()
        if recovered:
            log.info("recovered %d in-flight ids from a previous run", recovered)
        next_reap = time.monotonic()
        with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="deliver") as pool:
            while not self.stop_event.is_set():
                if self.reaper and time.monotonic() >= next_reap:
                    self._reap()
                    next_reap = time.monotonic() + self.config.reap_interval_s
                self.queue.promote_due()
                if not self._slots.acquire(timeout=0.5):
                    continue
                task_id = self.queue.take(timeout_s=0.5)
                if task_id is None:
                    self._slots.release()
                    continue
                pool.submit(self._deliver_and_release, task_id)
        log.info("consumer stopped")

    def stop(self) -> None:
        self.stop_event.set()

    def _reap(self) -> None:
        try:
            counts = self.reaper() if self.reaper else {}
            if any(counts.values()):
                log.info("reaper: %s", counts)
        except Exception:
            log.exception("reaper failed; will try again")

    def _deliver_and_release(self, task_id: str) -> None:
        try:
            self.deliver(task_id)
        except Exception:
            log.exception("delivery crashed", extra={"task_id": task_id})
        finally:
            self._slots.release()

    def deliver(self, task_id: str) -> str:
        """One delivery: returns `ack`, `retry` or `dead`."""
        retries = self.queue.retry_count(task_id)
        headers = {
            "X-CloudTasks-TaskName": task_id,
            "X-CloudTasks-QueueName": self.config.queue_name,
            "X-CloudTasks-TaskRetryCount": str(retries),
            "X-CloudTasks-TaskExecutionCount": str(retries),
        }
        if self.config.worker_token:
            headers["X-Worker-Token"] = self.config.worker_token
        hint: float | None = None
        try:
            response = self.http.post(
                self.config.worker_url, json={"task_id": task_id}, headers=headers,
                timeout=(5, self.config.request_timeout_s),
            )
            if 200 <= response.status_code < 300:
                self.queue.ack(task_id)
                return "ack"
            hint = retry_after_s(response)
            reason = f"HTTP {response.status_code}"
        except requests.RequestException as error:
            reason = type(error).__name__
        if retries + 1 > self.config.max_retries:
            self.queue.dead_letter(task_id)
            log.warning("gave up after %d retries (%s)", retries, reason,
                        extra={"task_id": task_id})
            return "dead"
        delay = hint if hint is not None else backoff_delay(retries, self.config)
        self.queue.retry_later(task_id, delay)
        log.info("retry in %.1f s (%s)", delay, reason, extra={"task_id": task_id})
        return "retry"
