"""Run the local stack: `api` and `process_task` under functions-framework + the consumer.

    python scripts/stack.py [--api-port 8080] [--worker-port 8081]

Used by the demo, the end-to-end test and the benchmark; Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStack:
    """The three local processes, started with `env` on top of this process's environment."""

    def __init__(self, env: dict[str, str] | None = None, api_port: int = 0,
                 worker_port: int = 0, log_dir: Path | None = None) -> None:
        self.api_port = api_port or free_port()
        self.worker_port = worker_port or free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.worker_url = f"http://127.0.0.1:{self.worker_port}/"
        self.env = {**os.environ, **(env or {}), "WORKER_URL": self.worker_url}
        self.log_dir = log_dir or ROOT / "var" / "logs"
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, *, consumer_args: list[str] | None = None, timeout_s: float = 30,
              consumer: bool = True) -> None:
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
        if consumer:
            self._spawn("consumer")

    def _spawn(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")
        # each child leads its own process group, so a kill reaches its workers too
        self.processes[name] = subprocess.Popen(
            self.commands[name], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, name: str) -> None:
        """SIGKILL a child's whole process group (what a crash or an OOM kill does)."""
        process = self.processes.pop(name)
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def restart(self, name: str, timeout_s: float = 30) -> None:
        """Start a killed child again (and wait until it answers, for the functions)."""
        self._spawn(name)
        if name == "worker":
            self._wait_http(self.worker_url, timeout_s)
        elif name == "api":
            self._wait_http(f"{self.api_url}/healthz", timeout_s)

    def _wait_http(self, url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited; see {self.log_dir / (name + '.log')}")
            try:
                requests.get(url, timeout=2)
                return
            except requests.ConnectionError:
                time.sleep(0.2)
        raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")

    def stop(self, timeout_s: float = 15) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description="run api + worker + consumer locally")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--worker-port", type=int, default=8081)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from shared.services import get_services

    get_services()  # migrate the database and start embedded Redis once, before the children
    stack = LocalStack(api_port=args.api_port, worker_port=args.worker_port)
    stack.start()
    print(f"api: {stack.api_url}  worker: {stack.worker_url}  logs: {stack.log_dir}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stack.stop())
    try:
        while all(p.poll() is None for p in stack.processes.values()) and stack.processes:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
