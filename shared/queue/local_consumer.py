"""The local Cloud Tasks stand-in: deliver queued ids to the worker over HTTP.

Like Cloud Tasks it POSTs `{"task_id": …}` with `X-CloudTasks-*` headers, treats any 2xx
as done, honours `Retry-After`, otherwise backs off exponentially with jitter, and after
`max_retries` failed deliveries gives up (`on_dead` marks the row `delivery_failed`).

It never exits on a transient error: a Redis or database outage is logged and retried
with backoff, and a worker that refuses connections (restarting) is not the task's fault,
so its retry budget is untouched. Delayed ids are delivered at their due time (the loop
sleeps until the next due id or a new id arrives). With a `gate` (the key pool's
`promise_slot`), a fresh id waits for a request slot of its own before it is delivered,
so a backlog meets the pool's pace instead of bouncing off it. With a `pace` too (the
pool's next unpromised slot, FAIR_SHARE) a fresh id is taken from the teams' lists only when
a slot is near: the teams' order is decided slot by slot, not by who queued first (a
backlog promised all its slots ahead would keep a newcomer behind it). Run one consumer
per queue; raise `concurrency` for more parallel deliveries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from shared.backoff import exponential_backoff
from shared.queue.redis_queue import RedisQueue

log = logging.getLogger("vision_to_tag.consumer")


@dataclass(frozen=True)
class ConsumerConfig:
    worker_url: str
    worker_token: str = ""
    concurrency: int = 4
    """Deliveries in flight at once."""
    max_retries: int = 10
    """Failed deliveries (worker errors, not refused connections) before giving up."""
    min_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    request_timeout_s: float = 900.0
    """How long one delivery may take: the worker runs the whole pipeline inside it."""
    reap_interval_s: float = 30.0
    queue_name: str = "local"
    max_idle_s: float = 5.0
    """Longest single wait for work; the loop re-checks delayed ids and the reaper after."""
    gate_lead_s: float = 0.5
    """A gated delivery starts this long before its key slot: the worker's download and
    frames overlap the wait, and it takes the key the moment the slot frees."""


def backoff_delay(retry: int, config: ConsumerConfig) -> float:
    """Uniform in [½·d, d], d = min·2^retry, capped at max (Cloud Tasks' min/max backoff)."""
    return exponential_backoff(retry, config.min_backoff_s, config.max_backoff_s,
                               spread=(0.5, 1.0))


def retry_after_s(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


IDLE_HOUSEKEEPING_S = 30.0
"""Recovery sweep interval when the reaper is off (`reap_interval_s` = 0)."""

OUTAGE_BACKOFF_S = (0.5, 10.0)
"""Pause of the loop while Redis or the database is down: the first, doubled with each
failure in a row, up to the second."""


class Consumer:
    def __init__(
        self,
        queue: RedisQueue,
        config: ConsumerConfig,
        reaper: Callable[[], dict[str, int]] | None = None,
        on_dead: Callable[[str], object] | None = None,
        gate: Callable[[], float | None] | None = None,
        jobs: Sequence[tuple[str, float, Callable[[], object]]] = (),
        pace: Callable[[], float | None] | None = None,
    ) -> None:
        self.queue = queue
        self.config = config
        self.reaper = reaper
        self.on_dead = on_dead
        self.gate = gate
        self.pace = pace
        self.jobs = tuple(jobs)
        """(name, every s, call): periodic work (the key pool's probes and alerts) run in
        a thread of its own, so a slow receiver or probe never holds up deliveries."""
        self.stop_event = threading.Event()
        self.http = requests.Session()
        self._slots = threading.Semaphore(config.concurrency)
        self._in_flight: set[str] = set()
        self._in_flight_lock = threading.Lock()
        self._outages = 0

    def run(self) -> None:
        """Deliver until `stop()`; in-flight deliveries finish before returning."""
        next_reap = time.monotonic()
        if self.jobs:
            threading.Thread(target=self._run_jobs, name="periodic-jobs", daemon=True).start()
        with ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="deliver") as pool:
            while not self.stop_event.is_set():
                try:
                    if time.monotonic() >= next_reap:
                        self._housekeeping()
                        next_reap = time.monotonic() + (self.config.reap_interval_s
                                                        or IDLE_HOUSEKEEPING_S)
                    self._take_one(pool, max(0.001, next_reap - time.monotonic()))
                    self._outages = 0
                except Exception as error:  # noqa: BLE001 - an outage never stops the loop
                    pause = exponential_backoff(self._outages, *OUTAGE_BACKOFF_S)
                    self._outages += 1
                    log.warning("consumer loop: %s: %s; again in %.1f s",
                                type(error).__name__, error, pause)
                    self.stop_event.wait(pause)
        log.info("consumer stopped")

    def stop(self) -> None:
        self.stop_event.set()

    def _run_jobs(self) -> None:
        due = {name: time.monotonic() for name, _, _ in self.jobs}
        while not self.stop_event.is_set():
            for name, every_s, call in self.jobs:
                if time.monotonic() < due[name]:
                    continue
                try:
                    call()
                except Exception as error:  # noqa: BLE001 - the next run tries again
                    log.warning("%s failed (%s: %s); will try again", name,
                                type(error).__name__, error)
                due[name] = time.monotonic() + every_s
            self.stop_event.wait(max(0.05, min(due.values()) - time.monotonic()))

    def _take_one(self, pool: ThreadPoolExecutor, until_reap_s: float) -> None:
        self.queue.promote_due()
        if not self._slots.acquire(timeout=min(self.config.max_idle_s, until_reap_s)):
            return
        try:
            fresh, slot_in = self._fresh_allowed()
            due_in = self.queue.next_due_in()
            wait = min(self.config.max_idle_s, until_reap_s, slot_in,
                       due_in if due_in is not None else self.config.max_idle_s)
            task_id = self.queue.take(timeout_s=wait, fresh=fresh) if wait > 0.01 else None
            if task_id is None and 0 < wait <= 0.01:
                time.sleep(wait)
        except BaseException:
            self._slots.release()
            raise
        if task_id is None:
            self._slots.release()
            return
        info = None
        if self.pace is not None:
            info = self.queue.info(task_id)
            if self._parked_for_slot(task_id, info):
                # paced: the slot is promised before the next look at the pool, so two
                # takes never both see the same slot as theirs
                self._slots.release()
                return
        with self._in_flight_lock:
            self._in_flight.add(task_id)
        pool.submit(self._deliver_and_release, task_id, info)

    def _fresh_allowed(self) -> tuple[bool, float]:
        """Whether a fresh id may be taken now (the pool's next slot is near), and how
        long to wait for one otherwise. Without `pace`, or when the pool cannot say, yes."""
        if self.pace is None:
            return True, self.config.max_idle_s
        try:
            slot_in = self.pace()
        except Exception as error:  # noqa: BLE001 - the worker will find out itself
            log.warning("key pool pace unavailable: %s", type(error).__name__)
            return True, self.config.max_idle_s
        if slot_in is None or slot_in <= self.config.gate_lead_s:
            return True, self.config.max_idle_s
        return False, max(0.02, slot_in - self.config.gate_lead_s)

    def _housekeeping(self) -> None:
        """Ids left in flight by a crash or a failed acknowledgement go back on the queue;
        then the reaper (expired leases, pending rows without a delivery)."""
        with self._in_flight_lock:
            busy = frozenset(self._in_flight)
        recovered = self.queue.recover_in_flight(keep=busy)
        if recovered:
            log.info("recovered %d in-flight ids", recovered)
        if self.reaper is None:
            return
        try:
            counts = self.reaper()
            if any(counts.values()):
                log.info("reaper: %s", counts)
        except Exception as error:  # noqa: BLE001 - next sweep
            log.warning("reaper failed (%s: %s); will try again", type(error).__name__, error)

    def _deliver_and_release(self, task_id: str, info: dict[str, str] | None = None) -> None:
        try:
            self.deliver(task_id, info=info)
        except Exception as error:  # noqa: BLE001 - the id stays in flight: recovered later
            log.warning("delivery interrupted (%s: %s); recovered at the next sweep",
                        type(error).__name__, error, extra={"task_id": task_id})
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(task_id)
            self._slots.release()

    def _parked_for_slot(self, task_id: str, info: dict[str, str]) -> bool:
        """A fresh id waits for a key slot of its own; a planned retry already has one.
        It waits parked on the delayed set, as a planned delivery, not in a delivery slot:
        a consumer whose every slot slept until a promised minute would starve the
        deliveries already due."""
        if self.gate is None or info.get("planned") == "1":
            return False
        try:
            wait = self.gate()
        except Exception as error:  # noqa: BLE001 - the worker will find out itself
            log.warning("key pool gate unavailable: %s", type(error).__name__)
            return False
        # paced, the id was taken because its slot was near: a slot a moment further on
        # (another take promised the one seen) is not parked — parked, it would come back
        # ahead of the teams' lists, out of its fair turn
        if not wait or wait <= self.config.gate_lead_s * (2 if self.pace else 1):
            return False
        self.queue.retry_later(task_id, wait - self.config.gate_lead_s, count=False,
                               planned=True)
        return True

    def deliver(self, task_id: str, *, info: dict[str, str] | None = None) -> str:
        """One delivery: returns `ack`, `retry`, `wait` (worker unreachable), `parked` (until
        the key slot promised to it) or `dead`. `info`: the id's queue record when the take
        has read it already (paced: it also checked for parking then)."""
        if info is None:
            info = self.queue.info(task_id)
            if self._parked_for_slot(task_id, info):
                return "parked"
        retries = int(info.get("retry_count") or 0)
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
        except requests.ConnectionError as error:
            if not _refused(error):
                reason = type(error).__name__
            else:  # the worker is (re)starting: not a failed delivery
                delay = min(5.0, backoff_delay(retries, self.config))
                self.queue.retry_later(task_id, delay, count=False)
                log.info("worker unreachable; again in %.1f s", delay, extra={"task_id": task_id})
                return "wait"
        except requests.RequestException as error:
            reason = type(error).__name__
        else:
            if 200 <= response.status_code < 300:
                self.queue.ack(task_id)
                return "ack"
            hint = retry_after_s(response)
            reason = f"HTTP {response.status_code}"
        # a 503 with Retry-After is the worker asking for later (the task is held by a live
        # worker, a backing service is down): not a failed delivery
        counted = hint is None
        if counted and retries + 1 > self.config.max_retries:
            self._give_up(task_id, retries, reason)
            return "dead"
        delay = hint if hint is not None else backoff_delay(retries, self.config)
        self.queue.retry_later(task_id, delay, count=counted)
        log.info("retry in %.1f s (%s)", delay, reason, extra={"task_id": task_id})
        return "retry"

    def _give_up(self, task_id: str, retries: int, reason: str) -> None:
        log.warning("gave up after %d retries (%s)", retries, reason, extra={"task_id": task_id})
        if self.on_dead is not None:
            self.on_dead(task_id)
        self.queue.dead_letter(task_id)


def _refused(error: requests.ConnectionError) -> bool:
    """Connection refused (nothing listening), as opposed to a reset mid-request."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__ or (
            cause.args[0] if cause.args and isinstance(cause.args[0], BaseException) else None)
    return "Connection refused" in str(error)
