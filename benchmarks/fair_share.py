"""Fair share of the key pool across teams (issue 36): WFQ on the local queue vs first
come, first served, measured in the same run.

    python -m benchmarks.fair_share [--window 6] [--backlog 500] [--minutes 10]

Three keys at 6 requests per window (Gemini's minute, scaled down: `--window 6` makes a
minute 6 s, so 18 requests per 6 s); the Gemini stand-in enforces the window per key
(a refused call does not count). Real Redis, the real `RedisQueue` (fair ZSet or one
FIFO list), the real local `Consumer` (concurrency 2 × keys, as infra/setup.sh gives
Cloud Tasks; gated by the pool's promised slots, and paced by them when fair), the real
`AccountPool`, deliveries over HTTP. The worker is this file's: per delivery it does what
the runner and the Gemini tagger do around the pool — `acquire` (a wait up to
SHORT_WAIT_S scaled is slept, a longer one promises a slot and re-queues the task as a
planned delivery), `stamp_sent`, the generateContent call, `report` — but no download or
frames (the box is shared; a video's own work is measured in worker_memory/keyframes).

Cases, each with FAIR_SHARE on and off:
1. newcomer: team A queues `backlog` videos; one window later team B queues 5. B's
   videos: their places in the queue's delivery order after being queued
   (`b_delivered_at`, and how many of A's went first), the requests that went on the
   wire (anyone's) before each of them (`b_slots_waited`; the most of them A's:
   `a_slots_ahead_of_b` — deliveries run 6 at once, so requests of one burst of free
   slots race), when the last started and when the last was answered (scaled minutes).
2. weights: A weight 3, B weight 1, both backlogged (A queued first): each team's
   requests over `minutes` windows, A/B against 3.
3. alone: A alone: requests per window over `minutes` windows / the pool's 18.
Uses Redis db 12 on 127.0.0.1:6379 (flushed; BENCH_REDIS_URL to change).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
import requests

from shared.accounts.importer import AccountEntry, import_accounts
from shared.accounts.pool import AccountPool, Lease, Outcome
from shared.queue.base import Redelivery, new_generation
from shared.queue.local_consumer import Consumer, ConsumerConfig
from shared.queue.redis_queue import RedisQueue
from shared.tagging.gemini import SHORT_WAIT_S
from shared.teams.caps import CapStore, TeamCaps
from tests.gemini_standin import GeminiStandIn

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
KEYS = [f"AIzaSyFAIR{n:029d}" for n in range(3)]
LIMIT = 6
MODEL = "gemini-2.5-flash"


@dataclass
class Record:
    """What the worker saw: each request that went to Gemini, when, for which team."""

    team_of: dict[str, str] = field(default_factory=dict)
    starts: list[tuple[float, str, str]] = field(default_factory=list)
    done: dict[str, float] = field(default_factory=dict)
    refused: int = 0
    key_waits: Counter[str] = field(default_factory=Counter)
    """Deliveries that found no key and were re-queued, planned, per team."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class BenchWorker:
    """The pool protocol of one delivery (runner + tagger), over HTTP for the consumer."""

    def __init__(self, pool: AccountPool, queue: RedisQueue, standin: GeminiStandIn,
                 record: Record, window: float) -> None:
        self.pool, self.queue, self.standin, self.record = pool, queue, standin, record
        self.short_wait_s = SHORT_WAIT_S * window / 60
        self.http = requests.Session()
        bench = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                bench.deliver(body["task_id"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def deliver(self, task_id: str) -> None:
        lease = self._lease()
        if lease is None or not self.pool.stamp_sent(lease):
            if lease is not None:
                self.pool.release(lease)
            self._wait_for_key(task_id)
            return
        with self.record.lock:
            self.record.starts.append((time.monotonic(), self.record.team_of[task_id], task_id))
        answer = self.http.post(
            f"{self.standin.base_url}/v1beta/models/{MODEL}:generateContent",
            headers={"x-goog-api-key": lease.api_key}, timeout=10,
            json={"contents": [{"role": "user", "parts": [{"text": "tag this video"}]}]})
        if answer.status_code == 429:
            self.record.refused += 1
            self.pool.report(lease.key_id, Outcome("minute", retry_delay_s=1.0), lease.member,
                             lease)
            self._wait_for_key(task_id)
            return
        self.pool.report(lease.key_id, Outcome.success(), lease.member, lease)
        self.record.done[task_id] = time.monotonic()

    def _lease(self) -> Lease | None:
        while True:
            lease = self.pool.acquire()
            if isinstance(lease, Lease):
                return lease
            if lease.retry_after_s > self.short_wait_s:
                return None
            time.sleep(max(0.01, lease.retry_after_s))

    def _wait_for_key(self, task_id: str) -> None:
        """The runner's key wait: a slot of its own, then a planned delivery."""
        self.record.key_waits[self.record.team_of[task_id]] += 1
        delay = self.pool.promise_slot() or 1.0
        self.queue.enqueue(task_id, delay_s=delay, planned=True,
                           generation=new_generation(Redelivery.KEY_WAIT),
                           team=self.record.team_of[task_id])

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RecordedQueue(RedisQueue):
    """The real queue; each id it hands the consumer is noted, in the queue's order."""

    def __init__(self, *args: object, taken: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.taken = taken

    def take(self, timeout_s: float = 1.0, fresh: bool = True) -> str | None:
        task_id = super().take(timeout_s, fresh)
        if task_id is not None:
            self.taken.append(task_id)
        return task_id


class Bench:
    """A fresh Redis db, pool, stand-in, worker and consumer for one case."""

    def __init__(self, fair: bool, window: float) -> None:
        self.client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        self.client.flushdb()
        import_accounts(self.client, [AccountEntry(api_key=key, daily_limit=100_000,
                                                   minute_limit=LIMIT) for key in KEYS])
        self.window = window
        self.pool = AccountPool(self.client, window_ms=int(window * 1000))
        self.taken: list[str] = []
        self.queue = RecordedQueue(self.client, fair=fair, window_s=window, taken=self.taken)
        self.standin = GeminiStandIn(rate_limit=LIMIT, window_s=window).start()
        self.record = Record()
        self.worker = BenchWorker(self.pool, self.queue, self.standin, self.record, window)
        self.consumer = Consumer(
            self.queue, ConsumerConfig(worker_url=self.worker.url, concurrency=2 * len(KEYS),
                                       reap_interval_s=0, max_idle_s=0.5,
                                       gate_lead_s=0.5 * window / 60),
            gate=self.pool.promise_slot,
            pace=(lambda: self.pool.promise_slot(peek=True)) if fair else None)
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)

    def queue_videos(self, team: str, count: int) -> tuple[float, list[str]]:
        ids = [f"{team:0<4}{n:028x}" for n in range(count)]
        self.record.team_of.update(dict.fromkeys(ids, team))
        self.queue.enqueue_many([(task_id, "") for task_id in ids], team=team)
        return time.monotonic(), ids

    def __enter__(self) -> Bench:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop()
        self.thread.join(10)
        self.worker.stop()
        self.standin.stop()


def newcomer(fair: bool, window: float, backlog: int) -> dict[str, object]:
    with Bench(fair, window) as bench:
        bench.queue_videos("a", backlog)
        time.sleep(window)  # A's backlog is running
        taken_before = len(bench.taken)
        queued_at, b_ids = bench.queue_videos("b", 5)
        deadline = queued_at + 4 * window  # 4 scaled minutes, then B counts as starved
        while time.monotonic() < deadline and not all(t in bench.record.done for t in b_ids):
            time.sleep(0.05)
        starts = list(bench.record.starts)
        taken = bench.taken[taken_before:]
    order = [task_id for at, _, task_id in starts if at >= queued_at]
    b_taken = [taken.index(t) for t in b_ids]
    slots = [order.index(t) if t in order else None for t in b_ids]
    ahead = [None if slot is None else sum(1 for t in order[:slot] if t not in b_ids)
             for slot in slots]
    ends = [bench.record.done.get(t) for t in b_ids]
    return {"b_delivered_at": b_taken,
            "a_delivered_ahead_of_b": sum(1 for t in taken[:max(b_taken)] if t not in b_ids),
            "b_slots_waited": slots,
            "a_slots_ahead_of_b": None if None in ahead else max(ahead),
            "b_last_start_scaled_min": (None if None in slots else round(
                (max(at for at, _, t in starts if t in b_ids) - queued_at) / window, 3)),
            "b_done_scaled_min": (None if None in ends
                                  else round((max(ends) - queued_at) / window, 2)),
            "first_starts": "".join(team for at, team, _ in starts if at >= queued_at)[:16],
            "a_requests_meanwhile": sum(1 for at, team, _ in starts
                                        if at >= queued_at and team == "a"),
            "key_waits": dict(bench.record.key_waits), "refused_429": bench.record.refused}


def weights(fair: bool, window: float, minutes: int) -> dict[str, object]:
    backlog = int(minutes * len(KEYS) * LIMIT * 1.2)
    with Bench(fair, window) as bench:
        CapStore(bench.client).set("a", TeamCaps(weight=3))
        start, _ = bench.queue_videos("a", backlog)
        bench.queue_videos("b", backlog)
        time.sleep(minutes * window)
        starts = [team for at, team, _ in bench.record.starts if at < start + minutes * window]
    shares = Counter(starts)
    ratio = shares["a"] / shares["b"] if shares["b"] else None
    return {"a": shares["a"], "b": shares["b"], "a_per_b": ratio and round(ratio, 2),
            "off_3_to_1": ratio and f"{abs(ratio / 3 - 1):.1%}",
            "refused_429": bench.record.refused}


def alone(fair: bool, window: float, minutes: int) -> dict[str, object]:
    with Bench(fair, window) as bench:
        bench.queue_videos("a", int(minutes * len(KEYS) * LIMIT * 1.2))
        time.sleep(minutes * window + 1)
        times = sorted(at for at, _, _ in bench.record.starts)
    first = times[0]
    used = sum(1 for at in times if at < first + minutes * window)
    return {"requests": used, "pool_capacity": minutes * len(KEYS) * LIMIT,
            "pool_use": round(used / (minutes * len(KEYS) * LIMIT), 3),
            "refused_429": bench.record.refused}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=6.0,
                        help="Gemini's minute, scaled (seconds)")
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=10, help="scaled minutes measured")
    parser.add_argument("--cases", default="newcomer,weights,alone")
    args = parser.parse_args()
    print(f"3 keys × {LIMIT} requests per scaled minute of {args.window:g} s; consumer "
          f"concurrency {2 * len(KEYS)}", flush=True)
    cases = {"newcomer": lambda fair: newcomer(fair, args.window, args.backlog),
             "weights": lambda fair: weights(fair, args.window, args.minutes),
             "alone": lambda fair: alone(fair, args.window, args.minutes)}
    for name in args.cases.split(","):
        for fair in (True, False):
            result = cases[name](fair)
            print(f"{name} ({'fair share' if fair else 'FIFO baseline'})", json.dumps(result),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
