"""Engine and session factory, with the SQLite settings that make several processes safe."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

from config import Settings
from models.audit import AuditKeys
from models.sealing import Keyring

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 5
# A pooled connection unused for longer than this is pinged before it is handed out (see _ping_when_idle).
PING_AFTER_IDLE_SECONDS = 1.0


READ_ONLY = "accrual_read_only"


class _NoResultRows(logging.Filter):
    """SQLAlchemy logs every result row at DEBUG, observations decrypted and screening ids included.
    Whatever level an operator gives its loggers, those records never leave the process."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(("Row ", "Col ")))


for _name in ("sqlalchemy.engine", "sqlalchemy.engine.Engine", "sqlalchemy.orm"):
    logging.getLogger(_name).addFilter(_NoResultRows())


def _prepare_sqlite(engine: Engine) -> None:
    """WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE for every transaction that may write.

    pysqlite defers BEGIN until the first write, so a transaction that read first can fail with
    SQLITE_BUSY on its first write regardless of the timeout; taking the write lock up front avoids it.
    Read-only sessions (Database.reading) begin deferred: under WAL they never wait for a writer.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; a SQLite file's directory is created if it does not exist yet.

    hide_parameters: a database error's message never carries the statement's values, which may be
    clinical, into a log or a traceback.
    """
    parsed = make_url(url)
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _prepare_sqlite(engine)
        return engine
    # A database that stops answering fails a request within seconds instead of hanging it.
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, **kwargs.pop("connect_args", {})}
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection before handing it out only if it has been idle for a while.

    SQLAlchemy's pool_pre_ping pings at every checkout: a round trip and ~0.4 ms of CPU, twice per
    intake request (its read and its write), a fifth of the request's cost. A connection used within
    the last second has just proved alive; one idle longer (a database restarted meanwhile, a
    connection cut by a firewall) is pinged, and a dead one is replaced, with the whole pool, as
    pre_ping would. A restart inside that second costs one request a 503 (the failed statement
    invalidates the pool), the answer any request gets while the database is away.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise InvalidatePoolError("a pooled connection failed its ping") from exc


class Database:
    """One engine and its session factory for a process."""

    def __init__(
        self,
        url: str,
        keyring: Keyring | None = None,
        audit_keys: AuditKeys | None = None,
        **engine_kwargs: Any,
    ) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        if keyring is not None:
            self.engine.dialect.accrual_keyring = keyring  # type: ignore[attr-defined]
        if audit_keys is not None:  # without them, nothing that writes to the audit trail can commit
            self.engine.dialect.accrual_audit_keys = audit_keys  # type: ignore[attr-defined]
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        read_only_engine = self.engine.execution_options(**{READ_ONLY: True})
        if self.engine.dialect.name == "postgresql":
            # Reads need no transaction of their own: under READ COMMITTED each statement sees its own
            # snapshot either way (a reader wanting one snapshot asks for REPEATABLE READ itself). And
            # the ROLLBACK that ended each read made psycopg drop every prepared statement of the
            # connection (DEALLOCATE ALL), so statements were parsed and planned afresh on each request.
            read_only_engine = read_only_engine.execution_options(isolation_level="AUTOCOMMIT")
        self._readers = sessionmaker(read_only_engine, expire_on_commit=False)

    @classmethod
    def for_settings(cls, settings: Settings) -> Database:
        """The configured database, able to seal and open clinical data and to chain the audit trail
        with the configured keys."""
        return cls(
            settings.database_url,
            Keyring.parse(settings.data_keyring_text()),
            AuditKeys.parse(settings.audit_keys_text()),
        )

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any exception."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only; on SQLite it does not queue behind writers."""
        with self._readers() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
