"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, and helpers to start processes.

Outside CI a test that needs a server that is not running is skipped, naming what it needs; under
CI (CI=true) it fails instead, so a missing service can never pass for green.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_openapi3 import OpenAPI
from pydantic import SecretStr
from sqlalchemy import create_engine, make_url, text

from config import Settings
from models import Role, Site
from models.db import Database
from models.migrate import upgrade
from services.app import create_app
from services.seed import seed
from services.tokens import create_token
from tests.applicants import eligible_applicant

PG_ADMIN_URL = os.environ.get("ACCRUAL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("ACCRUAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TRIAL = "NCT06359912"
__all__ = ["TRIAL", "eligible_applicant"]


def unavailable(what: str) -> None:
    """Skip outside CI; fail under CI, where every service must be there."""
    if IN_CI:
        pytest.fail(f"CI must provide {what}", pytrace=False)
    pytest.skip(f"needs {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


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


def _pg_reachable() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_reachable()


UNMADE_PG_DATABASES: set[str] = set()  # named by pg_stack_url, not created yet


@contextlib.contextmanager
def fresh_pg_database(create: bool = True) -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; with `create` false only its name, for a
    Stack to create from its template."""
    name = f"accrual_test_{os.getpid()}_{secrets.token_hex(4)}"
    if create:
        _pg_admin_execute(f'CREATE DATABASE "{name}"')
    else:
        UNMADE_PG_DATABASES.add(name)
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _pg_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_pg_admin: list[Any] = []  # one AUTOCOMMIT engine per test process, made on first use


def _pg_admin_execute(statement: str) -> None:
    if not _pg_admin:
        _pg_admin.append(create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True))
    with _pg_admin[0].connect() as connection:
        connection.execute(text(statement))


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        unavailable(f"PostgreSQL at {PG_ADMIN_URL} (set ACCRUAL_TEST_PG_URL)")
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def pg_stack_url(pg_available: bool) -> Iterator[str]:
    """The URL of a PostgreSQL database a Stack creates from its template (one CREATE DATABASE, not an
    empty one first), dropped afterwards."""
    if not pg_available:
        unavailable(f"PostgreSQL at {PG_ADMIN_URL} (set ACCRUAL_TEST_PG_URL)")
    with fresh_pg_database(create=False) as url:
        yield url


# --- Redis ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_available() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:
        return False


_redis_uses = itertools.count()
REDIS_TEST_DATABASES = range(2, 16)  # 0 and 1 are left to whatever else uses the server


def _next_redis_index() -> int:
    """A database no other pytest-xdist worker of this run uses: each worker has its own share and
    cycles through it, one test at a time."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    number = int(worker[2:]) if worker[2:].isdigit() else 0
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = max(1, len(REDIS_TEST_DATABASES) // max(1, workers))
    offset = (number * share + next(_redis_uses) % share) % len(REDIS_TEST_DATABASES)
    return REDIS_TEST_DATABASES[offset]


@pytest.fixture
def redis_url(redis_available: bool) -> Iterator[str]:
    """A Redis database of the shared server, emptied before and after the test."""
    import redis

    if not redis_available:
        unavailable(f"Redis at {REDIS_URL} (set ACCRUAL_TEST_REDIS_URL)")
    url = f"{REDIS_URL}/{_next_redis_index()}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


class RedisServer:
    """A private redis-server on a spare loopback port, which a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
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


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        unavailable("the redis-server program (Debian package redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


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


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bindirs:
        unavailable("PostgreSQL's server programs (Debian package postgresql) to start a private cluster")
    # Not under pytest's tmp_path: its root-only parents would keep the postgres user out.
    workdir = Path(tempfile.mkdtemp(prefix="accrual-pg-"))
    server = PostgresServer(workdir, bindirs[-1].parent)
    try:
        server.create()
        server.start()
        yield server
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()  # unless the test left it stopped
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- the service's state --------------------------------------------------------------------------


class Templates:
    """Migrated, seeded databases built once per test process and cloned for each Stack.

    Migrating and seeding cost a few hundred milliseconds a test; a clone costs a file copy on SQLite and
    `CREATE DATABASE ... TEMPLATE` on PostgreSQL. One template per distinct settings (keys and other
    values may change what is stored), each with the files its data directory got (generated keys).
    """

    def __init__(self) -> None:
        self.built: dict[tuple[str, str], Path] = {}
        self.pg_databases: list[str] = []

    @staticmethod
    def _key(settings: Settings, kind: str) -> tuple[str, str]:
        own = ("data_dir", "database_url", "broker_url")
        values = {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in settings
            if name not in own
        }
        return kind, json.dumps(values, sort_keys=True, default=str)

    def _build(self, settings: Settings, kind: str) -> Path:
        workdir = Path(tempfile.mkdtemp(prefix="accrual-template-"))
        if kind == "sqlite":
            url = f"sqlite:///{workdir / 'template.db'}"
        else:
            name = f"accrual_test_template_{os.getpid()}_{secrets.token_hex(4)}"
            _pg_admin_execute(f'CREATE DATABASE "{name}"')
            self.pg_databases.append(name)
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
            (workdir / "template.pg").write_text(name)
        template = settings.model_copy(update={"data_dir": workdir / "data", "database_url": url})
        db = Database.for_settings(template)
        try:
            upgrade(db)
            with db.transaction() as session:
                seed(session)
        finally:
            db.dispose()  # a PostgreSQL template must have no connection when it is cloned
        return workdir

    def _template(self, settings: Settings, kind: str) -> Path:
        key = self._key(settings, kind)
        if key not in self.built:
            self.built[key] = self._build(settings, kind)
        return self.built[key]

    def clone_into(self, settings: Settings) -> bool:
        """Give `settings`' empty database the template's content; False when it cannot be cloned (a
        database that is not a test's fresh one, or not empty), and the caller migrates and seeds."""
        url = make_url(settings.database_url)
        if url.drivername.startswith("sqlite"):
            target = Path(url.database or "")
            if not url.database or target.exists():
                return False
            template = self._template(settings, "sqlite")
            shutil.copyfile(template / "template.db", target)
        else:
            admin = make_url(PG_ADMIN_URL)
            name = url.database or ""
            if (url.host, url.port) != (admin.host, admin.port) or not name.startswith("accrual_test_"):
                return False
            template = self._template(settings, "postgres")
            source = (template / "template.pg").read_text()
            if name not in UNMADE_PG_DATABASES:  # pg_url made it, empty: it makes way for the clone
                _pg_admin_execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            UNMADE_PG_DATABASES.discard(name)
            _pg_admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
        self._copy_data_files(template / "data", settings.data_dir)
        return True

    @staticmethod
    def _copy_data_files(source: Path, destination: Path) -> None:
        """Keys generated into the template's data directory, so the clone's sealed and chained rows open."""
        if not source.exists():
            return
        destination.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if path.is_file() and not (destination / path.name).exists():
                shutil.copy2(path, destination / path.name)

    def drop_all(self) -> None:
        for name in self.pg_databases:
            with contextlib.suppress(Exception):
                _pg_admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for workdir in self.built.values():
            shutil.rmtree(workdir, ignore_errors=True)


TEMPLATES = Templates()


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    TEMPLATES.drop_all()


class Stack:
    """A migrated, seeded database with its settings, tokens and a Flask test client."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        cloned = TEMPLATES.clone_into(settings)
        self.db = Database.for_settings(settings)
        if not cloned:
            upgrade(self.db)
        with self.db.transaction() as session:
            if not cloned:
                seed(session)
            self.site_id = session.query(Site).filter_by(trial_id=TRIAL).order_by(Site.name).first().site_id  # type: ignore[union-attr]
            self.admin = create_token(session, Role.ADMIN)
            self.coordinator = create_token(session, Role.COORDINATOR, [self.site_id])

    @functools.cached_property
    def app(self) -> OpenAPI:
        """The Flask app, built on first use: many tests only need the database."""
        return create_app(self.settings, self.db)

    @functools.cached_property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def env(self) -> dict[str, str]:
        """Environment for a child process (worker, beat, serve) sharing this stack's state."""
        return {
            **os.environ,
            "ACCRUAL_DATA_DIR": str(self.settings.data_dir),
            "ACCRUAL_DATABASE_URL": self.settings.database_url,
            "ACCRUAL_BROKER_URL": self.settings.broker_url,
            "ACCRUAL_SECRET_KEY": "test-secret",
            "ACCRUAL_LOG_LEVEL": "WARNING",
            "ACCRUAL_WORKER_CONCURRENCY": "2",
        }

    def submit(self, applicant: dict[str, Any], token: str | None = None, **headers: str) -> Any:
        return self.client.post(
            "/api/v1/applications",
            json={"trial_id": TRIAL, "site_id": self.site_id, "applicant": applicant},
            headers={"Authorization": f"Bearer {token or self.coordinator}", **headers},
        )

    def close(self) -> None:
        self.db.dispose()


# Tests send many requests from one address; the rate-limit tests set their own, low limits.
GENEROUS_LIMITS = {
    "rate_limit_intake_per_token": "100000/minute",
    "rate_limit_intake_per_address": "100000/minute",
    "rate_limit_auth_failures": "100000/minute",
}
# Tests read /metrics right after a change; tests/integration/test_metrics_access.py tests the caching.
FRESH_METRICS = {"metrics_cache_seconds": 0}


def make_settings(data_dir: Path, database_url: str, broker_url: str = "", **overrides: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=broker_url,
        secret_key="test-secret",
        **{**GENEROUS_LIMITS, **FRESH_METRICS, **overrides},
    )


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The service's state on SQLite and on PostgreSQL (embedded broker; nothing is published here)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'accrual.db'}"
    else:
        url = request.getfixturevalue("pg_stack_url")
    built = Stack(make_settings(tmp_path, url))
    yield built
    built.close()


@pytest.fixture(params=["sqlite", "postgres+redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """The service's state for real processes: SQLite with the embedded broker, PostgreSQL with Redis."""
    if request.param == "sqlite":
        settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'accrual.db'}")
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
    built = Stack(make_settings(tmp_path, f"sqlite:///{tmp_path / 'accrual.db'}"))
    yield built
    built.close()


# --- processes ------------------------------------------------------------------------------------


class Processes:
    """Child processes started by a test, stopped (and their logs kept) when it ends."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.children: list[subprocess.Popen[bytes]] = []
        self.logs: list[Any] = []

    def start(
        self, name: str, args: list[str], env: dict[str, str], module: str = "services.cli"
    ) -> subprocess.Popen[bytes]:
        """`accrual ARGS...`, or another module's command line (a worker with a fault built in)."""
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.logs.append(log)
        child = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append(child)
        return child

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        # SIGTERM to the main process only: signalled as a group, a Celery worker's pool children can die
        # holding billiard's queue lock, and the main process then hangs at exit until SIGKILL.
        for child in self.children:
            if child.poll() is None:
                child.terminate()
        for child in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, 9)  # whatever is left of its group
            child.wait(5)
        for log in self.logs:
            log.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    started.stop_all()
