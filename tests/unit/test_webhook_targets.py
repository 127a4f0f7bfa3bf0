"""Webhook targets (services/notifications/targets.py): IPv4 addresses hidden in IPv6 transition forms, ports,
and URLs that parsers read differently. The basic SSRF table lives in test_webhook_signing.py.

Pure unit tests: IP literals need no DNS; host names are answered by a monkeypatched getaddrinfo.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from config import Settings
from services.notifications.targets import UnsafeTarget, check_target, is_public


def teredo(server: str, client: str) -> str:
    """A Teredo address (RFC 4380): 2001:0::/32, the server's IPv4, flags and port, then NOT client."""
    value = (
        (0x20010000 << 96)
        | (int(ipaddress.IPv4Address(server)) << 64)
        | (0xFFFF_FFFF ^ int(ipaddress.IPv4Address(client)))
    )
    return str(ipaddress.IPv6Address(value))


# Each carries a non-public IPv4 address; ipaddress alone calls most of them global.
HIDDEN_PRIVATE = [
    ("64:ff9b::a9fe:a9fe", "NAT64 well-known prefix -> 169.254.169.254"),
    ("64:ff9b::7f00:1", "NAT64 well-known prefix -> 127.0.0.1"),
    ("64:ff9b::a00:1", "NAT64 well-known prefix -> 10.0.0.1"),
    ("64:ff9b::e000:1", "NAT64 well-known prefix -> 224.0.0.1 (multicast)"),
    ("64:ff9b:1::a00:1", "NAT64 local-use prefix -> 10.0.0.1"),
    ("64:ff9b:1::a9fe:a9fe", "NAT64 local-use prefix -> 169.254.169.254"),
    ("64:ff9b:1:ab00::808:808", "NAT64 local-use prefix longer than /48: where the IPv4 sits is unclear"),
    ("2002:a9fe:a9fe::", "6to4 -> 169.254.169.254"),
    ("2002:7f00:1::1", "6to4 -> 127.0.0.1"),
    ("2002:c0a8:101:1::1", "6to4 -> 192.168.1.1"),
    (teredo("8.8.8.8", "10.0.0.1"), "Teredo, private client"),
    (teredo("169.254.169.254", "8.8.4.4"), "Teredo, private server"),
    ("::7f00:1", "IPv4-compatible -> 127.0.0.1"),
    ("::a9fe:a9fe", "IPv4-compatible -> 169.254.169.254"),
    ("::a00:1", "IPv4-compatible -> 10.0.0.1"),
    ("::ffff:0:a9fe:a9fe", "IPv4-translated (SIIT) -> 169.254.169.254"),
    ("::ffff:0:7f00:1", "IPv4-translated (SIIT) -> 127.0.0.1"),
    ("::ffff:a9fe:a9fe", "IPv4-mapped -> 169.254.169.254"),
    ("::ffff:7f00:1", "IPv4-mapped -> 127.0.0.1"),
    ("::", "unspecified"),
    ("::1", "loopback"),
]

# The same forms carrying public addresses still pass.
HIDDEN_PUBLIC = [
    ("64:ff9b::808:808", "NAT64 well-known prefix -> 8.8.8.8"),
    ("64:ff9b:1::808:808", "NAT64 local-use prefix -> 8.8.8.8"),
    ("2002:808:808::1", "6to4 -> 8.8.8.8"),
    (teredo("8.8.8.8", "8.8.4.4"), "Teredo, public server and client"),
    ("::808:808", "IPv4-compatible -> 8.8.8.8"),
    ("::ffff:0:808:808", "IPv4-translated (SIIT) -> 8.8.8.8"),
    ("::ffff:808:808", "IPv4-mapped -> 8.8.8.8"),
    ("2606:4700:4700::1111", "a plain public IPv6 address"),
]


def test_teredo_helper_builds_what_ipaddress_reads_back() -> None:
    address = ipaddress.IPv6Address(teredo("8.8.8.8", "10.0.0.1"))
    assert address.teredo == (ipaddress.IPv4Address("8.8.8.8"), ipaddress.IPv4Address("10.0.0.1"))


@pytest.mark.parametrize(("address", "form"), HIDDEN_PRIVATE)
def test_an_ip_literal_hiding_a_non_public_ipv4_address_is_refused(address: str, form: str) -> None:
    assert not is_public(address), form
    with pytest.raises(UnsafeTarget, match="non-public address"):
        check_target(f"https://[{address}]/hook", allow_private=False)


@pytest.mark.parametrize(("address", "form"), HIDDEN_PUBLIC)
def test_an_ip_literal_hiding_a_public_ipv4_address_is_accepted(address: str, form: str) -> None:
    assert is_public(address), form
    target = check_target(f"https://[{address}]/hook", allow_private=False)
    assert [ipaddress.ip_address(a) for a in target.addresses] == [ipaddress.ip_address(address)]


