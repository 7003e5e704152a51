"""Deliver queued task ids to the worker (the local stand-in for Cloud Tasks).

    python scripts/consumer.py [--concurrency 4] [--max-retries 10]

Stops cleanly on SIGTERM/SIGINT: no new deliveries, in-flight ones finish.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable

from shared.app.context import Services
from shared.app.pool_jobs import keys_job, watch_pool
from shared.config import Settings, get_settings
from shared.errors import ErrorCode
from shared.logs import setup_logging
from shared.pipeline.batch_collector import collect, every
from shared.pipeline.reaper import reconcile
from shared.pipeline.runner import end_failed
from shared.queue.local_consumer import Consumer, ConsumerConfig
from shared.queue.redis_queue import RedisQueue
from shared.services import wait_for_services

log = logging.getLogger("vision_to_tag.consumer")

WATCH_EVERY_S = 60.0
"""The key pool's capacity history and alerts are looked at once a minute."""


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker-url", default=settings.queue.worker_url)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--max-retries", type=int, default=10)
    parser.add_argument("--min-backoff", type=float, default=1.0)
    parser.add_argument("--max-backoff", type=float, default=300.0)
    parser.add_argument("--request-timeout", type=float, default=settings.queue.DISPATCH_DEADLINE_S,
                        help="seconds one delivery may take (default DISPATCH_DEADLINE_S)")
    parser.add_argument("--no-key-gate", action="store_true",
                        help="deliver fresh ids at once instead of waiting for a key slot "
                             "(TAGGER=gemini; for comparison in benchmarks)")
    parser.add_argument("--reap-interval", type=float, default=30.0,
                        help="seconds between stuck-task sweeps (0: never)")
    return parser


def key_gates(services: Services, *,
              no_key_gate: bool) -> dict[str, Callable[[], float | None]]:
    """The key pool's flow control (Gemini only): `gate` promises each fresh id a slot of
    its own; with FAIR_SHARE, `pace` lets a fresh id be taken only when a slot is near."""
    if services.settings.tagging.TAGGER != "gemini" or no_key_gate:
        return {}
    pool = services.pool
    if not services.settings.queue.FAIR_SHARE:
        return {"gate": pool.promise_slot}
    return {"gate": pool.promise_slot, "pace": lambda: pool.promise_slot(peek=True)}


def consumer_config(args: argparse.Namespace, worker_token: str) -> ConsumerConfig:
    return ConsumerConfig(
        worker_url=args.worker_url,
        worker_token=worker_token,
        concurrency=args.concurrency,
        max_retries=args.max_retries,
        min_backoff_s=args.min_backoff,
        max_backoff_s=args.max_backoff,
        request_timeout_s=args.request_timeout,
        reap_interval_s=args.reap_interval,
    )


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = build_parser(settings)
    args = parser.parse_args(argv)
    setup_logging(settings.logs.LOG_LEVEL, settings.logs.LOG_FORMAT)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    services = wait_for_services(stopping, log.warning)
    if services is None:
        return 0
    if not isinstance(services.queue, RedisQueue):
        parser.error("the consumer only serves QUEUE=redis")
    config = consumer_config(args, settings.queue.WORKER_TOKEN)

    def delivery_failed(task_id: str) -> None:
        end_failed(task_id, services.worker, ErrorCode.DELIVERY_FAILED,
                   f"the queue gave up after {args.max_retries} failed deliveries")

    batches_due = every(settings.tagging.BATCH_POLL_S)

    def sweep() -> dict[str, int]:
        """The reconciler, and the Gemini batch collector every BATCH_POLL_S."""
        counts = reconcile(services.worker)
        if batches_due():
            counts.update({f"batch_{name}": n for name, n in collect(services.worker).items()})
        return counts

    consumer = Consumer(
        services.queue, config,
        reaper=sweep if args.reap_interval > 0 else None,
        on_dead=delivery_failed,
        **key_gates(services, no_key_gate=args.no_key_gate),
        jobs=[("key pool watch", WATCH_EVERY_S, lambda: watch_pool(services)),
              ("key probes", settings.pool.POOL_PROBE_INTERVAL_S, lambda: keys_job(services))],
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: consumer.stop())
    if not stopping.is_set():
        consumer.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
