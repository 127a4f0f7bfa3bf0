"""Where webhooks may go: https only, to allowed ports (443, 8443), and never to an internal address
(SSRF), unless a setting allows.

Checked when a subscription is made and again before every attempt, since a name's addresses change.
Every address a name resolves to must be public: one private answer is enough to refuse. The sender
then connects to an address this check judged (services.notifications.webhooks), so a second lookup can never
answer differently (DNS rebinding).
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

DEFAULT_PORTS = frozenset({443, 8443})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 forms that carry an IPv4 address: a translator or relay on the way turns them into IPv4 packets,
# so they are judged by the IPv4 address they carry (ipaddress calls most of them global).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215 local-use prefix
_NAT64_LOCAL_96 = ipaddress.IPv6Network("64:ff9b:1::/96")  # ... with the IPv4 address in the last 32 bits
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765 (SIIT) IPv4-translated
_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 IPv4-compatible (deprecated), also :: and ::1


class UnsafeTarget(ValueError):
    """A webhook URL that may not be called; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: its host and port as parsed, and the addresses that were judged public
    (in the resolver's order of preference; none when private targets are allowed)."""

    url: str
    host: str
    port: int
    addresses: tuple[str, ...]


def _last_32_bits(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...] | None:
    """The IPv4 addresses a transition form carries; None for a plain IPv6 address, () if unclear."""
    if ip.ipv4_mapped is not None:
        return (ip.ipv4_mapped,)
    if ip.teredo is not None:  # (server, client); both take part in the exchange
        return ip.teredo
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip in _NAT64 or ip in _NAT64_LOCAL_96 or ip in _TRANSLATED or ip in _COMPATIBLE:
        return (_last_32_bits(ip),)
    if ip in _NAT64_LOCAL:  # a longer local prefix puts the IPv4 bits elsewhere: not clearly public
        return ()
    return None


def _is_global(ip: IPAddress) -> bool:
    return ip.is_global and not ip.is_multicast


def is_public(address: str) -> bool:
    """Whether `address` (an IP literal, maybe with a %zone) is clearly on the public internet."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return bool(embedded) and all(_is_global(inner) for inner in embedded)
    return _is_global(ip)


def resolve(host: str, port: int) -> tuple[str, ...]:
    """Every address `host` resolves to, once each, in the resolver's order (RFC 6724 preference)."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeTarget(f"the host {host!r} cannot be resolved") from None
    return tuple(dict.fromkeys(str(answer[4][0]) for answer in answers))


def _parse(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError:
        raise UnsafeTarget("the URL is malformed") from None
    return parts


def _check_plain(url: str, parts: SplitResult) -> None:
    """Refuse what parsers read differently: control characters (getaddrinfo stops at a NUL),
    whitespace, and anything that does not read back the same after parsing."""
    if any(c.isspace() or unicodedata.category(c) in ("Cc", "Cf") for c in url):
        raise UnsafeTarget("the URL must not contain whitespace or control characters")
    if urlunsplit(parts) != url:
        raise UnsafeTarget("the URL is malformed: it does not read back the same after parsing")


def check_target(url: str, allow_private: bool, ports: Collection[int] = DEFAULT_PORTS) -> Target:
    """Raise UnsafeTarget unless `url` may receive webhooks; the target, with the addresses judged."""
    parts = _parse(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeTarget("the URL must be https://host/...")
    _check_plain(url, parts)
    if parts.scheme == "http" and not allow_private:
        raise UnsafeTarget(
            "only https:// URLs may receive webhooks (for local development, an operator may allow http:// "
            "and private addresses with ACCRUAL_WEBHOOK_ALLOW_PRIVATE=true)"
        )
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL must not carry credentials")
    port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    if allow_private:
        return Target(url, parts.hostname, port, ())
    if port not in ports:
        allowed = ", ".join(str(p) for p in sorted(ports))
        raise UnsafeTarget(f"the port {port} may not receive webhooks (allowed: {allowed})")
    addresses = resolve(parts.hostname, port)
    if not all(is_public(address) for address in addresses):
        # The addresses stay unnamed: a subscriber could otherwise map how internal names resolve.
        raise UnsafeTarget("the host is, or resolves to, a non-public address")
    return Target(url, parts.hostname, port, addresses)
