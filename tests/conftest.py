"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, and helpers to start processes.

The helpers themselves live in tests/support (servers, templates, stack, processes); this file makes
fixtures of them. Outside CI a test that needs a server that is not running is skipped, naming what it
needs; under CI (CI=true) it fails instead, so a missing service can never pass for green.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mail import Inbox, smtp_server
from tests.support.processes import Processes
from tests.support.servers import (
    PG_UNAVAILABLE,
    REDIS_URL,
    PostgresServer,
    RedisServer,
    free_port,
    fresh_pg_database,
    next_redis_index,
    pg_reachable,
    postgres_bindir,
    redis_reachable,
    unavailable,
)
from tests.support.stack import Stack, database_url_for, make_settings, sqlite_url
from tests.support.templates import TEMPLATES
from tests.support.webhooks import pipeline_settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first, spread over the xdist workers: worksteal gives each worker a contiguous share
    of this order, so each share starts with its part of the slow tests, and the fast ones fill in
    around them instead of a slow test starting last and keeping one worker busy after the others."""
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    slow = [item for item in items if item.get_closest_marker("slow") is not None]
    if not slow or workers == 1:
        return
    fast = [item for item in items if item.get_closest_marker("slow") is None]
    ordered: list[pytest.Item] = []
    for share in range(workers):
        start, end = share * len(fast) // workers, (share + 1) * len(fast) // workers
        ordered += slow[share::workers] + fast[start:end]
    items[:] = ordered


# --- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return pg_reachable()


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        unavailable(PG_UNAVAILABLE)
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def pg_stack_url(pg_available: bool) -> Iterator[str]:
    """The URL of a PostgreSQL database a Stack creates from its template (one CREATE DATABASE, not an
    empty one first), dropped afterwards."""
    if not pg_available:
        unavailable(PG_UNAVAILABLE)
    with fresh_pg_database(create=False) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database on SQLite and on PostgreSQL, for a test that builds its own stack."""
    return database_url_for(request, tmp_path)


# --- Redis ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_available() -> bool:
    return redis_reachable()


@pytest.fixture
def redis_url(redis_available: bool) -> Iterator[str]:
    """A Redis database of the shared server, emptied before and after the test."""
    import redis

    if not redis_available:
        unavailable(f"Redis at {REDIS_URL} (set ACCRUAL_TEST_REDIS_URL)")
    url = f"{REDIS_URL}/{next_redis_index()}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("the redis-server program (Debian package redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL's server programs (Debian package postgresql) to start a private cluster")
    # Not under pytest's tmp_path: its root-only parents would keep the postgres user out.
    workdir = Path(tempfile.mkdtemp(prefix="accrual-pg-"))
    server = PostgresServer(workdir, bindir)
    try:
        server.create()
        server.start()
        yield server
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()  # unless the test left it stopped
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- the service's state --------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    TEMPLATES.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The service's state on SQLite and on PostgreSQL (embedded broker; nothing is published here)."""
    url = sqlite_url(tmp_path) if request.param == "sqlite" else request.getfixturevalue("pg_stack_url")
    built = Stack(make_settings(tmp_path, url))
    yield built
    built.close()


@pytest.fixture(params=["sqlite", "postgres+redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The service's state for real processes: SQLite with the embedded broker, PostgreSQL with Redis."""
    if request.param == "sqlite":
        settings = make_settings(tmp_path, sqlite_url(tmp_path))
    else:
        settings = make_settings(
            tmp_path, request.getfixturevalue("pg_stack_url"), request.getfixturevalue("redis_url")
        )
    built = Stack(settings)
    yield built
    built.close()


@pytest.fixture
def pg_stack(tmp_path: Path, pg_stack_url: str) -> Iterator[Stack]:
    built = Stack(make_settings(tmp_path, pg_stack_url))
    yield built
    built.close()


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Iterator[Stack]:
    built = Stack(make_settings(tmp_path, sqlite_url(tmp_path)))
    yield built
    built.close()


# --- processes ------------------------------------------------------------------------------------


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def smtp_port() -> int:
    """A free loopback port for a test's own SMTP server (`inbox`)."""
    return free_port()


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    """A real SMTP server on `smtp_port` that keeps what it receives."""
    with smtp_server(smtp_port) as handler:
        yield handler


@pytest.fixture(params=["sqlite", "postgres+redis"])
def pipeline(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """A stack for real worker and scheduler processes: SQLite with the embedded broker, or PostgreSQL
    with a Redis database of its own (tests.support.webhooks.pipeline_settings)."""
    built = Stack(pipeline_settings(request, tmp_path))
    yield built
    built.close()
