"""Where webhooks may go: https only, and never to an internal address (SSRF), unless a setting allows.

Checked when a subscription is made and again before every attempt, since a name's addresses change.
Every address a name resolves to must be public: one private answer is enough to refuse.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeTarget(ValueError):
    """A webhook URL that may not be called; the message says why."""


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int) -> list[str]:
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeTarget(f"the host {host!r} cannot be resolved") from None
    return sorted({str(answer[4][0]) for answer in answers})


def check_target(url: str, allow_private: bool) -> None:
    """Raise UnsafeTarget unless `url` may receive webhooks."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget("the URL is malformed") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeTarget("the URL must be https://host/...")
    if parts.scheme == "http" and not allow_private:
        raise UnsafeTarget("only https:// URLs may receive webhooks")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("the URL must not carry credentials")
    if allow_private:
        return
    private = [address for address in resolve(parts.hostname, port) if not _is_public(address)]
    if private:
        raise UnsafeTarget(f"the host resolves to a non-public address ({', '.join(private)})")
