"""PostgreSQL restarted while the API serves: answers 503 problem+json during the outage, in bounded
time, and works again afterwards without restarting anything; no accepted application is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models import Application
from tests.support.applicants import eligible_applicant
from tests.support.http import assert_problem
from tests.support.servers import PostgresServer
from tests.support.stack import Stack, make_settings

pytestmark = pytest.mark.slow


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
