"""What the explicit worker costs (issue 28): `Services.worker` assembles a `Worker`, its
`StageTools` and its `WorkerConfig` on every delivery. Measured next to the cheapest real
delivery, in the same run: a delivery for an unknown task (Redis lock, one claim UPDATE
and one SELECT that find nothing, the lock released).

    python -m benchmarks.worker_assembly [--n 2000]

SQLite in a throw-away folder and Redis db 13 (or BENCH_REDIS_URL, flushed).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
import uuid

from shared.config import load_settings
from shared.pipeline.runner import DeliveryKind, handle_delivery
from shared.services import build_services

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def per_call_us(call, n: int) -> float:
    call()  # warm
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # each unknown-task delivery logs a warning
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(DATABASE_URL=f"sqlite:///{folder}/bench.db",
                                 REDIS_URL=REDIS_URL, STORAGE_DIR=folder)
        services = build_services(settings)
        services.redis.flushdb()
        unknown = str(uuid.uuid4())
        assert handle_delivery(unknown, services.worker).kind == DeliveryKind.DROP
        assembly = per_call_us(lambda: services.worker, args.n)
        delivery = per_call_us(lambda: handle_delivery(unknown, services.worker), args.n // 4)
        services.redis.flushdb()
    print(f"worker assembly (Services.worker)       {assembly:9.1f} µs")
    print(f"cheapest delivery (unknown task), incl. {delivery:9.1f} µs")
    print(f"assembly / cheapest delivery            {assembly / delivery:9.1%}")


if __name__ == "__main__":
    main()
