"""Scenario 12 of RELIABILITY.md section 7: the database fails inside a worker's transaction (on PostgreSQL
its server ends the connection, as a failover or a reset does; on SQLite a statement is refused) just
before a decision commits. The transaction rolls back, the task retries, every application is decided
once, and after each fault the invariant holds: no status change without its history row, its audit entry
and its event (tests/support/invariants.py). On SQLite with the embedded broker and on PostgreSQL with
Redis.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.database import events
from tests.support.invariants import status_changes_without_their_records
from tests.support.pipeline import assert_decided_exactly_once, decided, submit_many
from tests.support.processes import Processes
from tests.support.stack import Stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow
FAULTS = 3


def faults(record: Path) -> int:
    return len(record.read_text().splitlines()) if record.exists() else 0


def test_s12_a_database_fault_inside_a_decision_rolls_it_back_whole_and_the_task_retries(
    backend: Stack, processes: Processes, tmp_path: Path
) -> None:
    record = tmp_path / "faults.txt"
    environment = {
        **backend.env(),
        "DB_FAULTS": str(FAULTS),
        "DB_FAULT_RECORD": str(record),
        "ACCRUAL_WORKER_CONCURRENCY": "1",  # one pool process: FAULTS faults in all
        "ACCRUAL_LOG_LEVEL": "INFO",  # Celery's line for each retry
        # On PostgreSQL, as many faults as the default limit of deliveries (3): a delivery whose database
        # connection ended is given back, so none brings an application nearer to review. SQLite's
        # stand-in, a statement the database refuses, is the kind of error that may recur for one
        # application every time, so it stays counted: the limit is raised past the faults there.
        "ACCRUAL_SCREENING_MAX_DELIVERIES": str(
            FAULTS if backend.settings.database_url.startswith("postgresql") else 10
        ),
    }
    ids = submit_many(backend, 30, "DBFAULT")
    processes.start("worker", ["worker"], environment, module="tests.support.db_fault_worker")
    processes.start("beat", ["beat"], backend.env())
    checked = 0

    def decided_checking_after_each_fault() -> bool:
        nonlocal checked
        while checked < faults(record):  # a fault since the last look: the invariant must hold now
            checked += 1
            assert status_changes_without_their_records(backend) == [], f"after fault {checked}"
        return decided(backend, ids)

    wait_until(
        decided_checking_after_each_fault,
        timeout=120,
        interval=0.05,
        what="every decision: " + processes.log("worker")[-2000:],
    )
    assert faults(record) == FAULTS
    assert processes.log("worker").count("retry: Retry in") >= FAULTS
    assert status_changes_without_their_records(backend) == []
    assert_decided_exactly_once(backend, ids)
    assert {e["decision"] for e in events(backend, "application.screened")} == {"eligible"}
