"""The wire: the SDK clients (one per endpoint, one per key for the Files API), each
call's own key and timeout, and the stamp a request's window entry gets the moment its
generateContent request goes on the wire."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from google import genai
from google.genai import types

from shared.accounts.pool import AccountPool, Lease
from shared.errors import TransientError
from shared.tagging.gemini.failures import KeyCoolingDown

MAX_FILE_CLIENTS = 256
"""Per-key clients kept for the Files API (one per key in a normal pool)."""


class OnTheWire:
    """Stamps a request's window entry the moment its generateContent request goes on the
    wire — the body built and encoded, a large inline video included — and measures how
    long the body takes to send, from which the pool sizes its send margin.

    Runs as an httpx request hook in the calling thread; `sending(lease)` says which
    lease the thread's next generateContent request belongs to."""

    def __init__(self, pool: AccountPool) -> None:
        self.pool = pool
        self._local = threading.local()

    @contextlib.contextmanager
    def sending(self, lease: Lease) -> Iterator[None]:
        self._local.lease = lease
        try:
            yield
        finally:
            self._local.lease = None

    def on_request(self, request: Any) -> None:
        lease = getattr(self._local, "lease", None)
        if lease is None or not request.url.path.endswith(":generateContent"):
            return
        self._local.lease = None  # one stamp per call
        if not self.pool.stamp_sent(lease):
            raise KeyCoolingDown("Gemini announced a wait for this key")
        started = time.monotonic()

        def trace(event: str, info: dict) -> None:
            if event.endswith("send_request_body.complete"):
                with contextlib.suppress(TransientError):  # a measurement, never a failure
                    self.pool.record_send_latency(time.monotonic() - started)

        request.extensions = {**request.extensions, "trace": trace}


# A genai.Client closes its HTTP connections when it is garbage-collected, even while
# another thread is in a call through it ("client has been closed", EBADF). So clients
# are created under a lock (two threads never both create one and drop the other),
# and a caller keeps the client in a local variable for as long as it uses it.

class Clients:
    """The SDK clients of one tagger, every one with the wire's request hook."""

    def __init__(self, wire: OnTheWire, timeout_s: float, first_endpoint: str,
                 client: genai.Client | None = None) -> None:
        self.wire = wire
        self.timeout_s = timeout_s
        self._clients: dict[str, genai.Client] = {}
        if client is not None:
            self._clients[first_endpoint] = client
        self._file_clients: dict[tuple[str, str], genai.Client] = {}
        self._lock = threading.Lock()

    def new_client(self, api_key: str, endpoint: str) -> genai.Client:
        return genai.Client(api_key=api_key, http_options=types.HttpOptions(
            base_url=endpoint or None, timeout=int(self.timeout_s * 1000),
            client_args={"event_hooks": {"request": [self.wire.on_request]}},
        ))

    def for_endpoint(self, endpoint: str) -> genai.Client:
        """One client per endpoint; the key is chosen per call."""
        with self._lock:
            if endpoint not in self._clients:
                self._clients[endpoint] = self.new_client("chosen-per-call-from-the-pool",
                                                          endpoint)
            return self._clients[endpoint]

    def for_files(self, lease: Lease, endpoint: str) -> genai.Client:
        """A client bound to one key, for the Files API only: the SDK's resumable upload
        replaces per-call headers, so a per-call key cannot reach the upload request."""
        slot = (endpoint, lease.key_id)
        with self._lock:
            if slot not in self._file_clients:
                if len(self._file_clients) >= MAX_FILE_CLIENTS:
                    self._file_clients.pop(next(iter(self._file_clients)))
                self._file_clients[slot] = self.new_client(lease.api_key, endpoint)
            return self._file_clients[slot]


def call_options(lease: Lease, timeout_ms: int) -> types.HttpOptions:
    """A fresh options object per call (the SDK may modify the one it is given): the
    lease's key and the call's own timeout."""
    return types.HttpOptions(headers={"x-goog-api-key": lease.api_key}, timeout=timeout_ms)
