"""A real `accrual api` (gunicorn, as `accrual serve` runs it) over a raw socket: an answer given before
the request's body was read (413 for an oversized body, 401 ahead of an upload) says `Connection: close`
and the server closes; an answer to a request whose body was read keeps the connection."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from tests.support.processes import Processes, start_api
from tests.support.servers import free_port
from tests.support.stack import Stack, make_settings, sqlite_url

pytestmark = pytest.mark.slow
MAX_BODY = 1024 * 1024  # ACCRUAL_MAX_BODY_BYTES's default
SENT_FIRST = 16 * 1024  # what a client has written of its body before it reads the early answer
GUARD_SECONDS = 30  # only so that a broken server fails the test instead of hanging it


@pytest.fixture
def api(tmp_path: Path, processes: Processes) -> Iterator[tuple[int, Stack]]:
    """`accrual api` on a free loopback port over a migrated SQLite database: (port, stack)."""
    stack = Stack(make_settings(tmp_path, sqlite_url(tmp_path)))
    port = free_port()
    environment = {**stack.env(), "ACCRUAL_API_WORKERS": "1", "ACCRUAL_API_THREADS": "2"}
    start_api(processes, environment, port)
    yield port, stack
    stack.close()


@contextmanager
def connection(port: int) -> Iterator[socket.socket]:
    with closing(socket.create_connection(("127.0.0.1", port), timeout=GUARD_SECONDS)) as sock:
        yield sock


def post_head(path: str, length: int, token: str | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Connection: keep-alive",
        "Content-Type: application/json",
        f"Content-Length: {length}",
        *([f"Authorization: Bearer {token}"] if token else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer framed by Content-Length: (status, headers lower-cased, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before a whole answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of the answer's body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server ends the connection (end of stream) rather than waiting for a next request."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_an_answer_given_before_the_body_is_read_says_connection_close_and_the_server_closes(
    api: tuple[int, Stack],
) -> None:
    port, stack = api
    with connection(port) as sock:  # an oversized body: 413
        sock.sendall(post_head("/api/v1/applications", MAX_BODY + 1, stack.coordinator) + b" " * SENT_FIRST)
        status, headers, body = read_answer(sock)
        assert status == 413 and headers["connection"] == "close"
        assert headers["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["status"] == 413 and str(MAX_BODY) in problem["detail"]
        assert closed_by_server(sock)
    with connection(port) as sock:  # no token: 401 before the upload is read
        sock.sendall(post_head("/api/v1/applications", MAX_BODY // 2, None) + b" " * SENT_FIRST)
        status, headers, _ = read_answer(sock)
        assert status == 401 and headers["connection"] == "close"
        assert closed_by_server(sock)
    whole = b'{"trial_id": '  # read whole, then refused as malformed JSON: the connection stays
    with connection(port) as sock:
        for _ in range(2):  # the second request travels on the same connection
            sock.sendall(post_head("/api/v1/applications", len(whole), stack.coordinator) + whole)
            status, headers, _ = read_answer(sock)
            assert status == 400 and headers["connection"] == "keep-alive"
