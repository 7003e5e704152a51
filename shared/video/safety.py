"""Which URLs the service may fetch: no loopback, private, link-local, CGNAT, multicast or
reserved addresses (IPv4 and IPv6, IPv4-mapped included), unless allowed by config.

The check runs at create time (a DNS lookup, no download) and again for every connection
the downloader opens: the address that was checked is the address connected to, so a
name that re-resolves to an internal address between the two (DNS rebinding) is refused.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.errors import ErrorCode, PermanentError, TransientError
from shared.video.urls import url_problem

log = logging.getLogger("vision_to_tag.safety")

Resolver = Callable[[str, int], list[str]]


class UrlForbidden(PermanentError):
    error_code = ErrorCode.URL_FORBIDDEN


class HostNotFound(UrlForbidden):
    """DNS says the host does not exist (NXDOMAIN): a typo or a dead link, not a moment's
    outage — refused at create, a permanent download failure later."""

    error_code = ErrorCode.DOWNLOAD_FAILED


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the host resolves to (numeric forms like 2130706433 included)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


class CachedResolver:
    """`resolve_host` with a short per-process memory, answers and failures alike.

    The create path resolves every URL's host; most come from a few CDNs, and a resolver
    that drops a packet stalls glibc for 5 s. Within the TTL the same host costs nothing.
    """

    def __init__(self, ttl_s: float = 60.0, max_entries: int = 4096,
                 resolve: Resolver = resolve_host) -> None:
        self.ttl_s, self.max_entries, self.resolve = ttl_s, max_entries, resolve
        self._entries: dict[tuple[str, int], tuple[float, list[str] | OSError]] = {}
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        key, now = (host.lower(), port), time.monotonic()
        with self._lock:
            cached = self._entries.get(key)
        if cached is None or cached[0] < now:
            try:
                answer: list[str] | OSError = self.resolve(host, port)
            except OSError as error:
                answer = error
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.ttl_s, answer)
            cached = (now, answer)
        if isinstance(cached[1], OSError):
            raise cached[1]
        return list(cached[1])


DEFAULT_RESOLVER = CachedResolver()
"""One per process, shared by the create-time check and the downloader."""

_lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dns")


def resolve_within(resolver: Resolver, host: str, port: int, timeout_s: float) -> list[str]:
    """Resolve, or raise TimeoutError after `timeout_s` (the lookup finishes in the back)."""
    future = _lookups.submit(resolver, host, port)
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout:
        raise TimeoutError(f"resolving {host} took over {timeout_s:g} s") from None


def forbidden_reason(address: str) -> str | None:
    """Why connecting to `address` is refused, or None when it is a public unicast address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            reason = forbidden_reason(str(embedded))
            return f"{reason} (embedded in IPv6)" if reason else None
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "carrier-grade NAT"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


@dataclass(frozen=True)
class UrlPolicy:
    """What the downloader may connect to. `allowlist` holds `host:port` exemptions."""

    allow_private: bool = False
    allowlist: frozenset[str] = frozenset()
    resolver: Resolver = field(default=DEFAULT_RESOLVER, compare=False)
    create_timeout_s: float = 1.0
    """How long create waits for DNS; past it the URL is accepted and the downloader,
    which checks every connection anyway, decides."""

    def exempt(self, host: str, port: int) -> bool:
        return self.allow_private or f"{host.lower()}:{port}" in self.allowlist

    def check_address(self, host: str, port: int, address: str) -> None:
        reason = forbidden_reason(address)
        if reason and not self.exempt(host, port):
            # the caller learns that the host is refused, not what an internal name
            # resolves to (that would map the private network); the log keeps the reason
            log.info("refused host %s: resolves to a %s address", host, reason)
            raise UrlForbidden(f"url: host {host} does not resolve to a public address (only "
                               "public hosts are fetched; a local stack that serves its own "
                               "files sets ALLOW_PRIVATE_URLS=true)")

    def addresses(self, host: str, port: int, timeout_s: float | None = None) -> list[str]:
        """Resolve and check: every address must be allowed, or the host is refused."""
        try:
            addresses = (self.resolver(host, port) if timeout_s is None
                         else resolve_within(self.resolver, host, port, timeout_s))
        except socket.gaierror as error:
            if error.errno == socket.EAI_NONAME:
                raise HostNotFound(f"url: host {host} does not exist (DNS: no such name)",
                                   error_code=ErrorCode.DOWNLOAD_FAILED) from None
            raise HostUnresolved(f"url: host {host} could not be resolved ({error})") from None
        except (OSError, UnicodeError) as error:
            raise HostUnresolved(f"url: host {host} could not be resolved ({error})") from None
        for address in addresses:
            self.check_address(host, port, address)
        return addresses

    def check_url(self, url: str, *, resolve: bool = True, what: str = "url:") -> None:
        """The form (`url_problem`), then — with `resolve` — where the host points. An
        unresolvable host passes here (DNS may be down for a moment); the downloader
        checks again before it connects. Used at create time, on every redirect hop and
        for callbacks; `what` names the URL in the message."""
        problem = url_problem(url)
        if problem:
            raise UrlForbidden(f"{what} {problem}")
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        if not resolve or self.allow_private:  # nothing would be refused: no lookup
            return
        try:
            self.addresses(parts.hostname, port, timeout_s=self.create_timeout_s)
        except HostUnresolved:
            return


class HostUnresolved(TransientError):
    """DNS did not answer: maybe a moment's outage, so the task is retried."""

    error_code = ErrorCode.DOWNLOAD_UNAVAILABLE
