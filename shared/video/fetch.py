"""Download a video to a local file, safely.

- only http/https, no credentials in the URL, at most `MAX_REDIRECTS` hops, each hop
  checked; every connection goes to an address the `UrlPolicy` allowed (DNS rebinding);
- `Content-Length` over the limit is refused before reading; without one, streaming
  stops at the limit; the file is hashed (sha256) while it streams, never held in memory;
- connect and read timeouts per socket operation, and a total deadline enforced by a
  watchdog that shuts the socket (a server dripping a byte a second cannot hold us);
- HTTP 4xx is permanent (the URL is wrong or gone); 5xx, 408, 429 and network errors
  are transient.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

from shared.errors import ErrorCode, PermanentError, TransientError
from shared.video.safety import UrlPolicy

CHUNK_BYTES = 256 * 1024
"""Read size while streaming: small enough to keep memory flat, big enough to be fast."""

MAX_REDIRECTS = 5
REDIRECT_CODES = (301, 302, 303, 307, 308)
USER_AGENT = "vision-to-tag/0.1 (+video tagging)"


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size_bytes: int
    sha256: str
    content_type: str


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    connect_timeout_s: float = 10
    read_timeout_s: float = 30
    total_timeout_s: float = 300


class _Watchdog:
    """Shuts every socket of one download when its total deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def register(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                self._shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _safe_adapter(policy: UrlPolicy, watchdog: _Watchdog) -> HTTPAdapter:
    """An adapter whose connections only reach addresses the policy allows."""

    def new_conn(self: HTTPConnection) -> socket.socket:
        host, port = self._dns_host, self.port
        last_error: OSError | None = None
        for address in policy.addresses(host, port):
            try:
                sock = urllib3_connection.create_connection(
                    (address, port), self.timeout, source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as error:
                last_error = error
                continue
            policy.check_address(host, port, sock.getpeername()[0])
            watchdog.register(sock)
            return sock
        raise NewConnectionError(self, f"Failed to establish a new connection: {last_error}")

    class SafeHTTPConnection(HTTPConnection):
        _new_conn = new_conn

    class SafeHTTPSConnection(HTTPSConnection):
        _new_conn = new_conn

    class SafeHTTPPool(HTTPConnectionPool):
        ConnectionCls = SafeHTTPConnection

    class SafeHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = SafeHTTPSConnection

    adapter = HTTPAdapter(max_retries=0)
    adapter.poolmanager.pool_classes_by_scheme = {"http": SafeHTTPPool, "https": SafeHTTPSPool}
    return adapter


@contextlib.contextmanager
def safe_session(policy: UrlPolicy, total_timeout_s: float) -> Iterator[SafeSession]:
    """A requests session that only connects where `policy` allows, cut off after
    `total_timeout_s` (used for downloads and for completion callbacks)."""
    with _Watchdog(total_timeout_s) as watchdog, requests.Session() as session:
        session.trust_env = False  # no proxies from the environment: they would skip checks
        adapter = _safe_adapter(policy, watchdog)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        yield SafeSession(session, watchdog)


@dataclass(frozen=True)
class SafeSession:
    http: requests.Session
    watchdog: _Watchdog

    @property
    def timed_out(self) -> bool:
        return self.watchdog.fired


def download(url: str, dest: Path, limits: FetchLimits, policy: UrlPolicy) -> Downloaded:
    """Stream `url` into `dest` (removed again on any failure)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with safe_session(policy, limits.total_timeout_s) as safe:
        try:
            return _follow_and_stream(safe.http, url, dest, limits, policy)
        except requests.RequestException as error:
            dest.unlink(missing_ok=True)
            if safe.timed_out:
                raise TransientError(
                    f"download took over {limits.total_timeout_s:g} s",
                    error_code=ErrorCode.DOWNLOAD_TIMEOUT,
                ) from error
            raise TransientError(
                f"download failed: {_describe(error)}", error_code=ErrorCode.DOWNLOAD_UNAVAILABLE
            ) from error
        except BaseException:
            dest.unlink(missing_ok=True)
            raise


def _follow_and_stream(
    session: requests.Session, url: str, dest: Path, limits: FetchLimits, policy: UrlPolicy
) -> Downloaded:
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        _check_hop(current, policy)
        response = session.get(
            current, stream=True, allow_redirects=False,
            timeout=(limits.connect_timeout_s, limits.read_timeout_s),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )
        with response:
            if response.status_code in REDIRECT_CODES and response.headers.get("Location"):
                current = urljoin(current, response.headers["Location"])
                continue
            _check_status(response)
            return _stream(response, dest, limits)
    raise PermanentError(f"download failed: more than {MAX_REDIRECTS} redirects",
                         error_code=ErrorCode.DOWNLOAD_FAILED)


def _check_hop(url: str, policy: UrlPolicy) -> None:
    policy.check_url(url, resolve=False, what="url: redirect target")


def _stream(response: requests.Response, dest: Path, limits: FetchLimits) -> Downloaded:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise PermanentError(
            f"video is {int(declared)} bytes, over the limit of {limits.max_bytes} "
            f"(MAX_VIDEO_MB)",
            error_code=ErrorCode.VIDEO_TOO_LARGE,
        )
    digest = hashlib.sha256()
    size = 0
    with open(dest, "wb") as out:
        for chunk in response.iter_content(CHUNK_BYTES):
            size += len(chunk)
            if size > limits.max_bytes:
                raise PermanentError(
                    f"video is over the limit of {limits.max_bytes} bytes (MAX_VIDEO_MB)",
                    error_code=ErrorCode.VIDEO_TOO_LARGE,
                )
            digest.update(chunk)
            out.write(chunk)
    if size == 0:
        raise PermanentError("the URL answered an empty body",
                             error_code=ErrorCode.VIDEO_UNREADABLE)
    return Downloaded(dest, size, digest.hexdigest(), response.headers.get("Content-Type", ""))


def _check_status(response: requests.Response) -> None:
    code = response.status_code
    if 400 <= code < 500 and code not in (408, 429):
        raise PermanentError(f"download failed: HTTP {code}", error_code=ErrorCode.DOWNLOAD_FAILED)
    if code >= 400:
        raise TransientError(f"download failed: HTTP {code}",
                             error_code=ErrorCode.DOWNLOAD_UNAVAILABLE)
    if 300 <= code < 400:
        raise PermanentError(f"download failed: HTTP {code} without a usable Location",
                             error_code=ErrorCode.DOWNLOAD_FAILED)


def _describe(error: Exception) -> str:
    """The error's kind without its text (which can echo the URL and its query string)."""
    return type(error).__name__


