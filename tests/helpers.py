"""Test helpers: a local HTTP server for videos and scripted failures."""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import redis

from shared.pipeline.reaper import reap_stuck_tasks


class MediaServer:
    """Serves files from a folder on 127.0.0.1, plus scripted behaviours by path:

    /files/NAME            the file (with Content-Length)
    /chunked/NAME          the file without Content-Length
    /status/CODE           an empty answer with that status
    /flaky/N/NAME          503 for the first N requests of this path, then the file
    /slow/SECONDS/NAME     waits, then the file
    /hang-once/NAME        first request hangs for a minute, later ones get the file
    /lying-length/NAME     claims a Content-Length of 10 GB
    /redirect/N/NAME       N redirects (relative), then the file
    /redirect-loop         redirects to itself forever
    /redirect-to/URL...    redirects to the (percent-encoded) URL after the prefix
    /drip/NAME             sends the file one byte a second (no read timeout ever fires)
    /as/TYPE/NAME          the file with Content-Type TYPE (percent-encoded)
    /cut/NAME              the file's full Content-Length, half its bytes, then a hang-up
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                with server._lock:
                    server.hits[self.path] += 1
                    hits = server.hits[self.path]
                parts = self.path.strip("/").split("/")
                kind = parts[0]
                if kind == "status":
                    self._empty(int(parts[1]))
                elif kind == "files":
                    self._file(parts[1])
                elif kind == "chunked":
                    self._file(parts[1], length=False)
                elif kind == "flaky":
                    if hits <= int(parts[1]):
                        self._empty(503)
                    else:
                        self._file(parts[2])
                elif kind == "slow":
                    time.sleep(float(parts[1]))
                    self._file(parts[2])
                elif kind == "hang-once":
                    if hits == 1:
                        time.sleep(60)
                    self._file(parts[1])
                elif kind == "redirect":
                    left = int(parts[1])
                    name = parts[2]
                    self._redirect(f"/redirect/{left - 1}/{name}" if left > 1 else f"/files/{name}")
                elif kind == "redirect-loop":
                    self._redirect("/redirect-loop")
                elif kind == "redirect-to":
                    self._redirect(unquote(self.path.split("/redirect-to/", 1)[1]))
                elif kind == "drip":
                    data = (server.folder / parts[1]).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    try:
                        for byte in data[:30]:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(1)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    self.close_connection = True
                elif kind == "as":
                    self._file(parts[2], content_type=unquote(parts[1]))
                elif kind == "cut":
                    data = (server.folder / parts[1]).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif kind == "lying-length":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10 * 1024**3))
                    self.end_headers()
                else:
                    self._empty(404)

            def _redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _empty(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _file(self, name: str, length: bool = True,
                      content_type: str = "video/mp4") -> None:
                path = server.folder / name
                if not path.is_file():
                    self._empty(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                if length:
                    self.send_header("Content-Length", str(len(data)))
                else:
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if not length:
                    self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def call_together(function, times: int) -> list:
    """`function()` from `times` threads started at once; their results."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(function()))
               for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def reap(services, max_attempts: int, **options) -> dict[str, int]:
    """One reconciler sweep over the services' task table and queue."""
    return reap_stuck_tasks(services.store, services.queries, services.queue, max_attempts,
                            **options)


def wait_for(predicate, timeout_s: float = 20, interval_s: float = 0.1, describe=None):
    """Poll until `predicate()` is truthy; return its value or fail the test (saying what
    `describe()` reports about the state, when given)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    detail = f": {describe()}" if describe else ""
    raise AssertionError(f"condition not met within {timeout_s} s{detail}")


class ScriptedReceiver:
    """An HTTP endpoint on 127.0.0.1 that answers each POST from a script and records
    (headers, raw body). A script item is a status, (status, headers), or "hang"; past
    the end of the script it answers 200."""

    def __init__(self, script: list, delay_s: float = 0, path: str = "/") -> None:
        self.script = list(script)
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                time.sleep(delay_s)
                answer = outer.script.pop(0) if outer.script else 200
                if answer == "hang":
                    time.sleep(5)
                    return
                status, headers = answer if isinstance(answer, tuple) else (answer, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RedisServer:
    """A private redis-server on 127.0.0.1 that a test can kill and start again (empty:
    nothing is saved), to see what a Redis restart does to the service."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        wait_for(lambda: _pings(client), timeout_s=10, interval_s=0.05)
        client.close()
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class TcpForward:
    """A TCP forwarder on 127.0.0.1:`port` to 127.0.0.1:`target`, started when a test says:
    a dependency that starts answering on its address later (a database coming up)."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.listener: socket.socket | None = None

    def start(self) -> TcpForward:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # stopped
                return
            upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None


class MariaDBServer:
    """A private mariadbd on 127.0.0.1 with its own data folder, that a test can SIGKILL
    and start again on the same data (InnoDB's crash recovery), to see what a database
    crash does to the service. Grants are skipped: root, no password."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port = port
        self.folder = folder
        self.admin_url = f"mysql+pymysql://root@127.0.0.1:{port}/"
        self.process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        return f"{self.admin_url}{database}?charset=utf8mb4"

    def start(self) -> MariaDBServer:
        data = self.folder / "data"
        if not data.exists():
            subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={data}",
                            "--skip-test-db", "--auth-root-authentication-method=normal"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=root", f"--datadir={data}",
             f"--port={self.port}", "--bind-address=127.0.0.1",
             f"--socket={self.folder / 'mariadb.sock'}", "--skip-grant-tables",
             "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=1",
             f"--log-error={self.folder / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self._answers, timeout_s=60, interval_s=0.1)
        return self

    def _answers(self) -> bool:
        import pymysql

        try:
            pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                            connect_timeout=1).close()
            return True
        except pymysql.MySQLError:
            return False

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, what a crash or an OOM kill does."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


def queued_ids(client) -> list[str]:
    """Ids waiting for delivery on the local queue: the ready list and, with FAIR_SHARE,
    the teams' own lists (newest first in each)."""
    from shared import redis_keys
    from shared.queue.redis_queue import WAKE

    names = [redis_keys.TASK_QUEUE, *sorted(redis_keys.team_queue(team) for team in
                                            client.smembers(redis_keys.TASK_QUEUE_TEAMS))]
    return [task_id for name in names for task_id in client.lrange(name, 0, -1)
            if task_id != WAKE]


def drop_queued(client) -> None:
    """Lose every waiting id (a flushed or restarted Redis, as the reconciler meets it)."""
    from shared import redis_keys

    teams = client.smembers(redis_keys.TASK_QUEUE_TEAMS)
    client.delete(redis_keys.TASK_QUEUE, redis_keys.TASK_QUEUE_TEAMS,
                  *(redis_keys.team_queue(team) for team in teams))
