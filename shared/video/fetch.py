"""Download a video, streamed, safely.

- only http/https, no credentials in the URL, at most `MAX_REDIRECTS` hops, each hop
  checked; every connection goes to an address the `UrlPolicy` allowed (DNS rebinding);
- `Content-Length` over the limit is refused before reading; without one, streaming
  stops at the limit; the body is hashed (sha256) while it streams, never held in memory
  (`streaming` hands it over chunk by chunk: the worker writes it straight to storage);
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


class Incoming:
    """A download as it arrives: `chunks()` yields the body once, hashing and counting on
    the way and stopping at the size limit; `sha256` and `size_bytes` are final after.
    A network failure while reading is a TransientError (the attempt is retried)."""

    def __init__(self, response: requests.Response, limits: FetchLimits,
                 safe: SafeSession) -> None:
        self.content_type = response.headers.get("Content-Type", "")
        self._response, self._limits, self._safe = response, limits, safe
        self._digest = hashlib.sha256()
        self.size_bytes = 0
        self._body = response.iter_content(CHUNK_BYTES)
        self._first = b""

    def head(self) -> bytes:
        """The first chunk (to sniff the container before choosing where to store)."""
        if not self._first:
            with _translated(self._safe, self._limits):
                self._first = next(self._body, b"")
        return self._first

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        first = self.head()
        if first:
            yield self._counted(first)
        while True:
            with _translated(self._safe, self._limits):
                chunk = next(self._body, None)
            if chunk is None:
                break
            yield self._counted(chunk)
        if self.size_bytes == 0:
            raise PermanentError("the URL answered an empty body",
                                 error_code=ErrorCode.VIDEO_UNREADABLE)

    def _counted(self, chunk: bytes) -> bytes:
        self.size_bytes += len(chunk)
        if self.size_bytes > self._limits.max_bytes:
            raise PermanentError(
                f"video is over the limit of {self._limits.max_bytes} bytes (MAX_VIDEO_MB)",
                error_code=ErrorCode.VIDEO_TOO_LARGE,
            )
        self._digest.update(chunk)
        return chunk


@contextlib.contextmanager
def _translated(safe: SafeSession, limits: FetchLimits) -> Iterator[None]:
    """A requests failure as the task error it means (the URL's text never in it)."""
    try:
        yield
    except requests.RequestException as error:
        if safe.timed_out:
            raise TransientError(
                f"download took over {limits.total_timeout_s:g} s",
                error_code=ErrorCode.DOWNLOAD_TIMEOUT,
            ) from error
        raise TransientError(
            f"download failed: {_describe(error)}", error_code=ErrorCode.DOWNLOAD_UNAVAILABLE
        ) from error


@contextlib.contextmanager
def streaming(url: str, limits: FetchLimits, policy: UrlPolicy) -> Iterator[Incoming]:
    """Open `url` (redirects checked hop by hop, status and declared size checked) and
    hand its body over as it arrives: nothing is written here (issue 35: the worker
    streams it straight into storage)."""
    with safe_session(policy, limits.total_timeout_s) as safe:
        with _translated(safe, limits):
            response = _follow(safe.http, url, limits, policy)
        with response:
            yield Incoming(response, limits, safe)


def download(url: str, dest: Path, limits: FetchLimits, policy: UrlPolicy) -> Downloaded:
    """Stream `url` into `dest` (removed again on any failure)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with streaming(url, limits, policy) as incoming, open(dest, "wb") as out:
            for chunk in incoming.chunks():
                out.write(chunk)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return Downloaded(dest, incoming.size_bytes, incoming.sha256, incoming.content_type)


def _follow(session: requests.Session, url: str, limits: FetchLimits,
            policy: UrlPolicy) -> requests.Response:
    """The final response (open, body unread), its status and declared size checked."""
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        _check_hop(current, policy)
        response = session.get(
            current, stream=True, allow_redirects=False,
            timeout=(limits.connect_timeout_s, limits.read_timeout_s),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )
        if response.status_code in REDIRECT_CODES and response.headers.get("Location"):
            response.close()
            current = urljoin(current, response.headers["Location"])
            continue
        try:
            _check_status(response)
            _check_declared(response, limits)
        except BaseException:
            response.close()
            raise
        return response
    raise PermanentError(f"download failed: more than {MAX_REDIRECTS} redirects",
                         error_code=ErrorCode.DOWNLOAD_FAILED)


def _check_hop(url: str, policy: UrlPolicy) -> None:
    policy.check_url(url, resolve=False, what="url: redirect target")


def _check_declared(response: requests.Response, limits: FetchLimits) -> None:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limits.max_bytes:
        raise PermanentError(
            f"video is {int(declared)} bytes, over the limit of {limits.max_bytes} "
            f"(MAX_VIDEO_MB)",
            error_code=ErrorCode.VIDEO_TOO_LARGE,
        )


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


