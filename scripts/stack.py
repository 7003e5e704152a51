"""Run the local stack: `api` and `process_task` under functions-framework + the consumer,
supervised (a child that dies is restarted), with the daily cache cleanup.

    python main.py  (or python scripts/stack.py)  [--api-port 8080] [--worker-port 8081]

Used by the demo, the end-to-end tests and the benchmarks; SIGTERM or Ctrl-C stops
everything cleanly. Each child's output goes to `var/logs/NAME.log` through this process,
which rotates the file by size (LOG_FILE_MAX_MB, LOG_FILE_BACKUPS).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import requests

from scripts.instance import AlreadyRunning, InstanceLock, check_ports_free
from shared.app.pool import setup_warnings
from shared.backoff import exponential_backoff
from shared.config import VAR_DIR, get_settings
from shared.logs import LOG_FILE_BACKUPS, LOG_FILE_MAX_MB, RotatingFile
from shared.redis_conn import embedded_running, restart_if_down, stop_embedded_server
from shared.services import Services, wait_for_services

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


LOG_DRAIN_S = 5.0
"""How long a stop waits for a child's last lines to reach its log file."""


def copy_lines(stream: BinaryIO, out: RotatingFile, max_line: int = 64 * 1024) -> None:
    """A child's output into its log file, line by line, until the child closes it (a
    line longer than `max_line` is written in pieces)."""
    with stream:
        for line in iter(lambda: stream.readline(max_line), b""):
            out.write(line)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStack:
    """The three local processes, started with `env` on top of this process's environment."""

    def __init__(self, env: dict[str, str] | None = None, api_port: int = 0,
                 worker_port: int = 0, log_dir: Path | None = None,
                 log_max_mb: float = LOG_FILE_MAX_MB,
                 log_backups: int = LOG_FILE_BACKUPS) -> None:
        self.api_port = api_port or free_port()
        self.worker_port = worker_port or free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.worker_url = f"http://127.0.0.1:{self.worker_port}/"
        self.env = {**os.environ, **(env or {}), "WORKER_URL": self.worker_url}
        # the children import this checkout's code, whatever else is installed
        self.env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [self.env.get("PYTHONPATH")])])
        self.log_dir = log_dir or VAR_DIR / "logs"
        self.log_max_bytes = int(log_max_mb * 1024 * 1024)
        self.log_backups = log_backups
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, RotatingFile] = {}
        self.copiers: dict[str, threading.Thread] = {}
        self.stopping = threading.Event()

    def start(self, *, consumer_args: list[str] | None = None, timeout_s: float = 30,
              consumer: bool = True, stopping: threading.Event | None = None) -> bool:
        """Start the children and wait until the functions answer; False when `stopping`
        was set meanwhile (the caller stops what was started)."""
        if stopping is not None:
            self.stopping = stopping
        self.log_dir.mkdir(parents=True, exist_ok=True)
        functions_framework = str(BIN / "functions-framework")
        self.commands = {
            "api": [functions_framework, "--target", "api", "--source", "main.py",
                    "--host", "127.0.0.1", "--port", str(self.api_port)],
            "worker": [functions_framework, "--target", "process_task", "--source",
                       "main.py", "--host", "127.0.0.1", "--port", str(self.worker_port)],
            "consumer": [sys.executable, "scripts/consumer.py", *(consumer_args or [])],
        }
        self._spawn("api")
        self._spawn("worker")
        self._wait_http(f"{self.api_url}/healthz", timeout_s)
        self._wait_http(self.worker_url, timeout_s)
        if self.stopping.is_set():
            return False
        if consumer:
            self._spawn("consumer")
        return True

    def _spawn(self, name: str) -> None:
        if name not in self.logs:  # a restarted child goes on in the same file
            self.logs[name] = RotatingFile(self.log_dir / f"{name}.log", self.log_max_bytes,
                                           self.log_backups)
        # each child leads its own process group, so a kill reaches its workers too
        process = subprocess.Popen(
            self.commands[name], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        assert process.stdout is not None
        copier = threading.Thread(target=copy_lines, args=(process.stdout, self.logs[name]),
                                  name=f"log-{name}", daemon=True)
        copier.start()
        self.processes[name], self.copiers[name] = process, copier

    def _drain(self, name: str) -> None:
        """Wait until a child's last lines are in its log (a grandchild that kept the pipe
        open is not waited for beyond LOG_DRAIN_S)."""
        copier = self.copiers.pop(name, None)
        if copier is not None:
            copier.join(LOG_DRAIN_S)

    def kill(self, name: str) -> None:
        """SIGKILL a child's whole process group (what a crash or an OOM kill does)."""
        process = self.processes.pop(name)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        self._drain(name)

    def restart(self, name: str, timeout_s: float = 30) -> None:
        """Start a killed child again (and wait until it answers, for the functions)."""
        self._spawn(name)
        if name == "worker":
            self._wait_http(self.worker_url, timeout_s)
        elif name == "api":
            self._wait_http(f"{self.api_url}/healthz", timeout_s)

    def _wait_http(self, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.stopping.is_set():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.log_dir / (name + '.log')}")
            try:
                requests.get(url, timeout=2)
                return
            except (requests.ConnectionError, requests.Timeout):  # up, or still starting
                self.stopping.wait(0.2)
        if not self.stopping.is_set():
            raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")

    def stop(self, timeout_s: float = 15) -> None:
        """The consumer first (it finishes its deliveries, so the worker finishes the tasks
        they carry), then the functions; whatever is still running after `timeout_s`
        is killed (a task cut short is delivered again when its lease ends)."""
        deadline = time.monotonic() + timeout_s
        consumer = {name: p for name, p in self.processes.items() if name == "consumer"}
        others = {name: p for name, p in self.processes.items() if name != "consumer"}
        for group in (consumer, others):
            for process in group.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in group.values():
                try:
                    process.wait(max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for name in list(self.copiers):
            self._drain(name)
        for log_file in self.logs.values():
            log_file.close()
        self.processes.clear()
        self.logs.clear()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


RESTART_BACKOFF_S = (1.0, 60.0)
"""Pause before restarting a child that died: the first, doubled with each death in a
row, up to the second."""

STABLE_AFTER_S = 60
"""A child that ran this long before dying starts again from the shortest pause."""

STOP_GRACE_S = 30.0
"""How long a stop waits for the tasks in flight before it kills what is left."""


def next_daily(now: datetime, at: dt_time) -> datetime:
    """The next moment the wall clock of `now`'s zone shows `at` (today or tomorrow)."""
    candidate = now.replace(hour=at.hour, minute=at.minute, second=at.second, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


class Supervisor:
    """Keeps the local stack running unattended: a child that dies is logged and started
    again with backoff; the cache cleanup runs daily at CLEANUP_AT in CLEANUP_TZ (the
    stuck-task reaper runs in the consumer every 30 s). `stop()` (SIGTERM) stops all."""

    def __init__(self, stack: LocalStack, cleanup_at: dt_time, zone: ZoneInfo,
                 clock: Callable[[], datetime] | None = None,
                 cleanup: Callable[[], int] | None = None,
                 count_in_flight: Callable[[], int | None] = lambda: None,
                 stop_grace_s: float = STOP_GRACE_S,
                 stopping: threading.Event | None = None,
                 keep_redis: Callable[[], bool] | None = None) -> None:
        self.stack = stack
        self.keep_redis = keep_redis
        self.count_in_flight = count_in_flight
        self.stop_grace_s = stop_grace_s
        self.cleanup_at, self.zone = cleanup_at, zone
        self.clock = clock or (lambda: datetime.now(zone))
        self.cleanup = cleanup or run_cleanup
        self.stopping = stopping or threading.Event()
        self.deaths: dict[str, int] = {}
        self.started_at: dict[str, float] = {}

    def run(self) -> None:
        for name, process in self.stack.processes.items():
            self.started_at[name] = time.monotonic()
            log(f"{name} started (pid {process.pid})")
        next_cleanup = next_daily(self.clock(), self.cleanup_at)
        log(f"cache cleanup scheduled at {next_cleanup.isoformat()}")
        while not self.stopping.wait(0.5):
            for name in list(self.stack.commands):
                self._watch(name)
            self._watch_redis()
            if self.clock() >= next_cleanup:
                threading.Thread(target=self._cleanup, daemon=True).start()
                next_cleanup = next_daily(self.clock(), self.cleanup_at)
                log(f"next cache cleanup at {next_cleanup.isoformat()}")
        log(f"stopping: {self.in_flight()}, up to {self.stop_grace_s:g} s")
        self.stack.stop(self.stop_grace_s)
        log("stack stopped")

    def in_flight(self) -> str:
        """What the stop waits for, said plainly: "finishing 1 task"."""
        try:
            count = self.count_in_flight()
        except Exception as error:  # noqa: BLE001 - the stop goes on; say what is unknown
            return f"finishing the tasks in flight (count unknown: {type(error).__name__})"
        if count is None:
            return "finishing the tasks in flight"
        return f"finishing {count} task{'' if count == 1 else 's'}"

    def stop(self) -> None:
        self.stopping.set()

    def _watch(self, name: str) -> None:
        process = self.stack.processes.get(name)
        if process is None or process.poll() is None:
            return
        ran_s = time.monotonic() - self.started_at.get(name, 0)
        deaths = 1 if ran_s >= STABLE_AFTER_S else self.deaths.get(name, 0) + 1
        self.deaths[name] = deaths
        pause = exponential_backoff(deaths - 1, *RESTART_BACKOFF_S)
        log(f"{name} exited with code {process.returncode} after {ran_s:.0f} s; "
            f"restarting in {pause} s")
        self.stack.processes.pop(name)
        if self.stopping.wait(pause):
            return
        try:
            self.stack.restart(name)
        except RuntimeError as error:  # it died again while starting: next round retries
            log(f"{name} did not come back: {error}")
            return
        self.started_at[name] = time.monotonic()
        log(f"{name} started (pid {self.stack.processes[name].pid})")

    def _watch_redis(self) -> None:
        """The embedded Redis is a child too: started again on its files if it died."""
        if self.keep_redis is None:
            return
        try:
            if self.keep_redis():
                log("embedded redis had stopped; started it again on its saved files")
        except (RuntimeError, OSError, subprocess.SubprocessError) as error:
            log(f"embedded redis is down and did not start: {error}; trying again")

    def _cleanup(self) -> None:
        log("cache cleanup starting")
        code = self.cleanup()
        log(f"cache cleanup finished with code {code}")


def run_cleanup() -> int:
    """The daily cache cleanup, as `scripts/clean_videos.py`, then the retention job
    (`scripts/retention.py`): the same code as the function's daily run."""
    codes = [subprocess.run([sys.executable, "-m", module], cwd=ROOT, check=False).returncode
             for module in ("scripts.clean_videos", "scripts.retention")]
    return max(codes)


def log(message: str) -> None:
    print(f"{datetime.now().isoformat(timespec='seconds')} stack: {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run api + worker + consumer locally, "
                                     "supervised, with the daily cache cleanup")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--worker-port", type=int, default=8081)
    args = parser.parse_args(argv)
    settings = get_settings()
    ports = {"api": args.api_port, "worker": args.worker_port}
    instance = InstanceLock(VAR_DIR / "stack.lock")
    try:
        instance.acquire(ports)
        check_ports_free(ports)
    except AlreadyRunning as error:
        instance.release()
        print(f"stack: {error}", file=sys.stderr, flush=True)
        return 1
    embedded_dir = VAR_DIR / "redis"
    started_redis = not settings.redis.REDIS_URL and not embedded_running(embedded_dir)
    # from here on a stop at any moment stops everything started so far
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stack: LocalStack | None = None
    try:
        services = wait_for_services(stopping, log)  # migrate, start embedded Redis once
        if services is None:
            return 0
        for warning in setup_warnings(services):  # say it before the stack goes quiet
            log(f"warning: {warning.message} Run: {warning.command}")
        stack = LocalStack(api_port=args.api_port, worker_port=args.worker_port,
                           log_max_mb=settings.logs.LOG_FILE_MAX_MB,
                           log_backups=settings.logs.LOG_FILE_BACKUPS)
        if not stack.start(stopping=stopping):
            return 0
        print(f"api: {stack.api_url}  worker: {stack.worker_url}  logs: {stack.log_dir}",
              flush=True)
        housekeeping = settings.housekeeping
        Supervisor(stack, housekeeping.cleanup_time, ZoneInfo(housekeeping.CLEANUP_TZ),
                   count_in_flight=lambda: _in_flight(services), stopping=stopping,
                   keep_redis=None if settings.redis.REDIS_URL
                   else lambda: restart_if_down(embedded_dir)).run()
    finally:
        if stack is not None:
            stack.stop(STOP_GRACE_S)  # nothing left once the supervisor stopped it
        if started_redis and stop_embedded_server(embedded_dir):
            log("embedded redis stopped")
        instance.release()
    return 0


def _in_flight(services: Services) -> int | None:
    """Ids the consumer is delivering (None: a queue that cannot say, Cloud Tasks)."""
    depth = services.queue.depth()
    return None if depth is None else depth.in_flight


if __name__ == "__main__":
    sys.exit(main())
