"""The servers the tests use: the shared PostgreSQL and Redis, and private ones a test may stop.

Outside CI a test that needs a server that is not running is skipped, naming what it needs; under
CI (CI=true) it fails instead, so a missing service can never pass for green.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy import create_engine, text

from tests.support.waiting import wait_until

PG_ADMIN_URL = os.environ.get("ACCRUAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ACCRUAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_UNAVAILABLE = f"PostgreSQL at {PG_ADMIN_URL} (set ACCRUAL_TEST_PG_URL)"


def unavailable(what: str) -> NoReturn:
    """Skip outside CI; fail under CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"CI must provide {what}", pytrace=False)
    pytest.skip(f"needs {what}")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the shared PostgreSQL ------------------------------------------------------------------------


def pg_reachable() -> bool:
    """Whether the shared PostgreSQL answers."""
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


UNMADE_PG_DATABASES: set[str] = set()  # named by pg_stack_url, not created yet


def pg_database_url(name: str) -> str:
    """The URL of database `name` on the shared server."""
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def fresh_pg_database(create: bool = True) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; with `create` false only its name, for a
    Stack to create from its template."""
    name = f"accrual_test_{os.getpid()}_{secrets.token_hex(4)}"
    if create:
        pg_admin_execute(f'CREATE DATABASE "{name}"')
    else:
        UNMADE_PG_DATABASES.add(name)
    try:
        yield pg_database_url(name)
    finally:
        pg_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_pg_admin: list[Any] = []  # one AUTOCOMMIT engine per test process, made on first use


def pg_admin_execute(statement: str) -> None:
    """Run one statement (CREATE or DROP DATABASE) outside a transaction on the shared server."""
    if not _pg_admin:
        _pg_admin.append(create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True))
    with _pg_admin[0].connect() as connection:
        connection.execute(text(statement))


# --- the shared Redis -----------------------------------------------------------------------------


def redis_reachable() -> bool:
    """Whether the shared Redis answers."""
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


_redis_uses = itertools.count()
REDIS_TEST_DATABASES = range(2, 16)  # 0 and 1 are left to whatever else uses the server


def next_redis_index() -> int:
    """A database no other pytest-xdist worker of this run uses: each worker has its own share and
    cycles through it, one test at a time."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = int(worker[2:]) if worker[2:].isdigit() else 0
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = max(1, len(REDIS_TEST_DATABASES) // max(1, workers))
    offset = (number * share + next(_redis_uses) % share) % len(REDIS_TEST_DATABASES)
    return REDIS_TEST_DATABASES[offset]


# --- private servers ------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a spare loopback port, which a test may stop and start again."""

    def __init__(self, workdir: Path, *options: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.options = options  # more redis-server options, e.g. "--maxmemory-policy", "allkeys-lru"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None
        self.process = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        wait_until(lambda: _ping(client), timeout=10, what="private redis-server to start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def _ping(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


class PostgresServer:
    """A private PostgreSQL cluster on a spare loopback port, which a test may stop and start again.

    initdb refuses to run as root, so under root the cluster belongs to the `postgres` user.
    """

    def __init__(self, workdir: Path, bindir: Path) -> None:
        self.port = free_port()
        self.bindir = bindir
        self.datadir = workdir / "pgdata"
        self.socketdir = workdir / "pgsocket"
        self.logfile = workdir / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    def create(self) -> None:
        for path in (self.datadir, self.socketdir):
            path.mkdir(mode=0o700)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")
        if os.geteuid() == 0:
            self.logfile.touch()
            shutil.chown(self.logfile, "postgres", "postgres")
            shutil.chown(self.datadir.parent, "postgres", "postgres")
        self._run("initdb", "-D", str(self.datadir), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socketdir} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-o", options, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")


def postgres_bindir() -> Path | None:
    """The newest installed PostgreSQL's server programs, or None."""
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return bindirs[-1].parent if bindirs else None
