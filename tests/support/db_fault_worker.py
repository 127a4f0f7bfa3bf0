"""`accrual worker` whose database fails inside a decision's transaction: for the scenario 12 tests.

Run as `python -m tests.support.db_fault_worker worker` with DB_FAULTS=N and DB_FAULT_RECORD=PATH. The
hook is installed before Celery forks its pool, so every pool process has it: the first N times a process
writes a transaction's audit entries (the last write before its commit, after the status change, its
history row and its event), the database fails under it. On PostgreSQL its server ends the connection
(pg_terminate_backend from a second connection: a failover or a reset, as the driver sees one); on SQLite,
which has no server, the statement goes to a table that is not there, which the database refuses. Each
fault is appended to DB_FAULT_RECORD as a line before the failing statement runs.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from sqlalchemy import Engine, event

from services.cli import main

_left = int(os.environ.get("DB_FAULTS", "0"))
_record = os.environ["DB_FAULT_RECORD"]
TABLE = "audit_pending"


def _end_connection(dbapi_connection: Any) -> None:
    """Have PostgreSQL terminate this connection's backend, from a connection of its own."""
    info = dbapi_connection.info
    with psycopg.connect(
        host=info.host, port=info.port, user=info.user, dbname=info.dbname, autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [info.backend_pid])


def _fail_once(
    connection: Any, cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> Any:
    global _left
    if _left <= 0 or not statement.lstrip().upper().startswith(f"INSERT INTO {TABLE.upper()}"):
        return statement, parameters
    _left -= 1
    with open(_record, "a") as record:
        record.write(f"fault in {os.getpid()}\n")
    if connection.dialect.name == "postgresql":
        _end_connection(cursor.connection)
        return statement, parameters
    return statement.replace(TABLE, "injected_fault_" + TABLE, 1), parameters  # no such table


event.listen(Engine, "before_cursor_execute", _fail_once, retval=True)

if __name__ == "__main__":
    main()
