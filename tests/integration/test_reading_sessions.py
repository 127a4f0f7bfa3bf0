"""Reads on PostgreSQL open no transaction: no BEGIN and ROLLBACK round trips, and no ROLLBACK to make
psycopg drop the connection's prepared statements (it answers one with DEALLOCATE ALL)."""

from __future__ import annotations

from typing import Any

import pytest
from psycopg._connection_base import BaseConnection
from sqlalchemy import select, text

from models import Trial
from services.audit import one_snapshot, verify_trail
from tests.support.stack import Stack


def test_reads_send_no_transaction_commands_and_keep_prepared_statements(
    pg_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[bytes] = []
    send = BaseConnection._exec_command

    def recording(self: Any, command: Any, *args: Any, **kwargs: Any) -> Any:
        commands.append(bytes(command) if isinstance(command, bytes | bytearray) else str(command).encode())
        return send(self, command, *args, **kwargs)

    monkeypatch.setattr(BaseConnection, "_exec_command", recording)
    for _ in range(8):  # past psycopg's threshold for preparing a statement
        with pg_stack.db.reading() as session:
            assert session.scalars(select(Trial.trial_id)).all()
    assert [c for c in commands if c.split(b" ")[0] in (b"BEGIN", b"ROLLBACK", b"DEALLOCATE")] == []


def test_a_reader_that_asks_for_one_snapshot_still_gets_it(pg_stack: Stack) -> None:
    with pg_stack.db.reading() as session:
        one_snapshot(session)  # what verify_chain asks for: the whole trail read at one snapshot
        assert session.execute(text("SHOW transaction_isolation")).scalar() == "repeatable read"
    assert verify_trail(pg_stack.db).intact
