"""Which URLs the service may fetch: no loopback, private, link-local, CGNAT, multicast or
reserved addresses (IPv4 and IPv6, IPv4-mapped included), unless allowed by config.

The check runs at create time (a DNS lookup, no download) and again for every connection
the downloader opens: the address that was checked is the address connected to, so a
name that re-resolves to an internal address between the two (DNS rebinding) is refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from shared.errors import PermanentError, TransientError

Resolver = Callable[[str, int], list[str]]


class UrlForbidden(PermanentError):
    error_code = "url_forbidden"


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the host resolves to (numeric forms like 2130706433 included)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


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
    resolver: Resolver = field(default=resolve_host, compare=False)

    def exempt(self, host: str, port: int) -> bool:
        return self.allow_private or f"{host.lower()}:{port}" in self.allowlist

    def check_address(self, host: str, port: int, address: str) -> None:
        reason = forbidden_reason(address)
        if reason and not self.exempt(host, port):
            raise UrlForbidden(f"url: host {host} resolves to a {reason} address")

    def addresses(self, host: str, port: int) -> list[str]:
        """Resolve and check: every address must be allowed, or the host is refused."""
        try:
            addresses = self.resolver(host, port)
        except (OSError, UnicodeError) as error:
            raise HostUnresolved(f"url: host {host} could not be resolved ({error})") from None
        for address in addresses:
            self.check_address(host, port, address)
        return addresses

    def check_url(self, url: str, *, resolve: bool = True) -> None:
        """Create-time check. An unresolvable host passes here (DNS may be down for a moment);
        the downloader checks again before it connects."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https"):
            raise UrlForbidden("url: must be an http or https URL")
        if parts.username is not None or parts.password is not None:
            raise UrlForbidden("url: must not contain credentials")
        if not parts.hostname:
            raise UrlForbidden("url: must include a host")
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        if not resolve:
            return
        try:
            self.addresses(parts.hostname, port)
        except HostUnresolved:
            return


class HostUnresolved(TransientError):
    """DNS did not answer: maybe a moment's outage, so the task is retried."""

    error_code = "download_unavailable"
