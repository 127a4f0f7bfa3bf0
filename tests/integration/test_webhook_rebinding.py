"""Webhook targets end to end, on SQLite and PostgreSQL: DNS rebinding between the check and the
connection, TLS to a pinned address, coarse attempt errors, and URLs refused at POST /api/v1/webhooks.

The network is simulated in this process, so no packet leaves the machine: getaddrinfo answers one
name (NAME) from a script, and socket.create_connection records the address every connection asks
for, routes PUBLIC (standing in for the internet) to a loopback port or refuses it, connects loopback
addresses for real and refuses everything else.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import func, select

import services.notifications.webhooks
from models import WebhookSubscription
from services.notifications.webhooks import claim_due, deliver, lease_for
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem, auth
from tests.support.relay import relay
from tests.support.servers import free_port
from tests.support.stack import Stack, database_url_for, make_settings, sqlite_url

NAME = "hooks.example.test"
PUBLIC = "93.184.216.34"
LOOPBACK = "127.0.0.1"
EVENTS = ["application.submitted"]


# --- the simulated network ---------------------------------------------------------------------------


class Resolver:
    """getaddrinfo answering NAME from a script (its last answer repeats); other hosts as usual."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.answers = [PUBLIC]
        self.lookups = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return self.real(host, port, *args, **kwargs)
        self.lookups += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answer, port))]


class Network:
    """socket.create_connection recording what each connection asked for, routed as the module says."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.asked: list[tuple[str, int]] = []
        self.public_route: int | None = None  # the loopback port PUBLIC reaches; None: PUBLIC refuses

    def __call__(self, address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        self.asked.append((address[0], address[1]))
        for *_, sockaddr in socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM):
            answer = str(sockaddr[0])
            if answer == PUBLIC and self.public_route is not None:
                connection: socket.socket = self.real((LOOPBACK, self.public_route), *args, **kwargs)
                return connection
            if ipaddress.ip_address(answer).is_loopback:
                connection = self.real((answer, address[1]), *args, **kwargs)
                return connection
        raise ConnectionRefusedError(errno.ECONNREFUSED, "refused by the test network")


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> tuple[Resolver, Network]:
    resolver, net = Resolver(socket.getaddrinfo), Network(socket.create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setattr(socket, "create_connection", net)
    return resolver, net


@pytest.fixture(autouse=True)
def fresh_client() -> Iterator[None]:
    """The sender's client is made once per process: make it afresh, under this test's CA bundle."""
    services.notifications.webhooks._client.cache_clear()
    yield
    services.notifications.webhooks._client.cache_clear()


# --- endpoints ---------------------------------------------------------------------------------------


class Endpoint(ThreadingHTTPServer):
    """An HTTP(S) server on loopback recording each connection, TLS server name and Host header.

    `mode`: "answer" 200, "silent" never answers, "garbage" answers something that is not HTTP,
    "redirect" 302 to `location`."""

    daemon_threads = True

    def __init__(self, port: int = 0, tls: ssl.SSLContext | None = None, mode: str = "answer") -> None:
        self.connections = 0
        self.server_names: list[str | None] = []
        self.hosts: list[str] = []
        self.tls, self.mode, self.stopping = tls, mode, threading.Event()
        self.location = ""
        if tls is not None:
            tls.sni_callback = lambda _connection, name, _context: self.server_names.append(name)
        super().__init__((LOOPBACK, port), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        connection, peer = super().get_request()
        self.connections += 1
        if self.tls is None:
            return connection, peer
        try:
            return self.tls.wrap_socket(connection, server_side=True), peer
        except OSError:  # the client refused our certificate: part of the test
            connection.close()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a dropped or refused connection is what some tests are about

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: Endpoint

    def do_POST(self) -> None:
        self.server.hosts.append(self.headers["Host"])
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.server.mode == "silent":
            self.server.stopping.wait(10)
        elif self.server.mode == "garbage":
            self.wfile.write(b"this is not HTTP\r\n\r\n")
        elif self.server.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", self.server.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoints() -> Iterator[list[Endpoint]]:
    started: list[Endpoint] = []
    yield started
    for endpoint in started:
        endpoint.stop()


def certificate_for(tmp_path: Path, name: str) -> tuple[Path, ssl.SSLContext]:
    """A new CA's certificate (a PEM file) and a server context whose certificate, signed by that CA,
    names `name` and nothing else: no IP address."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Accrual test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, chain_file, key_file = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file, key_file)
    return ca_file, context


