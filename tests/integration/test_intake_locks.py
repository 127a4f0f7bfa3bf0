"""No lock every writer takes: sixteen submitters at once on PostgreSQL, and none ever waits for a lock
another one holds (the audit chain's head and the recruitment counters used to be such locks)."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import create_engine, func, select, text

from models import Application
from services.audit import verify_trail
from tests.support.applicants import eligible_applicant
from tests.support.reporting import assert_counted
from tests.support.stack import TRIAL, Stack

SUBMITTERS, EACH = 16, 12
# Every lock a backend of this database is waiting for, and who holds it. Relation extension locks
# ("extend") are left out: PostgreSQL takes one for a few microseconds whenever an insert needs a new
# page of a table, whoever the writers are; they serialise the file's growth, not the writers' work.
WAITING = text(
    """SELECT l.locktype, l.mode, a.wait_event, pg_blocking_pids(a.pid)::text AS holders,
              left(a.query, 80) AS query
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
       WHERE NOT l.granted AND a.datname = current_database() AND l.locktype <> 'extend'"""
)


def sample_waits(url: str, stop: threading.Event, seen: list[Any]) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            while not stop.is_set():
                seen.extend(tuple(row) for row in connection.execute(WAITING))
    finally:
        engine.dispose()


def submit_from_a_thread(stack: Stack, number: int, accepted: list[str], failures: list[Any]) -> None:
    client = stack.app.test_client()
    for n in range(EACH):
        response = client.post(
            "/api/v1/applications",
            json={
                "trial_id": TRIAL,
                "site_id": stack.site_id,
                "applicant": eligible_applicant(f"LOCKS-{number}-{n}"),
            },
            headers={"Authorization": f"Bearer {stack.coordinator}"},
        )
        if response.status_code == 202:
            accepted.append(response.get_json()["id"])
        else:
            failures.append((response.status_code, response.get_json()))


def test_sixteen_concurrent_submitters_never_wait_for_each_others_locks(pg_stack: Stack) -> None:
    stop, seen = threading.Event(), []  # type: ignore[var-annotated]
    sampler = threading.Thread(target=sample_waits, args=(pg_stack.settings.database_url, stop, seen))
    sampler.start()
    accepted: list[str] = []
    failures: list[Any] = []
    submitters = [
        threading.Thread(target=submit_from_a_thread, args=(pg_stack, n, accepted, failures))
        for n in range(SUBMITTERS)
    ]
    try:
        for submitter in submitters:
            submitter.start()
        for submitter in submitters:
            submitter.join()
    finally:
        stop.set()
        sampler.join()
    assert failures == [] and len(accepted) == SUBMITTERS * EACH
    assert seen == []  # not one sample caught an intake waiting for a lock
    with pg_stack.db.sessions() as session:
        stored = session.scalar(select(func.count()).select_from(Application))
    assert stored == SUBMITTERS * EACH
    assert_counted(pg_stack)
    verdict = verify_trail(pg_stack.db)  # chained after commit, every entry proven in its order
    assert verdict.intact and verdict.entries >= SUBMITTERS * EACH
