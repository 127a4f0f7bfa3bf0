"""The readiness probe of the broker, made without kombu: Redis answers PING, the embedded broker's
SQLite file opens, any other transport's server accepts a TCP connection; else one line naming it."""

from __future__ import annotations

import socket
from pathlib import Path

from services.health import check_broker


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_embedded_broker_is_ready_when_its_file_opens(tmp_path: Path) -> None:
    assert check_broker(f"sqla+sqlite:///{tmp_path / 'broker.db'}") is None


def test_an_embedded_broker_whose_directory_is_missing_is_named(tmp_path: Path) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'missing' / 'broker.db'}"
    problem = check_broker(url)
    assert problem is not None and problem.startswith(f"broker at {url} unreachable")


def test_a_redis_that_does_not_answer_is_named_without_its_password() -> None:
    port = _closed_port()
    problem = check_broker(f"redis://:s3cret@127.0.0.1:{port}/0")
    assert problem is not None and f"127.0.0.1:{port}" in problem and "s3cret" not in problem


def test_another_transport_is_probed_by_a_tcp_connection() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert check_broker(f"amqp://guest:guest@127.0.0.1:{port}//") is None
    problem = check_broker(f"amqp://guest:guest@127.0.0.1:{port}//")
    assert problem is not None and "unreachable" in problem