def answering(answers: list[str], calls: list[tuple[Any, ...]]) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append((host, port))
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers
        ]

    return getaddrinfo


@pytest.mark.parametrize("answer", ["64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::a9fe:a9fe"])
def test_a_name_resolving_to_a_transition_form_of_a_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    monkeypatch.setattr(
        "services.notifications.targets.socket.getaddrinfo", answering(["93.184.216.34", answer], [])
    )
    with pytest.raises(UnsafeTarget, match="non-public address"):
        check_target("https://hooks.example.com/in", allow_private=False)


def test_the_checked_addresses_keep_the_resolvers_order_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = ["2606:4700:4700::1111", "93.184.216.34", "2606:4700:4700::1111", "1.1.1.1"]
    monkeypatch.setattr("services.notifications.targets.socket.getaddrinfo", answering(answers, []))
    target = check_target("https://hooks.example.com:8443/in", allow_private=False)
    assert target.addresses == ("2606:4700:4700::1111", "93.184.216.34", "1.1.1.1")
    assert (target.host, target.port) == ("hooks.example.com", 8443)


# --- ports -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/", "https://93.184.216.34:443/", "https://93.184.216.34:8443/in"]
)
def test_ports_443_and_8443_are_allowed_by_default(url: str) -> None:
    check_target(url, allow_private=False)


@pytest.mark.parametrize("port", [0, 22, 25, 80, 6379, 8080, 9443, 65535])
def test_other_ports_are_refused_by_default(port: int) -> None:
    with pytest.raises(UnsafeTarget, match=f"the port {port} may not receive webhooks"):
        check_target(f"https://93.184.216.34:{port}/", allow_private=False)


def test_the_allowed_ports_can_be_chosen() -> None:
    check_target("https://93.184.216.34:9443/", allow_private=False, ports={9443})
    with pytest.raises(UnsafeTarget, match="allowed: 9443"):
        check_target("https://93.184.216.34/", allow_private=False, ports={9443})


def test_any_port_and_plain_http_are_allowed_with_private_targets() -> None:
    check_target("http://127.0.0.1:6379/", allow_private=True)
    check_target("https://10.0.0.1:22/", allow_private=True)


def test_ports_are_checked_before_the_name_is_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        "services.notifications.targets.socket.getaddrinfo", answering(["93.184.216.34"], calls)
    )
    with pytest.raises(UnsafeTarget, match="port"):
        check_target("https://hooks.example.com:25/", allow_private=False)
    assert calls == []


@pytest.mark.parametrize(("value", "ports"), [("443,8443", {443, 8443}), (" 9443 , 443,", {443, 9443})])
def test_the_allowed_ports_setting_reads_comma_separated_ports(
    tmp_path: Path, value: str, ports: set[int]
) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, webhook_allowed_ports=value)  # type: ignore[call-arg]
    assert settings.webhook_ports == ports


@pytest.mark.parametrize("value", ["", ",", "https", "443;8443", "0", "65536", "-443"])
def test_a_malformed_allowed_ports_setting_is_refused_naming_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValidationError, match="ACCRUAL_WEBHOOK_ALLOWED_PORTS"):
        Settings(_env_file=None, data_dir=tmp_path, webhook_allowed_ports=value)  # type: ignore[call-arg]


# --- URLs parsers read differently -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://1.1.1.1\x00/",  # getaddrinfo stops at the NUL and resolves 1.1.1.1
        "https://1.1.1.1\x00.internal.example/",
        "https://93.184.216.34/\x00",
        "https://93.184.216.34/a b",
        "https://93.184.216.34/\tx",
        "https://93.184.216.34/\r\nx-injected: 1",
        "https://93.184.216.34/x\n",
        "https://93.184.216.34/\x7f",
        "https://93.184.216.34/\x85",  # C1 NEL
        "https://93.184.216.34/\u200b",  # zero-width space
        "https://93.184.216.34/\u2028",  # line separator
        "https://93.184.216.34\u3000/",  # ideographic space
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
def test_whitespace_and_control_characters_are_refused(url: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeTarget, match="whitespace or control characters"):
        check_target(url, allow_private=allow_private)


@pytest.mark.parametrize(
    "url",
    [
        "HTTPS://93.184.216.34/",
        "https://93.184.216.34/?",
        "https://93.184.216.34/#",
        "https://93.184.216.34/x?#",
    ],
)
def test_a_url_that_does_not_read_back_the_same_is_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget, match="does not read back the same"):
        check_target(url, allow_private=False)