def public_endpoint(
    tmp_path: Path, name: str, network: tuple[Resolver, Network], monkeypatch: pytest.MonkeyPatch, **kw: Any
) -> Endpoint:
    """An HTTPS endpoint standing for PUBLIC, its certificate naming `name`, trusted by the sender."""
    ca_file, server_tls = certificate_for(tmp_path, name)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    endpoint = Endpoint(tls=server_tls, **kw)
    network[1].public_route = endpoint.port
    return endpoint


# --- stacks and helpers ------------------------------------------------------------------------------


@pytest.fixture
def port() -> int:
    """The port the endpoint under test listens on, allowed for webhooks besides 443 and 8443."""
    return free_port()


@pytest.fixture(params=["sqlite", "postgres"])
def guarded(request: pytest.FixtureRequest, tmp_path: Path, port: int) -> Iterator[Stack]:
    """Private targets refused (the default), with the test endpoint's port allowed."""
    settings = make_settings(
        tmp_path,
        database_url_for(request, tmp_path),
        webhook_allowed_ports=f"443,8443,{port}",
        webhook_retry_schedule="3600",  # one attempt in the test's time
        webhook_timeout_seconds=2,
    )
    built = Stack(settings)
    yield built
    built.close()


@pytest.fixture(params=["sqlite", "postgres"])
def local(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Private targets allowed, as in development and the other webhook tests."""
    settings = make_settings(
        tmp_path,
        database_url_for(request, tmp_path),
        webhook_allow_private=True,
        webhook_retry_schedule="3600",
        webhook_timeout_seconds=0.5,
    )
    built = Stack(settings)
    yield built
    built.close()


def subscribe(stack: Stack, url: str) -> Any:
    return stack.client.post(
        "/api/v1/webhooks", json={"url": url, "event_types": EVENTS}, headers=auth(stack.admin)
    )


def subscribed(stack: Stack, url: str) -> str:
    response = subscribe(stack, url)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def send_one_event(stack: Stack) -> None:
    """Submit an application, relay its event and send every delivery it is owed, once."""
    assert stack.submit(eligible_applicant("REBIND")).status_code == 202
    relay(stack)
    with stack.db.transaction() as session:
        due = claim_due(session, lease_for(stack.settings))
    assert due, "no delivery was due"
    for delivery_id, claim in due:
        deliver(stack.db, delivery_id, claim, stack.settings)


def attempts(stack: Stack, webhook_id: str) -> list[dict[str, Any]]:
    response = stack.client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=auth(stack.admin))
    assert response.status_code == 200, response.get_json()
    [delivery] = response.get_json()["items"]
    found: list[dict[str, Any]] = delivery["attempts"]
    return found


# --- DNS rebinding -----------------------------------------------------------------------------------


def test_a_name_rebound_to_loopback_after_the_check_is_not_looked_up_again_nor_reached(
    guarded: Stack, network: tuple[Resolver, Network], endpoints: list[Endpoint], port: int
) -> None:
    resolver, net = network
    endpoints.append(loopback := Endpoint(port))
    hook = subscribed(guarded, f"https://{NAME}:{port}/in")
    resolver.answers, resolver.lookups = [PUBLIC, LOOPBACK], 0  # public for the check, loopback after
    send_one_event(guarded)
    assert loopback.connections == 0
    assert net.asked == [(PUBLIC, port)]  # the connection went to the address that was checked
    assert resolver.lookups == 1
    [attempt] = attempts(guarded, hook)
    assert attempt["status_code"] is None and attempt["error"] == "connection failed"


def test_the_pinned_connection_keeps_the_name_for_sni_the_host_header_and_the_certificate(
    guarded: Stack,
    network: tuple[Resolver, Network],
    endpoints: list[Endpoint],
    port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver, net = network
    # Its certificate names NAME, not the address connected to.
    endpoints.append(public := public_endpoint(tmp_path, NAME, network, monkeypatch))
    hook = subscribed(guarded, f"https://{NAME}:{port}/in")
    resolver.lookups = 0
    send_one_event(guarded)
    [attempt] = attempts(guarded, hook)
    assert attempt["status_code"] == 200 and attempt["error"] is None
    assert net.asked == [(PUBLIC, port)] and resolver.lookups == 1
    assert public.server_names == [NAME]
    assert public.hosts == [f"{NAME}:{port}"]


def test_a_certificate_for_another_name_fails_the_attempt_as_tls_failed(
    guarded: Stack,
    network: tuple[Resolver, Network],
    endpoints: list[Endpoint],
    port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoints.append(public := public_endpoint(tmp_path, "elsewhere.example.test", network, monkeypatch))
    hook = subscribed(guarded, f"https://{NAME}:{port}/in")
    send_one_event(guarded)
    [attempt] = attempts(guarded, hook)
    assert attempt["status_code"] is None and attempt["error"] == "TLS failed"
    assert public.hosts == []  # nothing was sent over the refused connection


# --- what an attempt's error tells the subscriber ----------------------------------------------------


def test_failed_attempts_record_a_coarse_reason_without_addresses_ports_or_os_text(
    local: Stack, endpoints: list[Endpoint]
) -> None:
    endpoints.extend(
        [silent := Endpoint(mode="silent"), garbage := Endpoint(mode="garbage"), plain := Endpoint()]
    )
    closed = free_port()  # nothing listens here
    expected = {
        subscribed(local, f"http://{LOOPBACK}:{closed}/in"): ("connection failed", closed),
        subscribed(local, f"http://{LOOPBACK}:{silent.port}/in"): ("timed out", silent.port),
        subscribed(local, f"http://{LOOPBACK}:{garbage.port}/in"): ("protocol error", garbage.port),
        subscribed(local, f"https://{LOOPBACK}:{plain.port}/in"): ("TLS failed", plain.port),  # plain HTTP
    }
    send_one_event(local)
    for hook, (reason, port) in expected.items():
        [attempt] = attempts(local, hook)
        assert attempt["status_code"] is None and attempt["error"] == reason, (reason, attempt)
        assert str(port) not in attempt["error"] and LOOPBACK not in attempt["error"]


# --- URLs refused when subscribing -------------------------------------------------------------------

REFUSED = [
    "https://1.1.1.1\u0000/",  # getaddrinfo stops at the NUL; PostgreSQL refuses it at insert
    "https://93.184.216.34/\u0000",
    "https://93.184.216.34/a b",
    "https://93.184.216.34/\r\nx-injected: 1",
    "https://93.184.216.34/\t",
    "https://93.184.216.34/?",
    "HTTPS://93.184.216.34/",
    "https://93.184.216.34:80/",
    "https://93.184.216.34:8080/",
    "https://93.184.216.34:22/",
    "https://93.184.216.34:0/",
    "https://[64:ff9b::a9fe:a9fe]/",
    "https://[64:ff9b:1::a00:1]/",
    "https://[2002:a9fe:a9fe::]/",
    "https://[::7f00:1]/",
    "https://[::a9fe:a9fe]/",
]


def test_control_characters_odd_ports_and_hidden_private_addresses_are_refused_naming_url(
    stack: Stack,
) -> None:
    for url in REFUSED:
        assert_problem(subscribe(stack, url), 422, "url")
    with stack.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookSubscription)) == 0
    for url in [
        "https://93.184.216.34:8443/hook",
        "https://93.184.216.34:443/hook",
        "https://[64:ff9b::808:808]/",
    ]:
        assert subscribe(stack, url).status_code == 201, url


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_the_allowed_ports_follow_the_setting(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path) if database == "sqlite" else request.getfixturevalue("pg_url")
    stack = Stack(make_settings(tmp_path, url, webhook_allowed_ports="9443"))
    try:
        assert subscribe(stack, "https://93.184.216.34:9443/hook").status_code == 201
        for refused in ["https://93.184.216.34/hook", "https://93.184.216.34:8443/hook"]:
            body = assert_problem(subscribe(stack, refused), 422, "url")
            assert "allowed: 9443" in body["detail"]
    finally:
        stack.close()


def test_with_private_targets_allowed_any_port_and_http_pass_but_control_characters_do_not(
    local: Stack,
) -> None:
    assert subscribe(local, "http://127.0.0.1:9/x").status_code == 201
    assert subscribe(local, "https://10.0.0.1:6379/x").status_code == 201
    assert_problem(subscribe(local, "http://127.0.0.1:9/\u0000"), 422, "url")
    assert_problem(subscribe(local, "http://127.0.0.1\u0000:9/"), 422, "url")


# --- scenario 35: every form of an internal target, at registration and at send ---------------------


def internal_forms(port: int) -> list[str]:
    """The scenario's list: plain http in production, loopback by name and number, the unspecified
    address, private ranges, cloud metadata, IPv6 loopback and IPv4-mapped loopback, decimal and octal
    IPv4 forms, and a name that resolves to a private address."""
    return [
        f"http://{NAME}:{port}/in",
        f"https://localhost:{port}/in",
        f"https://127.0.0.1:{port}/in",
        f"https://0.0.0.0:{port}/in",
        "https://10.0.0.1/in",
        "https://172.16.0.1/in",
        "https://192.168.1.1/in",
        "https://169.254.169.254/latest/meta-data/",
        f"https://[::1]:{port}/in",
        f"https://[::ffff:127.0.0.1]:{port}/in",
        f"https://2130706433:{port}/in",
        f"https://0177.0.0.1:{port}/in",
        f"https://0x7f000001:{port}/in",
        f"https://{PRIVATE_NAME}:{port}/in",
    ]


PRIVATE_NAME = "internal.example.test"  # resolves to loopback
REDIRECT_NAME = "redirect.example.test"  # resolves to PUBLIC, whose endpoint redirects to the canary


def test_s35_every_internal_target_is_refused_at_registration_or_send_and_the_canary_gets_nothing(
    guarded: Stack,
    network: tuple[Resolver, Network],
    endpoints: list[Endpoint],
    port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolver, net = network
    endpoints.append(canary := Endpoint(port))  # on loopback, on the allowed port: what SSRF would hit
    real = resolver.real
    named = {PRIVATE_NAME: LOOPBACK, REDIRECT_NAME: PUBLIC}
    resolver.real = lambda host, *rest, **kw: real(named.get(host, host), *rest, **kw)
    for url in internal_forms(port):
        assert_problem(subscribe(guarded, url), 422, "url")
    with guarded.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(WebhookSubscription)) == 0

    # At send: a name public when subscribed and loopback after (DNS rebinding), a public endpoint that
    # redirects to the canary, and subscriptions whose stored URL names internal targets by now.
    redirecting = public_endpoint(tmp_path, REDIRECT_NAME, network, monkeypatch, mode="redirect")
    endpoints.append(redirecting)
    redirecting.location = f"http://{LOOPBACK}:{port}/in"
    rebound = subscribed(guarded, f"https://{NAME}:{port}/in")
    redirect = subscribed(guarded, f"https://{REDIRECT_NAME}:{port}/in")
    stored_internal = {
        subscribed(guarded, f"https://{REDIRECT_NAME}:{port}/stored/{n}"): url
        for n, url in enumerate(
            [
                f"https://127.0.0.1:{port}/in",
                f"https://[::ffff:127.0.0.1]:{port}/in",
                f"https://{PRIVATE_NAME}:{port}/in",
                f"http://{REDIRECT_NAME}:{port}/in",
            ]
        )
    }
    with guarded.db.transaction() as session:
        for webhook_id, url in stored_internal.items():
            session.get_one(WebhookSubscription, webhook_id).url = url
    resolver.answers = [LOOPBACK]  # NAME was public when subscribed; it now answers loopback
    send_one_event(guarded)

    assert canary.connections == 0 and canary.hosts == []
    [rebound_attempt] = attempts(guarded, rebound)  # connected to the checked address, whose
    assert rebound_attempt["status_code"] is None  # certificate is not NAME's; or refused outright
    [redirected] = attempts(guarded, redirect)
    assert redirected["status_code"] == 302 and redirecting.hosts == [f"{REDIRECT_NAME}:{port}"]
    for webhook_id in stored_internal:
        [attempt] = attempts(guarded, webhook_id)
        assert attempt["status_code"] is None and attempt["error"].startswith("refused"), attempt
    assert {address for address, _ in net.asked} <= {PUBLIC}  # no connection asked for anything else
