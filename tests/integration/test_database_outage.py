"""PostgreSQL restarted while the API serves: answers 503 problem+json during the outage, in bounded
time, and works again afterwards without restarting anything; no accepted application is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, make_url, select

import models.db as db_module
from models import Application
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem
from tests.support.servers import PostgresServer, pg_admin_execute
from tests.support.stack import Stack, make_settings


@pytest.mark.slow
def test_requests_during_a_database_restart_get_503_and_nothing_accepted_is_lost(
    private_postgres: PostgresServer, tmp_path: Path
) -> None:
    stack = Stack(make_settings(tmp_path, private_postgres.url))
    try:
        before = [stack.submit(eligible_applicant(f"B{n}")) for n in range(5)]
        assert {r.status_code for r in before} == {202}
        private_postgres.stop()
        started = time.monotonic()
        refused = stack.submit(eligible_applicant("DURING"))
        problem = assert_problem(refused, 503)
        assert refused.headers["Retry-After"] == "5" and "nothing was stored" in problem["detail"]
        read = stack.client.get("/api/v1/trials", headers={"Authorization": f"Bearer {stack.admin}"})
        assert_problem(read, 503)
        assert time.monotonic() - started < 20  # bounded by the connect timeout, not a hang
        private_postgres.start()
        after = [stack.submit(eligible_applicant(f"A{n}")) for n in range(5)]
        assert {r.status_code for r in after} == {202}
        accepted = {r.get_json()["id"] for r in before + after}
        with stack.db.sessions() as session:
            stored = set(session.scalars(select(Application.id)))
            during = session.scalar(
                select(func.count()).select_from(Application).where(Application.screening_id == "DURING")
            )
        assert stored == accepted and during == 0
    finally:
        stack.close()


def _cut_every_connection(stack: Stack) -> None:
    """What a database restart or a firewall does to pooled connections: the server side ends them."""
    database = make_url(stack.settings.database_url).database
    ours = f"datname = '{database}' AND pid <> pg_backend_pid()"
    pg_admin_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {ours}")  # noqa: S608


@pytest.mark.postgres
def test_a_pooled_connection_cut_while_idle_is_replaced_before_a_request_uses_it(
    pg_stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.05)
    assert pg_stack.submit(eligible_applicant("BEFORE")).status_code == 202
    _cut_every_connection(pg_stack)
    time.sleep(0.1)
    assert pg_stack.submit(eligible_applicant("AFTER")).status_code == 202


@pytest.mark.postgres
def test_a_connection_just_used_is_not_pinged_again(pg_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    pings: list[object] = []
    dialect = pg_stack.db.engine.dialect
    real_ping = dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted_ping)
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 60.0)
    for n in range(3):
        assert pg_stack.submit(eligible_applicant(f"BUSY-{n}")).status_code == 202
    assert pings == []
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert pg_stack.submit(eligible_applicant("IDLE")).status_code == 202
    assert pings  # idle long enough: pinged before use
